"""Coverage of the recommended intervals (Firth, profile penalised likelihood).

docs/estimators.md recommends Firth's intervals for logit (noisy) choosers
with at least 20 trials per context.  Here, for three such regimes spanning
the recommendation (near-random choices; the paper's 5 x 50 design with
noisy choices; sharp choices with 20 trials, where 98% of contexts are
separated), coverage of the true likelihood-scale slopes must lie in
[0.93, 0.97].

False-alarm budget: each regime has n = 2400 independent contexts and the
statistic is the mean over contexts of the share of that context's K
intervals covering.  Whatever the correlation between a context's K
indicators, the variance of that share is at most p (1 - p), so for a
correct 95% interval the statistic has sd <= sqrt(0.95 * 0.05 / 2400) =
0.00445, and P(|stat - 0.95| > 0.02) <= 2 Phi(-4.49) = 7e-6 per regime, 2.1e-5
for the three (normal approximation to the binomial; the exact binomial tail
for a single indicator per context is of the same order).
"""

from __future__ import annotations

import math

import pytest

from selfinterp.estimators import fit_firth
from selfinterp.estimators.benchmark import Regime, simulate_regime

N_CONTEXTS = 2400


@pytest.mark.slow
@pytest.mark.parametrize("regime", [Regime(50, 0.005), Regime(50, 0.02), Regime(20, 0.1)],
                         ids=lambda g: g.label)
def test_firth_interval_coverage_is_nominal(regime):
    data = simulate_regime(regime, N_CONTEXTS, seed=20250, replicate=99)
    fit = fit_firth(data["X"], data["y"], check_separation=False)
    assert fit.converged.mean() > 0.99
    covered = (fit.lower <= data["estimand"]) & (data["estimand"] <= fit.upper)
    coverage = covered.mean(axis=1).mean()
    assert 0.93 <= coverage <= 0.97, coverage


def test_deterministic_regime_has_no_likelihood_scale_estimand():
    data = simulate_regime(Regime(50, math.inf), 5, seed=1, replicate=0)
    assert data["estimand"] is None and not Regime(50, math.inf).estimand_defined
    assert Regime(50, math.inf, lapse=0.1).estimand_defined
