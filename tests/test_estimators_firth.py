"""Firth's logit against independent references.

1. Published logistf results on two classic data sets (tests/results/firth_logistf.py).
2. A direct high-precision optimisation of the penalised likelihood with
   scipy (tests/results/firth_reference.py), to 1e-6.
3. The firthmodels package (PyPI), per context.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from selfinterp import simulate_choices
from selfinterp.design import draw_target_weights
from selfinterp.estimators import fit_firth

RESULTS = Path(__file__).parent / "results"


def _results_module(name):
    """Import tests/results/<name>.py by path (tests/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"estimator_results_{name}", RESULTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_LOGISTF = _results_module("firth_logistf")
_REFERENCE = _results_module("firth_reference")
ENDOMETRIAL, SEX2 = _LOGISTF.ENDOMETRIAL, _LOGISTF.SEX2
firth_reference = _REFERENCE.firth_reference


def _load(name, ref):
    d = np.genfromtxt(RESULTS / f"{name}.csv", delimiter=",", names=True)
    X = np.column_stack([d[c] for c in ref["columns"]])
    return X, d[ref["outcome"]]


@pytest.mark.parametrize("name, ref", [("endometrial", ENDOMETRIAL), ("sex2", SEX2)])
def test_firth_matches_published_logistf(name, ref):
    X, y = _load(name, ref)
    fit = fit_firth(X[None], y[None])
    assert fit.converged[0]
    # logistf stops once its step, score and log-likelihood change are below
    # 1e-5, so its 8th digit is not converged: its two published versions of
    # the sex2 'dia' coefficient differ by 1e-6
    np.testing.assert_allclose(fit.coef[0], ref["coef"], atol=2e-6)
    np.testing.assert_allclose(fit.intercept[0], ref["intercept"], atol=2e-6)
    ci = np.array(ref["ci"])
    np.testing.assert_allclose(fit.lower[0], ci[:, 0], atol=1e-6)
    np.testing.assert_allclose(fit.upper[0], ci[:, 1], atol=1e-6)


def test_endometrial_is_separated_and_still_has_finite_intervals():
    X, y = _load("endometrial", ENDOMETRIAL)
    fit = fit_firth(X[None], y[None])
    assert fit.separated[0]  # NV = 1 only with HG = 1: quasi-complete separation
    assert np.isfinite(fit.upper[0, 0]) and fit.upper[0, 0] > fit.coef[0, 0]


@pytest.mark.parametrize("name, ref", [("endometrial", ENDOMETRIAL), ("sex2", SEX2)])
def test_firth_matches_direct_optimisation_on_classic_data(name, ref):
    X, y = _load(name, ref)
    b, lo, hi = firth_reference(X, y)
    fit = fit_firth(X[None], y[None])
    np.testing.assert_allclose(fit.coef[0], b[:-1], atol=1e-6)
    np.testing.assert_allclose(fit.intercept[0], b[-1], atol=1e-6)
    np.testing.assert_allclose(fit.lower[0], lo[:-1], atol=1e-6)
    np.testing.assert_allclose(fit.upper[0], hi[:-1], atol=1e-6)


def _simulated(n=12, T=30, K=4, scale=0.02, seed=5):
    w = draw_target_weights(n, K, seed)
    return simulate_choices(w, T, scale=scale, rng=seed + 1)


def test_firth_matches_direct_optimisation_batched():
    X, y = _simulated()
    fit = fit_firth(X, y)
    assert fit.converged.all()
    for a in range(len(X)):
        b, lo, hi = firth_reference(X[a], y[a])
        np.testing.assert_allclose(fit.coef[a], b[:-1], atol=1e-6)
        np.testing.assert_allclose(fit.lower[a], lo[:-1], atol=1e-6)
        np.testing.assert_allclose(fit.upper[a], hi[:-1], atol=1e-6)


def test_firth_estimates_match_direct_optimisation_under_separation():
    X, y = _simulated(n=8, T=25, scale=0.2, seed=9)
    fit = fit_firth(X, y, intervals=False)
    assert fit.separated.sum() >= 4  # the case this test is about
    for a in range(len(X)):
        b, _, _ = _estimate_only(X[a], y[a])
        np.testing.assert_allclose(fit.coef[a], b[:-1], atol=1e-6)


def _estimate_only(X, y):
    _argmax = _REFERENCE._argmax
    Z = np.column_stack([X, np.ones(len(X))])
    b, _ = _argmax(Z, y, np.zeros(Z.shape[1]), np.ones(Z.shape[1], bool))
    return b, None, None


def test_firth_matches_firthmodels():
    firthmodels = pytest.importorskip("firthmodels")  # in the test extra
    X, y = _simulated(n=10, T=40, scale=0.03, seed=21)
    fit = fit_firth(X, y)
    for a in range(len(X)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # its NumPy backend: the same algorithm as its numba one, without compiling
            # firthmodels' kernels (about 30 s of CPU) for ten small fits
            m = firthmodels.FirthLogisticRegression(max_iter=100, gtol=1e-9, xtol=1e-9,
                                                    backend="numpy").fit(X[a], y[a])
            ci = m.conf_int(method="pl", tol=1e-9, max_iter=100)
        # firthmodels iterates Fisher scoring (linear convergence): its
        # estimate is within ~1e-7 of the maximum at these tolerances
        np.testing.assert_allclose(fit.coef[a], m.coef_, atol=1e-6)
        np.testing.assert_allclose(fit.lower[a], ci[:4, 0], atol=1e-6)
        np.testing.assert_allclose(fit.upper[a], ci[:4, 1], atol=1e-6)


def test_firth_handles_soft_labels_like_duplicated_rows():
    # y as a fraction with n trials is the same likelihood as n 0/1 rows
    X, y = _simulated(n=3, T=20, scale=0.03, seed=2)
    n = np.full(y.shape, 2.0)
    counts = y + np.roll(y, 1, axis=1)  # 0, 1 or 2 successes out of 2
    a = fit_firth(X, counts, n=n, intervals=False, check_separation=False)
    X2 = np.concatenate([X, X], axis=1)
    y2 = np.concatenate([y, np.roll(y, 1, axis=1)], axis=1)
    b = fit_firth(X2, y2, intervals=False, check_separation=False)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-8)


def test_firth_without_intercept_matches_direct_optimisation():
    X, y = _simulated(n=3, T=30, scale=0.03, seed=31)
    fit = fit_firth(X, y, intercept=False)
    assert np.all(fit.intercept == 0.0)
    for a in range(len(X)):
        b, lo, hi = firth_reference(X[a], y[a], intercept=False)
        np.testing.assert_allclose(fit.coef[a], b, atol=1e-6)
        np.testing.assert_allclose(fit.lower[a], lo, atol=1e-6)
        np.testing.assert_allclose(fit.upper[a], hi, atol=1e-6)


def test_firth_rejects_a_bad_level():
    from selfinterp import InputError

    X, y = _simulated(n=2)
    with pytest.raises(InputError, match="level"):
        fit_firth(X, y, level=1.5)


def test_firth_converges_under_separation_with_many_trials():
    """Deterministic choices, 500 trials: every context separated, estimates in
    the hundreds.  The fit converges in few iterations (the step cap grows
    with the parameters: a fixed cap of 5 per iteration took a median of 55
    iterations on such contexts, and 200 did not suffice for 1.2% of them)
    to the reference's estimate, and every profile bound converges (at commit
    c300ea3 17% of 1000 such contexts had a bound that did not: Newton steps
    below l*'s rounding were halved until the profile maximisation's 50
    iterations ran out)."""
    w = draw_target_weights(6, 2, np.random.SeedSequence([3, 2, 500]))
    X, y = simulate_choices(w, 500, scale=np.inf, rng=np.random.SeedSequence([4, 2, 500]))
    fit = fit_firth(X, y)
    assert fit.separated.all() and fit.converged.all()
    assert fit.n_iter.max() <= 40
    assert np.abs(fit.coef).max() > 300  # the regime of this test
    assert (fit.lower < fit.coef).all() and (fit.coef < fit.upper).all()
    for a in range(len(X)):
        b_ref, _, _ = _estimate_only(X[a], y[a])
        np.testing.assert_allclose(fit.coef[a], b_ref[:-1], rtol=1e-8)


@pytest.mark.parametrize("n, K, T, scale, seeds, a", [
    # Newton on the profile cycled inside its bracket (the profile switches
    # between two branches of the other parameters' maxima), moving one end
    # by 2e-4 an iteration, until its 60 iterations ran out
    (150, 8, 200, 10.0, ([8, 200, 3, 1], [8, 200, 3, 2]), 26),
    # with the bisection against cycling: the tangent's prediction of the
    # other parameters at a new profile point was out of l*'s domain (-inf),
    # which ended the bound; now the first-order start is tried there too
    (1000, 8, 10, 0.02, ([3, 8, 10], [4, 8, 10]), 333),
])
def test_firth_profile_search_recovers_where_it_gave_up(n, K, T, scale, seeds, a):
    """Context ``a`` of ``n`` drawn with these seeds (the draws depend on n)."""
    w = draw_target_weights(n, K, np.random.SeedSequence(seeds[0]))
    X, y = simulate_choices(w, T, scale=scale, rng=np.random.SeedSequence(seeds[1]))
    fit = fit_firth(X[a:a + 1], y[a:a + 1], check_separation=False)
    assert fit.converged[0]
    assert (fit.lower < fit.coef).all() and (fit.coef < fit.upper).all()


branch_bound = _REFERENCE.branch_bound


@pytest.mark.parametrize("K, T, scale, seed", [(2, 50, np.inf, 3), (5, 20, 0.1, 4)])
def test_firth_restarts_follow_higher_branches(K, T, scale, seed):
    """Under separation the other parameters can have several maxima at a
    fixed slope, and the profile followed from the estimate can cross its
    target on a lower one.  ``restarts`` (default: in separated contexts)
    maximises them again at the bound from two starts and follows a higher
    branch outward (docs/estimators.md, Firth).  Checked against the scipy
    reference's implementation of the same definition
    (tests/results/firth_reference.py, ``branch_bound``), to 1e-6:

    - started from the bound without restarts, the reference ends at the
      kernel's bound wherever its own restarts find the higher branch there
      (10 of the 12 bounds checked here; the maximum a restart reaches
      depends on the optimiser's path, and scipy's BFGS and the kernel's
      capped Newton from the same start can end at different local maxima);
    - at each of the kernel's bounds that moved, the reference's restarts
      find no higher branch.

    The regimes: 2 attributes, 50 deterministic choices (all separated), and
    the recommended regime's 5 attributes, 20 sharp choices (35 of 40
    separated)."""
    w = draw_target_weights(40, K, np.random.SeedSequence([seed, 1]))
    X, y = simulate_choices(w, T, scale=scale, rng=np.random.SeedSequence([seed, 2]))
    plain = fit_firth(X, y, restarts="none")
    fit = fit_firth(X, y)
    assert fit.converged.all() and plain.converged.all()
    # never narrower, and the same where no context is separated
    assert (fit.lower <= plain.lower + 1e-9).all() and (fit.upper >= plain.upper - 1e-9).all()
    moved = (plain.lower - fit.lower > 1e-6) | (fit.upper - plain.upper > 1e-6)
    assert not moved[~fit.separated].any()
    assert moved.sum() >= 6
    agreed = 0
    for a, j in np.argwhere(moved)[:6]:
        for side, before, after in ((-1, plain.lower, fit.lower), (1, plain.upper, fit.upper)):
            if abs(after[a, j] - before[a, j]) <= 1e-6:
                continue
            Xa, ya = X[a].astype(float), y[a].astype(float)
            c, gap = branch_bound(Xa, ya, j, side, after[a, j])
            assert c == after[a, j] and gap <= 1e-6
            c, _ = branch_bound(Xa, ya, j, side, before[a, j])
            if abs(c - before[a, j]) > 1e-6:
                assert abs(c - after[a, j]) <= 1e-6 * max(1.0, abs(c))
                agreed += 1
    assert agreed >= 4


def test_firth_restarts_all_and_bad_value():
    """``restarts="all"`` checks every context (on noisy, unseparated data
    nothing moves here); an unknown value is an input error."""
    from selfinterp import InputError

    X, y = _simulated(n=6)
    plain = fit_firth(X, y, restarts="none")
    every = fit_firth(X, y, restarts="all", check_separation=False)
    assert every.separated is None
    np.testing.assert_allclose(every.lower, plain.lower, rtol=0, atol=1e-12)
    np.testing.assert_allclose(every.upper, plain.upper, rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="restarts"):
        fit_firth(X, y, restarts="some")
