"""numba kernels for Firth's bias-reduced logit, batched (parallel) over contexts.

Per context, with design ``Z`` (T, P) (slopes, then the intercept column),
outcome fractions ``f`` and trial weights ``w`` (0 for masked rows), the
penalised log-likelihood is (Firth 1993; Heinze & Schemper 2002)

    l*(b) = sum_t w_t [f_t eta_t - softplus(eta_t)] + 1/2 log det I(b),
    I(b) = Z' diag(w p (1 - p)) Z,

whose gradient is the modified score
``U*_j = sum_t [w_t (f_t - p_t) + h_t (1/2 - p_t)] z_tj`` with ``h_t`` the
diagonal of the hat matrix.  It is maximised by Fisher scoring,
``b <- b + I^{-1} U*`` (the update of logistf), with the step capped at
``MAX_STEP`` in the max norm (for the fit: at the largest parameter, if
larger) and halved until ``l*`` does not decrease.

Profile penalised-likelihood intervals (Heinze & Schemper 2002): the bound for
``b_j`` solves ``2 [l*(b_hat) - max_{b_-j} l*(b_j, b_-j)] = q`` with ``q`` the
chi-square(1) quantile.  First by a joint Newton iteration on the bound and the
other parameters (:func:`_bound_joint`, about 2.1 evaluations and 1.6
Hessians per bound from the fourth-order start of :func:`_bound_start`), which
gives up where its quadratic model is not to be trusted; then, for those
bounds, by following the profile: the same scoring on the other
parameters, and the root by Newton's method on ``b_j``, using that the slope
of the profile is ``U*_j`` at the profiled point (envelope theorem), safeguarded
by bisection once the root is bracketed.  The Jeffreys penalty goes to minus
infinity as any fitted probability goes to 0 or 1, so the profile falls
without limit and both bounds are finite even under separation.  Under
separation the other parameters can have several maxima at a fixed ``b_j``;
in the contexts asked for, each bound is then checked from two restarts and
moved outward along a higher branch where one is found (:func:`_bound`).

Speed (as in :mod:`selfinterp._core.logit_numba`): each context's design is
copied into a transposed buffer ``Zt`` (P, T), trials padded to a multiple of
8 with weight-0 trials (z = 0, f = 0, w = 0, which add nothing to any sum),
so that every loop over trials is contiguous, vectorised and without a scalar
remainder; the per-trial sweeps are unrolled for P in P_UNROLLED (5, 6) in the generated
:mod:`._firth_unrolled` (``tools/gen_firth.py``); exp and log1p are the
vectorisable polynomials of :mod:`selfinterp._core.vecmath`.  numba's disk
cache is keyed on each function's own file: a change to those modules must
come with a change here or a cleared ``__pycache__``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._core._gram import P_UNROLLED
from .._core.logit_numba import _cholesky, _factor_solve_any, _ldl_solve, fetch_add, padded, run_on_threads
from .._core.vecmath import FASTMATH, log1p_unit, logistic_fast
from . import _firth_unrolled as _fu


def _unrolled_firth(name, pt):
    """The :mod:`._firth_unrolled` function ``name``_P for the tag type ``pt``, or None (the loops)."""
    if isinstance(pt, types.UniTuple) and pt.count in P_UNROLLED:
        return getattr(_fu, f"{name}_{pt.count}")
    if isinstance(pt, types.BaseTuple) and len(pt) == 0:
        return None
    raise TypeError(f"pt must come from p_tag(P), got {pt}")

MAX_STEP = 5.0  # logistf's maxstep: largest change of any parameter per iteration (see _maximise)
MAX_HALVING = 30
INNER_ITER = 50  # Newton iterations per profile point (exact Hessian: a handful suffice)
OUTER_ITER = 60  # root-finding iterations per bound
JOINT_ITER = 12  # joint Newton iterations on a bound before the continuation takes over
JOINT_MAX_MISS = 0.5  # after the first step: give up if the profile misses its target by more
JOINT_MAX_OFF = 0.5  # give up if another parameter's Newton step exceeds this many of its se
BRANCH_ROUNDS = 8  # higher branches followed per bound (_bound) before it is marked not converged
BRANCH_TOL = 1e-7  # a restart's maximum this far (relative) above the target is another branch
RESTART_ITER = 200  # Newton iterations of each of its restarts (from far: more than INNER_ITER)
# Stop (without evaluating again) once the step in b_j is at most JOINT_STEP_TOL
# and every other parameter's Newton step at most JOINT_NUIS_TOL of its standard
# error: the joint Newton converges at least quadratically, so the bound is
# then within about 1e-9 of its limit.  Checked on 9,600 contexts (1, 2, 5, 8
# attributes; 10, 25, 50, 200 trials; noisy to deterministic choices; 76,800
# bounds) against the kernel that stopped at 1e-5 and 1e-4 (itself within
# 7e-9 of iterating to convergence): at most 2.4e-9 apart relative to
# max(1, |bound|), except up to 4.5e-8 with 9 parameters (see
# docs/estimators.md, Speed).  From the fourth-order start
# (_bound_start) most bounds stop after two evaluations (2.12 on average on
# bench_firth.py's data, against 3.24 before).
JOINT_STEP_TOL = 1e-4
JOINT_NUIS_TOL = 5e-4
# At the second evaluation of a bound the joint Newton first tries the chord
# step: the first point's Hessian (its factor, tangent and curvature) with this
# point's score, which saves this point's Hessian (0.46 us of an evaluation's
# 1.04 us at P = 6, T = 50).  The chord step differs from Newton's mostly
# through the model's gain from moving the other parameters, U_s' u / 2, whose
# relative error is of the order of the Hessian's change over the last step
# (that step's largest coordinate in standard errors, ``moved``): so the bound
# stops on it only where, besides the tests above, moved * gain / |slope| is
# at most CHORD_TOL standard errors.  On bench_firth.py's data 59% of the
# bounds stop there (1.56 Hessians per bound instead of 2.15).  On the 9,600
# contexts above, against a kernel iterated to JOINT_STEP_TOL 1e-8 and
# JOINT_NUIS_TOL 1e-7: at most 8.4e-9 apart relative to max(1, |bound|)
# (1.6e-8 without the chord step), 99% within 7e-11 (2e-11 without); without
# the condition on the gain, up to 5e-7 (the chord error does not shrink with
# the step itself).
CHORD_TOL = 1e-9
# Workspace slots (see _workspace); named so that the kernels read as algebra.
(P_, V_, S_, M_, U_, INF_, L_, D_, CAND_, U2_, I2_, SS_, LS_, HN_, G_, LI_, ETA_, R_, ROW_, A2_, Y_,
 AZ_, LF_, UNIT_, PT_) = range(25)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _info_generic(Zt, b, f, w, p_buf, v_buf, Inf, eta, row):
    """:func:`._firth_unrolled.info_6` etc. for any P: a loop per sum (slower)."""
    P, T = Zt.shape
    for t in range(T):
        eta[t] = 0.0
    for p in range(P):
        bp = b[p]
        for t in range(T):
            eta[t] += Zt[p, t] * bp
    ll = 0.0
    for t in range(T):
        x = eta[t]
        e, pr, pq = logistic_fast(x)
        wt = w[t]
        ll += wt * (f[t] * x - (max(x, 0.0) + log1p_unit(e)))
        p_buf[t] = pr
        v_buf[t] = wt * pq
    for p in range(P):
        for t in range(T):
            row[t] = v_buf[t] * Zt[p, t]
        for q in range(p + 1):
            s = 0.0
            for t in range(T):
                s += row[t] * Zt[q, t]
            Inf[p, q] = s
            Inf[q, p] = s
    return ll


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _score_generic(Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf):
    """:func:`._firth_unrolled.score_6` etc. for any P."""
    P, T = Zt.shape
    for t in range(T):
        m_buf[t] = 0.0
    for i in range(P):
        c = Li[i, 0]
        for t in range(T):
            Y[i, t] = c * Zt[0, t]
        for k in range(1, i + 1):
            c = Li[i, k]
            for t in range(T):
                Y[i, t] += c * Zt[k, t]
        for t in range(T):
            m_buf[t] += Y[i, t] * Y[i, t]
    for t in range(T):
        s_buf[t] = w[t] * (f[t] - p_buf[t]) + v_buf[t] * m_buf[t] * (0.5 - p_buf[t])
    for p in range(P):
        s = 0.0
        for t in range(T):
            s += s_buf[t] * Zt[p, t]
        U[p] = s


@njit(cache=True, error_model="numpy", inline="always", _nrt=False)
def _info(pt, Zt, b, f, w, p_buf, v_buf, Inf, eta, row, unit):
    """Log-likelihood, p, v and the Fisher information: straight-line sweeps for P in P_UNROLLED.

    ``eta``, ``row``: work space of the generic loops; ``unit``: every weight
    is 0 or 1 (:func:`_unit_weights`), where the unrolled sweeps take the
    log-likelihood's log1p terms as one log of their product.  (The
    dispatchers take arrays, not the workspace tuple: passing its 24 arrays
    cost more than these sweeps.)"""
    return _info_p(pt, Zt, b, f, w, p_buf, v_buf, Inf, eta, row, unit)


def _info_p(pt, Zt, b, f, w, p_buf, v_buf, Inf, eta, row, unit):
    """:func:`_info` for the P of the type of ``pt`` alone (:func:`.logit_numba.p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_info_p, inline="always")
def _info_by_p(pt, Zt, b, f, w, p_buf, v_buf, Inf, eta, row, unit):
    kernel = _unrolled_firth("info", pt)
    if kernel is not None:
        return (lambda pt, Zt, b, f, w, p_buf, v_buf, Inf, eta, row, unit:
                kernel(Zt, b, f, w, p_buf, v_buf, Inf, unit))
    return (lambda pt, Zt, b, f, w, p_buf, v_buf, Inf, eta, row, unit:
            _info_generic(Zt, b, f, w, p_buf, v_buf, Inf, eta, row))


@njit(cache=True, error_model="numpy", _nrt=False)
def _chol_inv_generic(Inf, L, Li):
    """:func:`._firth_unrolled.chol_inv_6` etc. for any P (``L``: work space)."""
    P = Inf.shape[0]
    if not _cholesky(Inf, L):
        return -np.inf
    logdet = 0.0
    for i in range(P):
        logdet += 2.0 * math.log(L[i, i])
    # L^{-1}, column by column (lower triangular)
    for j in range(P):
        for i in range(j):
            Li[i, j] = 0.0
        for i in range(j, P):
            s = 1.0 if i == j else 0.0
            for k in range(j, i):
                s -= L[i, k] * Li[k, j]
            Li[i, j] = s / L[i, i]
    return logdet


@njit(cache=True, error_model="numpy", inline="always", _nrt=False)
def _chol_inv(pt, Inf, L, Li):
    """Li = chol(Inf)^{-1}; returns log det Inf, -inf if Inf is not positive definite."""
    return _chol_inv_p(pt, Inf, L, Li)


def _chol_inv_p(pt, Inf, L, Li):
    """:func:`_chol_inv` for the P of the type of ``pt`` alone (:func:`.logit_numba.p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_chol_inv_p, inline="always")
