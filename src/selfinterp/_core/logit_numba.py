"""numba kernel for the batched binary logit, parallel over contexts.

Same algorithm, stopping rules and outputs as :mod:`.logit_numpy` (read its
docstring for the objective, the line search and the separation status); this
module is about doing it fast.

* Layout: each context's design is copied into a small transposed buffer
  ``Zt`` (P, T), parameter-major, so that every loop over trials is contiguous
  and LLVM vectorises it (AVX-512 here).  Only per-context buffers are
  allocated, one set per block of contexts: ``X`` is never copied whole.
* exp: numba has no vector math library on this machine (no SVML), so
  ``math.exp`` keeps a loop scalar.  :func:`exp_nonpos` is a branch-free exp
  (Cody-Waite range reduction, degree-13 Taylor polynomial, exponent bits
  assembled as an integer and reinterpreted), accurate to 1 ulp on
  [-700, 0], which vectorises.
* Few passes per Newton iteration: eta = Z theta, then residuals and weights,
  then gradient and Hessian; the log-likelihood itself (log1p per trial) is
  only evaluated when the line search needs it (see :data:`.logit_numpy.SAFE_ETA_STEP`).
* ``error_model="numpy"``: no ZeroDivisionError branch in the loops, which
  would stop vectorisation (no division here can be by zero).

numba's on-disk cache is keyed on this file alone: the constants imported
from :mod:`.logit_numpy` are frozen into the cached code, so changing one of
them there must come with a change here (or a cleared ``__pycache__``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, set_parallel_chunksize, types
from numba.extending import intrinsic

from .logit_numpy import CERT_MARGIN, ETA_MAX, MAX_HALVING, SAFE_ETA_STEP

FASTMATH = {"contract", "arcp", "nsz", "reassoc"}
# Without reassociation: the range reduction of exp (x - n ln2_hi - n ln2_lo)
# must not be regrouped.  LLVM inlines these small functions into the loops,
# keeping each instruction's own flags, so the loops still vectorise.
SCALAR_FASTMATH = {"contract", "arcp", "nsz"}
BLOCK = 64  # contexts per work item: buffers are allocated once per block

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # ln 2 split in two (Cody & Waite) so n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10


@intrinsic
def _bits_as_float(typingctx, bits):
    """Reinterpret the 64 bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@njit(cache=True, fastmath=SCALAR_FASTMATH, error_model="numpy")
def exp_nonpos(x):
    """exp(x) for x <= 0, vectorisable; arguments below -700 are clamped there."""
    x = max(x, -700.0)
    n = math.floor(x * _LOG2E + 0.5)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO  # |r| <= ln(2) / 2, so 14 Taylor terms reach 1e-17
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _bits_as_float((np.int64(n) + 1023) << 52)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _linear(Zt, theta, eta):
    """eta = Z @ theta."""
    P, T = Zt.shape
    th = theta[0]
    for t in range(T):
        eta[t] = Zt[0, t] * th
    for p in range(1, P):
        th = theta[p]
        for t in range(T):
            eta[t] += Zt[p, t] * th


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _residuals(eta, f, w, r, v):
    """r = w (f - sigmoid(eta)) and v = w sigmoid(eta) (1 - sigmoid(eta)), one sweep."""
    for t in range(eta.shape[0]):
        x = eta[t]
        e = exp_nonpos(-abs(x))
        inv = 1.0 / (1.0 + e)
        pr = inv if x >= 0.0 else e * inv
        r[t] = w[t] * (f[t] - pr)
        v[t] = w[t] * (e * inv * inv)  # p (1 - p) without cancellation on either side


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _grad_hess(Zt, r, v, tmp, theta, prec, g, H):
    """Gradient and negative Hessian of the penalised log-likelihood.

    Two Hessian entries per sweep over the trials: the loop overhead and the
    horizontal sums of the vector accumulators are what cost at T = 50.
    """
    P, T = Zt.shape
    for p in range(P):
        s = 0.0
        for t in range(T):
            s += r[t] * Zt[p, t]
            tmp[t] = v[t] * Zt[p, t]
        g[p] = s - prec[p] * theta[p]
        q = 0
        while q + 1 <= p:
            s0 = 0.0
            s1 = 0.0
            for t in range(T):
                vz = tmp[t]
                s0 += vz * Zt[q, t]
                s1 += vz * Zt[q + 1, t]
            H[p, q] = s0
            H[q, p] = s0
            H[p, q + 1] = s1
            H[q + 1, p] = s1
            q += 2
        if q == p:
            s0 = 0.0
            for t in range(T):
                s0 += tmp[t] * Zt[p, t]
            H[p, p] = s0
        H[p, p] += prec[p]


