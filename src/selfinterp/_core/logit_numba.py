"""numba kernel for the batched binary logit, parallel over contexts.

Same algorithm, stopping rules and outputs as :mod:`.logit_numpy` (read its
docstring for the objective and the separation status).  Each context's design
is copied into a small transposed buffer, parameter-major, so that the loops
over trials are contiguous and vectorise.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .logit_numpy import ETA_MAX, MAX_HALVING


@njit(cache=True, fastmath={"contract", "arcp", "nsz", "reassoc"})
def _evaluate(Zt, f, w, theta, prec, eta, r, v, g, H):
    """One pass over the trials: objective, gradient ``g`` and Hessian ``H``."""
    P, T = Zt.shape
    for t in range(T):
        eta[t] = 0.0
    for p in range(P):
        th = theta[p]
        for t in range(T):
            eta[t] += Zt[p, t] * th
    obj = 0.0
    for t in range(T):
        x = eta[t]
        e = math.exp(-abs(x))
        inv = 1.0 / (1.0 + e)
        pr = inv if x >= 0.0 else e * inv
        sp = max(x, 0.0) + math.log1p(e)
        obj += w[t] * (f[t] * x - sp)
        r[t] = w[t] * (f[t] - pr)
        v[t] = w[t] * pr * (1.0 - pr)
    for p in range(P):
        obj -= 0.5 * prec[p] * theta[p] * theta[p]
        s = 0.0
        for t in range(T):
            s += r[t] * Zt[p, t]
        g[p] = s - prec[p] * theta[p]
        for q in range(p + 1):
            s = 0.0
            for t in range(T):
                s += v[t] * Zt[p, t] * Zt[q, t]
            H[p, q] = s
            H[q, p] = s
        H[p, p] += prec[p]
    return obj


@njit(cache=True)
def _cholesky_solve(H, g, L, d):
    """Solve H d = g by Cholesky; False if H is not positive definite."""
    P = H.shape[0]
    for i in range(P):
        for j in range(i + 1):
            s = H[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if not s > 0.0:
                    return False
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    for i in range(P):
        s = g[i]
        for k in range(i):
            s -= L[i, k] * d[k]
        d[i] = s / L[i, i]
    for i in range(P - 1, -1, -1):
        s = d[i]
        for k in range(i + 1, P):
            s -= L[k, i] * d[k]
        d[i] = s / L[i, i]
    return True


@njit(cache=True)
def _safe_inverse(H, out, L):
    P = H.shape[0]
    scale = 1e-300
    for i in range(P):
        scale = max(scale, abs(H[i, i]))
    jitter = 0.0
    Hj = H.copy()
    e = np.zeros(P)
    col = np.zeros(P)
    for _ in range(40):
        for i in range(P):
            Hj[i, i] = H[i, i] + jitter
        ok = True
        for j in range(P):
            for i in range(P):
                e[i] = 0.0
            e[j] = 1.0
            if not _cholesky_solve(Hj, e, L, col):
                ok = False
                break
            for i in range(P):
                out[i, j] = col[i]
        if ok:
            return
        jitter = scale * 1e-14 if jitter == 0.0 else jitter * 10.0
    for i in range(P):
        for j in range(P):
            out[i, j] = 1e300 if i == j else 0.0


@njit(cache=True)
def _certificate(Zt, f, w, theta, eta):
    P, T = Zt.shape
    nonzero = False
    for t in range(T):
        if w[t] <= 0.0:
            continue
        x = 0.0
        for p in range(P):
            x += Zt[p, t] * theta[p]
        eta[t] = x
        if x != 0.0:
            nonzero = True
        if f[t] == 1.0:
            if x < 0.0:
                return False
        elif f[t] == 0.0:
            if x > 0.0:
                return False
        elif x != 0.0:
            return False
    return nonzero


@njit(cache=True)
def _any_nonzero(theta):
    for p in range(theta.shape[0]):
        if theta[p] != 0.0:
            return True
    return False


@njit(cache=True)
def _newton(Zt, f, w, prec, theta, max_iter, tol, stop_on_certificate, bufs):
    """Newton with step halving from ``theta`` (updated in place).

    Returns (converged, n_iter, certified, max_abs_eta); ``bufs`` holds the
    work arrays so that no allocation happens per iteration.
    """
    eta, r, v, g, H, L, d, cand, g2, H2, eta2 = bufs
    P, T = Zt.shape
    obj = _evaluate(Zt, f, w, theta, prec, eta, r, v, g, H)
    converged = False
    certified = False
    n_iter = 0
    for it in range(max_iter):
        if stop_on_certificate and _any_nonzero(theta) and _certificate(Zt, f, w, theta, eta2):
            certified = True
            break
        if not _cholesky_solve(H, g, L, d):
            break
        step = 1.0
        moved = False
        for _ in range(MAX_HALVING):
            for p in range(P):
                cand[p] = theta[p] + step * d[p]
            o = _evaluate(Zt, f, w, cand, prec, eta2, r, v, g2, H2)
            if o >= obj - 1e-12 * abs(obj):
                moved = True
                break
            step *= 0.5
        n_iter = it + 1
        if not moved:
            converged = True
            break
        big = 0.0
        applied = 0.0
        for p in range(P):
            applied = max(applied, abs(step * d[p]))
            theta[p] = cand[p]
            big = max(big, abs(cand[p]))
            g[p] = g2[p]
            for q in range(P):
                H[p, q] = H2[p, q]
        for t in range(T):
            eta[t] = eta2[t]
        obj = o
        if applied <= tol * (1.0 + big):
            converged = True
            break
    max_eta = 0.0
    for t in range(T):
        if w[t] > 0.0:
            max_eta = max(max_eta, abs(eta[t]))
    return converged, n_iter, certified, max_eta


@njit(cache=True, parallel=True)
def fit_numba(X, f, w, fit_intercept, prec, max_iter, tol, check_separation):
    """Fit every context of ``X`` (A, T, K); see :func:`.logit_numpy.fit_numpy`."""
    A, T, K = X.shape
    P = K + 1 if fit_intercept else K
    theta_out = np.zeros((A, P))
    cov_out = np.zeros((A, P, P))
    conv_out = np.zeros(A, dtype=np.bool_)
    iter_out = np.zeros(A, dtype=np.int64)
    status_out = np.zeros(A, dtype=np.int8)
    ml = True
    for p in range(P):
        if prec[p] != 0.0:
            ml = False
    zero_prec = np.zeros(P)
    for a in prange(A):
        Zt = np.empty((P, T))
        for t in range(T):
            for k in range(K):
                Zt[k, t] = X[a, t, k]
            if fit_intercept:
                Zt[K, t] = 1.0
        fa = f[a]
        wa = w[a]
        bufs = (np.empty(T), np.empty(T), np.empty(T), np.empty(P), np.empty((P, P)),
                np.zeros((P, P)), np.empty(P), np.empty(P), np.empty(P), np.empty((P, P)),
                np.empty(T))
        theta = np.zeros(P)
        conv, n_iter, cert, max_eta = _newton(Zt, fa, wa, prec, theta, max_iter, tol, ml, bufs)
        if ml:
            conv = conv and (not cert) and max_eta < ETA_MAX
        theta_out[a] = theta
        conv_out[a] = conv
        iter_out[a] = n_iter
        _safe_inverse(bufs[4], cov_out[a], bufs[5])
        if check_separation:
            th = theta.copy()
            c2, _, cert2, me2 = _newton(Zt, fa, wa, zero_prec, th, max_iter, tol, True, bufs)
            if cert2:
                status_out[a] = 1
            elif c2 and me2 < ETA_MAX:
                status_out[a] = 0
            else:
                status_out[a] = 2
    return theta_out, cov_out, conv_out, iter_out, status_out
