"""Estimators: one interface, recovery of known weights, metamorphic properties, bad input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfinterp import InputError, LogitFit, fit_logit, normalize_weights, simulate_choices
from selfinterp.design import draw_target_weights
from selfinterp.estimators import (
    EstimateResult,
    Firth,
    LinearProbability,
    MaximumLikelihood,
    PaperMAP,
    PosteriorMean,
    RidgeCV,
    SignAgreement,
    as_result,
    default_estimators,
)
from selfinterp.estimators.ridge_cv import fold_assignment

ALL = default_estimators()
# deterministic given the data (no rng): the metamorphic tests apply exactly
EXACT = {"ml": MaximumLikelihood(), "map": PaperMAP(), "firth": Firth(),
         "lpm": LinearProbability(), "sign": SignAgreement()}


def _data(A=24, T=60, K=4, scale=0.03, seed=3):
    w = draw_target_weights(A, K, np.random.SeedSequence([seed, 0]))
    X, y = simulate_choices(w, T, scale=scale, rng=np.random.SeedSequence([seed, 1]))
    return w, X, y


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_estimator_follows_the_interface(name):
    w, X, y = _data()
    res = as_result(ALL[name](X, y, rng=1), *w.shape, name=name)
    assert res.coef.shape == w.shape and res.converged.shape == (len(w),)
    if res.has_interval:
        assert np.all(res.lower <= res.upper)


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_estimator_recovers_known_weights(name):
    # 200 noisy choices (scale 0.05: |logit| up to ~10) per agent: the benchmark
    # gives pooled r >= 0.97 for every model-based estimator there and 0.95 for
    # counting; the thresholds leave room for this seed's sampling noise
    w, X, y = _data(A=40, T=200, K=5, scale=0.05, seed=8)
    res = ALL[name](X, y, rng=2)
    r = np.corrcoef(normalize_weights(res.coef).ravel(), w.ravel())[0, 1]
    assert r > (0.9 if name == "sign" else 0.95)
    assert np.mean(np.sign(res.coef) == np.sign(w)) > 0.85


def test_ml_and_map_are_fit_logit():
    w, X, y = _data()
    ml, fit = MaximumLikelihood()(X, y), fit_logit(X, y, prior_sd=None)
    np.testing.assert_array_equal(ml.coef, fit.coef)
    np.testing.assert_array_equal(ml.separated, fit.separated)
    mp, fit1 = PaperMAP()(X, y), fit_logit(X, y, prior_sd=1.0, intercept_prior_sd=2.5)
    np.testing.assert_array_equal(mp.coef, fit1.coef)
    np.testing.assert_allclose(mp.upper - mp.lower, 2 * 1.959963984540054 * fit1.stderr)


def test_separation_flags_and_firth_under_separation():
    w, X, y = _data(A=12, T=50, K=5, scale=math.inf)
    ml = MaximumLikelihood()(X, y)
    assert ml.separated.all() and not ml.converged.any()  # deterministic choices separate
    fi = Firth()(X, y)
    assert fi.separated.all() and fi.converged.all()
    assert np.all(np.isfinite(fi.lower)) and np.all(np.isfinite(fi.upper))
    assert np.all((fi.lower < fi.coef) & (fi.coef < fi.upper))


@pytest.mark.parametrize("name", sorted(EXACT))
@given(seed=st.integers(0, 2**16))
@settings(max_examples=15)
def test_relabelling_the_options_keeps_the_weights(name, seed):
    # calling B "A" flips every difference and every outcome: same preferences
    w, X, y = _data(A=3, T=30, K=3, scale=0.05, seed=seed)
    a, b = EXACT[name](X, y), EXACT[name](-X, 1.0 - y)
    np.testing.assert_allclose(b.coef, a.coef, rtol=1e-6, atol=1e-6)
    if a.has_interval:
        np.testing.assert_allclose(b.lower, a.lower, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXACT))
@given(seed=st.integers(0, 2**16))
@settings(max_examples=15)
def test_reversing_every_choice_negates_the_weights(name, seed):
    # an agent choosing the opposite of this one has the opposite weights (the
    # priors are symmetric about 0)
    w, X, y = _data(A=3, T=30, K=3, scale=0.05, seed=seed)
    a, b = EXACT[name](X, y), EXACT[name](X, 1.0 - y)
    np.testing.assert_allclose(b.coef, -a.coef, rtol=1e-6, atol=1e-6)
    if a.has_interval:
        np.testing.assert_allclose(b.lower, -a.upper, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXACT))
@given(seed=st.integers(0, 2**16))
@settings(max_examples=15)
def test_trial_order_and_batching_do_not_matter(name, seed):
    w, X, y = _data(A=4, T=25, K=3, scale=0.05, seed=seed)
    est = EXACT[name]
    full = est(X, y)
    perm = np.random.default_rng(seed).permutation(25)
    shuffled = est(X[:, perm], y[:, perm])
    np.testing.assert_allclose(shuffled.coef, full.coef, rtol=1e-6, atol=1e-7)
    alone = est(X[2:3], y[2:3])
    np.testing.assert_allclose(alone.coef[0], full.coef[2], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["firth", "lpm", "sign", "ml"])
def test_mask_equals_dropping_trials(name):
    w, X, y = _data(A=5, T=40, K=3)
    mask = np.ones((5, 40), bool)
    mask[:, 30:] = False
    a = EXACT[name](X, y, mask=mask)
    b = EXACT[name](X[:, :30], y[:, :30])
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-7, atol=1e-9)


def test_stochastic_estimators_regenerate_and_do_not_depend_on_batching():
    w, X, y = _data(A=6, T=40, K=3)
    for make in (lambda first: RidgeCV(first_context=first),
                 lambda first: PosteriorMean(n_draws=300, first_context=first)):
        full = make(0)(X, y, rng=5)
        again = make(0)(X, y, rng=5)
        np.testing.assert_array_equal(full.coef, again.coef)
        tail = make(4)(X[4:], y[4:], rng=5)  # same key, contexts 4 and 5 on their own
        np.testing.assert_allclose(tail.coef, full.coef[4:], rtol=1e-10, atol=1e-12)


def test_ridge_folds_are_balanced_and_respect_the_mask():
    used = np.ones((3, 23), bool)
    used[1, 20:] = False
    folds = fold_assignment(used, 4, 7)
    assert np.all(folds[~used] == -1)
    for a in range(3):
        counts = np.bincount(folds[a][used[a]], minlength=4)
        assert counts.max() - counts.min() <= 1


def test_ridge_rejects_too_few_trials():
    w, X, y = _data(A=2, T=4, K=2)
    with pytest.raises(InputError, match="fewer than n_folds"):
        RidgeCV(n_folds=5)(X, y, rng=0)


def test_lpm_with_fewer_trials_than_parameters_is_not_converged():
    w, X, y = _data(A=3, T=4, K=5)
    res = LinearProbability()(X, y)
    assert not res.converged.any() and np.all(np.isfinite(res.coef))


def test_sign_agreement_is_vote_counting():
    X = np.array([[[1.0, -0.5], [0.2, 0.3], [-0.4, 0.1]]])
    y = np.array([[1.0, 0.0, 0.0]])
    res = SignAgreement()(X, y)
    # attribute 0: agree, disagree, agree; attribute 1: disagree, disagree, disagree
    np.testing.assert_allclose(res.coef, [[1 / 3, -1.0]])


def test_as_result_accepts_a_logitfit():
    w, X, y = _data(A=3)
    fit = fit_logit(X, y)
    assert isinstance(fit, LogitFit)
    res = as_result(fit, 3, 4)
    assert res.separated is not None
    # its standard errors give the Wald interval, so its coverage is measured in the benchmark
    np.testing.assert_allclose(res.upper - res.coef, 1.959963984540054 * fit.stderr)
    np.testing.assert_allclose(res.coef - res.lower, 1.959963984540054 * fit.stderr)
    with pytest.raises(InputError, match="negative standard error"):
        as_result(dataclasses.replace(fit, stderr=-fit.stderr), 3, 4)


@pytest.mark.parametrize("bad, match", [
    (EstimateResult(coef=np.zeros((2, 3)), converged=np.ones(3, bool)), "shape"),
    (EstimateResult(coef=np.full((3, 4), np.nan), converged=np.ones(3, bool)), "non-finite"),
    (EstimateResult(coef=np.zeros((3, 4)), converged=np.ones(3)), "boolean"),
    (EstimateResult(coef=np.zeros((3, 4)), converged=np.ones(3, bool), lower=np.ones((3, 4)),
                    upper=np.zeros((3, 4))), "lower > upper"),
    (EstimateResult(coef=np.zeros((3, 4)), converged=np.ones(3, bool), lower=np.zeros((3, 4))),
     "one side"),
    (np.zeros((3, 4)), "no coef"),
])
def test_as_result_names_what_is_wrong(bad, match):
    with pytest.raises(InputError, match=match):
        as_result(bad, 3, 4, name="mine")