@njit(cache=True, fastmath=SCALAR_FASTMATH, error_model="numpy")
def log1p_unit(e):
    """log(1 + e) for e in [0, 1], vectorisable: 2 atanh(s) with s = e / (2 + e) <= 1/3."""
    s = e / (2.0 + e)
    s2 = s * s
    q = 1.0 / 33.0  # the series sum_k s^(2k) / (2k + 1), truncated where (1/9)^17 / 35 < 1e-17
    q = q * s2 + 1.0 / 31.0
    q = q * s2 + 1.0 / 29.0
    q = q * s2 + 1.0 / 27.0
    q = q * s2 + 1.0 / 25.0
    q = q * s2 + 1.0 / 23.0
    q = q * s2 + 1.0 / 21.0
    q = q * s2 + 1.0 / 19.0
    q = q * s2 + 1.0 / 17.0
    q = q * s2 + 1.0 / 15.0
    q = q * s2 + 1.0 / 13.0
    q = q * s2 + 1.0 / 11.0
    q = q * s2 + 1.0 / 9.0
    q = q * s2 + 1.0 / 7.0
    q = q * s2 + 1.0 / 5.0
    q = q * s2 + 1.0 / 3.0
    q = q * s2 + 1.0
    return 2.0 * s * q


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _objective_residuals(eta, f, w, theta, prec, r, v):
    """Penalised log-likelihood at eta, and :func:`_residuals` in the same sweep.

    Only the line search far from the optimum needs the objective.
    """
    obj = 0.0
    for t in range(eta.shape[0]):
        x = eta[t]
        e = exp_nonpos(-abs(x))
        inv = 1.0 / (1.0 + e)
        pr = inv if x >= 0.0 else e * inv
        r[t] = w[t] * (f[t] - pr)
        v[t] = w[t] * (e * inv * inv)
        obj += w[t] * (f[t] * x - (max(x, 0.0) + log1p_unit(e)))
    for p in range(theta.shape[0]):
        obj -= 0.5 * prec[p] * theta[p] * theta[p]
    return obj


@njit(cache=True, error_model="numpy")
def _cholesky(H, L):
    """Lower Cholesky factor of H into L; False if H is not positive definite."""
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
    return True


@njit(cache=True, error_model="numpy")
def _chol_solve(L, b, x):
    P = L.shape[0]
    for i in range(P):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * x[k]
        x[i] = s / L[i, i]
    for i in range(P - 1, -1, -1):
        s = x[i]
        for k in range(i + 1, P):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]


@njit(cache=True, error_model="numpy")
def _inverse_from_cholesky(L, out, Linv):
    """out = (L L^T)^-1 = Linv^T Linv, with Linv the inverse of the lower factor."""
    P = L.shape[0]
    for j in range(P):
        for i in range(P):
            if i < j:
                Linv[i, j] = 0.0
            else:
                s = 1.0 if i == j else 0.0
                for k in range(j, i):
                    s -= L[i, k] * Linv[k, j]
                Linv[i, j] = s / L[i, i]
    for i in range(P):
        for j in range(i + 1):
            s = 0.0
            for k in range(i, P):
                s += Linv[k, i] * Linv[k, j]
            out[i, j] = s
            out[j, i] = s


@njit(cache=True, error_model="numpy")
def _safe_inverse(H, out, Hj, L, e, col):
    """Inverse of symmetric PSD ``H``, with the smallest jitter that makes it PD."""
    P = H.shape[0]
    scale = 1e-300
    for i in range(P):
        scale = max(scale, abs(H[i, i]))
    jitter = 0.0
    for _ in range(40):
        for i in range(P):
            for j in range(P):
                Hj[i, j] = H[i, j]
            Hj[i, i] = H[i, i] + jitter
        if _cholesky(Hj, L):
            for j in range(P):
                for i in range(P):
                    e[i] = 0.0
                e[j] = 1.0
                _chol_solve(L, e, col)
                for i in range(P):
                    out[i, j] = col[i]
            return
        jitter = scale * 1e-14 if jitter == 0.0 else jitter * 10.0
    for i in range(P):
        for j in range(P):
            out[i, j] = 1e300 if i == j else 0.0


@njit(cache=True, error_model="numpy")
def _signs_agree(eta, f, w):
    """True if eta (not all zero) has the sign of every weighted outcome (a separating direction)."""
    nonzero = False
    for t in range(eta.shape[0]):
        if w[t] <= 0.0:
            continue
        x = eta[t]
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _max_abs_diff(a, b):
    m = 0.0
    for t in range(a.shape[0]):
        m = max(m, abs(a[t] - b[t]))
    return m


