"""NumPy reference for the batched binary logit (Newton with step halving).

All contexts are iterated together; a context stops updating once it has
converged.  The objective maximised per context is

    l(theta) = sum_t w_t [f_t eta_t - softplus(eta_t)] - 1/2 sum_j prec_j theta_j^2

with ``eta = Z @ theta``, ``Z`` the design (slopes first, intercept column last
when fitted), ``f`` the outcome as a fraction in [0, 1] and ``w`` the number of
binomial trials behind it (0 for masked rows).  ``prec`` is the prior
precision (0 for plain maximum likelihood).

Newton iteration from theta = 0, per context:

1. (maximum likelihood only) stop if theta separates the data (below);
2. solve H d = g by Cholesky (stop, not converged, if H is not positive definite);
3. if max|d| <= tol (1 + max|theta + d|), or the previous step was a full one of size d_prev
   and QUAD_SAFETY max|d|^3 / d_prev^2 (the predicted next step) is below that bound,
   take the step and stop: converged.
   The Hessian of the last evaluation (at theta, one step away) serves
   for the covariance, which saves an evaluation per context;
4. line search by step halving: a step s d is accepted when it is the full
   step from a Hessian evaluated at theta = 0, or when it moves no eta_t by
   more than ``SAFE_ETA_STEP`` = 1.5 (either raises l for certain, see below),
   or when it does not lower l by more than 1e-12 |l|.  If no step in
   ``MAX_HALVING`` halvings is accepted, theta cannot be improved: stop there,
   converged.  The full step from theta = 0 is then lengthened by the ray
   search (:func:`ray_scale_numpy`, below);
5. evaluate g and H at the new theta; stop, converged, if the step applied
   was at most tol (1 + max|theta|).

Why the safe step needs no objective: the logistic weight v = p (1 - p)
satisfies |d log v / d eta| <= 1, so along a step that moves every eta_t by
at most m the Hessian is at most e^m times its value at theta (the prior part
is constant), and l(theta + d) - l(theta) >= lambda^2 (1 - (e^m - 1 - m) / m^2)
with lambda^2 = g.d > 0: positive for m <= 1.79 (at m = 1.5 the bracket is
0.12, far above rounding).  Near the optimum every
Newton step is of that kind, so the log-likelihood (a log1p per trial) is
only evaluated in the first iterations.  Why the full step from theta = 0
needs no objective either: there every weight is w / 4, the largest that
p (1 - p) can be, so H(0) bounds the curvature everywhere and
l(theta) >= l(0) + g.theta - theta' H(0) theta / 2 (Boehning & Lindsay 1988,
the quadratic lower bound); at theta = d = H(0)^-1 g the bound is
l(0) + g.d / 2 > l(0).  The first step of every fit (91% of which move some
eta by more than 1.5 on the benchmark data) is of that kind.

The ray search: that first step d = H(0)^-1 g(0) falls short, because the
curvature along the ray s d shrinks as s grows.  One Newton step for s from
s = 1 on phi(s) = l(s d) costs a logistic and two sums per trial, and lands
at or before the best s along the ray, so it raises l too.  phi is concave,
and phi' is convex for s > 0: its derivative, the third of phi, is
-sum_t w_t v'(s e_t) e_t^3 >= 0 with e = Z d, because
v'(x) = v(x) (1 - 2 sigmoid(x)) has the sign of -x (the prior adds a
constant to the second derivative, nothing to the third).  So the tangent of
phi' at s = 1 stays below phi' and meets zero at or before its root.  The
Newton steps that follow start closer: 2.4 instead of 3.0 full evaluations
after the first at T = 50, 3.0 instead of 4.0 at T = 500.

Separation (the maximum likelihood estimate does not exist) is examined
afterwards by :func:`separation_status_numpy`: the residual certificate
(:func:`residual_certificate_numpy`) from the residuals at the fit, with the
fitted theta tried as a separating direction after its first round, then from
the residuals at theta = 0.  For what that leaves, an unpenalised Newton run
from the last point the fit evaluated stops as soon as its iterate separates
the data (status 1) or its Newton direction yields a dual certificate that
the MLE exists (status 0, :func:`dual_signs_ok`, usually at the first or
second iterate), or converges to a finite MLE (status 0); failing all of
these within its iterations, status 2: the caller settles it exactly with a
linear program.
"""

from __future__ import annotations

import numpy as np

