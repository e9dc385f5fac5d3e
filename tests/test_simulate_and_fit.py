"""simulate_and_fit: the fused kernel gives exactly what simulate_choices then fit_logit give."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import selfinterp as si
from selfinterp._core import logit_numba

FIELDS = ("coef", "intercept", "stderr", "intercept_stderr", "converged", "separated", "n_iter")


def _assert_same(a, b):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@settings(max_examples=40, deadline=None)
@given(A=st.integers(1, 70), T=st.integers(1, 60), K=st.integers(1, 7), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([0.3, 1.0, 8.0, np.inf]), prior=st.sampled_from([1.0, None]),
       check=st.booleans(), intercept=st.booleans())
def test_fused_equals_simulate_then_fit(A, T, K, seed, scale, prior, check, intercept):
    # any design, including deterministic agents (many separated contexts) and
    # plain maximum likelihood: every field bit for bit, since the fused kernel
    # draws the same numbers into the same estimator
    rng = np.random.default_rng(seed)
    w = rng.uniform(-3, 3, (A, K))
    b = rng.normal(0, 0.5, A)
    X, y = si.simulate_choices(w, T, scale=scale, intercept=b, rng=seed, first_context=5)
    sep = si.fit_logit(X, y, prior_sd=prior, check_separation=check, intercept=intercept)
    fused = si.simulate_and_fit(w, T, scale=scale, agent_intercept=b, rng=seed, first_context=5,
                                prior_sd=prior, check_separation=check, intercept=intercept)
    _assert_same(fused, sep)


def test_batches_and_backends_agree():
    w = np.random.default_rng(0).normal(0, 2, (300, 5))
    whole = si.simulate_and_fit(w, 40, rng=11)
    parts = [si.simulate_and_fit(w[i:i + 100], 40, rng=11, first_context=i) for i in (0, 100, 200)]
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(whole, name), np.concatenate([getattr(p, name) for p in parts]))
    ref = si.simulate_and_fit(w, 40, rng=11, backend="numpy")  # simulate, then the NumPy fit
    np.testing.assert_allclose(whole.coef, ref.coef, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(whole.separated, ref.separated)


def test_undecided_contexts_are_simulated_again_for_the_linear_program(monkeypatch):
    # the Newton check leaves ~0.1% of contexts undecided (status 2); the exact LP then
    # needs their data, which the fused kernel did not keep: they are simulated again,
    # from their own global context index
    w = np.random.default_rng(3).normal(0, 2, (40, 3))
    original = logit_numba.simulate_fit_numba

    def undecided_everywhere(*args):
        *fitted, status = original(*args)
        return *fitted, np.full_like(status, 2)

    monkeypatch.setattr(logit_numba, "simulate_fit_numba", undecided_everywhere)
    fused = si.simulate_and_fit(w, 15, rng=4, first_context=7, prior_sd=None)
    X, y = si.simulate_choices(w, 15, rng=4, first_context=7)
    expected = si.fit_logit(X, y, prior_sd=None)
    np.testing.assert_array_equal(fused.separated, expected.separated)
    assert fused.separated.any() and not fused.separated.all()


@pytest.mark.parametrize("kwargs, message", [
    ({"weights": np.array([[1.0, np.nan]])}, "weights"),
    ({"n_trials": 0}, "n_trials"),
    ({"scale": -1.0}, "scale"),
    ({"backend": "torch"}, "backend"),
    ({"max_iter": 0}, "max_iter"),
])
def test_bad_input(kwargs, message):
    args = {"weights": np.ones((2, 2)), "n_trials": 5} | kwargs
    with pytest.raises(si.InputError, match=message):
        si.simulate_and_fit(args.pop("weights"), args.pop("n_trials"), rng=0, **args)