@njit(cache=True, error_model="numpy")
def _max_abs_used(eta, w):
    m = 0.0
    for t in range(eta.shape[0]):
        if w[t] > 0.0:
            m = max(m, abs(eta[t]))
    return m


@njit(cache=True, error_model="numpy")
def _any_nonzero(theta):
    for p in range(theta.shape[0]):
        if theta[p] != 0.0:
            return True
    return False


@njit(cache=True, error_model="numpy")
def _newton(Zt, f, w, prec, theta, max_iter, tol, stop_on_certificate, stop_on_dual, resume,
            eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d, cand, at):
    """Newton with step halving from ``theta`` (updated in place).

    With ``resume``, ``eta``, ``r``, ``v``, ``g`` and ``H`` already hold
    their values at ``theta`` and are not evaluated again.  ``r_c``, ``v_c``
    are work space for the line search.  On return ``r``,
    ``v``, ``g`` and ``H`` hold the residuals, weights,
    gradient and Hessian at ``at``: the last point evaluated, which is
    ``theta`` itself unless the final (tiny) step was taken without
    re-evaluating.  Returns (converged, n_iter, certified, dual, factored):
    see :func:`.logit_numpy.newton_numpy` for the two stopping certificates;
    ``factored`` says that ``L`` holds the Cholesky factor of that ``H``.
    """
    P = Zt.shape[0]
    if not resume:  # else eta, r, v, g and H already hold their values at theta
        _linear(Zt, theta, eta)
        _residuals(eta, f, w, r, v)
        _grad_hess(Zt, r, v, tmp, theta, prec, g, H)
    for p in range(P):
        at[p] = theta[p]
    obj = 0.0
    obj_known = False
    flipped = False  # r, v and r_c, v_c swapped an odd number of times
    converged = False
    certified = False
    dual = False
    factored = False
    n_iter = 0
    for it in range(max_iter):
        if stop_on_certificate and _any_nonzero(theta) and _signs_agree(eta, f, w):
            certified = True
            break
        factored = _cholesky(H, L)
        if not factored:
            break
        _chol_solve(L, g, d)
        n_iter = it + 1
        if stop_on_dual and _dual_signs_ok(Zt, f, w, r, v, d, eta_c):
            dual = True
            break
        big = 0.0
        dmax = 0.0
        for p in range(P):
            big = max(big, abs(theta[p] + d[p]))
            dmax = max(dmax, abs(d[p]))
        if dmax <= tol * (1.0 + big):
            # converged: the step is taken, the Hessian at ``at`` serves for the covariance
            for p in range(P):
                theta[p] += d[p]
            converged = True
            break
        step = 1.0
        moved = False
        fresh = False  # r_c, v_c already hold the residuals at the accepted candidate
        for _ in range(MAX_HALVING):
            for p in range(P):
                cand[p] = theta[p] + step * d[p]
            _linear(Zt, cand, eta_c)
            if _max_abs_diff(eta_c, eta) <= SAFE_ETA_STEP:
                moved = True  # an ascent step for certain: no need to evaluate the objective
                obj_known = False
                break
            if not obj_known:
                obj = _objective_residuals(eta, f, w, theta, prec, r, v)
                obj_known = True
            o = _objective_residuals(eta_c, f, w, cand, prec, r_c, v_c)
            if o >= obj - 1e-12 * abs(obj):
                moved = True
                fresh = True
                obj = o
                break
            step *= 0.5
        if not moved:
            converged = True
            break
        for p in range(P):
            theta[p] = cand[p]
            at[p] = cand[p]
        big = 0.0
        for p in range(P):
            big = max(big, abs(theta[p]))
        eta, eta_c = eta_c, eta
        r, r_c = r_c, r
        v, v_c = v_c, v
        flipped = not flipped
        if not fresh:
            _residuals(eta, f, w, r, v)
        _grad_hess(Zt, r, v, tmp, theta, prec, g, H)
        factored = False
        if step * dmax <= tol * (1.0 + big):
            converged = True
            break
    if flipped:  # leave the final residuals in the caller's r, v
        r_c[:] = r
        v_c[:] = v
    return converged, n_iter, certified, dual, factored


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _dual_signs_ok(Zt, f, w, r, v, delta, zd):
    """Do the multipliers r - v (Z delta) all have the sign of their binary outcome?"""
    _linear(Zt, delta, zd)
    for t in range(Zt.shape[1]):
        lam = r[t] - v[t] * zd[t]
        wt = w[t]
        if wt > 0.0:
            if f[t] == 1.0:
                if not lam > CERT_MARGIN * wt:
                    return False
            elif f[t] == 0.0:
                if not lam < -CERT_MARGIN * wt:
                    return False
    return True


