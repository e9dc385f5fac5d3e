"""numba kernel for the batched binary logit, parallel over contexts.

Same algorithm, stopping rules and outputs as :mod:`.logit_numpy` (read its
docstring for the objective, the line search and the separation status); this
module is about doing it fast.

* Layout: each context's design is copied into a small transposed buffer
  ``Zt`` (P, T), parameter-major, so that every loop over trials is contiguous
  and LLVM vectorises it (AVX-512 here).  Only per-context buffers are
  allocated, one set per block of contexts: ``X`` is never copied whole.
* exp and log1p: numba has no vector math library on this machine (no
  SVML), so ``math.exp`` keeps a loop scalar; :mod:`.vecmath` has
  branch-free polynomial versions that vectorise.
* Two sweeps over the trials per Newton iteration: eta = Z theta, then
  residuals, weights, gradient and Hessian together, unrolled for the number
  of parameters P (:mod:`._gram`, generated), so that the 27 sums of P = 6
  are register accumulators of one vectorised loop; the log-likelihood itself
  (log1p per trial) is only evaluated when the line search needs it (see
  :data:`.logit_numpy.SAFE_ETA_STEP`).
* Solves: LDL^T, straight-line for P in P_UNROLLED (5, 6) (no square root on the serial
  path of the factorisation), and only the variances of the inverse.
* No reference counting: numba increments and decrements the count of every
  array argument, atomically, at each call of a compiled function; the
  per-context code allocates nothing and is compiled with ``_nrt=False``
  (:func:`_fit_worker` allocates its buffers and hands each block to
  :func:`_fit_range`), and the per-P dispatchers are inlined.
* Inlined calls: a call passes every array argument as its 7 to 9 fields on
  the stack, and ``_fit_one`` (30 arrays), ``_newton`` (22) and
  ``_certificate_rounds`` (12) run once or more per context; inlining them
  (``inline="always"``) took 1.85 -> 1.71 us per context at T = 50 (one
  thread, with the separation check), at the price of a longer first
  compilation (cached on disk).
* The input check of the common case is done on each context's copy
  (:func:`_inputs_ok`) instead of by a separate, memory-bound pass over X.
* ``error_model="numpy"``: no ZeroDivisionError branch in the loops, which
  would stop vectorisation (no division here can be by zero).

numba's on-disk cache is keyed on each function's own file: the constants
imported from :mod:`.logit_numpy` and the functions of :mod:`.vecmath` and
:mod:`._gram` are frozen into the cached code of this file, so changing them
must come with a change here (or a cleared ``__pycache__``).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import numba
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import _gram
from ._gram import P_UNROLLED
from .rng import context_seed
from .simulate import simulate_context
from .logit_numpy import (CERT_DAMPING, CERT_MARGIN, CERT_ROUNDS, ETA_MAX, MAX_HALVING, PIVOT_MIN,
                          QUAD_SAFETY, RAY_MAX, SAFE_ETA_STEP)
from .vecmath import FASTMATH, bits_as_float, exp_nonpos_fast, float_bits, log1p_unit, logistic_fast

BLOCK = 64  # contexts per work item: buffers are allocated once per block
INVALID = 3  # status of a context with a non-finite X or an outcome outside [0, 1] (fit_numba)
PAD = 8  # trials are padded to a multiple of this (8 float64 per AVX-512 vector)


def p_tag(P):
    """The argument ``pt`` that carries the number of parameters P in its type.

    A tuple of P zeros for the P in :data:`._gram.P_UNROLLED` (the paper's 5
    attributes, without and with the intercept), the empty tuple for every
    other P: each kernel that takes ``pt`` is compiled once per tag type, with
    the unrolled :mod:`._gram` functions of that P alone, or once for the
    generic loops of all other P, chosen while typing (:func:`_unrolled`).  A
    branch on a runtime P would compile every variant at every call site; a
    variant per P would compile once per P a study uses (about 20 s each).
    """
    return (0,) * P if P in P_UNROLLED else ()


def _unrolled(name, pt):
    """The :mod:`._gram` function ``name``_P for the tag type ``pt``, or None (generic loops)."""
    if isinstance(pt, types.UniTuple) and pt.count in P_UNROLLED:
        return getattr(_gram, f"{name}_{pt.count}")
    if isinstance(pt, types.BaseTuple) and len(pt) == 0:
        return None
    raise TypeError(f"pt must come from p_tag(P), got {pt}")


@intrinsic
def fetch_add(typingctx, counter):
    """Atomically add 1 to ``counter[0]`` (an int64 array) and return its value before."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary,
                                       [context.get_constant(types.intp, 0)])
        return builder.atomic_rmw("add", ptr, context.get_constant(types.int64, 1), "seq_cst")

    return types.int64(counter), codegen


@njit(cache=True, error_model="numpy", _nrt=False)
def padded(T):
    """T rounded up to a multiple of :data:`PAD`: the trial buffers' length."""
    return (T + PAD - 1) // PAD * PAD


@njit(cache=True, error_model="numpy", _nrt=False, inline="always")
def _linear(pt, Zt, theta, eta):
    """eta = Z @ theta: one sweep (:mod:`._gram`) for P in P_UNROLLED (5, 6), the loops beyond."""
    _linear_p(pt, Zt, theta, eta)