def _chol_inv_by_p(pt, Inf, L, Li):
    kernel = _unrolled_firth("chol_inv", pt)
    if kernel is not None:
        return lambda pt, Inf, L, Li: kernel(Inf, L, Li)
    return lambda pt, Inf, L, Li: _chol_inv_generic(Inf, L, Li)


@njit(cache=True, error_model="numpy", inline="always", _nrt=False)
def _score(pt, Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf):
    """Y = L^{-1} Z', m and the modified score U: straight-line sweeps for P in P_UNROLLED."""
    _score_p(pt, Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf)


def _score_p(pt, Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf):
    """:func:`_score` for the P of the type of ``pt`` alone (:func:`.logit_numba.p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_score_p, inline="always")
def _score_by_p(pt, Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf):
    kernel = _unrolled_firth("score", pt)
    if kernel is not None:
        return (lambda pt, Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf:
                kernel(Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U))
    return (lambda pt, Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf:
            _score_generic(Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf))


@njit(cache=True, error_model="numpy", inline="always", _nrt=False)
def _evaluate_arrays(pt, Zt, f, w, b, U, Inf, p_buf, v_buf, L, Li, Y, m_buf, eta, row, s_buf, unit):
    """Penalised log-likelihood at ``b``; fills the modified score ``U``, the
    Fisher information ``Inf`` and, in the buffers passed, the fitted probabilities, the
    weights, ``m_t = z_t' I^{-1} z_t``, ``Y = L^{-1} Z'`` and the Cholesky
    factor ``L`` of ``Inf`` and its inverse.  Returns -inf when ``Inf`` is
    singular.

    Two sweeps over the trials (:mod:`._firth_unrolled`): the likelihood
    terms and ``Inf``, then, once ``L^{-1}`` is known (P x P), the hat
    diagonal ``h_t = v_t m_t`` and the modified score.  The logistic and
    log(1 + e^{-|eta|}) are the vectorisable polynomials of
    :mod:`selfinterp._core.vecmath` (``math.exp`` would keep the loops scalar);
    with weights 0 or 1 (``unit``), the sum of the log(1 + e^{-|eta|}) is one
    log of the product of the 1 + e^{-|eta|}.
    """
    ll = _info(pt, Zt, b, f, w, p_buf, v_buf, Inf, eta, row, unit)
    logdet = _chol_inv(pt, Inf, L, Li)
    if logdet == -np.inf:
        return -np.inf
    _score(pt, Zt, Li, f, w, p_buf, v_buf, Y, m_buf, U, s_buf)
    return ll + 0.5 * logdet


@njit(cache=True, error_model="numpy", inline="always", _nrt=False)
def _evaluate(Zt, f, w, b, ws, U, Inf):
    """:func:`_evaluate_arrays` with its buffers from the workspace ``ws``.

    Inlined by numba: passing the 24-array tuple to a function costs about
    300 ns per call (a fifth of an evaluation), passing the arrays does not.
    """
    return _evaluate_arrays(ws[PT_], Zt, f, w, b, U, Inf, ws[P_], ws[V_], ws[L_], ws[LI_], ws[Y_],
                            ws[M_], ws[ETA_], ws[ROW_], ws[S_], ws[UNIT_][0] != 0.0)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _neg_hessian_generic(Zt, Inf, p_buf, v_buf, m_buf, Y, Hn, G, AZ, a2, row):
    """:func:`_neg_hessian` for any P: a loop per sum (slower)."""
    P, T = Zt.shape
    for t in range(T):
        pr = p_buf[t]
        a2[t] = 0.5 * v_buf[t] * (1.0 - 6.0 * pr * (1.0 - pr)) * m_buf[t]
    for r in range(P):
        for t in range(T):
            AZ[r, t] = v_buf[t] * (1.0 - 2.0 * p_buf[t]) * Zt[r, t]
            row[t] = a2[t] * Zt[r, t]
        for s_ in range(r + 1):
            s = 0.0
            for t in range(T):
                s += row[t] * Zt[s_, t]
            Hn[r, s_] = Inf[r, s_] - s
    # G[r, p, q] (p >= q) = sum_t v'_t z_tr y_tp y_tq
    for p in range(P):
        for q in range(p + 1):
            for t in range(T):
                row[t] = Y[p, t] * Y[q, t]
            for r in range(P):
                s = 0.0
                for t in range(T):
                    s += AZ[r, t] * row[t]
                G[r, p, q] = s
    for r in range(P):
        for s_ in range(r + 1):
            tr = 0.0
            for p in range(P):
                tr += G[r, p, p] * G[s_, p, p]
                for q in range(p):
                    tr += 2.0 * G[r, p, q] * G[s_, p, q]
            Hn[r, s_] += 0.5 * tr
            Hn[s_, r] = Hn[r, s_]


@njit(cache=True, error_model="numpy", inline="always", _nrt=False)
def _neg_hessian_arrays(pt, Zt, Inf, Y, p_buf, v_buf, m_buf, a1, Hn, L, G, AZ, row):
    """Minus the Hessian of l* at the point last evaluated (whose buffers ``ws`` holds).

    -d2 l*/db_r db_s = I_rs + 1/2 tr(M B_r M B_s) - 1/2 sum_t v''_t m_t z_tr z_ts,
    with M = I^{-1}, B_r = dI/db_r = sum_t v'_t z_tr z_t z_t', m_t = z_t' M z_t,
    v' = w p(1-p)(1-2p) and v'' = w p(1-p)(1-6p(1-p)).  With M = L^{-T} L^{-1}
    the trace is tr(G_r G_s), G_r = L^{-1} B_r L^{-T} = sum_t v'_t z_tr y_t y_t',
    y_t = L^{-1} z_t (kept by :func:`_evaluate`): P (P + 1) / 2 sums over the
    trials per r, instead of O(P^4) algebra; for P <= 8 each r is one sweep
    with its sums in registers (:mod:`._firth_unrolled`).
    """
    _neg_hessian_arrays_p(pt, Zt, Inf, Y, p_buf, v_buf, m_buf, a1, Hn, L, G, AZ, row)


def _neg_hessian_arrays_p(pt, Zt, Inf, Y, p_buf, v_buf, m_buf, a1, Hn, L, G, AZ, row):
    """:func:`_neg_hessian_arrays` for the P of the type of ``pt`` alone (:func:`.logit_numba.p_tag`)."""
    raise TypeError("numba-compiled code only")


@overload(_neg_hessian_arrays_p, inline="always")
def _neg_hessian_arrays_by_p(pt, Zt, Inf, Y, p_buf, v_buf, m_buf, a1, Hn, L, G, AZ, row):
    kernel = _unrolled_firth("hess", pt)
    if kernel is not None:
        return (lambda pt, Zt, Inf, Y, p_buf, v_buf, m_buf, a1, Hn, L, G, AZ, row:
                kernel(Zt, Y, p_buf, v_buf, m_buf, a1, L, Inf, Hn))
    return (lambda pt, Zt, Inf, Y, p_buf, v_buf, m_buf, a1, Hn, L, G, AZ, row:
            _neg_hessian_generic(Zt, Inf, p_buf, v_buf, m_buf, Y, Hn, G, AZ, a1, row))


@njit(cache=True, error_model="numpy", inline="always", _nrt=False)
def _neg_hessian(Zt, w, Inf, ws):
    """:func:`_neg_hessian_arrays` with its buffers from ``ws`` (inlined, see :func:`_evaluate`)."""
    _neg_hessian_arrays(ws[PT_], Zt, Inf, ws[Y_], ws[P_], ws[V_], ws[M_], ws[A2_], ws[HN_], ws[L_],
                        ws[G_], ws[AZ_], ws[ROW_])


@njit(cache=True, error_model="numpy", _nrt=False)
def _solve_sub(Inf, U, fixed, d, S, Ls, r, Lf):
    """d = I_ss^{-1} U_s over the free parameters s (all but ``fixed``; -1: none).

    ``S``, ``Ls`` (P - 1, P - 1) and ``r`` (P - 1) are work space for the
    submatrix; ``Lf`` (P, P) for the full case's Cholesky factor.
    Straight-line Cholesky and solves for up to 8 free parameters
    (:func:`selfinterp._core.logit_numba._factor_solve_any`).  Returns False if
    the submatrix is not positive definite."""
    P = U.shape[0]
    if fixed < 0:
        return _factor_solve_any(Inf, U, Lf, d)
    n = 0
    for i in range(P):
        if i == fixed:
            continue
        m = 0
        for j in range(P):
            if j == fixed:
                continue
            S[n, m] = Inf[i, j]
            m += 1
        r[n] = U[i]
        n += 1
    # r is both the right-hand side and the solution: the solve reads each
    # entry before it writes it
    if n > 0 and not _factor_solve_any(S, r, Ls, r):
        return False
    _scatter(r, fixed, d)
    return True


@njit(cache=True, _nrt=False, inline="always")
def _scatter(r, fixed, d):
    """d = r with a 0 inserted at ``fixed``: the full step from the free parameters'."""
    n = 0
    for i in range(d.shape[0]):
        if i == fixed:
            d[i] = 0.0
        else:
            d[i] = r[n]
            n += 1


