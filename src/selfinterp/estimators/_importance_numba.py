"""numba kernel: importance sampling of a logit posterior, parallel over contexts.

Draw ``s`` of context ``c`` uses the counter-based stream of ``(key, c)``
(:mod:`selfinterp._core.rng`), uniforms ``s * D + j``: ``2 P`` for the P
standard normals (Box-Muller, one normal per pair), then ``2 df`` for the df
normals whose squares make the chi-square of the Student-t.  Results are
therefore the same whatever the batching and the number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._core.rng import context_seed, uniform

TWO_PI = 2.0 * math.pi


@njit(cache=True, inline="always")
def _normal(cs, index):
    u1 = 1.0 - uniform(cs, index)  # in (0, 1]: the log stays finite
    u2 = uniform(cs, index + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(TWO_PI * u2)


@njit(cache=True, parallel=True)
def importance_draws(X, f, w, fit_intercept, mode, chol, prec, df, n_draws, key, first_context):
    """Student-t draws around ``mode`` and their log importance weights.

    Parameters
    ----------
    X : (A, T, K); f, w : (A, T) outcome fractions and trial weights
    mode : (A, P) proposal centre; chol : (A, P, P) lower Cholesky factor of
    the proposal scale matrix; prec : (P,) prior precisions (normal(0, 1/prec))
    df : int degrees of freedom; n_draws : int; key : uint64; first_context : int

    Returns
    -------
    draws : (A, n_draws, P)
    logw : (A, n_draws) log target minus log proposal, up to a constant per context
    """
    A, T, K = X.shape
    P = mode.shape[1]
    D = 2 * (P + df)
    draws = np.empty((A, n_draws, P))
    logw = np.empty((A, n_draws))
    for a in prange(A):
        cs = context_seed(key, first_context + a)
        z = np.empty(P)
        th = np.empty(P)
        for s in range(n_draws):
            base = s * D
            zz = 0.0
            for p in range(P):
                z[p] = _normal(cs, base + 2 * p)
                zz += z[p] * z[p]
            chi = 0.0
            for j in range(df):
                e = _normal(cs, base + 2 * P + 2 * j)
                chi += e * e
            r = math.sqrt(df / chi)
            for p in range(P):
                acc = 0.0
                for q in range(p + 1):
                    acc += chol[a, p, q] * z[q]
                th[p] = mode[a, p] + r * acc
                draws[a, s, p] = th[p]
            # log proposal (multivariate t) up to a constant: the Mahalanobis
            # distance of the draw is r^2 |z|^2
            lq = -0.5 * (df + P) * math.log1p(r * r * zz / df)
            lt = 0.0
            for p in range(P):
                lt -= 0.5 * prec[p] * th[p] * th[p]
            for t in range(T):
                if w[a, t] == 0.0:
                    continue
                x = th[K] if fit_intercept else 0.0
                for k in range(K):
                    x += X[a, t, k] * th[k]
                lt += w[a, t] * (f[a, t] * x - (max(x, 0.0) + math.log1p(math.exp(-abs(x)))))
            logw[a, s] = lt - lq
    return draws, logw