def _linear_p(pt, Zt, theta, eta):
    """:func:`_linear` for the P of the type of ``pt`` alone (:func:`p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_linear_p, inline="always")
def _linear_by_p(pt, Zt, theta, eta):
    kernel = _unrolled("linear", pt)
    if kernel is not None:
        return lambda pt, Zt, theta, eta: kernel(Zt, theta, eta)
    return lambda pt, Zt, theta, eta: _linear_loops(Zt, theta, eta)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _linear_loops(Zt, theta, eta):
    P, T = Zt.shape
    th = theta[0]
    for t in range(T):
        eta[t] = Zt[0, t] * th
    for p in range(1, P):
        th = theta[p]
        for t in range(T):
            eta[t] += Zt[p, t] * th


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _residuals(eta, f, w, r, v):
    """r = w (f - sigmoid(eta)) and v = w sigmoid(eta) (1 - sigmoid(eta)), one sweep."""
    for t in range(eta.shape[0]):
        _, pr, pq = logistic_fast(eta[t])
        r[t] = w[t] * (f[t] - pr)
        v[t] = w[t] * pq


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _objective(eta, f, w, theta, prec):
    """Penalised log-likelihood at eta: only the line search far from the optimum needs it."""
    obj = 0.0
    for t in range(eta.shape[0]):
        x = eta[t]
        e = exp_nonpos_fast(-abs(x))
        obj += w[t] * (f[t] * x - (max(x, 0.0) + log1p_unit(e)))
    for p in range(theta.shape[0]):
        obj -= 0.5 * prec[p] * theta[p] * theta[p]
    return obj


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _ray_scale(eta, f, w, theta, prec):
    """The factor s >= 1 of the first step's ray search (:func:`.logit_numpy.ray_scale_numpy`).

    ``eta`` = Z theta with theta the full step from 0: one Newton step for
    the scale s of theta, from s = 1; a logistic and two sums per trial.
    """
    a = 0.0
    b = 0.0
    for t in range(eta.shape[0]):
        x = eta[t]
        _, pr, pq = logistic_fast(x)
        a += w[t] * (f[t] - pr) * x
        b += w[t] * pq * x * x
    q = 0.0
    for p in range(theta.shape[0]):
        q += prec[p] * theta[p] * theta[p]
    a -= q
    b += q
    if a > 0.0 and b > 0.0:
        return min(1.0 + a / b, RAY_MAX)
    return 1.0


@njit(cache=True, error_model="numpy", _nrt=False, inline="always")
def _evaluate(pt, Zt, eta, f, w, r, v, tmp, theta, prec, g, H):
    """Residuals, weights, gradient and Hessian at eta = Z theta.

    For P in P_UNROLLED, one sweep over the trials unrolled for that P
    (:mod:`._gram`); otherwise the generic passes.
    """
    _evaluate_p(pt, Zt, eta, f, w, r, v, tmp, theta, prec, g, H)


def _evaluate_p(pt, Zt, eta, f, w, r, v, tmp, theta, prec, g, H):
    """:func:`_evaluate` for the P of the type of ``pt`` alone (:func:`p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_evaluate_p, inline="always")
def _evaluate_by_p(pt, Zt, eta, f, w, r, v, tmp, theta, prec, g, H):
    kernel = _unrolled("eval", pt)
    if kernel is not None:
        return (lambda pt, Zt, eta, f, w, r, v, tmp, theta, prec, g, H:
                kernel(Zt, eta, f, w, r, v, theta, prec, g, H))
    return (lambda pt, Zt, eta, f, w, r, v, tmp, theta, prec, g, H:
            _evaluate_loops(Zt, eta, f, w, r, v, tmp, theta, prec, g, H))


@njit(cache=True, error_model="numpy", _nrt=False)
def _evaluate_loops(Zt, eta, f, w, r, v, tmp, theta, prec, g, H):
    _residuals(eta, f, w, r, v)
    _grad_hess(Zt, r, v, tmp, theta, prec, g, H)


@njit(cache=True, error_model="numpy", _nrt=False, inline="always")
def _gram_sums(pt, Zt, r, v, tmp, zero, g, H):
    """g = Z' r and H = Z' diag(v) Z (``zero``: P zeros, for the generic passes)."""
    _gram_sums_p(pt, Zt, r, v, tmp, zero, g, H)


def _gram_sums_p(pt, Zt, r, v, tmp, zero, g, H):
    """:func:`_gram_sums` for the P of the type of ``pt`` alone (:func:`p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_gram_sums_p, inline="always")
def _gram_sums_by_p(pt, Zt, r, v, tmp, zero, g, H):
    kernel = _unrolled("gram", pt)
    if kernel is not None:
        return lambda pt, Zt, r, v, tmp, zero, g, H: kernel(Zt, r, v, g, H)
    return lambda pt, Zt, r, v, tmp, zero, g, H: _grad_hess(Zt, r, v, tmp, zero, zero, g, H)


@njit(cache=True, error_model="numpy", _nrt=False, inline="always")
def _gram_sq(pt, Zt, r, D, tmp, zero, c, G):
    """G = Z' diag(r^2) Z with D = r^2 (``c`` is left as is for P in P_UNROLLED (5, 6), else Z' r)."""
    _gram_sq_p(pt, Zt, r, D, tmp, zero, c, G)


