"""CUDA kernel for the batched binary logit: one GPU thread per context (numba-cuda).

The algorithm, stopping rules and separation status are those of the JAX
kernel (:mod:`.logit_jax`, itself :mod:`.logit_numpy` step for step), so the
results match the other backends to rounding.  What differs is the shape of
the work.  Under ``vmap`` the JAX kernel moves every context through each
Newton iteration together, with the per-trial arrays (eta, residuals,
weights) written to and read from device memory at every step, and a batch
runs until its slowest context is done.  Here each thread owns a context: its
parameters, gradient, Hessian and Cholesky factor stay in registers, every
pass over its trials recomputes eta from the design, and a context that is
done stops (its warp waits for the slowest of 32 contexts, not of millions).

Layout: the design is read as ``Xt (T, K, A)`` and outcomes as ``(T, A)``,
contexts last, so that the 32 threads of a warp read 32 consecutive values.

Passes over the trials per Newton iteration: one (gradient and Hessian at the
new point) where the step is safe (moves no eta by more than
``SAFE_ETA_STEP``), which near the optimum is every step, plus one for the
safety test and up to two for the objectives where it is not; the first step
adds the ray search's pass.  The separation check skips its unpenalised run
where the fit itself separates the data (status 1 either way).

Kernels are compiled per (number of parameters, intercept, separation check,
maximum likelihood, precision) on first use; ``numba.cuda`` is imported then,
never at package import.  Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` runs the
same code in numba's CUDA simulator (how the tests check it on the CPU).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numba import cuda  # this module is imported only when the CUDA backend is asked for

from .logit_numpy import (CERT_MARGIN, ETA_MAX, MAX_HALVING, PIVOT_MIN, QUAD_SAFETY, RAY_MAX,
                          SAFE_ETA_STEP)

THREADS = 128  # threads per block
_CACHE: dict = {}


def _build(K, intercept, check_separation, ml, weighted, dtype):
    """The kernel for K attributes (plus an intercept column if ``intercept``); without
    ``weighted`` every trial has weight 1 and ``W`` is not read."""
    P = K + (1 if intercept else 0)
    PP = P * P
    ft = np.dtype(dtype).type
    ZERO, ONE, HALF = ft(0.0), ft(1.0), ft(0.5)
    SAFE, QUAD, RAYM = ft(SAFE_ETA_STEP), ft(QUAD_SAFETY), ft(RAY_MAX)
    CERT, ETAM, PMIN = ft(CERT_MARGIN), ft(ETA_MAX), ft(PIVOT_MIN)
    TINY = ft(1e-300 if ft is np.float64 else 1e-30)
    BIG = ft(1e300 if ft is np.float64 else 1e30)
    J0, JUP = ft(1e-14), ft(10.0)
    from numba import from_dtype

    elt = from_dtype(np.dtype(dtype))
    device = cuda.jit(device=True)

    @device
    def load(Xt, t, a, z):
        """Row t of context a's design (the intercept's 1 last) into z."""
        for k in range(K):
            z[k] = Xt[t, k, a]
        if intercept:
            z[K] = ONE

    @device
    def dot(z, theta):
        s = ZERO
        for i in range(P):
            s += z[i] * theta[i]
        return s

    @device
    def residual(eta, f, w):
        e = math.exp(-abs(eta))
        inv = ONE / (ONE + e)
        p = inv if eta >= ZERO else e * inv
        return w * (f - p), w * (e * inv * inv)

    @device
    def evaluate(Xt, F, W, a, T, theta, mult, prior_theta, prec, g, H):
        """g and H of the objective at prior_theta, with eta = mult * z.theta."""
        for i in range(P):
            g[i] = ZERO
            for j in range(P):
                H[i * P + j] = ZERO
        z = cuda.local.array(P, elt)
        for t in range(T):
            w = W[t, a] if weighted else ONE
            if w == ZERO:
                continue
            load(Xt, t, a, z)
            r, v = residual(mult * dot(z, theta), F[t, a], w)
            for i in range(P):
                g[i] += r * z[i]
                vz = v * z[i]
                for j in range(i + 1):
                    H[i * P + j] += vz * z[j]
        for i in range(P):
            g[i] -= prec[i] * prior_theta[i]
            H[i * P + i] += prec[i]
            for j in range(i):
                H[j * P + i] = H[i * P + j]

    @device
    def objective(Xt, F, W, a, T, theta, prec):
        s = ZERO
        z = cuda.local.array(P, elt)
        for t in range(T):
            w = W[t, a] if weighted else ONE
            if w == ZERO:
                continue
            load(Xt, t, a, z)
            eta = dot(z, theta)
            sp = max(eta, ZERO) + math.log1p(math.exp(-abs(eta)))
            s += w * (F[t, a] * eta - sp)
        q = ZERO
        for i in range(P):
            if prec[i] != ZERO:  # no square where there is no prior (a diverging ML iterate)
                q += prec[i] * theta[i] * theta[i]
        return s - HALF * q

    @device
    def max_step(Xt, a, T, theta, cand):
        """max_t |z_t.cand - z_t.theta|."""
        m = ZERO
        z = cuda.local.array(P, elt)
        for t in range(T):
            load(Xt, t, a, z)
            m = max(m, abs(dot(z, cand) - dot(z, theta)))
        return m

    @device
    def ray_scale(Xt, F, W, a, T, theta, prec):
        sa = ZERO
        sb = ZERO
        z = cuda.local.array(P, elt)
        for t in range(T):
            w = W[t, a] if weighted else ONE
            if w == ZERO:
                continue
            load(Xt, t, a, z)
            eta = dot(z, theta)
            r, v = residual(eta, F[t, a], w)
            sa += r * eta
            sb += v * eta * eta
        q = ZERO
        for i in range(P):
            q += prec[i] * theta[i] * theta[i]
        sa -= q
        sb += q
        if sa > ZERO and sb > ZERO:
            return min(ONE + sa / sb, RAYM)
        return ONE

    @device
    def signs_agree(Xt, F, W, a, T, theta):
        nonzero = False
        z = cuda.local.array(P, elt)
        for t in range(T):
            if weighted and not W[t, a] > ZERO:
                continue
            load(Xt, t, a, z)
            eta = dot(z, theta)
            f = F[t, a]
            if (f == ONE and eta < ZERO) or (f == ZERO and eta > ZERO) or (
                    f > ZERO and f < ONE and eta != ZERO):
                return False
            if eta != ZERO:
                nonzero = True
        return nonzero

    @device
    def dual_ok(Xt, F, W, a, T, theta, d):
        """Dual certificate that the MLE exists, from the Newton direction d at theta."""
        z = cuda.local.array(P, elt)
        for t in range(T):
            w = W[t, a] if weighted else ONE
            if not w > ZERO:
                continue
            f = F[t, a]
            load(Xt, t, a, z)
            r, v = residual(dot(z, theta), f, w)
            lam = r - v * dot(z, d)
            if (f == ONE and not lam > CERT * w) or (f == ZERO and not lam < -CERT * w):
                return False
        return True

    @device
    def max_abs_used(Xt, W, a, T, theta):
        m = ZERO
        z = cuda.local.array(P, elt)
        for t in range(T):
            if not weighted or W[t, a] > ZERO:
                load(Xt, t, a, z)
                m = max(m, abs(dot(z, theta)))
        return m

    @device
    def any_nonzero(theta):
        for i in range(P):
            if theta[i] != ZERO:
                return True
        return False

    @device
    def cholesky(H, jitter, L):
        """Lower factor of H + jitter I in L; False where it is not positive definite."""
        for j in range(P):
            s = H[j * P + j] + jitter
            for k in range(j):
                s -= L[j * P + k] * L[j * P + k]
            if not s > ZERO or not math.isfinite(s):
                return False
            L[j * P + j] = math.sqrt(s)
            for i in range(j + 1, P):
                u = H[i * P + j]
                for k in range(j):
                    u -= L[i * P + k] * L[j * P + k]
                L[i * P + j] = u / L[j * P + j]
        for i in range(PP):
            if not math.isfinite(L[i]):
                return False
        return True

    @device
    def chol_solve(H, g, L, d):
        """Newton direction d = H^-1 g; False where H fails the pivot test (logit_numpy)."""
        if not cholesky(H, ZERO, L):
            return False
        for j in range(P):
            if not L[j * P + j] * L[j * P + j] > PMIN * H[j * P + j]:
                return False
        for i in range(P):
            s = g[i]
            for k in range(i):
                s -= L[i * P + k] * d[k]
            d[i] = s / L[i * P + i]
        for i in range(P - 1, -1, -1):
            s = d[i]
            for k in range(i + 1, P):
                s -= L[k * P + i] * d[k]
            d[i] = s / L[i * P + i]
        return True

    @device
    def safe_variances(H, L, var):
        """Diagonal of H^-1, with the smallest jitter that makes H positive definite."""
        scale = TINY
        for i in range(P):
            scale = max(scale, abs(H[i * P + i]))
        jitter = ZERO
        ok = cholesky(H, jitter, L)
        k = 0
        while not ok and k < 40:
            jitter = scale * J0 if jitter == ZERO else jitter * JUP
            ok = cholesky(H, jitter, L)
            k += 1
        if not ok:
            for i in range(P):
                var[i] = BIG
            return
        # var_i = sum_k (L^-1)_{ki}^2: column i of L^-1 by forward substitution
        col = cuda.local.array(P, elt)
        for i in range(P):
            s2 = ZERO
            for r in range(P):
                if r < i:
                    col[r] = ZERO
                    continue
                s = ONE if r == i else ZERO
                for k in range(i, r):
                    s -= L[r * P + k] * col[k]
                col[r] = s / L[r * P + r]
                s2 += col[r] * col[r]
            var[i] = s2

    @device
    def newton(Xt, F, W, a, T, prec, theta, at, g, H, d, cand, L, max_iter, tol, slack,
               stop_cert, stop_dual):
        """Newton from theta (on entry) as in logit_jax.newton; theta, at, g, H on return.

        Returns (converged, certified, dual, n_iter)."""
        for i in range(P):
            at[i] = theta[i]
        evaluate(Xt, F, W, a, T, theta, ONE, theta, prec, g, H)
        converged = False
        certified = False
        dual = False
        n_iter = 0
        prev = ZERO
        it = 0
        while it < max_iter:
            if stop_cert and any_nonzero(theta) and signs_agree(Xt, F, W, a, T, theta):
                certified = True
                break
            if not chol_solve(H, g, L, d):
                break
            n_iter = it + 1
            if stop_dual and dual_ok(Xt, F, W, a, T, theta, d):
                dual = True
                break
            dmax = ZERO
            tmax = ZERO
            for i in range(P):
                dmax = max(dmax, abs(d[i]))
                tmax = max(tmax, abs(theta[i] + d[i]))
            bound = tol * (ONE + tmax)
            if dmax <= bound or QUAD * dmax * dmax * dmax <= bound * prev * prev:
                for i in range(P):
                    theta[i] += d[i]
                converged = True
                break
            # line search by step halving (logit_numpy: safe steps need no objective)
            at_zero = not any_nonzero(at)
            step = ONE
            moved = False
            obj0 = ZERO
            obj0_known = False
            for _ in range(MAX_HALVING):
                for i in range(P):
                    cand[i] = theta[i] + step * d[i]
                if step == ONE and at_zero:
                    moved = True
                    break
                if max_step(Xt, a, T, theta, cand) <= SAFE:
                    moved = True
                    break
                if not obj0_known:
                    obj0 = objective(Xt, F, W, a, T, theta, prec)
                    obj0_known = True
                o = objective(Xt, F, W, a, T, cand, prec)
                if o >= obj0 - slack * abs(obj0):
                    moved = True
                    break
                step *= HALF
            if not moved:  # no step raises the objective: stop here
                converged = True
                break
            # the full step from theta = 0, lengthened by the ray search
            ray = ray_scale(Xt, F, W, a, T, cand, prec) if at_zero else ONE
            for i in range(P):
                at[i] = cand[i] * ray
            evaluate(Xt, F, W, a, T, cand, ray, at, prec, g, H)
            cmax = ZERO
            for i in range(P):
                theta[i] = at[i]
                cmax = max(cmax, abs(at[i]))
            prev = dmax if (step == ONE and not at_zero) else ZERO
            it += 1
            if step * dmax <= tol * (ONE + cmax):
                converged = True
                break
        return converged, certified, dual, n_iter

    @cuda.jit
    def kernel(Xt, F, W, prec, tol, slack, max_iter, theta_out, var_out, conv_out, n_iter_out,
               status_out):
        a = cuda.grid(1)
        if a >= F.shape[1]:
            return
        T = F.shape[0]
        theta = cuda.local.array(P, elt)
        at = cuda.local.array(P, elt)
        g = cuda.local.array(P, elt)
        d = cuda.local.array(P, elt)
        cand = cuda.local.array(P, elt)
        pr = cuda.local.array(P, elt)
        H = cuda.local.array(PP, elt)
        L = cuda.local.array(PP, elt)
        for i in range(P):
            theta[i] = ZERO
            pr[i] = prec[i]
        conv, cert, _, n_iter = newton(Xt, F, W, a, T, pr, theta, at, g, H, d, cand, L,
                                       max_iter, tol, slack, ml, False)
        safe_variances(H, L, d)  # d: the variances, from here on
        for i in range(P):
            theta_out[a, i] = theta[i]
            var_out[a, i] = d[i]
        if ml:
            conv = conv and not cert and max_abs_used(Xt, W, a, T, theta) < ETAM
        conv_out[a] = conv
        n_iter_out[a] = n_iter
        status = 0
        if check_separation:
            if any_nonzero(theta) and signs_agree(Xt, F, W, a, T, theta):
                status = 1  # the fit separates the data: the unpenalised run can't change that
            else:
                for i in range(P):
                    theta[i] = at[i]
                    pr[i] = ZERO
                conv2, cert2, dual2, _ = newton(Xt, F, W, a, T, pr, theta, at, g, H, d, cand, L,
                                                max_iter, tol, slack, True, True)
                if cert2:
                    status = 1
                elif dual2 or (conv2 and max_abs_used(Xt, W, a, T, theta) < ETAM):
                    status = 0
                else:
                    status = 2
        status_out[a] = status

    return kernel


def kernel_for(K, intercept, check_separation, ml, weighted, dtype):
    """The compiled kernel for these settings (built on first use)."""
    key = (int(K), bool(intercept), bool(check_separation), bool(ml), bool(weighted),
           np.dtype(dtype).name)
    if key not in _CACHE:
        _CACHE[key] = _build(*key[:5], np.dtype(dtype))
    return _CACHE[key]


def available():
    """True where numba-cuda finds a GPU (or runs its simulator)."""
    from numba import config

    if config.ENABLE_CUDASIM:
        return True
    try:
        return bool(cuda.is_available())
    except Exception:  # a driver that fails to initialise: no GPU for us
        return False


def _device_array(v):
    """A numba view of a GPU array (numba's own, or anything with the CUDA array interface);
    an array elsewhere (a JAX array on the CPU, in numba's simulator) is copied over."""
    if hasattr(v, "copy_to_host"):
        return v
    if hasattr(v, "__cuda_array_interface__"):
        try:
            return cuda.as_cuda_array(v)
        except (AttributeError, TypeError, ValueError):
            pass
    from numba import config

    if not config.ENABLE_CUDASIM:
        warnings.warn("an array without the CUDA array interface was copied to the GPU through "
                      "the host", RuntimeWarning, stacklevel=3)
    return cuda.to_device(np.ascontiguousarray(np.asarray(v)))


def fit_cuda_device(Xt, F, W, K, fit_intercept, prec, max_iter, tol, check_separation, dtype,
                    to_host=True):
    """Fit contexts already on the GPU: ``Xt`` (T, K, A), ``F`` (T, A) and ``W`` (T, A) or
    None (every trial of weight 1), numba device arrays or any GPU arrays with the CUDA
    array interface (JAX's, CuPy's; finished computing).

    Returns host arrays theta (A, P), var (A, P), converged, n_iter, status; with
    ``to_host=False``, the same as numba device arrays (in the working precision).
    """
    from .logit_jax import _settings

    _, dtype, tol_eff, slack, ml = _settings(dtype, tol, prec, need_jax=False)
    Xt, F = _device_array(Xt), _device_array(F)
    weighted = W is not None
    W = _device_array(W) if weighted else cuda.device_array((1, 1), dtype=dtype)
    A = F.shape[1]
    P = K + (1 if fit_intercept else 0)
    theta = cuda.device_array((A, P), dtype=dtype)
    var = cuda.device_array((A, P), dtype=dtype)
    conv = cuda.device_array(A, dtype=np.bool_)
    n_iter = cuda.device_array(A, dtype=np.int32)
    status = cuda.device_array(A, dtype=np.int8)
    kern = kernel_for(K, fit_intercept, check_separation, ml, weighted, dtype)
    blocks = max(1, -(-A // THREADS))
    kern[blocks, THREADS](Xt, F, W, cuda.to_device(np.asarray(prec, dtype=dtype)),
                          dtype.type(tol_eff), dtype.type(slack), np.int32(max_iter), theta, var,
                          conv, n_iter, status)
    cuda.synchronize()
    if not to_host:
        return theta, var, conv, n_iter, status
    return (theta.copy_to_host().astype(np.float64), var.copy_to_host().astype(np.float64),
            conv.copy_to_host().astype(bool), n_iter.copy_to_host().astype(np.int64),
            status.copy_to_host().astype(np.int8))


def fit_cuda(X, f, w, fit_intercept, prec, max_iter, tol, check_separation, dtype=np.float64):
    """Fit host arrays on the GPU; same arguments and results as :func:`.logit_jax.fit_jax`,
    except that the second result is the variances (A, P), not the covariances."""
    dtype = np.dtype(dtype)
    Xt = cuda.to_device(np.ascontiguousarray(np.transpose(X, (1, 2, 0)), dtype=dtype))
    F = cuda.to_device(np.ascontiguousarray(np.asarray(f).T, dtype=dtype))
    w = np.asarray(w)
    W = None if np.all(w == 1.0) else cuda.to_device(np.ascontiguousarray(w.T, dtype=dtype))
    return fit_cuda_device(Xt, F, W, X.shape[2], fit_intercept, prec, max_iter, tol,
                           check_separation, dtype)


def simulate_fit_cuda(weights, n_trials, scale, intercept, key, first_context, fit_intercept,
                      prec, max_iter, tol, check_separation, dtype=np.float32):
    """Simulate with JAX (:func:`.simulate_jax.simulate_jax`, contexts-last layout) and fit
    with the CUDA kernel, the choices never leaving the GPU; returns what :func:`fit_cuda`
    returns."""
    import jax

    from .simulate_jax import simulate_jax

    dtype = np.dtype(dtype)
    with jax.enable_x64(dtype == np.float64):
        Xt, F = simulate_jax(weights, n_trials, scale, intercept, key, first_context, dtype=dtype,
                             trials_first=True)
        jax.block_until_ready((Xt, F))  # JAX computes on its own stream
        out = fit_cuda_device(Xt, F, None, weights.shape[1], fit_intercept, prec, max_iter, tol,
                              check_separation, dtype)
        del Xt, F
    return out
