"""Batched pooled correlations and the context jackknife of the power engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfinterp.score import cluster_bootstrap
from selfinterp.study.stats import context_sums, fisher_ci, jackknife, paired_test, pooled_r


@given(st.integers(0, 2**32 - 1), st.integers(3, 12), st.integers(2, 6))
def test_pooled_r_and_jackknife_match_brute_force(seed, C, K):
    gen = np.random.default_rng(seed)
    x = gen.normal(size=(3, C, K)) * 50
    y = x * gen.uniform(-1, 1) + gen.normal(size=(3, C, K)) * 40
    w = np.ones((3, C))
    w[1, 0] = 0  # study 1 leaves its first context out
    r, loo = jackknife(context_sums(x, y, w))
    for n in range(3):
        keep = w[n] > 0
        assert r[n] == pytest.approx(np.corrcoef(x[n][keep].ravel(), y[n][keep].ravel())[0, 1], abs=1e-10)
        for c in range(C):
            k2 = keep.copy()
            k2[c] = False
            expect = np.corrcoef(x[n][k2].ravel(), y[n][k2].ravel())[0, 1]
            assert loo[n, c] == pytest.approx(expect, abs=1e-10)
    assert np.allclose(pooled_r(x, y, w), r)


def test_undefined_correlation_is_nan_not_a_number():
    x = np.ones((1, 4, 5))
    y = np.random.default_rng(0).normal(size=(1, 4, 5))
    assert np.isnan(pooled_r(x, y)[0])


def test_jackknife_interval_agrees_with_the_scorers_cluster_bootstrap():
    # The power engine's intervals stand in for replicate's context bootstrap: on 200
    # simulated studies of 100 contexts their half-widths agree on average within 10%.
    gen = np.random.default_rng(5)
    N, C, K = 200, 100, 5
    w = gen.uniform(-100, 100, (N, C, K))
    rep = 0.3 * w + gen.normal(size=(N, C, 1)) * 25 + gen.normal(size=(N, C, K)) * 20
    r, loo = jackknife(context_sums(rep, w))
    lo, hi = fisher_ci(r, loo)
    boot = np.array([np.subtract(*cluster_bootstrap(rep[n], w[n], n_boot=500, rng=n)[0][::-1])
                     for n in range(N)]) / 2
    assert np.mean((hi - lo) / 2) == pytest.approx(boot.mean(), rel=0.10)


def test_paired_test_detects_a_real_difference_and_not_a_null_one():
    gen = np.random.default_rng(7)
    N, C, K = 400, 60, 5
    w = gen.uniform(-100, 100, (N, C, K))
    good = w + gen.normal(size=(N, C, K)) * 60
    bad = gen.normal(size=(N, C, K)) * 60  # no information
    bad2 = gen.normal(size=(N, C, K)) * 60
    _, _, rej = paired_test(context_sums(good, w), context_sums(bad, w))
    assert rej.mean() > 0.99
    # under the null the one-sided rejection rate is about 2.5%; with 400 studies a rate
    # above 8% has probability below 1e-5
    _, _, rej0 = paired_test(context_sums(bad2, w), context_sums(bad, w))
    assert rej0.mean() < 0.08