def _gram_sq_p(pt, Zt, r, D, tmp, zero, c, G):
    """:func:`_gram_sq` for the P of the type of ``pt`` alone (:func:`p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_gram_sq_p, inline="always")
def _gram_sq_by_p(pt, Zt, r, D, tmp, zero, c, G):
    kernel = _unrolled("gram_sq", pt)
    if kernel is not None:
        return lambda pt, Zt, r, D, tmp, zero, c, G: kernel(Zt, r, D, G)
    return lambda pt, Zt, r, D, tmp, zero, c, G: _gram_sq_loops(Zt, r, D, tmp, zero, c, G)


@njit(cache=True, error_model="numpy", _nrt=False)
def _gram_sq_loops(Zt, r, D, tmp, zero, c, G):
    for t in range(r.shape[0]):
        D[t] = r[t] * r[t]
    _grad_hess(Zt, r, D, tmp, zero, zero, c, G)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _objective_zero(w):
    """:func:`_objective` at theta = 0, where every trial contributes w (f * 0 - log 2)."""
    s = 0.0
    for t in range(w.shape[0]):
        s += w[t]
    return -math.log(2.0) * s


@njit(cache=True, error_model="numpy", _nrt=False)
def _evaluate_zero(pt, Zt, f, w, eta, r, v, tmp, theta, prec, g, H):
    """:func:`_evaluate` at ``theta`` = 0, where every p is 1/2: no logistic to evaluate."""
    for t in range(f.shape[0]):
        eta[t] = 0.0
        r[t] = w[t] * (f[t] - 0.5)
        v[t] = 0.25 * w[t]
    _gram_sums(pt, Zt, r, v, tmp, theta, g, H)  # theta: the P zeros of the generic passes
    for p in range(g.shape[0]):
        H[p, p] += prec[p]


@njit(cache=True, error_model="numpy", _nrt=False)
def _half_residuals(f, w, out):
    """The residuals w (f - 1/2) at theta = 0, into ``out``."""
    for t in range(f.shape[0]):
        out[t] = w[t] * (f[t] - 0.5)


@njit(cache=True, error_model="numpy", _nrt=False)
def _residual_certificate(pt, Zt, f, w, r, lam, D, tmp, zero, c, G, L, u, zd):
    """Separation status proved from the residuals ``r`` at one point: 0 not
    separated, 1 separated, 2 undecided; see
    :func:`.logit_numpy.residual_certificate_numpy` (``lam``, ``D``, ``tmp``,
    ``c``, ``G``, ``L``, ``u``, ``zd`` are work space; ``r`` is left as is).

    ``CERT_ROUNDS`` (8) and ``CERT_DAMPING`` are frozen into this file's
    cached code: change them together with this file."""
    return _certificate_rounds(pt, Zt, f, w, r, lam, D, tmp, zero, c, G, L, u, zd, CERT_ROUNDS, False)


@njit(cache=True, error_model="numpy", _nrt=False)
def _certificate_rounds(pt, Zt, f, w, lam0, lam, D, tmp, zero, c, G, L, u, zd, rounds, c_known):
    """Up to ``rounds`` rounds of :func:`_residual_certificate` from the multipliers
    ``lam0``; an undecided call leaves the updated multipliers in ``lam`` (which may
    be ``lam0`` itself), where a later call goes on.  ``c_known``: ``c`` already holds
    Z' lam0 (the fit's gradient without its prior term), which the first round uses."""
    T = lam.shape[0]
    src = lam0  # the first round reads lam0, so that the caller's residuals need no copy
    for i in range(rounds):
        if i == 0 and c_known:
            _gram_sq(pt, Zt, src, D, tmp, zero, c, G)
        else:
            for t in range(T):
                D[t] = src[t] * src[t]
            _gram_sums(pt, Zt, src, D, tmp, zero, c, G)
        if not _factor_solve(pt, G, c, L, u):
            if i == 0:
                for t in range(T):
                    lam[t] = src[t]
            return 2
        _linear(pt, Zt, u, zd)
        dual_bad, nonzero, wrong = _dual_and_direction(f, w, src, D, zd)
        if dual_bad == 0.0:
            return 0
        if nonzero > 0.0 and wrong == 0.0:  # zd = Z u: u is a separating direction
            return 1
        # damped move towards the full step lam - D (Z u)
        ratio = np.inf
        for t in range(T):
            if w[t] > 0.0 and (f[t] == 1.0 or f[t] == 0.0):
                sign = 1.0 if f[t] == 1.0 else -1.0
                st = -D[t] * zd[t] * sign
                if st < 0.0:
                    ratio = min(ratio, -(src[t] * sign) / st)
        alpha = min(1.0, CERT_DAMPING * ratio)
        for t in range(T):
            lam[t] = src[t] - alpha * D[t] * zd[t]
        src = lam
    return 2


@njit(cache=True, error_model="numpy", _nrt=False)
def _cholesky(H, L):
    """Lower Cholesky factor of H into L; False if H is not positive definite.

    Column by column, with one division per column: at P = 6 the latency of
    the divisions was most of the cost.
    """
    P = H.shape[0]
    for j in range(P):
        s = H[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 0.0:
            return False
        ljj = math.sqrt(s)
        L[j, j] = ljj
        inv = 1.0 / ljj
        for i in range(j + 1, P):
            s = H[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s * inv
    return True


@njit(cache=True, error_model="numpy", _nrt=False, inline="always")
def _factor_solve(pt, H, g, L, d):
    """LDL^T factor L of H and d = H^-1 g; False if H is not positive definite
    (:data:`.logit_numpy.PIVOT_MIN`).

    Straight-line code for P in P_UNROLLED (5, 6) (:mod:`._gram`), the loops beyond.
    """
    return _factor_solve_p(pt, H, g, L, d)


def _factor_solve_p(pt, H, g, L, d):
    """:func:`_factor_solve` for the P of the type of ``pt`` alone (:func:`p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_factor_solve_p, inline="always")
def _factor_solve_by_p(pt, H, g, L, d):
    kernel = _unrolled("solve", pt)
    if kernel is not None:
        return lambda pt, H, g, L, d: kernel(H, g, L, d)
    return lambda pt, H, g, L, d: _factor_solve_loops(H, g, L, d)


@njit(cache=True, error_model="numpy", _nrt=False)
def _factor_solve_loops(H, g, L, d):
    if not _ldl(H, L):
        return False
    _ldl_solve(L, g, d)
    return True


@njit(cache=True, error_model="numpy", _nrt=False, inline="always")
def _factor_solve_any(H, g, L, d):
    """:func:`_factor_solve` for a P known only at run time (a branch per unrolled P,
    each compiled at every call site; the Firth kernel's submatrices)."""
    P = H.shape[0]
    if P == 6:
        return _gram.solve_6(H, g, L, d)
    elif P == 5:
        return _gram.solve_5(H, g, L, d)
    return _factor_solve_loops(H, g, L, d)


@njit(cache=True, error_model="numpy", _nrt=False)
def _ldl(H, L):
    """The factor of :func:`_factor_solve` by loops: H = U D U^T with U unit lower,
    stored as U below the diagonal of L and 1 / D on it; False if H is not PD."""
    P = H.shape[0]
    for j in range(P):
        s = H[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k] / L[k, k]
        if not s > PIVOT_MIN * H[j, j]:
            return False
        inv = 1.0 / s
        L[j, j] = inv
        for i in range(j + 1, P):
            s = H[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k] / L[k, k]
            L[i, j] = s * inv
    return True


@njit(cache=True, error_model="numpy", _nrt=False)
def _ldl_solve(L, b, x):
    """x = H^-1 b from :func:`_ldl`'s factor (``x`` may be ``b``)."""
    P = L.shape[0]
    for i in range(P):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * x[k]
        x[i] = s
    for i in range(P - 1, -1, -1):
        s = x[i] * L[i, i]
        for k in range(i + 1, P):
            s -= L[k, i] * x[k]
        x[i] = s


@njit(cache=True, error_model="numpy", _nrt=False, inline="always")
def _variances(pt, L, var, M):
    """var = diag(H^-1) from the factor of :func:`_factor_solve` (``M``: P x P work space).

    H^-1 = U^-T D^-1 U^-1: var_p = sum_k (U^-1)[k, p]^2 / D_k.
    """
    _variances_p(pt, L, var, M)


def _variances_p(pt, L, var, M):
    """:func:`_variances` for the P of the type of ``pt`` alone (:func:`p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_variances_p, inline="always")
