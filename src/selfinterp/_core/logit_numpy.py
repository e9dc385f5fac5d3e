"""NumPy reference for the batched binary logit (Newton with step halving).

All contexts are iterated together; a context stops updating once it has
converged.  The objective maximised per context is

    l(theta) = sum_t w_t [f_t eta_t - softplus(eta_t)] - 1/2 sum_j prec_j theta_j^2

with ``eta = Z @ theta``, ``Z`` the design (slopes first, intercept column last
when fitted), ``f`` the outcome as a fraction in [0, 1] and ``w`` the number of
binomial trials behind it (0 for masked rows).  ``prec`` is the prior
precision (0 for plain maximum likelihood).

Separation is examined afterwards by :func:`separation_status_numpy`: an
unpenalised Newton run from the fitted value that either converges to a finite
maximum likelihood estimate (status 0), finds a direction that separates the
data, a certificate that the MLE does not exist (status 1), or neither within
its iterations (status 2: the caller settles it exactly with a linear program).
"""

from __future__ import annotations

import numpy as np

ETA_MAX = 30.0  # |eta| past which a fitted probability is within 1e-13 of 0 or 1
MAX_HALVING = 40


def softplus(eta):
    return np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))


def sigmoid(eta):
    e = np.exp(-np.abs(eta))
    return np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _evaluate(Z, f, w, theta, prec):
    eta = np.einsum("atp,ap->at", Z, theta)
    p = sigmoid(eta)
    obj = np.sum(w * (f * eta - softplus(eta)), axis=1) - 0.5 * np.sum(prec * theta**2, axis=1)
    g = np.einsum("at,atp->ap", w * (f - p), Z) - prec * theta
    H = np.einsum("at,atp,atq->apq", w * p * (1.0 - p), Z, Z)
    H = H + prec[..., None] * np.eye(Z.shape[2])
    return obj, g, H, eta


def _solve(H, g):
    """Newton direction per context; ``ok`` is False where H is not positive definite."""
    ok = np.ones(len(g), dtype=bool)
    d = np.zeros_like(g)
    for a in range(len(g)):
        try:
            L = np.linalg.cholesky(H[a])
        except np.linalg.LinAlgError:
            ok[a] = False
            continue
        d[a] = np.linalg.solve(L.T, np.linalg.solve(L, g[a]))
    return d, ok


def _certificate(Z, f, w, theta):
    """True where ``theta`` (non-zero) classifies every weighted row with the right sign."""
    eta = np.einsum("atp,ap->at", Z, theta)
    used = w > 0
    bad = used & (((f == 1.0) & (eta < 0)) | ((f == 0.0) & (eta > 0))
                  | ((f > 0.0) & (f < 1.0) & (eta != 0)))
    nonzero = np.any(used & (eta != 0), axis=1)
    return nonzero & ~np.any(bad, axis=1)


def newton_numpy(Z, f, w, prec, max_iter, tol, theta0=None, stop_on_certificate=False):
    """Batched Newton; returns theta, inverse Hessian, converged, n_iter, certified."""
    A, T, P = Z.shape
    theta = np.zeros((A, P)) if theta0 is None else theta0.copy()
    obj, g, H, eta = _evaluate(Z, f, w, theta, prec)
    converged = np.zeros(A, dtype=bool)
    certified = np.zeros(A, dtype=bool)
    n_iter = np.zeros(A, dtype=np.int64)
    active = np.ones(A, dtype=bool)
    for it in range(max_iter):
        if stop_on_certificate:
            cert = active & _certificate(Z, f, w, theta) & np.any(theta != 0, axis=1)
            certified |= cert
            active &= ~cert
        if not active.any():
            break
        idx = np.flatnonzero(active)
        d, ok = _solve(H[idx], g[idx])
        active[idx[~ok]] = False
        idx = idx[ok]
        d = d[ok]
        step = np.ones(len(idx))
        pending = np.ones(len(idx), dtype=bool)
        new_theta = theta[idx].copy()
        new = [obj[idx].copy(), g[idx].copy(), H[idx].copy(), eta[idx].copy()]
        for _ in range(MAX_HALVING):
            if not pending.any():
                break
            j = np.flatnonzero(pending)
            cand = theta[idx[j]] + step[j, None] * d[j]
            o, gg, hh, ee = _evaluate(Z[idx[j]], f[idx[j]], w[idx[j]], cand, prec[idx[j]])
            acc = o >= obj[idx[j]] - 1e-12 * np.abs(obj[idx[j]])
            jj = j[acc]
            new_theta[jj] = cand[acc]
            new[0][jj], new[1][jj], new[2][jj], new[3][jj] = o[acc], gg[acc], hh[acc], ee[acc]
            pending[jj] = False
            step[j[~acc]] *= 0.5
        moved = ~pending
        # a context whose step could not raise the objective stops where it is
        theta[idx] = new_theta
        obj[idx], g[idx], H[idx], eta[idx] = new
        n_iter[idx] = it + 1
        applied = np.where(moved[:, None], step[:, None] * d, 0.0)
        small = np.max(np.abs(applied), axis=1) <= tol * (1.0 + np.max(np.abs(new_theta), axis=1))
        done = small | ~moved
        converged[idx[done]] = True
        active[idx[done]] = False
    cov = np.zeros_like(H)
    for a in range(A):
        cov[a] = _safe_inverse(H[a])
    return theta, cov, converged, n_iter, certified, eta


def _safe_inverse(H):
    """Inverse of a symmetric PSD matrix, with the smallest jitter that makes it PD."""
    P = H.shape[0]
    scale = max(np.max(np.abs(np.diag(H))), 1e-300)
    jitter = 0.0
    for _ in range(40):
        try:
            L = np.linalg.cholesky(H + jitter * np.eye(P))
            Linv = np.linalg.solve(L, np.eye(P))
            return Linv.T @ Linv
        except np.linalg.LinAlgError:
            jitter = scale * 1e-14 if jitter == 0.0 else jitter * 10.0
    return np.eye(P) * 1e300


def fit_numpy(Z, f, w, prec, max_iter=100, tol=1e-8, check_separation=True):
    """Fit every context; returns (theta, cov, converged, n_iter, sep_status)."""
    ml = not np.any(prec)
    theta, cov, conv, n_iter, cert, eta = newton_numpy(
        Z, f, w, prec, max_iter, tol, stop_on_certificate=ml)
    if ml:
        # a finite MLE needs a clean convergence: not stopped by a certificate
        conv = conv & ~cert & (np.max(np.abs(eta) * (w > 0), axis=1) < ETA_MAX)
    status = np.zeros(len(Z), dtype=np.int8)
    if check_separation:
        status = separation_status_numpy(Z, f, w, theta, max_iter, tol)
    return theta, cov, conv, n_iter, status


def separation_status_numpy(Z, f, w, theta0, max_iter, tol):
    zero = np.zeros_like(theta0)
    th, _, conv, _, cert, eta = newton_numpy(Z, f, w, zero, max_iter, tol, theta0=theta0,
                                             stop_on_certificate=True)
    clean = conv & ~cert & (np.max(np.abs(eta) * (w > 0), axis=1) < ETA_MAX)
    status = np.full(len(Z), 2, dtype=np.int8)
    status[clean] = 0
    status[cert] = 1
    return status