ETA_MAX = 30.0  # |eta| past which a fitted probability is within 1e-13 of 0 or 1
MAX_HALVING = 40
SAFE_ETA_STEP = 1.5  # a Newton step moving no eta by more than this raises l (module docstring)
CERT_MARGIN = 1e-8  # smallest multiplier, per unit weight, that the dual certificate trusts
# Newton stops when its step is at most tol (1 + max |theta|), or when, in the quadratic
# regime, the step after it will be: the next step is about d_k^3 / d_(k-1)^2 (its size
# d_k = C d_(k-1)^2 gives C), and QUAD_SAFETY times that prediction must be below tol.
# This saves the last evaluation and factorisation (one in five at T = 50) of a step that
# would be ~1e-14; d_(k-1) must be a full (unhalved) step for the estimate of C.
QUAD_SAFETY = 10.0
# A factorisation fails on a pivot at most PIVOT_MIN times its diagonal element (1 - R^2 of
# that column on the previous ones, in the Hessian's metric): a numerically singular H.  An
# exactly singular one (more parameters than trials) leaves rounding noise of either sign
# there, up to 1e-12 of the diagonal when the leading columns are ill-conditioned, so that
# a test against 0 alone made the backends disagree on whether to go on.
PIVOT_MIN = 1e-8
RAY_MAX = 4.0  # the largest factor of the first step's ray search (ray_scale_numpy)
CERT_ROUNDS = 8  # rounds of the residual certificate (residual_certificate_numpy)
CERT_DAMPING = 0.9  # its damped move: this share of the way to the first sign change


def softplus(eta):
    return np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))


def sigmoid(eta):
    e = np.exp(-np.abs(eta))
    return np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _linear(Z, theta):
    return np.einsum("atp,ap->at", Z, theta)


def _residuals(eta, f, w):
    """r = w (f - p) and v = w p (1 - p), with p = sigmoid(eta)."""
    e = np.exp(-np.abs(eta))
    inv = 1.0 / (1.0 + e)
    p = np.where(eta >= 0, inv, e * inv)
    return w * (f - p), w * (e * inv * inv)


def ray_scale_numpy(eta, f, w, theta, prec):
    """The ray search's factor s >= 1 for the full first step ``theta`` from theta = 0,
    with eta = Z theta (all (A, .)): one Newton step on phi(s) = l(s theta) from s = 1
    (module docstring), at most ``RAY_MAX``; 1 where phi'(1) <= 0."""
    r, v = _residuals(eta, f, w)
    q = np.sum(prec * theta * theta, axis=1)
    a = np.sum(r * eta, axis=1) - q  # phi'(1)
    b = np.sum(v * eta * eta, axis=1) + q  # -phi''(1)
    ok = (a > 0.0) & (b > 0.0)
    return np.where(ok, np.minimum(1.0 + a / np.where(ok, b, 1.0), RAY_MAX), 1.0)


def _grad_hess(Z, r, v, theta, prec):
    g = np.einsum("at,atp->ap", r, Z) - prec * theta
    H = np.einsum("at,atp,atq->apq", v, Z, Z)
    H = H + prec[..., None] * np.eye(Z.shape[2])
    return g, H


def _objective(eta, f, w, theta, prec):
    # no square where there is no prior: a diverging ML iterate may pass 1e154
    sq = np.square(theta, where=prec != 0, out=np.zeros_like(theta))
    return np.sum(w * (f * eta - softplus(eta)), axis=1) - 0.5 * np.sum(prec * sq, axis=1)


def _cholesky_solve(H, g):
    """Newton direction per context; ``ok`` is False where H is not positive definite
    (a squared pivot of its Cholesky factor at most ``PIVOT_MIN`` times its diagonal)."""
    ok = np.ones(len(g), dtype=bool)
    d = np.zeros_like(g)
    for a in range(len(g)):
        try:
            L = np.linalg.cholesky(H[a])
        except np.linalg.LinAlgError:
            ok[a] = False
            continue
        if not np.all(np.diagonal(L) ** 2 > PIVOT_MIN * np.diagonal(H[a])):
            ok[a] = False
            continue
        d[a] = np.linalg.solve(L.T, np.linalg.solve(L, g[a]))
    return d, ok


def _signs_agree(eta, f, w):
    """True where eta (not all zero) has the sign of every weighted outcome."""
    used = w > 0
    bad = used & (((f == 1.0) & (eta < 0)) | ((f == 0.0) & (eta > 0))
                  | ((f > 0.0) & (f < 1.0) & (eta != 0)))
    nonzero = np.any(used & (eta != 0), axis=1)
    return nonzero & ~np.any(bad, axis=1)


