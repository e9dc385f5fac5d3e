"""JAX backend and JAX simulator; the vectorisable exp/log1p of the numba kernel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import selfinterp as si
from selfinterp._core.vecmath import exp_nonpos, exp_nonpos_np, log1p_unit

jax = pytest.importorskip("jax")


def _problem():
    """Ordinary, separated, one-class and quasi-separated contexts in one batch."""
    rng = np.random.default_rng(12)
    w = rng.uniform(-2.5, 2.5, (60, 4))
    X, y = si.simulate_choices(w, 40, rng=3)
    y[0] = X[0, :, 0] > 0  # complete separation
    y[1] = 1.0  # one class
    X[2, :8, 1] = 0.0  # quasi-complete: separated except at ties, which are mixed
    y[2] = X[2, :, 1] > 0
    y[2, :4] = 1.0 - y[2, :4]
    return X, y


@pytest.mark.parametrize("prior_sd", [1.0, None])
def test_jax_float64_equals_numba(prior_sd):
    X, y = _problem()
    nb = si.fit_logit(X, y, prior_sd=prior_sd, backend="numba")
    jx = si.fit_logit(X, y, prior_sd=prior_sd, backend="jax", dtype=np.float64)
    assert np.array_equal(nb.separated, jx.separated)
    assert np.array_equal(nb.converged, jx.converged)
    assert np.array_equal(nb.n_iter, jx.n_iter)  # the same iterates, step for step
    ok = nb.converged
    np.testing.assert_allclose(jx.coef[ok], nb.coef[ok], rtol=0, atol=1e-8)
    np.testing.assert_allclose(jx.stderr[ok], nb.stderr[ok], rtol=1e-8, atol=1e-10)
    assert nb.separated[:2].all()
    assert not jax.config.jax_enable_x64  # float64 ran under a local context only


def test_jax_float32_close_to_numba():
    X, y = _problem()
    nb = si.fit_logit(X, y, backend="numba")
    jx = si.fit_logit(X, y, backend="jax", dtype=np.float32)
    assert np.array_equal(nb.separated, jx.separated)
    assert jx.converged.all()
    # single precision: relative rounding 6e-8 per operation, amplified by the
    # condition of the Hessian (below 1e3 here); 1e-3 leaves a wide margin
    np.testing.assert_allclose(jx.coef, nb.coef, atol=1e-3)
    assert jx.coef.dtype == np.float64


def test_jax_second_call_does_not_recompile():
    from selfinterp._core.logit_jax import fit_batch_jax

    X, y = _problem()
    si.fit_logit(X, y, backend="jax")
    n = fit_batch_jax()._cache_size()
    si.fit_logit(X + 0.0, 1.0 - y, backend="jax")
    assert fit_batch_jax()._cache_size() == n


def test_jax_simulator_batching_rule_and_recovery():
    from selfinterp.simulate import simulate_choices_jax

    w = np.random.default_rng(1).uniform(-2, 2, (300, 3))
    key = jax.random.key(7)
    X, y = simulate_choices_jax(w, 400, key=key, dtype=np.float64)
    X2, y2 = simulate_choices_jax(w[100:], 400, key=key, first_context=100, dtype=np.float64)
    assert np.array_equal(np.asarray(X)[100:], np.asarray(X2))
    assert np.array_equal(np.asarray(y)[100:], np.asarray(y2))
    Xd, yd = simulate_choices_jax(w, 50, key=key, scale=np.inf, dtype=np.float64)
    expect = (np.einsum("atk,ak->at", np.asarray(Xd), w) > 0).astype(float)
    assert np.array_equal(np.asarray(yd), expect)
    # writable copies: np.asarray of a JAX array is read-only, a type for which numba would
    # compile the whole fit kernel a second time (minutes of the suite) to fit the same numbers
    fit = si.fit_logit(np.array(X), np.array(y), prior_sd=None)
    # 400 trials per context: the MLE's sd is about 0.2 here; over 900 weights a
    # deviation beyond 6 sd has probability below 1e-6
    z = (fit.coef - w) / fit.stderr
    assert np.max(np.abs(z)) < 6


@given(st.floats(-745.0, 0.0))
def test_polynomial_exp_within_two_ulp_and_twins_bit_identical(x):
    ref = np.exp(max(x, -700.0))
    assert abs(exp_nonpos(x) - ref) <= 2 * np.spacing(ref)
    # the simulators' bit-identity rests on this
    assert exp_nonpos_np(np.array([x]))[0] == exp_nonpos(x)


@given(st.floats(0.0, 1.0))
def test_series_log1p_within_four_ulp(e):
    # the division s = e / (2 + e) and 17 Horner steps: a few ulp, ample for the
    # line search, which compares log-likelihoods with a 1e-12 relative slack
    ref = np.log1p(e)
    assert abs(log1p_unit(e) - ref) <= 4 * np.spacing(ref) + 1e-300


def test_simulate_and_fit_on_the_device_transfers_only_weights_and_fits():
    # the choices are simulated and fitted where JAX computes (a GPU when present):
    # with implicit transfers disallowed the whole call runs, and it gives the JAX
    # simulator's choices fitted by the estimator (float64: to rounding)
    from selfinterp.logit import simulate_and_fit_jax

    w = np.random.default_rng(1).normal(0, 1.5, (200, 4))
    key = jax.random.key(7)
    simulate_and_fit_jax(w, 30, key=key, dtype=np.float64, agent_intercept=0.2)  # compile
    with jax.transfer_guard("disallow"):
        fit = simulate_and_fit_jax(w, 30, key=key, dtype=np.float64, agent_intercept=0.2)
    X, y = si.simulate_choices_jax(w, 30, key=key, intercept=0.2, dtype=np.float64)
    ref = si.fit_logit(np.array(X), np.array(y))  # writable: see test_jax_simulator_batching_rule_and_recovery
    np.testing.assert_allclose(fit.coef, ref.coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(fit.separated, ref.separated)
    np.testing.assert_array_equal(fit.n_iter, ref.n_iter)
    # batching: contexts 100.. alone, with their global index, give the same fits
    part = simulate_and_fit_jax(w[100:], 30, key=key, dtype=np.float64, agent_intercept=0.2,
                                first_context=100)
    np.testing.assert_allclose(part.coef, fit.coef[100:], rtol=1e-12, atol=1e-13)


def test_contexts_drawn_again_by_number_are_the_batch_rows():
    # simulate_and_fit_jax settles undecided contexts on their choices, drawn again in
    # one call by context number: rows idx of the batch, bit for bit
    from selfinterp._core.simulate_jax import simulate_jax

    rng = np.random.default_rng(3)
    w = rng.normal(0, 2, (300, 3))
    scale, b = rng.uniform(0.5, 5, 300), rng.normal(0, 0.3, 300)
    key = jax.random.key(11)
    with jax.enable_x64(True):
        X, y = simulate_jax(w, 17, scale, b, key, first_context=40, dtype=np.float64)
        idx = np.array([0, 5, 299, 123, 5])
        Xi, yi = simulate_jax(w[idx], 17, scale[idx], b[idx], key, contexts=40 + idx,
                              dtype=np.float64)
    np.testing.assert_array_equal(np.asarray(Xi), np.asarray(X)[idx])
    np.testing.assert_array_equal(np.asarray(yi), np.asarray(y)[idx])


def test_simulate_and_fit_jax_separation_flags_with_many_separated_contexts():
    # few choices: many contexts separated, 12 of 400 left by the kernel to the linear
    # program on choices drawn again; the flags equal those of fitting the same choices
    from selfinterp.logit import simulate_and_fit_jax

    w = np.random.default_rng(5).uniform(-3, 3, (400, 4))
    key = jax.random.key(2)
    fit = simulate_and_fit_jax(w, 16, key=key, scale=1.0, dtype=np.float64, first_context=9)
    X, y = si.simulate_choices_jax(w, 16, key=key, scale=1.0, dtype=np.float64, first_context=9)
    ref = si.fit_logit(np.array(X), np.array(y), backend="numpy")  # writable, as above
    assert 0.2 < ref.separated.mean() < 0.95
    np.testing.assert_array_equal(fit.separated, ref.separated)
    np.testing.assert_array_equal(fit.converged, ref.converged)


def test_power_engine_on_the_jax_backend():
    # backend="jax" simulates and fits every replicate batch on the device, with JAX's
    # generator: other choices, the same distribution.  r(learned, target) of 200 studies
    # of the paper's design: means within 0.02 of the numba engine's (their Monte-Carlo
    # standard errors are about 0.002 each; false-alarm rate far below 1e-6), and the
    # same seed gives the same numbers
    from selfinterp.study import DEFAULT_MODEL, Design, run_design

    d = Design(100, 50, 10)
    a = run_design(d, DEFAULT_MODEL, 200, seed=3, backend="jax")
    b = run_design(d, DEFAULT_MODEL, 200, seed=3, backend="numba")
    assert a == run_design(d, DEFAULT_MODEL, 200, seed=3, backend="jax")
    assert a != b
    assert abs(a["learned_vs_target"]["mean"] - b["learned_vs_target"]["mean"]) < 0.02
