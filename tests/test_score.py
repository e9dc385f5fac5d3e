"""Scorer: reference values, differential checks against plain loops, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from selfinterp import score as sc
from selfinterp.errors import InputError


def _data(seed=1, C=60, K=5, noise=1.0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(C, K))
    return a, a + noise * rng.normal(size=(C, K))


def test_pooled_r_is_numpys_correlation_of_the_flattened_pairs():
    a, b = _data()
    assert sc.pooled_r(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-14)


def test_paper_interval_for_gpt4o():
    """r = 0.54 from 500 pairs: the paper's interval is about 0.47-0.62 (README of the release)."""
    lo, hi = sc.regression_ci(0.54, 500)
    assert lo == pytest.approx(0.47, abs=0.005) and hi == pytest.approx(0.61, abs=0.01)
    flo, fhi = sc.fisher_ci(0.54, 500)
    # Fisher z of 0.54 is 0.6042, se 1/sqrt(497): tanh(0.6042 -+ 0.0879)
    assert (flo, fhi) == pytest.approx((np.tanh(0.60416 - 0.08792), np.tanh(0.60416 + 0.08792)), abs=1e-4)


def test_cluster_bootstrap_matches_explicit_resampling():
    """The counts-matrix shortcut equals resampling rows and calling corrcoef."""
    a, b = _data(C=30)
    (lo, hi), draws = sc.cluster_bootstrap(a, b, n_boot=300, rng=7)
    idx = np.random.default_rng(7).integers(0, 30, size=(300, 30))
    ref = np.array([np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in idx])
    np.testing.assert_allclose(draws, ref, atol=1e-12)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(ref, [0.025, 0.975])), abs=1e-12)


def test_paired_difference_matches_explicit_resampling():
    a, b = _data(seed=2, C=25)
    a2 = b + 0.3 * np.random.default_rng(3).normal(size=b.shape)
    diff, ci, draws = sc.paired_difference(a, b, a2, b, n_boot=200, rng=11)
    assert diff == pytest.approx(sc.pooled_r(a2, b) - sc.pooled_r(a, b))
    idx = np.random.default_rng(11).integers(0, 25, size=(200, 25))
    ref = [np.corrcoef(a2[i].ravel(), b[i].ravel())[0, 1] - np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1]
           for i in idx]
    np.testing.assert_allclose(draws, ref, atol=1e-12)
    assert ci[0] < diff < ci[1]


def test_shuffled_null_matches_explicit_permutations():
    a, b = _data(seed=4, C=20)
    null = sc.shuffled_null(a, b, n_perm=100, rng=5)
    perm = np.argsort(np.random.default_rng(5).random((100, 20)), axis=1)
    ref = [np.corrcoef(a.ravel(), b[p].ravel())[0, 1] for p in perm]
    np.testing.assert_allclose(null.draws, ref, atol=1e-12)
    assert null.p_value == pytest.approx((1 + np.sum(np.array(ref) >= sc.pooled_r(a, b))) / 101)


def test_shuffled_null_is_calibrated_under_independence():
    """Independent reports: the one-sided p-value is uniform, so p < 0.05 in about 5% of datasets.

    200 datasets: the count of p < 0.05 is Binomial(200, 0.05) (mean 10); we accept 0..28,
    whose probability under the null is > 1 - 1e-5 (false-alarm rate below 1e-4).
    """
    rng = np.random.default_rng(123)
    hits = 0
    for _ in range(200):
        a = rng.normal(size=(20, 4))
        b = rng.normal(size=(20, 4))
        hits += sc.shuffled_null(a, b, n_perm=199, rng=rng).p_value < 0.05
    assert hits <= 28


def test_constant_baseline_r_and_cosine():
    rng = np.random.default_rng(0)
    learned = np.abs(rng.normal(size=(50, 3))) * [3.0, 1.0, 1.0]  # mostly positive, attr1 largest
    const = sc.constant_baseline(np.zeros((50, 3)) + [1, 0, 0], learned, constant=[1.0, 0.2, 0.2])
    # cosine rewards a constant that points where positive weights point
    assert const["cosine"] > 0.7
    assert const["r"] == pytest.approx(np.corrcoef(np.tile([1, 0.2, 0.2], 50), learned.ravel())[0, 1])
    assert sc.constant_baseline(learned, learned, constant=[5.0, 5.0, 5.0])["r"] is None


def test_per_context_r_sign_agreement_and_mean_reports():
    a = np.array([[1.0, 2, 3], [1, 1, 1], [3, 2, 1]])
    b = np.array([[2.0, 4, 6], [1, 2, 3], [1, 2, 3]])
    r = sc.per_context_r(a, b)
    assert r[0] == pytest.approx(1) and np.isnan(r[1]) and r[2] == pytest.approx(-1)
    assert sc.sign_agreement(np.array([[1.0, -1], [0, 2]]), np.array([[3.0, 1], [0, -1]])) == 0.5
    rep = np.array([[[1.0, 2], [3, 4], [np.nan, np.nan]], [[9, 9], [0, 0], [0, 0]]])
    valid = np.array([[True, True, False], [False, False, False]])
    mean, n = sc.mean_reports(rep, valid)
    np.testing.assert_array_equal(mean, [[2, 3], [0, 0]])
    np.testing.assert_array_equal(n, [2, 0])