@njit(cache=True, _nrt=False)
def _solve_sub_again(U, fixed, d, Ls, r):
    """:func:`_solve_sub` for another right-hand side ``U``, with the factor
    ``Ls`` of the submatrix that its last successful call (``fixed >= 0``) left."""
    P = U.shape[0]
    n = 0
    for i in range(P):
        if i != fixed:
            r[n] = U[i]
            n += 1
    if n > 0:
        _ldl_solve(Ls, r, r)
    _scatter(r, fixed, d)


@njit(cache=True, _nrt=False)
def _maximise(Zt, f, w, b, fixed, max_iter, tol, ws, grow):
    """Maximise l* over all parameters but ``fixed`` (-1: none); b updated in place.

    Newton's method on l* (its exact Hessian, :func:`_neg_hessian`), falling
    back to Fisher scoring (logistf's step) where minus the Hessian is not
    positive definite, e.g. far from the maximum; steps capped at
    ``MAX_STEP`` and halved until l* does not decrease.  With ``grow`` (the
    fit) the cap is the largest |parameter| where that is larger: under
    separation the estimate can be in the hundreds, and steps of 5 took a
    median of 55 iterations to get there (16 with this cap) on
    deterministic choices from 500 trials; the profile's maximisations keep
    the cap of 5, which keeps the continuation on the branch it follows
    (with the larger cap, 182 of 76,800 bounds moved to another crossing).
    The restarts of :func:`_higher_branch` keep it too: with the larger cap
    they ended at other maxima and missed most of the higher branches that
    the capped restarts find (in a first version, 1,305 of 135,000 bounds
    were left below such a maximum, against 71 with the cap of 5).
    Fisher scoring alone converges only linearly, slowly under separation,
    where the penalty's curvature rivals the likelihood's.

    Returns (objective, converged, n_iter); on return ``ws`` holds U and I at b.
    Converged: the step, which near the maximum is the distance to it, is at
    most ``tol`` in every coordinate; or the step cannot be taken (no ascent,
    or only a halved step that gains nothing beyond l*'s rounding) and the
    increase the quadratic model promises is itself below that rounding.
    """
    U, Inf, d, cand, U2, I2, S, Ls, Hn, r = (ws[U_], ws[INF_], ws[D_], ws[CAND_], ws[U2_], ws[I2_],
                                            ws[SS_], ws[LS_], ws[HN_], ws[R_])
    Lf = ws[LF_]
    P = b.shape[0]
    obj = _evaluate(Zt, f, w, b, ws, U, Inf)
    if obj == -np.inf:
        return obj, False, 0
    _neg_hessian(Zt, w, Inf, ws)
    for it in range(max_iter):
        if not _solve_sub(Hn, U, fixed, d, S, Ls, r, Lf):
            if not _solve_sub(Inf, U, fixed, d, S, Ls, r, Lf):
                return obj, False, it
        big = 0.0
        bmax = 0.0
        for p in range(P):
            big = max(big, abs(d[p]))
            bmax = max(bmax, abs(b[p]))
        if big <= tol:
            return obj, True, it
        cap = max(MAX_STEP, bmax) if grow else MAX_STEP
        step = 1.0 if big <= cap else cap / big
        moved = False
        halved = False
        for _ in range(MAX_HALVING):
            for p in range(P):
                cand[p] = b[p] + step * d[p]
            o = _evaluate(Zt, f, w, cand, ws, U2, I2)
            if o >= obj - 1e-13 * abs(obj):
                moved = True
                break
            step *= 0.5
            halved = True
        # the increase the quadratic model promises, U'd / 2, against what l*
        # resolves (its rounding)
        gain = 0.0
        for p in range(P):
            gain += U[p] * d[p]
        flat = 0.5 * gain <= 1e-12 * max(1.0, abs(obj))
        if not moved or (halved and flat and o - obj <= 1e-13 * max(1.0, abs(obj))):
            # no ascent along the direction, or only a shortened step that
            # gains nothing beyond rounding: at the maximum to rounding if
            # the step is already tiny, or if the model's promised increase
            # is below what l* resolves (with parameters in the hundreds,
            # under separation, Newton steps of 1e3 tol are beyond it)
            _evaluate(Zt, f, w, b, ws, U, Inf)
            return obj, big <= 1e3 * tol or flat, it + 1
        for p in range(P):
            b[p] = cand[p]
            U[p] = U2[p]
            for q in range(P):
                Inf[p, q] = I2[p, q]
        obj = o
        _neg_hessian(Zt, w, Inf, ws)
    return obj, False, max_iter


