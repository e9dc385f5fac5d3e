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

Each thread runs its context's fit as a state machine (``kernel``): each turn
does exactly one pass over the trials, through the one ``sweep`` call, which
does what the thread's state needs (gradient and Hessian, the line search's
safety test or objectives, the ray search, the separation check's sign and
dual tests).  Threads of a warp at different points of their fits thus load
each trial together and differ only in arithmetic; with one function per kind
of pass they ran their passes one after another, 2.6x slower on an H200
(``benchmarks/README.md``).  Per Newton iteration: the safety test (does
the step move no eta by more than ``SAFE_ETA_STEP``?, true near the optimum)
and the gradient and Hessian at the new point; the objectives too where the
test fails.  The first step needs no test and adds the ray search's pass.
(Computing the new point's gradient and Hessian in the safety test's pass,
to be dropped where the step is not safe, would save a pass an iteration:
not tried.)  The separation check skips its
unpenalised run where the fit itself separates the data (status 1 either way).

Kernels are compiled per (number of attributes, intercept, separation check,
maximum likelihood, weighted trials, precision) on first use; this module, and
``numba.cuda`` with it, is imported only when the CUDA backend is asked for.
Without a GPU, ``NUMBA_ENABLE_CUDASIM=1`` runs the same code in numba's CUDA
simulator (how the tests check it on the CPU).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

if not hasattr(np, "row_stack"):  # pragma: no cover - numpy >= 2.5
    # numba-cuda (0.30 and earlier) registers an overload of np.row_stack, which numpy 2.5
    # removed, when it first compiles a kernel: give it the function row_stack always was
    np.row_stack = np.vstack

