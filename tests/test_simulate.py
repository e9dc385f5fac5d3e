"""simulate_choices: layout, reproducibility, batching invariance, the choice rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import binom

import selfinterp as si


def test_shapes_range_and_dtype():
    w = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 3.0]])
    X, y = si.simulate_choices(w, 40, rng=0)
    assert X.shape == (2, 40, 3) and y.shape == (2, 40)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert np.all((X >= -1) & (X <= 1))
    assert set(np.unique(y)) <= {0.0, 1.0}


def test_numpy_reference_and_numba_are_bit_identical():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(50, 5)) * 4
    scale = rng.uniform(0.1, 5, 50)
    scale[::7] = np.inf
    b = rng.normal(size=50)
    a = si.simulate_choices(w, 33, scale=scale, intercept=b, rng=11, backend="numba")
    r = si.simulate_choices(w, 33, scale=scale, intercept=b, rng=11, backend="numpy")
    assert np.array_equal(a[0], r[0]) and np.array_equal(a[1], r[1])


def test_same_seed_same_result_whatever_the_batching():
    w = np.random.default_rng(0).normal(size=(100, 4))
    key = np.random.SeedSequence(42)
    X, y = si.simulate_choices(w, 20, rng=key)
    X1, y1 = si.simulate_choices(w[:37], 20, rng=np.random.SeedSequence(42))
    X2, y2 = si.simulate_choices(w[37:], 20, rng=np.random.SeedSequence(42), first_context=37)
    assert np.array_equal(np.concatenate([X1, X2]), X)
    assert np.array_equal(np.concatenate([y1, y2]), y)
    # a different seed gives different draws
    X3, _ = si.simulate_choices(w, 20, rng=np.random.SeedSequence(43))
    assert not np.array_equal(X3, X)


def test_deterministic_rule_and_ties_go_to_b():
    w = np.array([[3.0, -1.0], [0.0, 0.0]])
    X, y = si.simulate_choices(w, 500, scale=np.inf, rng=5)
    assert np.array_equal(y[0], (X[0] @ w[0] > 0).astype(float))
    assert np.all(y[1] == 0.0)  # every utility difference is an exact tie


def test_choice_frequencies_follow_the_logit():
    # One context, weights zero, intercept b: every trial is Bernoulli(sigmoid(b)).
    # A two-sided binomial test at level 1e-5: false-alarm rate 1e-5 per run.
    n = 200_000
    _, y = si.simulate_choices(np.zeros((1, 2)), n, intercept=0.7, rng=8)
    p = expit(0.7)
    k = int(y.sum())
    lo, hi = binom.ppf(0.5e-5, n, p), binom.isf(0.5e-5, n, p)
    assert lo <= k <= hi


def test_uniform_option_draws():
    # X = U_A - U_B is triangular on [-1, 1]: mean 0, variance 1/6.  With 1e6
    # draws the standard error of the variance is ~1.8e-4; 6e-4 is > 3 s.e. per
    # attribute and the mean's band is 5 s.e. (false alarms < 1e-4 overall).
    X, _ = si.simulate_choices(np.ones((10, 4)), 25_000, rng=1)
    flat = X.reshape(-1, 4)
    assert np.all(np.abs(flat.mean(axis=0)) < 5 * np.sqrt(1 / 6 / len(flat)))
    assert np.all(np.abs(flat.var(axis=0) - 1 / 6) < 8e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=np.ones((2, 3)), n_trials=0), "n_trials"),
        (dict(weights=np.ones(3), n_trials=5), "dimensions"),
        (dict(weights=np.array([[1.0, np.nan]]), n_trials=5), "context 0, attribute 1"),
        (dict(weights=np.ones((2, 3)), n_trials=5, scale=-1.0), "scale"),
        (dict(weights=np.ones((2, 3)), n_trials=5, scale=np.ones(3)), "scale"),
        (dict(weights=np.ones((2, 3)), n_trials=5, intercept=np.array([0.0, np.inf])), "intercept"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(si.InputError, match=match):
        si.simulate_choices(**kwargs, rng=0)


def test_jax_simulator_checks_its_arguments_like_the_others():
    pytest.importorskip("jax")
    with pytest.raises(si.InputError, match="scale must be >= 0.*context 1"):
        si.simulate_choices_jax(np.ones((2, 3)), 5, key=0, scale=np.array([1.0, -1.0]))


def test_out_buffers_are_filled_in_place_with_the_same_numbers():
    w = np.random.default_rng(4).normal(0, 2, (70, 3))
    X, y = si.simulate_choices(w, 9, scale=2.0, rng=5, first_context=3)
    for backend in ("numba", "numpy"):
        out = (np.full((70, 9, 3), np.nan), np.full((70, 9), np.nan))
        got = si.simulate_choices(w, 9, scale=2.0, rng=5, first_context=3, backend=backend, out=out)
        assert got[0] is out[0] and got[1] is out[1]
        np.testing.assert_array_equal(out[0], X)
        np.testing.assert_array_equal(out[1], y)


@pytest.mark.parametrize("out, match", [
    ([np.zeros((2, 4, 3)), np.zeros((2, 4))], "tuple"),
    ((np.zeros((2, 4, 2)), np.zeros((2, 4))), "shape"),
    ((np.zeros((2, 4, 3), dtype=np.float32), np.zeros((2, 4))), "float64"),
    ((np.zeros((2, 3, 4)).transpose(0, 2, 1), np.zeros((2, 4))), "C-contiguous"),
    ((np.zeros((2, 4, 3)), np.zeros((2, 12))[:, :4].copy(order="F")), "C-contiguous"),
])
def test_bad_out_buffers_are_refused(out, match):
    with pytest.raises(si.InputError, match=match):
        si.simulate_choices(np.ones((2, 3)), 4, rng=0, out=out)
