"""Independent reference for Firth's logit: direct optimisation with scipy.

Written from the definition, sharing no code with the package: the penalised
log-likelihood l(b) + 1/2 log det(Z' W Z), with the log-determinant from
``numpy.linalg.slogdet``, maximised by scipy's trust-region method with a
finite-difference-free exact gradient and a tight tolerance, then polished
by solving the modified score equations with ``scipy.optimize.root``.
Profile bounds: ``scipy.optimize.brentq`` on the profile function, each
profile point maximised the same way.  ``branch_bound``: a bound with
restarts at each crossing (``fit_firth``'s default under separation), the
same way.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq, minimize, root
from scipy.special import expit, log_expit
from scipy.stats import chi2


def penalised_loglik(b, Z, y):
    eta = Z @ b
    p = expit(eta)
    info = (Z * (p * (1 - p))[:, None]).T @ Z
    sign, logdet = np.linalg.slogdet(info)
    if sign <= 0:
        return -np.inf
    return np.sum(y * log_expit(eta) + (1 - y) * log_expit(-eta)) + 0.5 * logdet


def modified_score(b, Z, y):
    p = expit(Z @ b)
    W = p * (1 - p)
    info = (Z * W[:, None]).T @ Z
    h = W * np.einsum("ti,ij,tj->t", Z, np.linalg.inv(info), Z)
    return Z.T @ (y - p + h * (0.5 - p))


def _argmax(Z, y, start, free):
    """Maximise over the coordinates ``free`` (bool mask), the rest fixed at ``start``."""
    b0 = np.asarray(start, dtype=float).copy()

    def full(x):
        b = b0.copy()
        b[free] = x
        return b

    res = minimize(lambda x: -penalised_loglik(full(x), Z, y), b0[free],
                   jac=lambda x: -modified_score(full(x), Z, y)[free],
                   method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000})
    sol = root(lambda x: modified_score(full(x), Z, y)[free], res.x, method="hybr",
               options={"xtol": 1e-14})
    x = sol.x if sol.success else res.x
    return full(x), penalised_loglik(full(x), Z, y)


def firth_reference(X, y, intercept=True, level=0.95):
    """Firth estimate and profile intervals of every parameter of one data set.

    Returns (beta (P,), lower (P,), upper (P,)), slopes then intercept.
    """
    Z = np.column_stack([X, np.ones(len(X))]) if intercept else np.asarray(X, float)
    y = np.asarray(y, float)
    P = Z.shape[1]
    beta, top = _argmax(Z, y, np.zeros(P), np.ones(P, bool))
    q = chi2.ppf(level, 1)
    p = expit(Z @ beta)
    se = np.sqrt(np.diag(np.linalg.inv((Z * (p * (1 - p))[:, None]).T @ Z)))
    lower, upper = np.empty(P), np.empty(P)
    for j in range(P):
        free = np.ones(P, bool)
        free[j] = False
        warm = [beta.copy()]

        def g(c):
            # several local maxima are possible under separation: start from
            # the previous profile point and from the estimate, keep the best
            best = None
            for start in (warm[0].copy(), beta.copy()):
                start[j] = c
                b, val = _argmax(Z, y, start, free)
                if best is None or val > best[1]:
                    best = (b, val)
            warm[0] = best[0]
            return best[1] - (top - q / 2)

        for side, out in ((-1, lower), (1, upper)):
            warm[0] = beta.copy()
            step = se[j]
            while g(beta[j] + side * step) > 0:
                step *= 2
            warm[0] = beta.copy()
            out[j] = brentq(g, beta[j], beta[j] + side * step, xtol=1e-12, rtol=1e-13)
    return beta, lower, upper


def branch_bound(X, y, j, side, start, intercept=True, level=0.95, rounds=8):
    """A profile bound with restarts at each crossing, from the definition.

    ``start`` is a crossing of the profile followed from the estimate (the
    bound without restarts).  At a crossing c, the other parameters are
    maximised again from two starts (the estimate with only b_j moved to c;
    the estimate scaled so that b_j = c); if one ends above the target
    l*(estimate) - chi2_1(level) / 2, that branch is followed outward in
    steps of a tenth of the standard error, each point maximised from the
    last point above the target, to where it falls below the target; the
    crossing is then found by brentq, each evaluation maximised from the last
    point above the target; and the restarts are tried again there.

    Returns (bound, the restarts' best maximum minus the target at it).
    """
    Z = np.column_stack([X, np.ones(len(X))]) if intercept else np.asarray(X, float)
    y = np.asarray(y, float)
    P = Z.shape[1]
    beta, top = _argmax(Z, y, np.zeros(P), np.ones(P, bool))
    target = top - chi2.ppf(level, 1) / 2
    p = expit(Z @ beta)
    se = np.sqrt(np.linalg.inv((Z * (p * (1 - p))[:, None]).T @ Z)[j, j])
    free = np.ones(P, bool)
    free[j] = False

    def restarts(c):
        best = None
        for scaled in (False, True):
            b = beta * (c / beta[j]) if scaled else beta.copy()
            b[j] = c
            point, val = _argmax(Z, y, b, free)
            if best is None or val > best[1]:
                best = (point, val)
        return best

    c = float(start)
    for _ in range(rounds):
        point, val = restarts(c)
        if val <= target + 1e-7 * max(1.0, abs(target)):
            return c, val - target
        inside = (c, point)
        for _ in range(100_000):
            b = inside[1].copy()
            b[j] = inside[0] + side * 0.1 * se
            nxt, v = _argmax(Z, y, b, free)
            if v < target:
                break
            inside = (b[j], nxt)
        else:
            raise RuntimeError("the branch did not fall below the target")

        def g(x):
            b = inside[1].copy()
            b[j] = x
            return _argmax(Z, y, b, free)[1] - target

        c = brentq(g, inside[0], inside[0] + side * 0.1 * se, xtol=1e-12, rtol=1e-13)
    raise RuntimeError("no crossing without a higher branch after the rounds")
