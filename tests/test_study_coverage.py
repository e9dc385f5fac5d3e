"""Coverage of replicate's 95% intervals on studies simulated from the built-in model.

The full check (1,000 studies, 2,000 resamples; 94.5% to 95.8% for every
metric) is benchmarks/coverage_study.py, recorded in docs/study.md.  Here a
smaller run (200 studies, 300 resamples: a few seconds) guards against a gross
failure.
"""

from __future__ import annotations

from selfinterp.study import DEFAULT_MODEL
from selfinterp.study.coverage import COVERAGE_METRICS, coverage, true_values


def test_replicate_intervals_cover_the_true_values():
    truth = true_values(DEFAULT_MODEL, DEFAULT_MODEL.design, truth_contexts=20_000)
    res = coverage(DEFAULT_MODEL, DEFAULT_MODEL.design, n_studies=200, n_boot=300, seed=1, truth=truth)
    for k in COVERAGE_METRICS:
        # false-alarm rate: 200 intervals of nominal 95%: 174 or fewer covering has binomial
        # probability 9e-6 per metric (5.4e-5 for the six), so 175 (87.5%) is the bound
        assert res[k]["coverage"] >= 175 / 200, (k, res[k])
    # the estimators are unbiased for the population values at this design (sd of a mean
    # of 200 studies < 0.003; the truth itself has sd ~0.003)
    for k in COVERAGE_METRICS:
        assert abs(res[k]["mean_estimate"] - res[k]["truth"]) < 0.015, k
