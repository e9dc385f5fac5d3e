"""fit_logit: recovery, properties, separation, extremes, backends, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.stats import binom

import selfinterp as si
from selfinterp._core.logit_numpy import sigmoid, softplus
from selfinterp._core.separation import separated_lp

from strategies import arbitrary_designs, logit_problems

BACKENDS = ["numpy", "numba", "cuda"]  # cuda: in numba's CUDA simulator where there is no GPU


def _fit(X, y, **kw):
    return si.fit_logit(X, y, **kw)


# --- recovery ---------------------------------------------------------------------------


def test_recovery_and_interval_coverage_under_maximum_likelihood():
    # 3000 agents, 400 choices, 3 attributes, weights U(-2, 2): the MLE is close to
    # normal, so (coef - w) / stderr is ~N(0, 1).  Coverage of the 95% Wald
    # interval for the first attribute over 3000 independent contexts: a
    # binomial band at 1e-5 two-sided (false-alarm rate 1e-5), widened by 0.01
    # for the small-sample bias of the MLE at T = 400.
    rng = np.random.default_rng(1)
    w = rng.uniform(-2, 2, (3000, 3))
    X, y = si.simulate_choices(w, 400, intercept=0.3, rng=2)
    fit = si.fit_logit(X, y, prior_sd=None)
    assert fit.converged.all() and not fit.separated.any()
    z = (fit.coef[:, 0] - w[:, 0]) / fit.stderr[:, 0]
    covered = int(np.sum(np.abs(z) < 1.959964))
    lo, hi = binom.ppf(0.5e-5, 3000, 0.95), binom.isf(0.5e-5, 3000, 0.95)
    assert lo - 30 <= covered <= hi + 30
    # intercept recovered too; the mean error is within 5 standard errors of 0
    err = fit.intercept - 0.3
    assert abs(err.mean()) < 5 * err.std() / np.sqrt(len(err))


def test_recovery_in_the_papers_regime():
    # Deterministic agents, 5 attributes, 50 choices, paper's MAP + normalisation:
    # recovery r is ~0.95 (the paper's GPT-4o, a noisier agent, got 0.84).  The
    # threshold 0.9 is > 10 standard deviations of r below its simulated mean.
    w = si.design.draw_target_weights(400, 5, rng=0)
    X, y = si.simulate_choices(w, 50, scale=np.inf, rng=1)
    fit = si.fit_logit(X, y, prior_sd=1.0)
    r = np.corrcoef(fit.normalized().ravel(), w.ravel())[0, 1]
    assert r > 0.9
    assert fit.converged.all()


def test_map_matches_an_independent_optimiser():
    # Reference: scipy's BFGS on the same penalised log-likelihood, written out here.
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, (1, 60, 3))
    y = (rng.uniform(size=(1, 60)) < 0.6).astype(float)

    def negpost(theta):
        eta = X[0] @ theta[:3] + theta[3]
        return (np.sum(softplus(eta) - y[0] * eta) + 0.5 * np.sum(theta[:3] ** 2)
                + 0.5 * theta[3] ** 2 / 2.5**2)

    ref = minimize(negpost, np.zeros(4), method="BFGS", options={"gtol": 1e-12}).x
    for backend in BACKENDS:
        fit = si.fit_logit(X, y, backend=backend)
        np.testing.assert_allclose(fit.coef[0], ref[:3], atol=1e-6)
        np.testing.assert_allclose(fit.intercept[0], ref[3], atol=1e-6)


def test_matches_statsmodels_maximum_likelihood():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(7)
    w = rng.normal(size=(5, 4))
    X, y = si.simulate_choices(w, 300, rng=8)
    fit = si.fit_logit(X, y, prior_sd=None)
    for a in range(5):
        res = sm.Logit(y[a], np.column_stack([X[a], np.ones(300)])).fit(disp=0, tol=1e-12)
        np.testing.assert_allclose(fit.coef[a], res.params[:4], rtol=1e-7, atol=1e-9)
        # the covariance is the inverse Hessian at the last evaluation, up to one Newton
        # step (<~1e-4, in the quadratic regime) from the estimate: stderr to ~1e-5
        np.testing.assert_allclose(fit.stderr[a], res.bse[:4], rtol=1e-5)


# --- properties (metamorphic and differential) ------------------------------------------


@given(logit_problems(), st.randoms(use_true_random=False))
def test_permuting_attributes_permutes_weights(problem, random):
    X, y, _ = problem
    perm = np.array(random.sample(range(X.shape[2]), X.shape[2]))
    a = si.fit_logit(X, y)
    b = si.fit_logit(X[:, :, perm], y)
    np.testing.assert_allclose(b.coef, a.coef[:, perm], atol=1e-8)
    np.testing.assert_allclose(b.stderr, a.stderr[:, perm], atol=1e-8)
    assert np.array_equal(a.separated, b.separated)


@given(logit_problems(min_trials=60, max_trials=150, max_weight=1.5),
       st.floats(0.2, 5.0))
def test_scaling_an_attribute_scales_its_mle_inversely(problem, c):
    X, y, _ = problem
    a = si.fit_logit(X, y, prior_sd=None)
    assume(a.converged.all() and not a.separated.any())
    Xc = X.copy()
    Xc[:, :, 0] *= c
    b = si.fit_logit(Xc, y, prior_sd=None)
    np.testing.assert_allclose(b.coef[:, 0] * c, a.coef[:, 0], rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(b.coef[:, 1:], a.coef[:, 1:], rtol=1e-7, atol=1e-8)


@given(logit_problems(), st.sampled_from([None, 1.0]))
def test_swapping_a_and_b_flips_the_signs(problem, prior_sd):
    X, y, _ = problem
    a = si.fit_logit(X, y, prior_sd=prior_sd)
    # relabelling the options (differences B - A) while keeping the outcomes
    # flips the slopes; the intercept (bias towards the first option) stays
    b = si.fit_logit(-X, y, prior_sd=prior_sd)
    # swapping the options and the choices with them is the same agent: the
    # weights stay and the position bias flips
    c = si.fit_logit(-X, 1.0 - y, prior_sd=prior_sd)
    assert np.array_equal(a.separated, b.separated) and np.array_equal(a.separated, c.separated)
    ok = a.converged & b.converged & c.converged
    np.testing.assert_allclose(b.coef[ok], -a.coef[ok], atol=1e-7)
    np.testing.assert_allclose(b.intercept[ok], a.intercept[ok], atol=1e-7)
    np.testing.assert_allclose(c.coef[ok], a.coef[ok], atol=1e-7)
    np.testing.assert_allclose(c.intercept[ok], -a.intercept[ok], atol=1e-7)


@given(logit_problems(min_trials=40))
def test_duplicating_every_trial_leaves_the_mle_unchanged(problem):
    X, y, _ = problem
    a = si.fit_logit(X, y, prior_sd=None)
    assume(a.converged.all())
    b = si.fit_logit(np.concatenate([X, X], axis=1), np.concatenate([y, y], axis=1), prior_sd=None)
    np.testing.assert_allclose(b.coef, a.coef, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(b.stderr * np.sqrt(2), a.stderr, rtol=1e-6)
    # and duplicated trials are binomial counts with n = 2
    c = si.fit_logit(X, 2 * y, n=np.full(y.shape, 2.0), prior_sd=None)
    np.testing.assert_allclose(c.coef, b.coef, rtol=1e-8, atol=1e-9)


@given(arbitrary_designs(), st.sampled_from([None, 1.0, 0.3]), st.booleans())
def test_backends_agree_on_arbitrary_designs(design, prior_sd, intercept):
    X, y = design
    ref = si.fit_logit(X, y, prior_sd=prior_sd, intercept=intercept, backend="numpy")
    for backend in ("numba", "cuda"):  # cuda: in numba's CUDA simulator where there's no GPU
        nb = si.fit_logit(X, y, prior_sd=prior_sd, intercept=intercept, backend=backend)
        if not np.array_equal(ref.converged, nb.converged):
            np.savez("/tmp/fail.npz", X=X, y=y, prior=np.nan if prior_sd is None else prior_sd, icpt=intercept)
        assert np.array_equal(ref.separated, nb.separated)
        assert np.array_equal(ref.converged, nb.converged)
        ok = ref.converged
        np.testing.assert_allclose(nb.coef[ok], ref.coef[ok], rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(nb.stderr[ok], ref.stderr[ok], rtol=1e-6, atol=1e-8)
        for f in (nb.coef, nb.stderr, nb.intercept):
            assert np.all(np.isfinite(f))


@given(arbitrary_designs(max_trials=15))
def test_separation_flag_equals_the_exact_linear_program(design):
    X, y = design
    fit = si.fit_logit(X, y, prior_sd=1.0)
    Z = np.concatenate([X, np.ones(X.shape[:2] + (1,))], axis=2)
    assert np.array_equal(fit.separated, separated_lp(Z, y, np.ones_like(y)))


def test_mask_equals_dropping_the_trials():
    w = np.array([[1.0, -1.0, 0.5], [2.0, 0.0, -1.0]])
    X, y = si.simulate_choices(w, 80, rng=3)
    mask = np.ones((2, 80), bool)
    mask[0, 50:] = False
    Xg = X.copy()
    Xg[0, 50:] = np.nan  # masked values are never read
    a = si.fit_logit(Xg, y, mask=mask)
    b = si.fit_logit(X[:1, :50], y[:1, :50])
    np.testing.assert_allclose(a.coef[0], b.coef[0], atol=1e-10)


def test_soft_labels_equal_expected_counts():
    # Fractional outcomes p are the expected value of binary ones: the fit on p
    # equals the fit on counts k = n p with n trials each.
    rng = np.random.default_rng(2)
    X = rng.uniform(-1, 1, (3, 40, 2))
    p = rng.uniform(0.05, 0.95, (3, 40))
    a = si.fit_logit(X, p)
    b = si.fit_logit(X, 10 * p, n=np.full_like(p, 10.0))
    # with n = 10 the likelihood is 10x stronger relative to the prior: compare ML
    a = si.fit_logit(X, p, prior_sd=None)
    b = si.fit_logit(X, 10 * p, n=np.full_like(p, 10.0), prior_sd=None)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-9)
    assert not a.separated.any()


# --- separation and extremes ------------------------------------------------------------


def test_separated_and_one_class_contexts_are_flagged_not_nan():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (4, 30, 2))
    y = np.empty((4, 30))
    y[0] = X[0, :, 0] > 0  # complete separation along attribute 1
    y[1] = 1.0  # all A
    y[2] = 0.0  # all B
    y[3] = rng.uniform(size=30) < 0.5  # ordinary
    # quasi-complete: attribute 1 separates except at ties (x = 0), which are mixed
    X[3, :6, 0] = 0.0
    ml = si.fit_logit(X, y, prior_sd=None)
    assert ml.separated[:3].all()
    assert not ml.converged[:3].any()
    mp = si.fit_logit(X, y, prior_sd=1.0)
    assert mp.separated[:3].all() and mp.converged.all()
    for fit in (ml, mp):
        for arr in (fit.coef, fit.stderr, fit.intercept, fit.intercept_stderr):
            assert np.all(np.isfinite(arr))


def test_quasi_complete_separation_is_detected():
    rng = np.random.default_rng(5)
    X = np.round(rng.uniform(-1, 1, (1, 40, 2)), 1)
    X[0, :10, 0] = 0.0
    y = (X[0, :, 0] > 0).astype(float)[None]
    y[0, :10] = rng.uniform(size=10) < 0.5  # ties are mixed: quasi-complete
    fit = si.fit_logit(X, y, prior_sd=1.0)
    assert fit.separated[0]


def test_logits_of_1e9_give_no_nan():
    assert np.isfinite(softplus(np.array([-1e9, 1e9]))).all()
    assert softplus(np.array([1e9]))[0] == 1e9
    assert np.array_equal(sigmoid(np.array([-1e9, 0.0, 1e9])), [0.0, 0.5, 1.0])
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (3, 20, 2)) * 1e9
    y = (rng.uniform(size=(3, 20)) < 0.5).astype(float)
    for backend in BACKENDS:
        for prior in (None, 1.0):
            fit = si.fit_logit(X, y, prior_sd=prior, backend=backend)
            for arr in (fit.coef, fit.stderr, fit.intercept):
                assert np.all(np.isfinite(arr))


def test_normalize_weights():
    w = si.normalize_weights(np.array([[0.5, -2.0, 1.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(w[0], [25.0, -100.0, 50.0])
    assert np.array_equal(w[1], [0.0, 0.0, 0.0])


# --- bad input --------------------------------------------------------------------------


def _ok():
    return np.zeros((3, 5, 2)), np.zeros((3, 5))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda X, y: (X.__setitem__((1, 3, 0), np.nan), (X, y))[1], "context 1, trial 3, attribute 0"),
        (lambda X, y: (X.__setitem__((2, 0, 1), np.inf), (X, y))[1], "context 2, trial 0"),
        (lambda X, y: (y.__setitem__((0, 4), 1.5), (X, y))[1], "context 0, trial 4"),
        (lambda X, y: (y.__setitem__((1, 1), np.nan), (X, y))[1], "context 1, trial 1"),
        (lambda X, y: (X, y[:, :4]), "shape"),
        (lambda X, y: (X[0], y), "dimensions"),
        (lambda X, y: (X[:0], y[:0]), "no contexts"),
    ],
)
def test_bad_input_names_context_and_trial(mutate, match):
    X, y = mutate(*_ok())
    with pytest.raises(si.InputError, match=match):
        si.fit_logit(X, y)


def test_empty_context_is_named():
    X, y = _ok()
    mask = np.ones((3, 5), bool)
    mask[2] = False
    with pytest.raises(si.InputError, match="context 2 has no trials"):
        si.fit_logit(X, y, mask=mask)


def test_bad_options():
    X, y = _ok()
    with pytest.raises(si.InputError, match="backend"):
        si.fit_logit(X, y, backend="torch")
    with pytest.raises(si.InputError, match="prior_sd"):
        si.fit_logit(X, y, prior_sd=0.0)
    with pytest.raises(si.InputError, match="count"):
        si.fit_logit(X, y + 3, n=np.full(y.shape, 2.0))