def _variances_by_p(pt, L, var, M):
    kernel = _unrolled("variances", pt)
    if kernel is not None:
        return lambda pt, L, var, M: kernel(L, var)
    return lambda pt, L, var, M: _variances_loops(L, var, M)


@njit(cache=True, error_model="numpy", _nrt=False)
def _variances_loops(L, var, M):
    """:func:`_variances` for any P, by loops: M = U^-1 column by column."""
    P = L.shape[0]
    for p in range(P):
        s = L[p, p]
        for k in range(p + 1, P):
            m = -L[k, p]
            for j in range(p + 1, k):
                m -= L[k, j] * M[j, p]
            M[k, p] = m
            s += m * m * L[k, k]
        var[p] = s


@njit(cache=True, error_model="numpy", _nrt=False)
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


@njit(cache=True, error_model="numpy", _nrt=False)
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _signs_agree(eta, f, w):
    """True if eta (not all zero) has the sign of every weighted outcome (a separating direction).

    Counts without an early exit, so that the loop vectorises.
    """
    nonzero = 0.0
    bad = 0.0
    for t in range(eta.shape[0]):
        x = eta[t]
        ft = f[t]
        used = w[t] > 0.0
        nonzero += 1.0 if (used and x != 0.0) else 0.0
        wrong = (x < 0.0) if ft == 1.0 else ((x > 0.0) if ft == 0.0 else (x != 0.0))
        bad += 1.0 if (used and wrong) else 0.0
    return nonzero > 0.0 and bad == 0.0