@njit(cache=True)
def _workspace(pt, P, T, w):
    """Per-context buffers, allocated once per context (slot names above), for
    the trial weights ``w`` (T,); the last slot is the tag ``pt`` of P
    (:func:`.logit_numba.p_tag`), by whose type the sweeps are compiled for
    that P alone."""
    Q = max(P - 1, 1)  # the free parameters of a profile (one held fixed)
    unit = np.empty(1)
    unit[0] = 1.0 if _unit_weights(w) else 0.0
    return (np.empty(T), np.empty(T), np.empty(T), np.empty(T),  # p, v, modified-score terms, m
            np.empty(P), np.empty((P, P)), np.zeros((P, P)),  # U, I, chol(I)
            np.empty(P), np.empty(P), np.empty(P), np.empty((P, P)),  # step, candidate, its U, I
            np.empty((Q, Q)), np.zeros((Q, Q)),  # free-parameter sub-matrix, its chol
            np.empty((P, P)),  # -Hessian
            np.empty((P, P, P)), np.zeros((P, P)),  # G_r of the Hessian, chol(I)^{-1}
            np.empty(T), np.empty(Q), np.empty(T), np.empty(T),  # eta, solve vector, row, v'' m / 2
            np.empty((P, T)), np.empty((P, T)),  # Y = chol(I)^{-1} Z', v' z_r
            np.zeros((P, P)),  # chol of the full matrix in _solve_sub
            unit,  # 1.0: every weight is 0 or 1 (the sweeps' faster log-likelihood)
            pt)


@njit(cache=True, _nrt=False)
def _unit_weights(w):
    """Whether every weight is 0 or 1 (masked or not; no binomial counts)."""
    for t in range(w.shape[0]):
        if w[t] != 0.0 and w[t] != 1.0:
            return False
    return True


@njit(cache=True, _nrt=False, inline="always")
def _first_order(b_hat, cov, j, c, out):
    """out = the first-order (Wald) prediction of the profile path at b_j = c:
    ``b_hat + (c - b_hat_j) cov[:, j] / cov_jj``, with ``out_j = c``."""
    for p in range(b_hat.shape[0]):
        out[p] = b_hat[p] + (c - b_hat[j]) * cov[p, j] / cov[j, j]
    out[j] = c