def newton_numpy(Z, f, w, prec, max_iter, tol, theta0=None, stop_on_certificate=False,
                 stop_on_dual=False):
    """Batched Newton (module docstring).

    ``stop_on_certificate``: stop where theta separates the data.
    ``stop_on_dual``: (with ``prec`` = 0) stop where the Newton direction
    gives a dual certificate that the MLE exists (:func:`dual_signs_ok`).

    Returns a dict: ``theta`` (A, P); ``at`` (A, P), the point of the last
    evaluation, where ``r``, ``v`` (A, T), ``g`` (A, P) and ``H`` (A, P, P)
    were computed; ``converged``, ``certified``, ``dual`` (A,) and ``n_iter`` (A,).
    """
    A, T, P = Z.shape
    theta = np.zeros((A, P)) if theta0 is None else theta0.copy()
    eta = _linear(Z, theta)
    r, v = _residuals(eta, f, w)
    g, H = _grad_hess(Z, r, v, theta, prec)
    at = theta.copy()
    # at theta = 0 every trial contributes w (f * 0 - log 2): known without a sweep
    zero = ~np.any(theta != 0, axis=1)
    obj = np.where(zero, -np.log(2.0) * w.sum(axis=1), 0.0)
    obj_known = zero.copy()
    converged = np.zeros(A, dtype=bool)
    certified = np.zeros(A, dtype=bool)
    dual = np.zeros(A, dtype=bool)
    n_iter = np.zeros(A, dtype=np.int64)
    active = np.ones(A, dtype=bool)
    prev = np.zeros(A)  # the last step's size if it was a full Newton step (QUAD_SAFETY)
    for it in range(max_iter):
        if stop_on_certificate:
            cert = active & np.any(theta != 0, axis=1) & _signs_agree(eta, f, w)
            certified |= cert
            active &= ~cert
        if not active.any():
            break
        idx = np.flatnonzero(active)
        d, ok = _cholesky_solve(H[idx], g[idx])
        active[idx[~ok]] = False
        idx, d = idx[ok], d[ok]
        n_iter[idx] = it + 1
        if stop_on_dual:
            proof = dual_signs_ok(r[idx] - v[idx] * _linear(Z[idx], d), f[idx], w[idx])
            dual[idx[proof]] = True
            active[idx[proof]] = False
            idx, d = idx[~proof], d[~proof]
        dmax = np.max(np.abs(d), axis=1)
        bound = tol * (1.0 + np.max(np.abs(theta[idx] + d), axis=1))
        with np.errstate(over="ignore"):  # a diverging ML step of 1e103: inf, not small
            small = (dmax <= bound) | (QUAD_SAFETY * dmax**3 <= bound * prev[idx] ** 2)
        done = idx[small]
        theta[done] += d[small]
        converged[done] = True
        active[done] = False
        idx, d, dmax = idx[~small], d[~small], dmax[~small]
        step = np.ones(len(idx))
        pending = np.ones(len(idx), dtype=bool)
        new_theta = theta[idx].copy()
        new_eta = eta[idx].copy()
        for _ in range(MAX_HALVING):
            if not pending.any():
                break
            j = np.flatnonzero(pending)
            c = idx[j]
            cand = theta[c] + step[j, None] * d[j]
            ec = _linear(Z[c], cand)
            first = (step[j] == 1.0) & ~np.any(at[c] != 0, axis=1)  # the full step from H(0)
            if first.any():  # lengthened by the ray search
                cf = c[first]
                ray = ray_scale_numpy(ec[first], f[cf], w[cf], cand[first], prec[cf])
                cand[first] *= ray[:, None]
                ec[first] *= ray[:, None]
            acc = (np.max(np.abs(ec - eta[c]), axis=1) <= SAFE_ETA_STEP) | first
            obj_known[c[acc]] = False
            need = ~acc
            if need.any():
                cn = c[need]
                unknown = cn[~obj_known[cn]]
                obj[unknown] = _objective(eta[unknown], f[unknown], w[unknown], theta[unknown],
                                          prec[unknown])
                obj_known[cn] = True
                o = _objective(ec[need], f[cn], w[cn], cand[need], prec[cn])
                better = o >= obj[cn] - 1e-12 * np.abs(obj[cn])
                obj[cn[better]] = o[better]
                acc[need] = better
            jj = j[acc]
            new_theta[jj] = cand[acc]
            new_eta[jj] = ec[acc]
            pending[jj] = False
            step[j[~acc]] *= 0.5
        # a context whose step could not raise the objective stops where it is
        stuck = idx[pending]
        converged[stuck] = True
        active[stuck] = False
        moved = ~pending
        m = idx[moved]
        from_zero = ~np.any(at[m] != 0, axis=1)  # the ray-searched first step: not a Newton step
        theta[m] = new_theta[moved]
        at[m] = theta[m]
        eta[m] = new_eta[moved]
        r[m], v[m] = _residuals(eta[m], f[m], w[m])
        g[m], H[m] = _grad_hess(Z[m], r[m], v[m], theta[m], prec[m])
        fine = step[moved] * dmax[moved] <= tol * (1.0 + np.max(np.abs(theta[m]), axis=1))
        prev[m] = np.where((step[moved] == 1.0) & ~from_zero, dmax[moved], 0.0)
        converged[m[fine]] = True
        active[m[fine]] = False
    return dict(theta=theta, at=at, r=r, v=v, g=g, H=H, converged=converged,
                certified=certified, dual=dual, n_iter=n_iter)


