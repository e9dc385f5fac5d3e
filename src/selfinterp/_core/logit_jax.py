"""JAX kernel for the batched binary logit: one context's fit, vmapped and jitted.

The algorithm, stopping rules and separation status are those of
:mod:`.logit_numpy` (read its docstring), step for step, so that the results
match the numba kernel to rounding.  Each context runs a ``lax.while_loop``;
under ``vmap`` the loop runs until the slowest context of the batch is done,
the others carrying their final state unchanged.

Precision: ``dtype=np.float64`` runs under a local ``jax.enable_x64(True)``
context, so the caller's JAX configuration is left as it was;
``np.float32`` runs in single precision, with the tolerances raised to what
single precision can reach (``tol`` and the line search's relative slack are
at least 16 machine epsilons), so that convergence is still declared.

JAX is imported lazily by :func:`fit_jax`, never at package import; it runs
on whatever device JAX picks by default (a GPU when one is visible).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .logit_numpy import (CERT_MARGIN, ETA_MAX, MAX_HALVING, PIVOT_MIN, QUAD_SAFETY, RAY_MAX,
                          SAFE_ETA_STEP)

_CACHE: dict = {}


def _build():
    """Define the jitted kernel (needs jax; done once, on first use)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    def residuals(eta, f, w):
        e = jnp.exp(-jnp.abs(eta))
        inv = 1.0 / (1.0 + e)
        p = jnp.where(eta >= 0, inv, e * inv)
        return w * (f - p), w * (e * inv * inv)

    def ray_scale(eta, f, w, theta, prec):
        r, v = residuals(eta, f, w)
        q = jnp.sum(prec * theta * theta)
        a = jnp.sum(r * eta) - q
        b = jnp.sum(v * eta * eta) + q
        ok = (a > 0.0) & (b > 0.0)
        return jnp.where(ok, jnp.minimum(1.0 + a / jnp.where(ok, b, 1.0), RAY_MAX), 1.0)

    def grad_hess(Z, r, v, theta, prec):
        g = Z.T @ r - prec * theta
        H = (Z * v[:, None]).T @ Z + jnp.diag(prec)
        return g, H

    def objective(eta, f, w, theta, prec):
        sp = jnp.maximum(eta, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(eta)))
        return jnp.sum(w * (f * eta - sp)) - 0.5 * jnp.sum(prec * theta**2)

    def signs_agree(eta, f, w):
        used = w > 0
        bad = used & (((f == 1.0) & (eta < 0)) | ((f == 0.0) & (eta > 0))
                      | ((f > 0.0) & (f < 1.0) & (eta != 0)))
        return jnp.any(used & (eta != 0)) & ~jnp.any(bad)

    def dual_signs_ok(lam, f, w):
        used = w > 0
        bad = used & (((f == 1.0) & ~(lam > CERT_MARGIN * w))
                      | ((f == 0.0) & ~(lam < -CERT_MARGIN * w)))
        return ~jnp.any(bad)

    def chol_solve(H, g):
        L = jnp.linalg.cholesky(H)
        ok = jnp.all(jnp.isfinite(L)) & jnp.all(jnp.diagonal(L) ** 2 > PIVOT_MIN * jnp.diagonal(H))
        d = jax.scipy.linalg.cho_solve((L, True), g)
        return jnp.where(ok, d, 0.0), ok

    def newton(Z, f, w, prec, theta0, max_iter, tol, slack, stop_cert, stop_dual):
        """One context; returns the final state dict (see logit_numpy.newton_numpy)."""
        eta = Z @ theta0
        r, v = residuals(eta, f, w)
        g, H = grad_hess(Z, r, v, theta0, prec)
        false = jnp.array(False)
        state = dict(theta=theta0, at=theta0, eta=eta, r=r, v=v, g=g, H=H,
                     converged=false, certified=false, dual=false, done=false,
                     n_iter=jnp.array(0, jnp.int32), it=jnp.array(0, jnp.int32),
                     prev=jnp.zeros((), theta0.dtype))

        def cond(s):
            return (~s["done"]) & (s["it"] < max_iter)

        def body(s):
            theta, eta = s["theta"], s["eta"]
            cert = stop_cert & jnp.any(theta != 0) & signs_agree(eta, f, w)
            d, ok = chol_solve(s["H"], s["g"])
            solved = ~cert & ok
            zd = Z @ d
            dual = solved & stop_dual & dual_signs_ok(s["r"] - s["v"] * zd, f, w)
            go = solved & ~dual
            dmax = jnp.max(jnp.abs(d))
            bound = tol * (1.0 + jnp.max(jnp.abs(theta + d)))
            small = go & ((dmax <= bound) | (QUAD_SAFETY * dmax**3 <= bound * s["prev"] ** 2))
            search = go & ~small
            obj0 = objective(eta, f, w, theta, prec)

            def ls_cond(c):
                return (~c[1]) & (c[2] < MAX_HALVING)

            def ls_body(c):
                step, _, k = c
                cand = theta + step * d
                eta_c = Z @ cand
                # a step moving no eta by more than SAFE_ETA_STEP, or the full step from a
                # Hessian evaluated at theta = 0, raises l for certain (logit_numpy)
                safe = (jnp.max(jnp.abs(eta_c - eta)) <= SAFE_ETA_STEP) | (
                    (step == 1.0) & ~jnp.any(s["at"] != 0))
                o = objective(eta_c, f, w, cand, prec)
                acc = safe | (o >= obj0 - slack * jnp.abs(obj0))
                return jnp.where(acc, step, 0.5 * step), acc, k + 1

            one = jnp.ones((), theta.dtype)
            step, moved, _ = lax.while_loop(ls_cond, ls_body, (one, ~search, jnp.array(0)))
            moved = search & moved
            stuck = search & ~moved
            cand = theta + step * d
            eta_c = Z @ cand
            # the full step from theta = 0, lengthened by the ray search (logit_numpy)
            first = moved & ~jnp.any(s["at"] != 0)
            ray = jnp.where(first, ray_scale(eta_c, f, w, cand, prec), 1.0)
            cand = cand * ray
            eta_c = eta_c * ray
            r_c, v_c = residuals(eta_c, f, w)
            g_c, H_c = grad_hess(Z, r_c, v_c, cand, prec)
            fine = moved & (step * dmax <= tol * (1.0 + jnp.max(jnp.abs(cand))))
            new_theta = jnp.where(small, theta + d, jnp.where(moved, cand, theta))
            return dict(
                theta=new_theta,
                at=jnp.where(moved, cand, s["at"]),
                eta=jnp.where(moved, eta_c, eta),
                r=jnp.where(moved, r_c, s["r"]),
                v=jnp.where(moved, v_c, s["v"]),
                g=jnp.where(moved, g_c, s["g"]),
                H=jnp.where(moved, H_c, s["H"]),
                converged=small | stuck | fine,
                certified=cert,
                dual=dual,
                done=cert | ~ok | dual | small | stuck | fine,
                n_iter=jnp.where(solved, s["it"] + 1, s["n_iter"]),
                prev=jnp.where(moved, jnp.where((step == 1.0) & ~first, dmax, 0.0), s["prev"]),
                it=s["it"] + 1,
            )

        return lax.while_loop(cond, body, state)

    def safe_inverse(H):
        P = H.shape[0]
        scale = jnp.maximum(jnp.max(jnp.abs(jnp.diag(H))), 1e-300 if H.dtype == jnp.float64
                            else 1e-30)
        eye = jnp.eye(P, dtype=H.dtype)

        def attempt(jitter):
            L = jnp.linalg.cholesky(H + jitter * eye)
            return L, jnp.all(jnp.isfinite(L))

        def cond(c):
            return (~c[2]) & (c[3] < 40)

        def body(c):
            jitter, _, _, k = c
            jitter = jnp.where(jitter == 0.0, scale * 1e-14, jitter * 10.0)
            L, ok = attempt(jitter)
            return jitter, L, ok, k + 1

        L0, ok0 = attempt(jnp.zeros((), H.dtype))
        _, L, ok, _ = lax.while_loop(cond, body, (jnp.zeros((), H.dtype), L0, ok0, 0))
        Linv = jax.scipy.linalg.solve_triangular(L, eye, lower=True)
        big = jnp.asarray(1e300 if H.dtype == jnp.float64 else 1e30, H.dtype)
        return jnp.where(ok, Linv.T @ Linv, eye * big)

    def fit_one(x, f, w, prec, *, fit_intercept, max_iter, tol, slack, check_separation, ml):
        T = x.shape[0]
        Z = jnp.concatenate([x, jnp.ones((T, 1), x.dtype)], axis=1) if fit_intercept else x
        theta0 = jnp.zeros(Z.shape[1], x.dtype)
        s = newton(Z, f, w, prec, theta0, max_iter, tol, slack, ml, False)
        theta = s["theta"]
        cov = safe_inverse(s["H"])
        eta = Z @ theta
        max_eta = jnp.max(jnp.abs(eta) * (w > 0))
        conv = s["converged"]
        if ml:
            conv = conv & ~s["certified"] & (max_eta < ETA_MAX)
        status = jnp.zeros((), jnp.int8)
        if check_separation:
            sep = jnp.any(theta != 0) & signs_agree(eta, f, w)
            s2 = newton(Z, f, w, jnp.zeros_like(prec), s["at"], max_iter, tol, slack, True, True)
            clean = s2["dual"] | (s2["converged"] & ~s2["certified"]
                                  & (jnp.max(jnp.abs(Z @ s2["theta"]) * (w > 0)) < ETA_MAX))
            status = jnp.where(sep | s2["certified"], 1, jnp.where(clean, 0, 2)).astype(jnp.int8)
        return theta, cov, conv, s["n_iter"], status

    @partial(jax.jit, static_argnames=("fit_intercept", "max_iter", "check_separation", "ml"))
    def fit_batch(X, f, w, prec, tol, slack, *, fit_intercept, max_iter, check_separation, ml):
        one = partial(fit_one, fit_intercept=fit_intercept, max_iter=max_iter, tol=tol,
                      slack=slack, check_separation=check_separation, ml=ml)
        return jax.vmap(one, in_axes=(0, 0, 0, None))(X, f, w, prec)

    return fit_batch