@njit(cache=True, _nrt=False)
def _bound_start(b_hat, cov, hinv, terms, j, direction, q, start):
    """Starting point of a profile bound: the fourth-order prediction.

    Along the profile path, ``b_j = b_hat_j + t`` and the other parameters at
    their maximum given ``b_j``, ``b(t) = b_hat + t d + t^2 e / 2 + t^3 g / 6
    + O(t^4)`` and the profile is ``l*(b_hat) - t^2 / (2 s2) + kappa t^3 / 6
    + lambda t^4 / 24 + O(t^5)``, with H minus the exact Hessian at the
    estimate, ``s2 = H^{-1}_jj`` and the tangent ``d = H^{-1}[:, j] / s2``;
    ``terms`` = (kappa, lambda, e, g) from :func:`_start_terms` (the
    log-likelihood's derivatives only).  The start is the root of that
    quartic beside the Wald bound ``t = +-sqrt(q s2)``, on that curve; the
    Wald bound of the Fisher information (``cov``) on the first-order path
    where ``H`` is not positive definite, and the Wald bound of ``H`` where the
    quartic has no root nearby.

    Against the Wald start, the start's distance from the bound and the
    other parameters' maximum there (its largest coordinate, in standard
    errors) is a median of 0.08 to 0.13 (``test_fourth_order_start``).  On
    the first 40 contexts of bench_firth.py's data, the second joint Newton
    step, in the bound, is a median of 2e-6 of its standard error (the bound
    after the first step was about 1e-3 off from the Wald start), and 86% of
    the bounds stop after the second evaluation: 2.12 evaluations per bound
    on the benchmark's 400 contexts, against 3.24 from the Wald start.
    """
    P = b_hat.shape[0]
    s2 = hinv[j, j]
    if not s2 > 0.0:
        _first_order(b_hat, cov, j, b_hat[j] + direction * math.sqrt(q * cov[j, j]), start)
        return
    kappa, lam = terms[0], terms[1]
    t0 = direction * math.sqrt(q * s2)
    t = t0
    for _ in range(6):
        g = 0.5 * q - 0.5 * t * t / s2 + kappa * t * t * t / 6.0 + lam * t * t * t * t / 24.0
        dg = -t / s2 + 0.5 * kappa * t * t + lam * t * t * t / 6.0
        if not dg * direction < 0.0:  # the model turns before its root: keep the Wald bound
            t = t0
            break
        t -= g / dg
    if not abs(t - t0) <= 0.5 * abs(t0):
        t = t0
    for p in range(P):
        start[p] = (b_hat[p] + t * hinv[p, j] / s2 + 0.5 * t * t * terms[2 + p]
                    + t * t * t * terms[2 + P + p] / 6.0)
    start[j] = b_hat[j] + t


@njit(cache=True, _nrt=False)
def _bound_joint(Zt, f, w, b_hat, cov, hinv, terms, j, direction, q, target, tol, ws, nuis, col,
                 tangent):
    """One profile bound by a joint Newton iteration on the bound and the
    other parameters at once (the fast path of :func:`_profile_bound`).

    At the current point (c = b_j, b_s), with the score ``U`` and minus the
    Hessian ``Hn`` of l*, the quadratic model of l* gives the model profile
    ``m(D) = l + U_s' u / 2 + (U_j - Hn_js u) D - k D^2 / 2`` with
    ``u = Hn_ss^{-1} U_s`` and ``k = Hn_jj - Hn_js Hn_ss^{-1} Hn_sj`` (the
    curvature of the profile); the step moves ``b_j`` to the root of
    ``m(D) = target`` on the bound's side (where the model profile falls
    outward) and the others to their model maximum there,
    ``b_s + u - D Hn_ss^{-1} Hn_sj``.  This is Venzon & Moolgavkar's (1988)
    joint Newton, with the exact Hessian: quadratic convergence, one
    evaluation per iteration instead of a maximisation per profile point.

    It starts from the fourth-order prediction of :func:`_bound_start`
    (``hinv``, ``terms``: from :func:`_start_terms`), and gives up (returns converged False, and the caller follows
    the profile instead) as soon as the model is not to be trusted: a
    profile or nuisance curvature that is not negative, no root of the
    model, a step in ``b_j`` longer than one standard error (the continuation
    would try a second start there: under separation the other parameters
    can have several maxima, and a long joint step can land on the wrong
    one), or no convergence in ``JOINT_ITER`` iterations.  Converged: the
    profile value is at the target to 1e-10 (relative) and the Newton step of
    the other parameters is at most ``tol``; or the step is small enough that
    its own error is negligible (``JOINT_STEP_TOL``, ``JOINT_NUIS_TOL``), at
    the second point also with the first point's Hessian (the chord step,
    ``CHORD_TOL``), which then is not computed there.
    """
    P = b_hat.shape[0]
    U, Inf, Hn, u = ws[U_], ws[INF_], ws[HN_], ws[D_]
    se = math.sqrt(max(cov[j, j], 0.0))
    if not se > 0.0:
        return b_hat[j], False
    _bound_start(b_hat, cov, hinv, terms, j, direction, q, nuis)
    moved2 = np.inf  # the last step's largest coordinate, squared, in standard errors
    k = 0.0
    for it in range(JOINT_ITER):
        obj = _evaluate(Zt, f, w, nuis, ws, U, Inf)
        if obj == -np.inf:
            return nuis[j], False
        g = obj - target
        if it == 1:
            # the chord step (see CHORD_TOL): the first point's Hessian (its
            # factor in LS, tangent and curvature k) with this point's score
            _solve_sub_again(U, j, u, ws[LS_], ws[R_])
            step, small, gain, b1 = _joint_step(U, Hn, u, cov, j, direction, g, k)
            if small and step * step <= JOINT_STEP_TOL * JOINT_STEP_TOL * se * se \
                    and moved2 * gain * gain <= CHORD_TOL * CHORD_TOL * b1 * b1 * se * se:
                return nuis[j] + step, True
        _neg_hessian(Zt, w, Inf, ws)
        for p in range(P):
            col[p] = Hn[p, j]
        if not _solve_sub(Hn, U, j, u, ws[SS_], ws[LS_], ws[R_], ws[LF_]):
            return nuis[j], False  # the other parameters' curvature is not negative
        _solve_sub_again(col, j, tangent, ws[LS_], ws[R_])
        k = Hn[j, j]
        big = 0.0
        off = False  # another parameter's Newton step beyond JOINT_MAX_OFF of its se
        for p in range(P):
            if p != j:
                k -= Hn[j, p] * tangent[p]
                big = max(big, abs(u[p]))
                # |u_p| against multiples of se_p = sqrt(cov_pp), squared (no square root)
                off = off or u[p] * u[p] > JOINT_MAX_OFF * JOINT_MAX_OFF * max(cov[p, p], 0.0)
        if abs(g) <= 1e-10 * max(1.0, abs(target)) and big <= tol:
            return nuis[j], True
        if off or (it > 0 and abs(g) > JOINT_MAX_MISS):
            return nuis[j], False
        step, small, _, _ = _joint_step(U, Hn, u, cov, j, direction, g, k)
        if not abs(step) <= se:  # also where the model has no root (inf)
            return nuis[j], False
        if small and abs(step) <= JOINT_STEP_TOL * se:
            # quadratic convergence: the step's own error is of the order of
            # the square of these (see JOINT_STEP_TOL), so stop without
            # evaluating again
            return nuis[j] + step, True
        moved2 = step * step / (se * se)
        for p in range(P):
            if p != j:
                dp = u[p] - step * tangent[p]
                nuis[p] += dp
                moved2 = max(moved2, dp * dp / max(cov[p, p], 1e-300))
        nuis[j] += step
    return nuis[j], False