def safe_inverse(H):
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


def _max_abs_used(eta, w):
    return np.max(np.abs(eta) * (w > 0), axis=1)


def fit_numpy(Z, f, w, prec, max_iter=100, tol=1e-8, check_separation=True):
    """Fit every context; returns (theta, cov, converged, n_iter, sep_status).

    ``Z`` (A, T, P), ``f`` and ``w`` (A, T), ``prec`` (A, P).
    """
    ml = not np.any(prec)
    st = newton_numpy(Z, f, w, prec, max_iter, tol, stop_on_certificate=ml)
    theta, conv = st["theta"], st["converged"]
    cov = np.stack([safe_inverse(h) for h in st["H"]])
    eta = _linear(Z, theta)
    if ml:
        # a finite MLE needs a clean convergence: not stopped by a certificate
        conv = conv & ~st["certified"] & (_max_abs_used(eta, w) < ETA_MAX)
    status = np.zeros(len(Z), dtype=np.int8)
    if check_separation:
        status = separation_status_numpy(Z, f, w, prec, eta, st, max_iter, tol)
    return theta, cov, conv, st["n_iter"], status


def dual_signs_ok(lam, f, w):
    """Dual certificate that the maximum likelihood estimate exists (per context).

    ``lam`` (A, T) are the multipliers r_t - v_t z_t.d of an unpenalised
    Newton step d from a point with residuals r_t = w_t (f_t - p_t) and
    weights v_t = w_t p_t (1 - p_t): since H d = g, they satisfy
    sum_t lam_t z_t = g - H d = 0.  If lam_t > 0 on every row with f_t = 1
    and < 0 on every row with f_t = 0, no theta can separate the data: a
    separating theta would make sum_t lam_t z_t.theta strictly positive (rows
    with a fractional outcome must have z_t.theta = 0 and add nothing), not
    zero (Gordan's alternative).  Near the MLE the multipliers are close to
    the residuals, which have those signs, so the test passes after one or
    two Newton steps from the penalised fit, long before convergence.
    ``CERT_MARGIN`` keeps rounding from certifying a borderline case.
    """
    used = w > 0
    bad = used & (((f == 1.0) & ~(lam > CERT_MARGIN * w))
                  | ((f == 0.0) & ~(lam < -CERT_MARGIN * w)))
    return ~np.any(bad, axis=1)


def _constrained(f, w):
    """Trials whose multiplier must have the sign of the outcome (binary and used)."""
    return (w > 0) & ((f == 1.0) | (f == 0.0))


def residual_certificate_numpy(Z, f, w, theta):
    """Separation status per context from the residuals at ``theta``: 0 not
    separated (a dual certificate), 1 separated (a separating direction), 2 undecided.

    Any positive trial weights D give multipliers with sum_t lam_t z_t = 0:
    lam' = lam - D (Z u), u = (Z' D Z)^-1 Z' lam, starting from the residuals
    lam = r at ``theta`` (:func:`dual_signs_ok` then decides).  The
    unpenalised Newton step is D = p (1 - p); D = lam^2 keeps the multipliers
    of the trials the fit explains well small relative to their residuals,
    and certifies far more contexts straight from a penalised fit: on the
    benchmark data (logit agents, normal(0, 1) prior) 88% of contexts at
    T = 50 and 99.9% at T = 100, against 16% and 32% for the Newton step,
    which then needs one or more full iterations.  Where it fails, lam moves
    a damped step (:data:`CERT_DAMPING` of the way to the first sign change)
    and the next round reweights by the new lam^2 (affine scaling, as in
    interior-point methods).  On that data (A = 100,000, T = 50), 4 rounds
    left 27 non-separated contexts uncertified, whose MLE lies far out
    (max |eta| 30 to 240): the Newton check could not settle them either and
    each cost an exact linear program (about 1 ms); 8 rounds
    (:data:`CERT_ROUNDS`) certify them all.  Separated data never get the
    certificate, but their u is soon a separating direction (Z u has the sign
    of every outcome; checked each round): for the paper's deterministic
    agents at T = 50 in half of the contexts in the first round and in all of
    them by the fourth, which spares them the unpenalised Newton run.  2 where
    neither is found, or where Z' D Z is singular.
    """
    return certificate_rounds_numpy(Z, f, w, w * (f - sigmoid(_linear(Z, theta))), CERT_ROUNDS)[0]