@njit(cache=True, error_model="numpy", _nrt=False)
def _abs_max_rows(Zt, out):
    """out[p] = max_t |Zt[p, t]|, as the maximum of the bits (:func:`.vecmath.float_bits`),
    which vectorises: 43 ns instead of 118 ns at P = 6, T = 56."""
    for p in range(Zt.shape[0]):
        m = 0
        for t in range(Zt.shape[1]):
            b = float_bits(abs(Zt[p, t]))
            m = b if b > m else m
        out[p] = bits_as_float(m)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _inputs_ok(zmax, f):
    """Is every |Z| finite (``zmax`` from :func:`_abs_max_rows`: the maximum of the bits
    of |x| is that of inf or NaN as soon as one x is) and every f in [0, 1] (NaN fails)?

    The input check of the common case, done here on the context's copy
    instead of in a separate pass over X (a memory-bound 7 ms of 110 at
    A = 100,000, T = 50)."""
    for p in range(zmax.shape[0]):
        if not zmax[p] < np.inf:
            return False
    bad = 0.0
    for t in range(f.shape[0]):
        ft = f[t]
        bad += 0.0 if ((ft >= 0.0) & (ft <= 1.0)) else 1.0
    return bad == 0.0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _max_abs_diff(a, b):
    m = 0.0
    for t in range(a.shape[0]):
        m = max(m, abs(a[t] - b[t]))
    return m


@njit(cache=True, error_model="numpy", _nrt=False)
def _max_abs_used(eta, w):
    m = 0.0
    for t in range(eta.shape[0]):
        if w[t] > 0.0:
            m = max(m, abs(eta[t]))
    return m


@njit(cache=True, error_model="numpy", _nrt=False)
def _any_nonzero(theta):
    for p in range(theta.shape[0]):
        if theta[p] != 0.0:
            return True
    return False