def fit_batch_jax():
    """The jitted, vmapped kernel ``fit_batch(X, f, w, prec, tol, slack, *, ...)``."""
    if "fit" not in _CACHE:
        _CACHE["fit"] = _build()
    return _CACHE["fit"]


def fit_jax(X, f, w, fit_intercept, prec, max_iter, tol, check_separation, dtype=np.float64):
    """Fit every context with JAX; same arguments as :func:`.logit_numba.fit_numba`.

    Parameters
    ----------
    X : array (A, T, K); f, w : arrays (A, T); prec : array (P,)
    dtype : np.float64 or np.float32
        Working precision (float64 under a local ``jax.enable_x64``).

    Returns
    -------
    theta (A, P), cov (A, P, P), converged (A,) bool, n_iter (A,) int64,
    status (A,) int8 — NumPy arrays, float64 whatever the working precision.
    """
    jax, dtype, tol_eff, slack, ml = _settings(dtype, tol, prec)
    with jax.enable_x64(dtype == np.float64):
        args = [jax.numpy.asarray(np.asarray(a, dtype=dtype)) for a in (X, f, w, prec)]
        out = fit_batch_jax()(*args, tol_eff, slack, fit_intercept=bool(fit_intercept),
                              max_iter=int(max_iter), check_separation=bool(check_separation), ml=ml)
        return _to_host(out)