def certificate_rounds_numpy(Z, f, w, lam, rounds):
    """Up to ``rounds`` rounds of :func:`residual_certificate_numpy` from the
    multipliers ``lam`` (A, T): (status (A,), lam after them), so that a later
    call can go on where this one stopped."""
    sign = np.where(f == 1.0, 1.0, -1.0)
    con = _constrained(f, w)
    status = np.full(len(Z), 2, dtype=np.int8)
    for _ in range(rounds):
        open_ = status == 2
        D = lam * lam
        c = np.einsum("atp,at->ap", Z, lam)
        u, ok = _cholesky_solve(np.einsum("atp,at,atq->apq", Z, D, Z), c)
        zu = _linear(Z, u)
        step = -D * zu
        proof = open_ & ok & dual_signs_ok(lam + step, f, w)
        status[proof] = 0
        status[open_ & ok & ~proof & _signs_agree(zu, f, w)] = 1
        status[open_ & ~ok] = 3  # singular: undecided, and no further rounds (as the kernel)
        # damped move towards the full step: stop short of the first sign change
        toward = con & (step * sign < 0)
        ratio = np.min(np.where(toward, -(lam * sign) / np.where(toward, step * sign, -1.0), np.inf), axis=1)
        alpha = np.where(ok, np.minimum(1.0, CERT_DAMPING * ratio), 0.0)
        lam = lam + alpha[:, None] * step
    status[status == 3] = 2
    return status, lam


def separation_status_numpy(Z, f, w, prec, eta, state, max_iter, tol):
    """Separation status per context: 0 finite MLE, 1 separated, 2 undecided.

    ``eta`` is Z @ theta at the fit, ``state`` the dict from :func:`newton_numpy`.
    """
    theta, at = state["theta"], state["at"]
    # the residual certificate from the fit's last evaluation point: its first round
    # settles most contexts; then theta itself is tried as a separating direction, then
    # the other rounds
    status, lam = certificate_rounds_numpy(Z, f, w, state["r"], 1)  # the residuals at ``at``
    rest = np.flatnonzero(status == 2)
    sep = np.any(theta[rest] != 0, axis=1) & _signs_agree(eta[rest], f[rest], w[rest])
    status[rest[sep]] = 1
    keep = ~sep
    rest, lam = rest[keep], lam[rest[keep]]
    st, _ = certificate_rounds_numpy(Z[rest], f[rest], w[rest], lam, CERT_ROUNDS - 1)
    status[rest] = st
    rest = rest[st == 2]
    # then from theta = 0: where the MLE lies far out (max |eta| of 30 and more, common
    # under plain ML) the residuals at the fit fall below CERT_MARGIN on the trials it
    # explains, and the residuals +-1/2 at theta = 0 certify such contexts instead (98 of
    # 99 uncertified at A = 100,000, T = 50, plain ML, which otherwise each cost an exact
    # linear program)
    st = residual_certificate_numpy(Z[rest], f[rest], w[rest], np.zeros_like(at[rest]))
    status[rest] = st
    rest = rest[st == 2]
    if len(rest) == 0:
        return status
    # unpenalised Newton from the last evaluation point of the fit
    zero = np.zeros_like(theta[rest])
    st = newton_numpy(Z[rest], f[rest], w[rest], zero, max_iter, tol, theta0=state["at"][rest],
                      stop_on_certificate=True, stop_on_dual=True)
    clean = st["dual"] | (st["converged"] & ~st["certified"]
                          & (_max_abs_used(_linear(Z[rest], st["theta"]), w[rest]) < ETA_MAX))
    status[rest[clean]] = 0
    status[rest[st["certified"]]] = 1
    return status