@njit(cache=True, _nrt=False, inline="always")
def _joint_step(U, Hn, u, cov, j, direction, g, k):
    """The step in b_j of :func:`_bound_joint`'s model, from the profile's
    miss ``g``, the score ``U``, minus the Hessian ``Hn``, the other
    parameters' Newton step ``u = Hn_ss^{-1} U_s`` and the profile curvature
    ``k``.

    Returns (step, small, gain, slope): ``small``, whether every other
    parameter's step is within JOINT_NUIS_TOL of its standard error; the
    model's gain from moving them, ``U_s' u / 2``; and the model profile's
    slope ``U_j - Hn_js u``.  The step is the root where the model profile
    falls outward (its slope ``b1 - k D`` has the sign of -direction); inf
    where the model has no root.
    """
    a0 = g
    b1 = U[j]
    small = True
    for p in range(U.shape[0]):
        if p != j:
            a0 += 0.5 * U[p] * u[p]
            b1 -= Hn[j, p] * u[p]
            small = small and u[p] * u[p] <= JOINT_NUIS_TOL * JOINT_NUIS_TOL * max(cov[p, p], 0.0)
    disc = b1 * b1 + 2.0 * k * a0
    if not (k > 0.0 and disc >= 0.0):
        return np.inf, False, a0 - g, b1
    return (b1 + direction * math.sqrt(disc)) / k, small, a0 - g, b1


@njit(cache=True, _nrt=False)
def _profile_bound(Zt, f, w, b_hat, obj_hat, cov, hinv, terms, j, direction, q, max_iter, tol, ws, nuis,
                   alt, col, tangent):
    """One profile penalised-likelihood bound of parameter ``j``.

    ``direction`` is +1 (upper) or -1 (lower).  Returns (bound, converged).
    g(c) = max_{b_-j} l*(c, b_-j) - (obj_hat - q / 2) is positive inside the
    interval and negative outside; its root is the bound.

    Under separation l* can have several local maxima in the other
    parameters at a fixed ``b_j``: each profile point is maximised from the
    previous one, moved along the tangent of the profile path (a predictor:
    a few Newton steps then suffice), and, after a jump of more than one
    standard error in ``b_j``, also from the first-order prediction
    ``b_hat + (c - b_hat_j) cov[:, j] / cov[j, j]`` (and from there where the
    tangent's prediction is outside l*'s domain); the better maximum is
    kept.  The bound is thus the first crossing found by following the
    profile outward from the estimate.  Newton's steps on the profile are
    safeguarded by bisection once the root is bracketed, also where they
    cycle between the two ends of the bracket (a profile that switches
    branches is not smooth there).
    """
    target = obj_hat - 0.5 * q
    c, ok = _bound_joint(Zt, f, w, b_hat, cov, hinv, terms, j, direction, q, target, tol, ws, nuis, col,
                         tangent)
    if ok:
        return c, True
    se = math.sqrt(max(cov[j, j], 0.0))
    c = b_hat[j] + direction * math.sqrt(q) * max(se, 1e-3)
    _first_order(b_hat, cov, j, c, nuis)
    return _follow(Zt, f, w, b_hat, cov, j, direction, target, c, max_iter, tol, ws, nuis, alt, col,
                   tangent, False, alt, alt)


@njit(cache=True, _nrt=False)
def _follow(Zt, f, w, b_hat, cov, j, direction, target, c, max_iter, tol, ws, nuis, alt, col, tangent,
            keep_inside, nuis_in, tan_in):
    """Follow the profile outward from ``b_j = c`` (the other parameters
    starting from ``nuis``) to its crossing of ``target``: the continuation
    of :func:`_profile_bound` (see there).  Returns (bound, converged).

    With ``keep_inside`` (the branches of :func:`_bound`), each new point
    after one below the target starts from the last point above it (kept in
    ``nuis_in``, its tangent in ``tan_in``), moved along its tangent, so that
    the search stays on the branch it follows; otherwise from the last point.
    """
    P = b_hat.shape[0]
    U = ws[U_]
    inside = b_hat[j]          # g > 0 here
    outside = np.nan           # g < 0 here, once found
    se = math.sqrt(max(cov[j, j], 0.0))
    c_prev = c
    g = np.inf
    g_prev = np.inf
    kept = False  # nuis_in holds a point above the target
    for it in range(max_iter):
        # inexact Newton: far from the root the profile need not be exact;
        # the inner iteration is quadratic, so the final points cost little more
        tol_in = tol if abs(g) < 1e-3 else max(tol, 1e-6)
        # the second start is needed only after a jump: a short move keeps
        # the continuation on its branch
        jump = abs(c - c_prev) > se
        nuis[j] = c
        obj, ok, _ = _maximise(Zt, f, w, nuis, j, INNER_ITER, tol_in, ws, False)
        if it > 0 and (jump or obj == -np.inf):
            _first_order(b_hat, cov, j, c, alt)
            obj_alt, ok_alt, _ = _maximise(Zt, f, w, alt, j, INNER_ITER, tol_in, ws, False)
            if obj_alt > obj:
                for p in range(P):
                    nuis[p] = alt[p]
                obj, ok = obj_alt, ok_alt
            else:
                _evaluate(Zt, f, w, nuis, ws, ws[U_], ws[INF_])
                _neg_hessian(Zt, w, ws[INF_], ws)
        # tangent of the profile path, from U_s(b_s(c), c) = 0:
        # d b_s / d c = -Hn_ss^{-1} Hn_sj (predictor for the next point)
        Hn = ws[HN_]
        for p in range(P):
            col[p] = Hn[p, j]
        if not _solve_sub(Hn, col, j, tangent, ws[SS_], ws[LS_], ws[R_], ws[LF_]):
            for p in range(P):
                tangent[p] = 0.0
        c_prev = c
        if not ok and obj == -np.inf:
            return c, False
        g_prev2 = g_prev
        g_prev = g
        g = obj - target
        slope = U[j]  # d g / d c at the profiled point
        if abs(g) <= 1e-10 * max(1.0, abs(target)) and tol_in == tol:
            return c, ok
        if g > 0.0:
            inside = c
            if keep_inside:
                kept = True
                for p in range(P):
                    nuis_in[p] = nuis[p]
                    tan_in[p] = tangent[p]
        else:
            outside = c
        # Newton step on g, safeguarded
        newton_ok = slope != 0.0
        c_new = c - g / slope if newton_ok else c
        if math.isnan(outside):
            # not yet bracketed: move outward at least as far as Newton says,
            # doubling the distance when Newton does not move outward
            if not newton_ok or direction * (c_new - c) <= 0.0:
                c_new = c + direction * 2.0 * max(abs(c - b_hat[j]), 1e-3)
            elif direction * (c_new - c) > 4.0 * max(abs(c - b_hat[j]), 1.0):
                c_new = c + direction * 4.0 * max(abs(c - b_hat[j]), 1.0)
        else:
            lo = min(inside, outside)
            hi = max(inside, outside)
            # bisect where Newton leaves the bracket, or where it cycles: g
            # changed sign twice running without halving on either side (a
            # profile that switches between branches of the other
            # parameters' maxima is not smooth, and Newton can jump from one
            # end of the bracket to the other and back, moving the ends by a
            # hair each time)
            cycling = (g * g_prev < 0.0 and g_prev * g_prev2 < 0.0
                       and abs(g) > 0.5 * abs(g_prev2))
            if not (newton_ok and lo < c_new < hi) or cycling:
                c_new = 0.5 * (inside + outside)
            if hi - lo <= 1e-12 * max(1.0, abs(c)):
                return c, ok
        if abs(c_new - c) <= 1e-12 * max(1.0, abs(c)):
            return c_new, ok
        if keep_inside and g <= 0.0 and kept:
            # from the branch followed, not from the point below the target
            for p in range(P):
                if p != j:
                    nuis[p] = nuis_in[p] - (c_new - inside) * tan_in[p]
        else:
            for p in range(P):
                if p != j:
                    nuis[p] -= (c_new - c) * tangent[p]
        c = c_new
    return c, False