from numba import cuda  # noqa: E402  (this module is imported only for the CUDA backend)

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
    # the passes (bits of sweep's mode) and the states of the kernel's machine
    M_EVAL, M_SIGNS, M_DUAL, M_STEP, M_OBJT, M_OBJC, M_RAY, M_MAXABS = 1, 2, 4, 8, 16, 32, 64, 128
    (S_EVAL, S_ITER, S_CERT, S_SOLVE, S_DUAL, S_SMALL, S_LS_TRY, S_LS_STEP, S_LS_OBJ, S_RAY,
     S_END, S_END_FIT, S_END_CHECK, S_DONE) = range(14)
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
    def no_results():
        """What ``sweep`` returns before its first trial."""
        return ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, False, False, False

    @device
    def sweep(Xt, F, W, a, T, mode, theta, cand, d, mult, g, H):
        """One pass over context a's trials, doing what ``mode`` asks (bits M_*).

        Every pass of the fit is this one function, called from one place, so the
        threads of a warp run their passes together whatever each one needs:
        they share the loads of the design and differ only in arithmetic.
        M_EVAL: gradient and Hessian of the data part at eta = mult * z.cand, into g, H;
        M_SIGNS: whether z.theta has the sign of every outcome (``signs_agree``);
        M_DUAL: the dual certificate from direction d at theta (``dual_signs_ok``);
        M_STEP: max |z.cand - z.theta|; M_OBJT, M_OBJC: the data part of the objective
        at theta, at cand; M_RAY: the ray search's two sums at cand; M_MAXABS:
        max |z.theta| over the used trials.
        """
        if mode & M_EVAL:
            for i in range(P):
                g[i] = ZERO
                for j in range(P):
                    H[i * P + j] = ZERO
        use_t = mode & (M_SIGNS | M_DUAL | M_STEP | M_OBJT | M_MAXABS)
        use_c = mode & (M_EVAL | M_STEP | M_OBJC | M_RAY)
        obj_t, obj_c, mstep, ra, rb, mx, signs_bad, nonzero, dual_bad = no_results()
        z = cuda.local.array(P, elt)
        for t in range(T):
            w = W[t, a] if weighted else ONE
            f = F[t, a]
            load(Xt, t, a, z)
            et = dot(z, theta) if use_t else ZERO
            ec = dot(z, cand) if use_c else ZERO
            if mode & M_STEP:
                mstep = max(mstep, abs(ec - et))
            if w == ZERO:
                continue
            if mode & M_EVAL:
                r, v = residual(mult * ec, f, w)
                for i in range(P):
                    g[i] += r * z[i]
                    vz = v * z[i]
                    for j in range(i + 1):
                        H[i * P + j] += vz * z[j]
            if mode & M_OBJT:
                obj_t += w * (f * et - (max(et, ZERO) + math.log1p(math.exp(-abs(et)))))
            if mode & M_OBJC:
                obj_c += w * (f * ec - (max(ec, ZERO) + math.log1p(math.exp(-abs(ec)))))
            if mode & M_RAY:
                r, v = residual(ec, f, w)
                ra += r * ec
                rb += v * ec * ec
            if not w > ZERO:
                continue
            if mode & M_SIGNS:
                if (f == ONE and et < ZERO) or (f == ZERO and et > ZERO) or (
                        f > ZERO and f < ONE and et != ZERO):
                    signs_bad = True
                if et != ZERO:
                    nonzero = True
            if mode & M_DUAL:
                r, v = residual(et, f, w)
                lam = r - v * dot(z, d)
                if (f == ONE and not lam > CERT * w) or (f == ZERO and not lam < -CERT * w):
                    dual_bad = True
            if mode & M_MAXABS:
                mx = max(mx, abs(et))
        return obj_t, obj_c, mstep, ra, rb, mx, signs_bad, nonzero, dual_bad

    @device
    def prior_sq(prec, theta):
        """sum_j prec_j theta_j^2, with no square where there is no prior (a diverging ML
        iterate)."""
        q = ZERO
        for i in range(P):
            if prec[i] != ZERO:
                q += prec[i] * theta[i] * theta[i]
        return q

    @device
    def add_prior(prec, point, g, H):
        """The prior's part of g and H at ``point``, and H's upper triangle."""
        for i in range(P):
            g[i] -= prec[i] * point[i]
            H[i * P + i] += prec[i]
            for j in range(i):
                H[j * P + i] = H[i * P + j]

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
                if not math.isfinite(L[i * P + j]):
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

    @cuda.jit
    def kernel(Xt, F, W, prec, tol, slack, max_iter, theta_out, var_out, conv_out, n_iter_out,
               status_out):
        """Fit context a = the thread's index: the penalised fit, then (with the separation
        check) the unpenalised run of logit_jax, as a state machine whose every pass over
        the trials is the one ``sweep`` call below."""
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
        var = cuda.local.array(P, elt)
        H = cuda.local.array(PP, elt)
        L = cuda.local.array(PP, elt)
        for i in range(P):
            theta[i] = ZERO
            cand[i] = ZERO
            pr[i] = prec[i]
        stage = 0  # 0: the fit, 1: the unpenalised run of the separation check
        stop_cert = ml
        stop_dual = False
        converged = False
        certified = False
        dual = False
        n_iter = 0
        conv_fit = False
        it = 0
        prev = ZERO
        step = ONE
        halvings = 0
        at_zero = False
        obj0 = ZERO
        obj0_known = False
        dmax = ZERO
        mult = ONE
        status = 0
        obj_t, obj_c, mstep, ra, rb, mx, signs_bad, nonzero, dual_bad = no_results()
        initial = True
        st = S_EVAL  # evaluate at theta = cand = 0
        have = False  # the results of st's pass are in hand
        while True:
            while True:
                mode = 0
                if st == S_EVAL:
                    mode = M_EVAL
                elif st == S_CERT:
                    mode = M_SIGNS
                elif st == S_DUAL:
                    mode = M_DUAL
                elif st == S_LS_STEP:
                    mode = M_STEP
                elif st == S_LS_OBJ:
                    mode = M_OBJC if obj0_known else M_OBJC | M_OBJT
                elif st == S_RAY:
                    mode = M_RAY
                elif st == S_END_FIT:
                    mode = (M_MAXABS if ml else 0) | (M_SIGNS if check_separation else 0)
                elif st == S_END_CHECK:
                    mode = M_MAXABS if converged and not certified and not dual else 0
                if st == S_DONE or (mode != 0 and not have):
                    break
                have = False
                if st == S_EVAL:  # g, H at at = mult * cand; then the Newton iteration
                    for i in range(P):
                        at[i] = cand[i] * mult
                    add_prior(pr, at, g, H)
                    if initial:  # the stage's first evaluation
                        initial = False
                        st = S_ITER
                    else:
                        cmax = ZERO
                        for i in range(P):
                            theta[i] = at[i]
                            cmax = max(cmax, abs(at[i]))
                        prev = dmax if (step == ONE and not at_zero) else ZERO
                        it += 1
                        if step * dmax <= tol * (ONE + cmax):
                            converged = True
                            st = S_END
                        else:
                            st = S_ITER
                elif st == S_ITER:
                    if it >= max_iter:
                        st = S_END
                    elif stop_cert and any_nonzero(theta):
                        st = S_CERT
                    else:
                        st = S_SOLVE
                elif st == S_CERT:
                    if nonzero and not signs_bad:
                        certified = True
                        st = S_END
                    else:
                        st = S_SOLVE
                elif st == S_SOLVE:
                    if not chol_solve(H, g, L, d):
                        st = S_END
                    else:
                        n_iter = it + 1
                        st = S_DUAL if stop_dual else S_SMALL
                elif st == S_DUAL:
                    if not dual_bad:
                        dual = True
                        st = S_END
                    else:
                        st = S_SMALL
                elif st == S_SMALL:
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
                        st = S_END
                    else:  # line search by step halving (safe steps need no objective)
                        at_zero = not any_nonzero(at)
                        step = ONE
                        halvings = 0
                        obj0_known = False
                        st = S_LS_TRY
                elif st == S_LS_TRY:
                    for i in range(P):
                        cand[i] = theta[i] + step * d[i]
                    if step == ONE and at_zero:  # the full step from theta = 0
                        mult = ONE
                        st = S_RAY
                    else:
                        st = S_LS_STEP
                elif st == S_LS_STEP:
                    if mstep <= SAFE:
                        mult = ONE
                        st = S_EVAL
                    else:
                        st = S_LS_OBJ
                elif st == S_LS_OBJ:
                    if not obj0_known:
                        obj0 = obj_t - HALF * prior_sq(pr, theta)
                        obj0_known = True
                    if obj_c - HALF * prior_sq(pr, cand) >= obj0 - slack * abs(obj0):
                        mult = ONE
                        st = S_EVAL
                    else:
                        step *= HALF
                        halvings += 1
                        if halvings >= MAX_HALVING:  # no step raises the objective: stop
                            converged = True
                            st = S_END
                        else:
                            st = S_LS_TRY
                elif st == S_RAY:  # lengthen the full first step (logit_numpy)
                    q = ZERO
                    for i in range(P):
                        q += pr[i] * cand[i] * cand[i]
                    sa = ra - q
                    sb = rb + q
                    mult = min(ONE + sa / sb, RAYM) if sa > ZERO and sb > ZERO else ONE
                    st = S_EVAL
                elif st == S_END:
                    if stage == 0:
                        safe_variances(H, L, var)
                        for i in range(P):
                            theta_out[a, i] = theta[i]
                            var_out[a, i] = var[i]
                        n_iter_out[a] = n_iter
                        conv_fit = converged
                        st = S_END_FIT
                    else:
                        st = S_END_CHECK
                elif st == S_END_FIT:
                    if ml:
                        conv_fit = conv_fit and not certified and mx < ETAM
                    conv_out[a] = conv_fit
                    if check_separation and any_nonzero(theta) and nonzero and not signs_bad:
                        status = 1  # the fit separates the data: the unpenalised run can't
                        st = S_DONE  # change that
                    elif check_separation:  # the unpenalised run, from the last evaluation
                        for i in range(P):
                            theta[i] = at[i]
                            cand[i] = at[i]
                            pr[i] = ZERO
                        stage = 1
                        stop_cert = True
                        stop_dual = True
                        converged = False
                        certified = False
                        dual = False
                        n_iter = 0
                        it = 0
                        prev = ZERO
                        mult = ONE
                        initial = True
                        st = S_EVAL
                    else:
                        st = S_DONE
                elif st == S_END_CHECK:
                    if certified:
                        status = 1
                    elif dual or (converged and mx < ETAM):
                        status = 0
                    else:
                        status = 2
                    st = S_DONE
            if st == S_DONE:
                break
            obj_t, obj_c, mstep, ra, rb, mx, signs_bad, nonzero, dual_bad = sweep(
                Xt, F, W, a, T, mode, theta, cand, d, mult, g, H)
            have = True
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
    with warnings.catch_warnings():  # a few contexts make a small grid: that is no error
        warnings.filterwarnings("ignore", message=".*under-utilization", category=Warning)
        kern[blocks, THREADS](Xt, F, W, cuda.to_device(np.asarray(prec, dtype=dtype)),
                              dtype.type(tol_eff), dtype.type(slack), np.int32(max_iter), theta,
                              var, conv, n_iter, status)
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
        return fit_cuda_device(Xt, F, None, weights.shape[1], fit_intercept, prec, max_iter, tol,
                               check_separation, dtype)