@njit(cache=True, error_model="numpy", _nrt=False)
def _newton(pt, Zt, zmax, f, w, prec, theta, max_iter, tol, stop_on_certificate, stop_on_dual, resume,
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
    ``factored`` says that ``L`` holds the factor of that ``H``
    (:func:`_factor_solve`).  ``zmax`` (P,): max_t |Z[p, t]|, which bounds
    how far a step can move eta (the line search's safe-step test).
    """
    P = Zt.shape[0]
    if not resume:  # else eta, r, v, g and H already hold their values at theta
        if _any_nonzero(theta):
            _linear(pt, Zt, theta, eta)
            _evaluate(pt, Zt, eta, f, w, r, v, tmp, theta, prec, g, H)
        else:
            _evaluate_zero(pt, Zt, f, w, eta, r, v, tmp, theta, prec, g, H)
    for p in range(P):
        at[p] = theta[p]
    obj = 0.0  # l at theta when obj_known (computed when a line search first needs it)
    obj_known = False
    flipped = False  # r, v and r_c, v_c swapped an odd number of times
    converged = False
    certified = False
    dual = False
    factored = False
    n_iter = 0
    prev = 0.0  # the last step's size if it was a full Newton step, else 0 (no prediction)
    for it in range(max_iter):
        if stop_on_certificate and _any_nonzero(theta) and _signs_agree(eta, f, w):
            certified = True
            break
        factored = _factor_solve(pt, H, g, L, d)
        if not factored:
            break
        n_iter = it + 1
        if stop_on_dual and _dual_signs_ok(pt, Zt, f, w, r, v, d, eta_c):
            dual = True
            break
        big = 0.0
        dmax = 0.0
        for p in range(P):
            big = max(big, abs(theta[p] + d[p]))
            dmax = max(dmax, abs(d[p]))
        if dmax <= tol * (1.0 + big) or QUAD_SAFETY * dmax * dmax * dmax <= tol * (1.0 + big) * prev * prev:
            # converged (or, in the quadratic regime, the step after this one would be
            # below tol: see logit_numpy.QUAD_SAFETY): the step is taken, the Hessian at
            # ``at`` serves for the covariance
            for p in range(P):
                theta[p] += d[p]
            converged = True
            break
        step = 1.0
        moved = False
        reach = 0.0  # max_t |(Z d)_t| <= sum_p |d_p| max_t |Z[p, t]|
        for p in range(P):
            reach += abs(d[p]) * zmax[p]
        bound_hessian = not _any_nonzero(at)  # H is the curvature bound H(0): see logit_numpy
        for _ in range(MAX_HALVING):
            for p in range(P):
                cand[p] = theta[p] + step * d[p]
            _linear(pt, Zt, cand, eta_c)
            if step == 1.0 and bound_hessian:
                moved = True  # the full step from theta = 0 raises l for certain,
                obj_known = False
                # and so does its scaling by the ray search's s >= 1 (logit_numpy)
                ray = _ray_scale(eta_c, f, w, cand, prec)
                if ray > 1.0:
                    for p in range(P):
                        cand[p] *= ray
                    for t in range(eta_c.shape[0]):
                        eta_c[t] *= ray
                break
            # the bound settles most steps without a sweep; the margin covers the rounding of
            # eta, so that the decision is always that of the exact test
            if step * reach <= SAFE_ETA_STEP - 1e-9 or _max_abs_diff(eta_c, eta) <= SAFE_ETA_STEP:
                moved = True  # an ascent step for certain: no need to evaluate the objective
                obj_known = False
                break
            if not obj_known:
                obj = _objective(eta, f, w, theta, prec) if _any_nonzero(theta) else _objective_zero(w)
                obj_known = True
            o = _objective(eta_c, f, w, cand, prec)
            if o >= obj - 1e-12 * abs(obj):
                moved = True
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
        _evaluate(pt, Zt, eta, f, w, r, v, tmp, theta, prec, g, H)
        factored = False
        if step * dmax <= tol * (1.0 + big):
            converged = True
            break
        prev = dmax if (step == 1.0 and not bound_hessian) else 0.0  # a Newton step's size
    if flipped:  # leave the final residuals in the caller's r, v
        for t in range(r.shape[0]):
            r_c[t] = r[t]
            v_c[t] = v[t]
    return converged, n_iter, certified, dual, factored


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _dual_signs_ok(pt, Zt, f, w, r, v, delta, zd):
    """Do the multipliers r - v (Z delta) all have the sign of their binary outcome?

    Counts the violations without an early exit, so that the loop vectorises
    (a branch per trial cost more than the rest of the certificate).
    """
    _linear(pt, Zt, delta, zd)
    return _dual_and_direction(f, w, r, v, zd)[0] == 0.0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _dual_and_direction(f, w, r, v, zd):
    """Two sign tests in one sweep, for ``zd`` = Z delta.

    Returns (violations of the multipliers r - v zd, the count of used trials
    where zd is not zero, the count where zd has the wrong sign): no
    violation proves that the data are not separated (:func:`_dual_signs_ok`),
    a non-zero zd with no wrong sign that they are (:func:`_signs_agree`).
    """
    bad = 0.0
    nonzero = 0.0
    wrong = 0.0
    for t in range(f.shape[0]):
        # non-short-circuit & and |, and a sign factor instead of a branch per outcome: the
        # loop then compiles to masks and vectorises (37 against 65 ns at T = 50)
        x = zd[t]
        lam = r[t] - v[t] * x
        ft = f[t]
        binary = (ft == 1.0) | (ft == 0.0)
        used = w[t] > 0.0
        sgn = 2.0 * ft - 1.0  # the sign a multiplier of a binary outcome must have
        bad += 1.0 if (used & binary & (not lam * sgn > CERT_MARGIN * w[t])) else 0.0
        nonzero += 1.0 if (used & (x != 0.0)) else 0.0
        sign_wrong = (x * sgn < 0.0) if binary else (x != 0.0)
        wrong += 1.0 if (used & sign_wrong) else 0.0
    return bad, nonzero, wrong


@njit(cache=True, error_model="numpy", _nrt=False, inline="always")
def _fit_one(pt, Zt, fa, wa, prec, zero_prec, max_iter, tol, check_separation, theta, var, cov,
             zmax, eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d, cand, at, H2, e, col, th2):
    """Fit one context: theta, the variances ``var`` (the diagonal of the inverse
    penalised Hessian) and (converged, n_iter, separation status); status
    ``INVALID``, unfitted, for a non-finite Z or an f outside [0, 1]."""
    P = Zt.shape[0]
    ml = True  # no prior: maximum likelihood (not an argument: a call with more than 30
    for p in range(P):  # arguments is compiled to *args, which numba cannot inline)
        if prec[p] != 0.0:
            ml = False
    for p in range(P):
        theta[p] = 0.0
    _abs_max_rows(Zt, zmax)
    if not _inputs_ok(zmax, fa):
        for p in range(P):
            var[p] = 0.0
        return False, 0, INVALID
    conv, n_iter, cert, _, factored = _newton(pt, Zt, zmax, fa, wa, prec, theta, max_iter, tol, ml, False,
                                              False, eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d,
                                              cand, at)
    if factored:
        _variances(pt, L, var, H2)
    else:
        _safe_inverse(H, cov, H2, L, e, col)
        for p in range(P):
            var[p] = cov[p, p]
    status = 0
    if ml:
        _linear(pt, Zt, theta, eta)
        conv = conv and (not cert) and _max_abs_used(eta, wa) < ETA_MAX
    if check_separation:
        # the first round of the residual certificate settles most contexts (88% at T = 50,
        # 99.9% at T = 100); only then is theta itself tried as a separating direction
        for p in range(P):  # Z' r at ``at``, where the fit left r and its gradient g
            e[p] = g[p] + prec[p] * at[p]
        status = _certificate_rounds(pt, Zt, fa, wa, r, r_c, v_c, tmp, zero_prec, e, H2, L, d, eta_c, 1,
                                     True)
        if status == 2 and _any_nonzero(theta):
            if not ml:
                _linear(pt, Zt, theta, eta)
            if _signs_agree(eta, fa, wa):
                status = 1
        if status == 2:
            status = _certificate_rounds(pt, Zt, fa, wa, r_c, r_c, v_c, tmp, zero_prec, e, H2, L, d,
                                         eta_c, CERT_ROUNDS - 1, False)
            if status == 2:  # again from theta = 0: see logit_numpy.separation_status_numpy
                _half_residuals(fa, wa, r_c)
                status = _residual_certificate(pt, Zt, fa, wa, r_c, r_c, v_c, tmp, zero_prec, e, H2, L, d,
                                               eta_c)
        if status == 2:
            # unpenalised Newton from the last evaluation of the fit, reusing it
            for p in range(P):
                th2[p] = at[p]
                g[p] += prec[p] * at[p]
                H[p, p] -= prec[p]
            _linear(pt, Zt, th2, eta)
            c2, _, cert2, dual, _ = _newton(pt, Zt, zmax, fa, wa, zero_prec, th2, max_iter, tol, True,
                                            True, True, eta, eta_c, r, v, r_c, v_c, tmp, g, H, L,
                                            d, cand, at)
            if cert2:
                status = 1
            elif dual:
                status = 0
            else:
                _linear(pt, Zt, th2, eta)
                status = 0 if (c2 and _max_abs_used(eta, wa) < ETA_MAX) else 2
    return conv, n_iter, status


@njit(cache=True, nogil=True, error_model="numpy")
def _fit_worker(pt, next_block, X, f, w, sim, sim_w, sim_scale, sim_b, sim_key, first_context,
                fit_intercept, prec, max_iter, tol, check_separation,
                coef_out, icpt_out, se_out, ise_out, conv_out, iter_out, status_out, abort):
    """Fit blocks of contexts of (X, f, w), or, with ``sim``, those simulated from ``sim_w`` etc.,
    taking the next block (:func:`fetch_add` on ``next_block[0]``) until none is left.

    Several threads run this at once (:func:`_run`), without the GIL: each
    allocates its buffers once and fits a block of :data:`BLOCK` contexts at a
    time, so that a thread slowed down by other work on a shared machine does
    not hold up the others.  Python threads rather than numba's ``prange``:
    the same schedule, and the parallel-loop machinery took a fifth of the
    kernel's first compilation.

    Simulating here (:func:`.simulate.simulate_context`, the same draws as
    :func:`selfinterp.simulate_choices`) writes each context's data straight
    into the estimator's buffers: the (A, T, K) design is never materialised,
    which saves its memory traffic and page faults, most of a simulator's
    time at these sizes.  ``X`` is then an empty (0, T, K) placeholder.
    """
    if sim:
        A, K = sim_w.shape
        T = X.shape[1]
    else:
        A, T, K = X.shape
    P = K + 1 if fit_intercept else K
    # trials padded to a multiple of the vector width with weight-0 trials, which add
    # nothing to any sum: the vectorised loops then have no scalar remainder (at T = 50
    # the 2 leftover trials, each with a scalar exp, cost a quarter of an evaluation)
    Tp = padded(T)
    zero_prec = np.zeros(P)
    n_blocks = (A + BLOCK - 1) // BLOCK
    Zt = np.zeros((P, Tp))
    eta = np.empty(Tp)
    eta_c = np.empty(Tp)
    r = np.empty(Tp)
    v = np.empty(Tp)
    r_c = np.empty(Tp)
    v_c = np.empty(Tp)
    tmp = np.empty(max(Tp, P))
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
    cov = np.empty((P, P))
    var = np.empty(P)
    zmax = np.empty(P)
    fa = np.zeros(Tp)  # contiguous copies: ``w`` may be a broadcast view (stride 0)
    wa = np.zeros(Tp)
    u = np.empty(T * (2 * K + 1) if sim else 0)
    if sim:
        for t in range(T):
            wa[t] = 1.0
    if fit_intercept:
        for t in range(T):
            Zt[K, t] = 1.0
    while True:
        b = fetch_add(next_block)
        if b >= n_blocks:
            break
        _fit_range(pt, b * BLOCK, min(A, (b + 1) * BLOCK), X, f, w, sim, sim_w, sim_scale, sim_b, sim_key,
                   first_context, prec, zero_prec, max_iter, tol, check_separation, coef_out,
                   icpt_out, se_out, ise_out, conv_out, iter_out, status_out, abort, u, Zt, fa, wa,
                   theta, var, cov, zmax, eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d, cand, at, H2, e,
                   col, th2)


@njit(cache=True, error_model="numpy", _nrt=False)
def _fit_range(pt, start, stop, X, f, w, sim, sim_w, sim_scale, sim_b, sim_key, first_context, prec,
               zero_prec, max_iter, tol, check_separation, coef_out, icpt_out, se_out, ise_out,
               conv_out, iter_out, status_out, abort, u, Zt, fa, wa, theta, var, cov, zmax, eta,
               eta_c, r, v, r_c, v_c, tmp, g, H, L, d, cand, at, H2, e, col, th2):
    """Contexts ``start`` to ``stop`` of :func:`_fit_worker`, in its buffers.

    Without numba's reference counting (``_nrt=False``, nothing here
    allocates): each call of a function with array arguments otherwise
    increments and decrements every array's count, atomically, which cost a
    fifth of the fit at T = 50 (2.9 -> 2.3 us per context with the
    separation check), and this loop calls ``_fit_one`` with 30 arrays.
    """
    P, T, K = Zt.shape[0], X.shape[1], X.shape[2]  # X: an empty (0, T, K) placeholder with ``sim``
    for a in range(start, stop):
        if abort[0] != 0:  # an invalid context was found (by any thread): the call will raise
            break
        if sim:
            simulate_context(context_seed(sim_key, first_context + a), sim_w[a], sim_scale[a],
                             sim_b[a], T, u, Zt, eta, fa)
        else:
            for k in range(K):  # contiguous stores, strided loads: this order vectorises
                for t in range(T):
                    Zt[k, t] = X[a, t, k]
            wi = a if w.shape[0] > 1 else 0  # w (1, T): the same weights for every context
            for t in range(T):
                fa[t] = f[a, t]
                wa[t] = w[wi, t]
        conv, n_iter, status = _fit_one(
            pt, Zt, fa, wa, prec, zero_prec, max_iter, tol, check_separation, theta, var,
            cov, zmax, eta, eta_c, r, v, r_c, v_c, tmp, g, H, L, d, cand, at, H2, e, col, th2)
        # the outputs in their final layout: a copy of the slopes afterwards faulted in fresh
        # pages on one thread (6% of a fit at T = 50)
        for k in range(K):
            coef_out[a, k] = theta[k]
            se_out[a, k] = math.sqrt(max(var[k], 0.0))
        if P > K:
            icpt_out[a] = theta[K]
            ise_out[a] = math.sqrt(max(var[K], 0.0))
        conv_out[a] = conv
        iter_out[a] = n_iter
        status_out[a] = status
        if status == INVALID:
            abort[0] = 1


def fit_numba(X, f, w, fit_intercept, prec, max_iter, tol, check_separation):
    """Fit every context of ``X`` (A, T, K); see :func:`.logit_numpy.fit_numpy`.

    Returns (coef (A, K), intercept (A,), stderr (A, K), intercept stderr
    (A,), converged (A,), n_iter (A,), separation status (A,) int8): the
    standard errors are the square roots of the diagonal of the inverse
    penalised Hessian (the off-diagonal terms are not kept, 36 numbers per
    context that nothing uses); without an intercept its two outputs are zeros.

    The inputs are checked as each context is copied: a context with a
    non-finite X or an f outside [0, 1] gets status ``INVALID``, and the
    contexts not yet started are then skipped (their outputs left at zero),
    so that the caller can raise at once (:func:`selfinterp.logit.fit_logit`).
    """
    A, T, K = X.shape
    # w as a C-contiguous array, (1, T) where every context has the same weights (a broadcast
    # view): one compiled signature for masked and unmasked calls (and simulate_fit_numba's),
    # writable (a read-only array is another type to numba: another compilation)
    w = np.require(w[:1] if (A > 1 and w.strides[0] == 0) else w, np.float64, ["C", "W"])
    return _run(A, X, f, w, False, np.zeros((0, K)), np.zeros(0), np.zeros(0), 0, 0,
                fit_intercept, prec, max_iter, tol, check_separation)


def simulate_fit_numba(weights, n_trials, scale, intercept, key, first_context, fit_intercept, prec,
                       max_iter, tol, check_separation):
    """:func:`.simulate.simulate_numba` then :func:`fit_numba`, fused: the same numbers, without X."""
    A, K = weights.shape
    T = int(n_trials)
    # placeholders of the types of fit_numba's usual call, so that the kernel is not
    # compiled (and cached) a second time for this one
    return _run(A, np.zeros((0, T, K)), np.zeros((0, T)), np.ones((1, T)), True,
                np.ascontiguousarray(weights, dtype=np.float64),
                np.ascontiguousarray(scale, dtype=np.float64),
                np.ascontiguousarray(intercept, dtype=np.float64), key, first_context,
                fit_intercept, prec, max_iter, tol, check_separation)


def run_on_threads(worker, args, counter, n_items):
    """Run ``worker(*args)`` on numba's number of threads (at most ``n_items``), this one among them.

    ``worker`` is a ``nogil`` kernel that takes its next item with :func:`fetch_add` on
    ``counter`` (an int64 array of one, at 0) until ``n_items`` are taken, so a thread
    slowed down by other work on a shared machine does not hold up the others.  Before
    the threads start, a first call with nothing left to take compiles (or loads) the
    kernel in this thread, where an error is raised to the caller.
    """
    n_threads = min(numba.get_num_threads(), n_items)
    if n_threads > 1:
        counter[0] = n_items
        worker(*args)
        counter[0] = 0
    threads = [threading.Thread(target=worker, args=args) for _ in range(n_threads - 1)]
    for t in threads:
        t.start()
    try:
        worker(*args)
    finally:
        for t in threads:
            t.join()


def _run(A, X, f, w, sim, sim_w, sim_scale, sim_b, key, first_context, fit_intercept, prec,
         max_iter, tol, check_separation):
    """Allocate the outputs and run :func:`_fit_worker` on numba's number of threads.

    Blocks of contexts are handed to the threads one at a time, so a thread
    slowed down by other work on a shared machine does not hold up the
    others; one block or one thread runs in the calling thread.
    """
    K = X.shape[2]
    coef = np.zeros((A, K))
    icpt = np.zeros(A)
    se = np.zeros((A, K))
    ise = np.zeros(A)
    conv = np.zeros(A, dtype=np.bool_)
    n_iter = np.zeros(A, dtype=np.int64)
    status = np.zeros(A, dtype=np.int8)
    abort = np.zeros(1, dtype=np.int64)
    next_block = np.zeros(1, dtype=np.int64)
    args = (p_tag(K + 1 if fit_intercept else K), next_block, X, f, w, sim, sim_w, sim_scale, sim_b,
            np.uint64(key), int(first_context), bool(fit_intercept), np.asarray(prec, dtype=np.float64),
            int(max_iter), float(tol), bool(check_separation), coef, icpt, se, ise, conv, n_iter, status,
            abort)
    run_on_threads(_fit_worker, args, next_block, (A + BLOCK - 1) // BLOCK)
    return coef, icpt, se, ise, conv, n_iter, status
