"""The CUDA backend (one GPU thread per context, numba-cuda).

Where no GPU is present these run the kernel in numba's CUDA simulator
(``tests/conftest.py`` sets ``NUMBA_ENABLE_CUDASIM``): the same Python code,
thread by thread, so they check what the kernel computes, not its speed
(``benchmarks/bench_gpu.py`` measures that on a GPU).  The reference is the
NumPy backend; float64 results agree to rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

import selfinterp as si

jax = pytest.importorskip("jax")
pytest.importorskip("numba.cuda")


def _agree(fit, ref, rtol=1e-8, atol=1e-9):
    assert np.array_equal(fit.separated, ref.separated)
    assert np.array_equal(fit.converged, ref.converged)
    assert np.array_equal(fit.n_iter, ref.n_iter)
    ok = ref.converged & ~ref.separated
    np.testing.assert_allclose(fit.coef[ok], ref.coef[ok], rtol=rtol, atol=atol)
    np.testing.assert_allclose(fit.intercept[ok], ref.intercept[ok], rtol=rtol, atol=atol)
    np.testing.assert_allclose(fit.stderr[ok], ref.stderr[ok], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("prior_sd", [1.0, None])
def test_cuda_equals_numpy_with_masks_counts_and_soft_labels(prior_sd):
    # weighted trials (the kernel reads W): a ragged mask, binomial counts, soft labels
    rng = np.random.default_rng(8)
    A, T, K = 48, 24, 3
    w = rng.normal(0, 2, (A, K))
    X, y = si.simulate_choices(w, T, rng=2)
    mask = rng.uniform(size=(A, T)) < 0.8
    n = rng.integers(1, 4, (A, T)).astype(float)
    counts = np.minimum(n, np.round(y * n + rng.integers(0, 2, (A, T))))
    soft = np.clip(y * 0.9 + rng.uniform(0, 0.1, (A, T)), 0, 1)
    for kw in (dict(y=y, mask=mask), dict(y=counts, n=n), dict(y=soft)):
        ref = si.fit_logit(X, prior_sd=prior_sd, backend="numpy", **kw)
        fit = si.fit_logit(X, prior_sd=prior_sd, backend="cuda", **kw)
        _agree(fit, ref)


def test_cuda_separated_and_one_class_contexts():
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, (6, 15, 2))
    y = (X[..., 0] > 0).astype(float)  # separated by the first attribute
    y[3] = 1.0  # all one class
    y[4, :7] = 1 - y[4, :7]  # not separated
    for prior_sd in (1.0, None):
        ref = si.fit_logit(X, y, prior_sd=prior_sd, backend="numpy")
        fit = si.fit_logit(X, y, prior_sd=prior_sd, backend="cuda")
        assert fit.separated[[0, 1, 2, 3, 5]].all() and not fit.separated[4]
        _agree(fit, ref)
        for arr in (fit.coef, fit.stderr, fit.intercept):
            assert np.all(np.isfinite(arr))


def test_cuda_float32_is_float64_to_single_precision():
    w = np.random.default_rng(3).normal(0, 1.5, (40, 5))
    X, y = si.simulate_choices(w, 60, rng=9)
    ref = si.fit_logit(X, y, backend="numpy")
    fit = si.fit_logit(X, y, backend="cuda", dtype=np.float32)
    assert fit.converged.all()
    np.testing.assert_array_equal(fit.separated, ref.separated)
    # normalised weights (max |w| = 100): float32's 1e-7 relative, times the conditioning
    assert np.max(np.abs(si.normalize_weights(fit.coef) - si.normalize_weights(ref.coef))) < 1e-2


def test_simulate_and_fit_jax_with_the_cuda_kernel_equals_the_jax_estimator():
    # the fused path: JAX simulates in the kernel's layout (contexts last), the kernel fits
    from selfinterp.logit import simulate_and_fit_jax

    w = np.random.default_rng(1).normal(0, 1.5, (64, 4))
    key = jax.random.key(5)
    opts = dict(key=key, dtype=np.float64, agent_intercept=0.2, first_context=3)
    a = simulate_and_fit_jax(w, 20, fit_backend="cuda", **opts)
    b = simulate_and_fit_jax(w, 20, fit_backend="jax", **opts)
    _agree(a, b)
    with pytest.raises(si.InputError, match="fit_backend"):
        simulate_and_fit_jax(w, 20, fit_backend="torch", **opts)


def test_trials_first_layout_is_the_same_draws():
    from selfinterp._core.simulate_jax import simulate_jax

    w = np.random.default_rng(2).normal(0, 1, (30, 3))
    ones, zeros = np.ones(30), np.zeros(30)
    with jax.enable_x64(True):
        X, y = simulate_jax(w, 9, ones, zeros, jax.random.key(4), 7, dtype=np.float64)
        Xt, yt = simulate_jax(w, 9, ones, zeros, jax.random.key(4), 7, dtype=np.float64,
                              trials_first=True)
    np.testing.assert_array_equal(np.asarray(Xt), np.transpose(np.asarray(X), (1, 2, 0)))
    np.testing.assert_array_equal(np.asarray(yt), np.asarray(y).T)


def test_cuda_bad_input_is_named_before_any_work():
    X, y = si.simulate_choices(np.ones((5, 2)), 10, rng=0)
    X[3, 7, 1] = np.nan
    with pytest.raises(si.InputError, match=r"context 3.*trial 7|context 3"):
        si.fit_logit(X, y, backend="cuda")


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    from selfinterp._core import logit_cuda

    monkeypatch.setattr(logit_cuda, "available", lambda: False)
    X, y = si.simulate_choices(np.ones((5, 2)), 10, rng=0)
    with pytest.raises(si.MissingExtraError, match="NVIDIA GPU"):
        si.fit_logit(X, y, backend="cuda")


def test_auto_fits_with_the_kernel_where_jax_computes_on_a_gpu(monkeypatch):
    from selfinterp._core import logit_cuda
    from selfinterp.logit import simulate_and_fit_jax

    calls = []
    real = logit_cuda.simulate_fit_cuda

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    w = np.random.default_rng(6).normal(0, 1, (8, 2))
    opts = dict(key=jax.random.key(1), dtype=np.float64)
    monkeypatch.setattr(logit_cuda, "simulate_fit_cuda", spy)
    # where JAX computes on the CPU, the JAX estimator (said explicitly: on a GPU
    # machine, SELFINTERP_TEST_GPU=1, JAX's own backend is the GPU)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    simulate_and_fit_jax(w, 10, **opts)
    assert not calls
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    fit = simulate_and_fit_jax(w, 10, **opts)
    assert calls and fit.converged.all()


def test_kernel_reads_no_unwritten_local_memory(monkeypatch):
    # a GPU thread's local arrays start with whatever was there: poisoned with NaN in the
    # simulator, the fits must not change (the Cholesky test once read L's unwritten upper
    # triangle, which made every fit fail wherever that memory held a NaN)
    from numba import config

    if not config.ENABLE_CUDASIM:
        pytest.skip("poisoning local memory needs numba's CUDA simulator")
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    def poisoned(self, shape, dtype, alignment=None):
        dt = numpy_support.as_dtype(dtype) if not isinstance(dtype, np.dtype) else dtype
        return np.full(shape, np.nan, dtype=dt)

    monkeypatch.setattr(kernelapi.FakeCUDALocal, "array", poisoned)
    w = np.random.default_rng(12).normal(0, 2, (24, 3))
    X, y = si.simulate_choices(w, 20, rng=4)
    for prior_sd in (1.0, None):
        _agree(si.fit_logit(X, y, backend="cuda", prior_sd=prior_sd),
               si.fit_logit(X, y, backend="numpy", prior_sd=prior_sd))