def simulate_fit_jax(weights, n_trials, scale, intercept, key, first_context, fit_intercept, prec,
                     max_iter, tol, check_separation, dtype=np.float32):
    """Simulate (:func:`.simulate_jax.simulate_jax`) and fit on the JAX default device.

    The choices never leave the device: the inputs go there and the fits come
    back by explicit transfers only (the call runs under
    ``jax.transfer_guard("disallow")``).  Returns what :func:`fit_jax` returns.
    """
    from .simulate_jax import simulate_jax

    jax, dtype, tol_eff, slack, ml = _settings(dtype, tol, prec)
    put = jax.device_put
    with jax.enable_x64(dtype == np.float64):
        X, y = simulate_jax(weights, n_trials, scale, intercept, key, first_context, dtype=dtype)
        ones = jax.jit(jax.numpy.ones_like)(y)  # made on the device
        out = fit_batch_jax()(X, y, ones, put(np.asarray(prec, dtype=dtype)),
                              put(dtype.type(tol_eff)), put(dtype.type(slack)),
                              fit_intercept=bool(fit_intercept), max_iter=int(max_iter),
                              check_separation=bool(check_separation), ml=ml)
        return _to_host(out)


def _settings(dtype, tol, prec, need_jax=True):
    """(jax, dtype, effective tol, line-search slack, ml) for a working precision
    (also the CUDA kernel's, which passes ``need_jax=False`` and gets None for jax)."""
    from ..errors import require

    jax = require("jax", "jax") if need_jax else None
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    eps = float(np.finfo(dtype).eps)
    tol_eff = max(float(tol), 16 * eps) if dtype == np.float32 else float(tol)
    return jax, dtype, tol_eff, max(1e-12, 16 * eps), not np.any(prec)


def _to_host(out):
    """The kernel's outputs as NumPy arrays (float64 whatever the working precision)."""
    import jax

    theta, cov, conv, n_iter, status = jax.device_get(out)
    return (np.asarray(theta, dtype=np.float64), np.asarray(cov, dtype=np.float64),
            np.asarray(conv, dtype=bool), np.asarray(n_iter, dtype=np.int64),
            np.asarray(status, dtype=np.int8))