@pytest.mark.parametrize("bad, match", [
    (lambda a, b: (a[:, :2], b), "same shape"),
    (lambda a, b: (np.where(a > 1.5, np.nan, a), b), r"non-finite value .* at context"),
    (lambda a, b: (np.ones_like(a), b), "undefined"),
    (lambda a, b: (a[:1], b[:1]), "at least 2 contexts"),
])
def test_bad_input_is_an_error(bad, match):
    a, b = _data()
    with pytest.raises(InputError, match=match):
        sc.pooled_r(*bad(a, b))


# ---------------------------------------------------------------------------------------------
# properties

pairs = st.integers(2, 12).flatmap(lambda C: st.integers(1, 5).flatmap(lambda K: st.tuples(
    hnp.arrays(np.float64, (C, K), elements=st.floats(-100, 100)),
    hnp.arrays(np.float64, (C, K), elements=st.floats(-100, 100)))))


def _defined(a, b):
    return np.ptp(a) > 1e-6 and np.ptp(b) > 1e-6


@given(pairs, st.randoms(use_true_random=False))
def test_pooled_r_properties(ab, rnd):
    a, b = ab
    if not _defined(a, b):
        return
    r = sc.pooled_r(a, b)
    assert -1 <= r <= 1
    assert sc.pooled_r(b, a) == pytest.approx(r, abs=1e-9)  # symmetric
    perm = list(range(a.shape[0]))
    rnd.shuffle(perm)
    assert sc.pooled_r(a[perm], b[perm]) == pytest.approx(r, abs=1e-9)  # contexts are exchangeable
    assert sc.pooled_r(3 * a + 7, b) == pytest.approx(r, abs=1e-9)  # affine in one argument
    assert sc.pooled_r(-a, b) == pytest.approx(-r, abs=1e-9)
    n = a.size
    if n > 3:
        lo, hi = sc.fisher_ci(r, n)
        assert lo <= r <= hi
    lo, hi = sc.regression_ci(r, max(n, 3))
    assert -1 <= lo <= r <= hi <= 1


@given(st.floats(-1, 1), st.integers(3, 10**6), st.floats(0.5, 0.999))
def test_every_correlation_interval_lies_within_minus_one_one(r, n, level):
    """The paper-style interval of a strong correlation from few pairs (r = 0.95, n = 10: the slope's
    interval reaches 1.035) is cut at 1; the Fisher interval never leaves (-1, 1)."""
    lo, hi = sc.regression_ci(r, n, level)
    assert -1 <= lo <= r <= hi <= 1
    if n > 3:
        lo, hi = sc.fisher_ci(r, n, level)
        assert -1 <= lo <= r <= hi <= 1


def test_the_studentized_cluster_bootstrap_holds_its_level():
    """600 studies of the paper's size (100 contexts x 5 attributes) whose reports share a context
    effect (the pairs are clustered): the studentised interval covers the population r (from
    400,000 contexts) 95% of the time.  The band [92.5%, 97.5%] is +-2.8 Monte-Carlo standard
    errors of a true 95% (0.89 points): a false alarm has probability 0.5%; the seeds are fixed."""
    def draw(C, g):
        w = g.uniform(-100, 100, (C, 5))
        return 0.5 * w + 60 * g.standard_normal((C, 5)) + 30 * g.standard_normal((C, 1)), w

    truth = sc.pooled_r(*draw(400_000, np.random.default_rng(0)))
    hits = []
    for i in range(600):
        (lo, hi), _ = sc.cluster_bootstrap(*draw(100, np.random.default_rng(1000 + i)), n_boot=500, rng=i,
                                           method="studentized")
        hits.append(lo <= truth <= hi)
    assert 0.925 <= np.mean(hits) <= 0.975, np.mean(hits)