@njit(cache=True, _nrt=False)
def _higher_branch(Zt, f, w, b_hat, j, c, tol, ws, alt, best):
    """The best maximum of l* over the parameters other than ``j`` at
    ``b_j = c`` from two restarts: the estimate with only ``b_j`` moved to
    ``c``, and the estimate scaled so that ``b_j = c``.  Returns its value,
    with the point in ``best``; ``alt`` is work space."""
    P = b_hat.shape[0]
    top = -np.inf
    for scaled in range(2):
        if scaled == 1 and b_hat[j] == 0.0:
            continue
        r = c / b_hat[j] if scaled == 1 else 1.0
        for p in range(P):
            alt[p] = b_hat[p] * r
        alt[j] = c
        obj, _, _ = _maximise(Zt, f, w, alt, j, RESTART_ITER, tol, ws, False)
        if obj > top:
            top = obj
            for p in range(P):
                best[p] = alt[p]
    return top


@njit(cache=True, _nrt=False)
def _bound(Zt, f, w, b_hat, obj_hat, cov, hinv, terms, j, direction, q, max_iter, tol, ws, nuis, alt,
           col, tangent, best, nuis_in, tan_in):
    """One profile bound (:func:`_profile_bound`), then the check for a
    higher branch of the other parameters' maxima there (the contexts asked
    for; the others call :func:`_profile_bound` directly, which measured 3%
    faster on bench_firth.py's data than through this function).

    Under separation l* can have several local maxima in the other
    parameters at a fixed ``b_j``, and the profile followed from the
    estimate can cross its target on a lower one: the global profile is
    then still above the target, and the interval too narrow.  At the
    bound, :func:`_higher_branch` maximises the other parameters again from
    two restarts; where one ends above the target, the search follows the
    profile outward from there (:func:`_follow`) to its next crossing, and
    checks again, at most ``BRANCH_ROUNDS`` times (then: not converged).
    """
    c, ok = _profile_bound(Zt, f, w, b_hat, obj_hat, cov, hinv, terms, j, direction, q, max_iter, tol,
                           ws, nuis, alt, col, tangent)
    if not ok:
        return c, ok
    target = obj_hat - 0.5 * q
    margin = BRANCH_TOL * max(1.0, abs(target))
    P = b_hat.shape[0]
    for r in range(BRANCH_ROUNDS + 1):
        top = _higher_branch(Zt, f, w, b_hat, j, c, tol, ws, alt, best)
        if not top > target + margin:
            return c, True
        if r == BRANCH_ROUNDS:
            break
        for p in range(P):
            nuis[p] = best[p]
        c, ok = _follow(Zt, f, w, b_hat, cov, j, direction, target, c, max_iter, tol, ws, nuis, alt,
                        col, tangent, True, nuis_in, tan_in)
        if not ok:
            return c, False
    return c, False


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _start_terms(Zt, ws, hinv, terms, e, col):
    """For :func:`_bound_start`, at the estimate (the point ``ws`` last
    evaluated, with its Hessian: ``_maximise`` leaves both at its result):
    ``hinv`` = H^{-1}, H minus the exact Hessian (-1 on its diagonal where H
    is not positive definite), and for each slope k, ``terms[k]`` = (kappa,
    lambda, e, g): the third and fourth derivatives of the profile and the
    second and third of its path (see :func:`_bound_start`).

    With the profile tangent ``d = H^{-1}[:, k] / H^{-1}_kk``, ``x_t = z_t .
    d``, ``M = H^{-1} - H^{-1}_kk d d'`` (the inverse of H over the other
    parameters, 0 in row and column k) and the log-likelihood's derivatives
    ``v' = w p (1 - p) (1 - 2 p)``, ``v'' = w p (1 - p) (1 - 6 p (1 - p))``:
    ``r_s = D^3 l[s, d, d] = -sum_t v'_t x_t^2 z_ts``, ``e = M r``, ``kappa =
    d' r``, ``lambda = D^4 l[d, d, d, d] + 3 e' r = -sum_t v''_t x_t^4 + 3
    e' r``, ``g = M R`` with ``R_s = D^4 l[s, d, d, d] + 3 D^3 l[s, e, d] =
    -sum_t (v''_t x_t^3 + 3 v'_t (z_t . e) x_t) z_ts`` (from differentiating
    ``U_s(b(t)) = 0`` twice and three times).  Three sweeps over the trials
    a slope.  The penalty's own derivatives, of the order of 1 / T of the
    likelihood's, are left out: they make the start less good, not the bound
    less exact (with its third derivative the start's median distance from
    the bound fell by 7% only, on 6 of bench_firth.py's contexts)."""
    P, T = Zt.shape
    K = terms.shape[0]
    p_, v, x, y = ws[P_], ws[V_], ws[ETA_], ws[ROW_]
    if not _inverse(ws[HN_], hinv, ws[LF_], e, col):
        for i in range(P):
            hinv[i, i] = -1.0
        return
    for k in range(K):
        _z_dot(Zt, hinv[:, k], 1.0 / hinv[k, k], x)  # x = Z d
        # r (into col) and the fourth derivative along d
        s4 = 0.0
        for t in range(T):
            pt, x2 = p_[t], x[t] * x[t]
            s4 += v[t] * (1.0 - 6.0 * pt * (1.0 - pt)) * x2 * x2
            y[t] = v[t] * (1.0 - 2.0 * pt) * x2
        _minus_zt_dot(Zt, y, col)
        e_k = terms[k, 2:2 + P]
        kappa = _project(hinv, k, col, e_k)
        er = 0.0
        for i in range(P):
            er += e_k[i] * col[i]
        terms[k, 0] = kappa
        terms[k, 1] = -s4 + 3.0 * er
        # R (into col), then g = M R
        _z_dot(Zt, e_k, 1.0, y)  # y = Z e
        for t in range(T):
            pt, xt = p_[t], x[t]
            y[t] = v[t] * ((1.0 - 6.0 * pt * (1.0 - pt)) * xt * xt * xt
                           + 3.0 * (1.0 - 2.0 * pt) * y[t] * xt)
        _minus_zt_dot(Zt, y, col)
        _project(hinv, k, col, terms[k, 2 + P:])


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _z_dot(Zt, c, scale, x):
    """x_t = scale * z_t . c (one vectorised pass over the trials per parameter)."""
    P, T = Zt.shape
    for t in range(T):
        x[t] = 0.0
    for i in range(P):
        ci = c[i] * scale
        for t in range(T):
            x[t] += Zt[i, t] * ci


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _minus_zt_dot(Zt, y, out):
    """out_i = -sum_t y_t z_ti."""
    P, T = Zt.shape
    for i in range(P):
        acc = 0.0
        for t in range(T):
            acc += y[t] * Zt[i, t]
        out[i] = -acc