@njit(cache=True, error_model="numpy")
def _fit_one(Zt, fa, wa, prec, zero_prec, ml, max_iter, tol, check_separation, theta, cov,
             eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d, cand, at, H2, e, col, th2):
    P = Zt.shape[0]
    for p in range(P):
        theta[p] = 0.0
    conv, n_iter, cert, _, factored = _newton(Zt, fa, wa, prec, theta, max_iter, tol, ml, False, False,
                                              eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d, cand,
                                              at)
    if factored:
        _inverse_from_cholesky(L, cov, H2)
    else:
        _safe_inverse(H, cov, H2, L, e, col)
    status = 0
    need_eta = ml or check_separation
    if need_eta:
        _linear(Zt, theta, eta)
    if ml:
        conv = conv and (not cert) and _max_abs_used(eta, wa) < ETA_MAX
    if check_separation:
        if _any_nonzero(theta) and _signs_agree(eta, fa, wa):
            status = 1
        else:
            # unpenalised Newton from the last evaluation of the fit, reusing it
            for p in range(P):
                th2[p] = at[p]
                g[p] += prec[p] * at[p]
                H[p, p] -= prec[p]
            _linear(Zt, th2, eta)
            c2, _, cert2, dual, _ = _newton(Zt, fa, wa, zero_prec, th2, max_iter, tol, True, True,
                                            True, eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d,
                                            cand, at)
            if cert2:
                status = 1
            elif dual:
                status = 0
            else:
                _linear(Zt, th2, eta)
                status = 0 if (c2 and _max_abs_used(eta, wa) < ETA_MAX) else 2
    return conv, n_iter, status


@njit(cache=True, parallel=True, error_model="numpy")
def _fit_blocks(X, f, w, fit_intercept, prec, max_iter, tol, check_separation,
                theta_out, cov_out, conv_out, iter_out, status_out):
    A, T, K = X.shape
    P = K + 1 if fit_intercept else K
    ml = True
    for p in range(P):
        if prec[p] != 0.0:
            ml = False
    zero_prec = np.zeros(P)
    n_blocks = (A + BLOCK - 1) // BLOCK
    for b in prange(n_blocks):
        Zt = np.empty((P, T))
        eta = np.empty(T)
        eta_c = np.empty(T)
        r = np.empty(T)
        v = np.empty(T)
        r_c = np.empty(T)
        v_c = np.empty(T)
        tmp = np.empty(max(T, P))
        g = np.empty(P)
        H = np.empty((P, P))
        L = np.zeros((P, P))
        d = np.empty(P)
        cand = np.empty(P)
        at = np.empty(P)
        H2 = np.empty((P, P))
        e = np.empty(P)
        col = np.empty(P)
        th2 = np.empty(P)
        theta = np.empty(P)
        fa = np.empty(T)  # contiguous copies: ``w`` may be a broadcast view (stride 0)
        wa = np.empty(T)
        for a in range(b * BLOCK, min(A, (b + 1) * BLOCK)):
            for t in range(T):
                for k in range(K):
                    Zt[k, t] = X[a, t, k]
                fa[t] = f[a, t]
                wa[t] = w[a, t]
            if fit_intercept:
                for t in range(T):
                    Zt[K, t] = 1.0
            conv, n_iter, status = _fit_one(
                Zt, fa, wa, prec, zero_prec, ml, max_iter, tol, check_separation, theta,
                cov_out[a], eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d, cand, at, H2, e, col, th2)
            for p in range(P):
                theta_out[a, p] = theta[p]
            conv_out[a] = conv
            iter_out[a] = n_iter
            status_out[a] = status


def fit_numba(X, f, w, fit_intercept, prec, max_iter, tol, check_separation):
    """Fit every context of ``X`` (A, T, K); see :func:`.logit_numpy.fit_numpy`.

    Returns (theta (A, P), cov (A, P, P), converged (A,), n_iter (A,),
    separation status (A,) int8).  Blocks of contexts are handed to threads
    one at a time (chunk size 1), so a thread slowed down by other work on a
    shared machine does not hold up the others.
    """
    A, T, K = X.shape
    P = K + 1 if fit_intercept else K
    theta = np.zeros((A, P))
    cov = np.zeros((A, P, P))
    conv = np.zeros(A, dtype=np.bool_)
    n_iter = np.zeros(A, dtype=np.int64)
    status = np.zeros(A, dtype=np.int8)
    old = set_parallel_chunksize(1)
    try:
        _fit_blocks(X, f, w, bool(fit_intercept), np.asarray(prec, dtype=np.float64),
                    int(max_iter), float(tol), bool(check_separation),
                    theta, cov, conv, n_iter, status)
    finally:
        set_parallel_chunksize(old)
    return theta, cov, conv, n_iter, status