def test_the_studentized_paired_difference_holds_its_level_and_its_se_is_the_bootstraps():
    """The training effect's interval: 600 studies of 100 contexts x 5 attributes, reports before
    (slope 0.3) and after (slope 0.6) training sharing their learned weights and a context effect.
    The studentised interval covers the population difference (from 400,000 contexts) within
    [92.5%, 97.5%] (+-2.8 Monte-Carlo standard errors: false alarm 0.5%; fixed seeds)."""
    def draw(C, g):
        w = g.uniform(-100, 100, (C, 5))
        u = 30 * g.standard_normal((C, 1))
        return (0.3 * w + 60 * g.standard_normal((C, 5)) + u, 0.6 * w + 60 * g.standard_normal((C, 5)) + u, w)

    x1, x2, w = draw(400_000, np.random.default_rng(0))
    truth = sc.pooled_r(x2, w) - sc.pooled_r(x1, w)
    hits = []
    for i in range(600):
        x1, x2, w = draw(100, np.random.default_rng(2000 + i))
        _, (lo, hi), _ = sc.paired_difference(x1, w, x2, w, n_boot=400, rng=i)
        hits.append(lo <= truth <= hi)
    assert 0.925 <= np.mean(hits) <= 0.975, np.mean(hits)
    # the delta-method standard error of the difference is the bootstrap's spread (C = 400: within 10%)
    x1, x2, w = draw(400, np.random.default_rng(1))
    d, _, draws = sc.paired_difference(x1, w, x2, w, n_boot=4000, rng=2)
    S1, S2 = sc._stats(x1, w), sc._stats(x2, w)
    se = sc._robust_se(sc._influence(S2, None)[2] - sc._influence(S1, None)[2], None)[0]
    assert se == pytest.approx(draws.std(), rel=0.1)


def test_the_paper_style_interval_is_cut_at_one():
    lo, hi = sc.regression_ci(0.95, 10)
    assert hi == 1.0 and lo == pytest.approx(0.95 - 2.306 * np.sqrt((1 - 0.95**2) / 8), abs=1e-3)


@given(pairs, st.integers(0, 2**32 - 1))
def test_bootstrap_properties(ab, seed):
    a, b = ab
    if not _defined(a, b):
        return
    try:
        (lo, hi), draws = sc.cluster_bootstrap(a, b, n_boot=64, rng=seed)
    except InputError:
        return  # every resample degenerate: reported, not returned as NaN
    assert np.isfinite(draws).all() and -1 <= lo <= hi <= 1
    for method in ("bca", "studentized"):
        (lo, hi), same = sc.cluster_bootstrap(a, b, n_boot=64, rng=seed, method=method)
        np.testing.assert_array_equal(same, draws)  # the same resamples, another interval from them
        assert -1 <= lo <= hi <= 1
    # the same seed gives the same draws
    np.testing.assert_array_equal(sc.cluster_bootstrap(a, b, n_boot=64, rng=seed)[1], draws)
    # an exact copy of the data gives a zero paired difference in every resample, whatever the method
    for method in ("studentized", "bca", "percentile"):
        d, ci, dd = sc.paired_difference(a, b, a, b, n_boot=32, rng=seed, method=method)
        assert d == 0 and ci == (0.0, 0.0)
    # any two conditions: a difference of correlations, its interval within [-2, 2]
    for method in ("studentized", "bca", "percentile"):
        try:
            d, (lo, hi), dd = sc.paired_difference(a, b, b, a[::-1], n_boot=32, rng=seed, method=method)
        except InputError:
            break
        assert -2 <= lo <= hi <= 2 and np.isfinite(dd).all()


def test_score_summary_bundles_the_pieces():
    a, b = _data(C=100)
    s = sc.score(a, b, n_boot=2000, rng=0)
    assert s.r == pytest.approx(sc.pooled_r(a, b)) and s.n == 500 and s.n_contexts == 100
    assert s.ci[0] < s.r < s.ci[1]
    d = s.as_dict()
    assert set(d) >= {"r", "ci", "n"} and len(d["ci"]) == 2


def test_dataset_wrappers_average_valid_reports_and_align_contexts():
    import xarray as xr

    from selfinterp.io import reports_dataset, scenarios_dataset

    rng = np.random.default_rng(8)
    C, R, K = 6, 4, 3
    names = [f"c{i}" for i in range(C)]
    scen = scenarios_dataset(names, [[f"a{k}" for k in range(K)]] * C, np.zeros((C, K)), np.ones((C, K)))
    rep = rng.normal(size=(C, R, K))
    valid = rng.random((C, R)) < 0.7
    valid[2] = False  # a context without any valid reply
    valid[0, 0] = True
    ds = reports_dataset(rep, valid, context=names, scenarios=scen)
    learned = xr.DataArray(rng.normal(size=(C, K)), dims=("context", "attribute"),
                           coords={"context": names[::-1], "attribute": ds["attribute"].values})
    mean, n_valid = sc.mean_reports_dataset(ds)
    assert list(mean["context"].values) == [n for n in names if n != "c2"]
    assert int(n_valid.sel(context="c2")) == 0
    s = sc.score_reports(ds, learned, n_boot=500, rng=0)
    keep = [i for i in range(C) if i != 2]
    ref = np.array([rep[i][valid[i]].mean(0) for i in keep])
    assert s.r == pytest.approx(sc.pooled_r(ref, learned.sel(context=[names[i] for i in keep]).values))
    assert s.n_contexts == 5