@njit(cache=True, _nrt=False, inline="always")
def _project(hinv, k, c, out):
    """out = M c with M = H^{-1} - H^{-1}[:, k] H^{-1}[k, :] / H^{-1}_kk (H^{-1}
    over the parameters other than k, 0 in row and column k); returns d' c,
    d = H^{-1}[:, k] / H^{-1}_kk."""
    P = c.shape[0]
    dc = 0.0
    for i in range(P):
        dc += hinv[i, k] * c[i]
    dc /= hinv[k, k]
    for i in range(P):
        oi = -hinv[i, k] * dc
        for m in range(P):
            oi += hinv[i, m] * c[m]
        out[i] = oi
    return dc


@njit(cache=True, _nrt=False)
def _inverse(H, out, L, e, col):
    """out = H^{-1} (symmetric positive definite H; one factorisation, P
    solves); False if H is not positive definite (``L``, ``e``, ``col``: work
    space)."""
    P = H.shape[0]
    for jj in range(P):
        for i in range(P):
            e[i] = 1.0 if i == jj else 0.0
        if jj == 0:
            if not _factor_solve_any(H, e, L, col):
                return False
        else:
            _ldl_solve(L, e, col)
        for i in range(P):
            out[i, jj] = col[i]
    return True


@njit(cache=True, inline="always")
def _context(X, f, w, a, fit_intercept, Tp):
    """Context ``a``'s buffers: Zt (P, Tp) (slopes, then the intercept's 1),
    f and w, padded to ``Tp`` trials with zeros."""
    T, K = X.shape[1], X.shape[2]
    P = K + 1 if fit_intercept else K
    Zt = np.zeros((P, Tp))
    fa = np.zeros(Tp)
    wa = np.zeros(Tp)
    for t in range(T):
        for k in range(K):
            Zt[k, t] = X[a, t, k]
        if fit_intercept:
            Zt[K, t] = 1.0
        fa[t] = f[a, t]
        wa[t] = w[a, t]
    return Zt, fa, wa


def firth_numba(pt, X, f, w, fit_intercept, intervals, q, max_iter, tol, restart):
    """Fit every context of X (A, T, K) (``pt``: :func:`.logit_numba.p_tag` of P); ``restart`` (A,) bool: the contexts
    whose bounds are checked for a higher branch (:func:`_bound`).

    The contexts are shared among numba's number of threads, one at a time
    (:func:`_firth_worker`), as the logit fit shares its blocks
    (:func:`.logit_numba.run_on_threads`): Python threads rather than numba's ``prange``,
    whose parallel-loop machinery doubled the kernel's own compilation.

    Returns
    -------
    beta : (A, P) estimates (slopes, then the intercept when fitted)
    cov : (A, P, P) inverse Fisher information at the estimate
    lower, upper : (A, K) profile penalised-likelihood bounds of the slopes
        (zeros when ``intervals`` is False)
    converged : (A,) the fit converged
    ci_converged : (A,) every bound converged
    n_iter : (A,)
    """
    A, T, K = X.shape
    P = K + 1 if fit_intercept else K
    out = (np.zeros((A, P)), np.zeros((A, P, P)), np.zeros((A, K)), np.zeros((A, K)),
           np.zeros(A, dtype=np.bool_), np.zeros(A, dtype=np.bool_), np.zeros(A, dtype=np.int64))
    next_context = np.zeros(1, dtype=np.int64)
    args = (pt, next_context, X, f, w, bool(fit_intercept), bool(intervals), float(q), int(max_iter), float(tol),
            np.ascontiguousarray(restart, dtype=np.bool_)) + out
    run_on_threads(_firth_worker, args, next_context, A)
    return out


@njit(cache=True, nogil=True)
def _firth_worker(pt, next_context, X, f, w, fit_intercept, intervals, q, max_iter, tol, restart,
                  beta, cov, lower, upper, conv, ci_conv, iters):
    """Fit the next context not yet taken (:func:`.logit_numba.fetch_add` on ``next_context[0]``) into the
    outputs, until none is left; several threads run this at once, without the GIL (:func:`firth_numba`)."""
    A, T, K = X.shape
    P = K + 1 if fit_intercept else K
    # trials padded to a multiple of the vector width with weight-0 trials
    # (z = 0, f = 0, w = 0), which add nothing to any sum: the vectorised
    # loops then have no scalar remainder
    Tp = padded(T)
    while True:
        a = fetch_add(next_context)
        if a >= A:
            break
        Zt, fa, wa = _context(X, f, w, a, fit_intercept, Tp)
        ws = _workspace(pt, P, Tp, wa)
        b = np.zeros(P)
        obj, ok, n_it = _maximise(Zt, fa, wa, b, -1, max_iter, tol, ws, True)
        beta[a] = b
        conv[a] = ok
        iters[a] = n_it
        # covariance: I^{-1} at the estimate (ws holds the last evaluation's I)
        col = np.empty(P)
        e = np.zeros(P)
        good = _inverse(ws[INF_], cov[a], ws[LF_], e, col)
        if not good:
            conv[a] = False
        if intervals and good:
            cov_a = cov[a]
            vecs = np.empty((6, P))  # one allocation for the bounds' vectors
            nuis, alt, best, nuis_in, tan_in, tangent = vecs[0], vecs[1], vecs[2], vecs[3], vecs[4], vecs[5]
            hinv = np.empty((P, P))
            terms = np.zeros((K, 2 * P + 2))
            _start_terms(Zt, ws, hinv, terms, e, col)
            all_ok = True
            for k in range(K):
                if restart[a]:
                    lo, ok_lo = _bound(Zt, fa, wa, b, obj, cov_a, hinv, terms[k], k, -1.0, q, OUTER_ITER, tol,
                                       ws, nuis, alt, col, tangent, best, nuis_in, tan_in)
                    hi, ok_hi = _bound(Zt, fa, wa, b, obj, cov_a, hinv, terms[k], k, 1.0, q, OUTER_ITER, tol,
                                       ws, nuis, alt, col, tangent, best, nuis_in, tan_in)
                else:
                    lo, ok_lo = _profile_bound(Zt, fa, wa, b, obj, cov_a, hinv, terms[k], k, -1.0, q,
                                               OUTER_ITER, tol, ws, nuis, alt, col, tangent)
                    hi, ok_hi = _profile_bound(Zt, fa, wa, b, obj, cov_a, hinv, terms[k], k, 1.0, q,
                                               OUTER_ITER, tol, ws, nuis, alt, col, tangent)
                lower[a, k] = lo
                upper[a, k] = hi
                all_ok = all_ok and ok_lo and ok_hi
            ci_conv[a] = all_ok
