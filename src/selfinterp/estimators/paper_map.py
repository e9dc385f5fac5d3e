"""The paper's estimator: posterior mode under normal(0, 1) slopes."""

from __future__ import annotations

from dataclasses import dataclass

from ..logit import INTERCEPT_PRIOR_SD, fit_logit
from ._result import EstimateResult, wald_interval

__all__ = ["PaperMAP"]


@dataclass(frozen=True)
class PaperMAP:
    """Maximum a posteriori logit: normal(0, ``prior_sd``) slopes, normal(0, 2.5) intercept.

    :func:`selfinterp.fit_logit` with the paper's prior (Plunkett et al. 2025
    fitted this model with brms and normalised the slopes to max |w| = 100).
    The interval is the Laplace (Wald) interval ``coef -/+ 1.96 stderr`` from
    the inverse penalised Hessian: an approximate 95% credible interval.
    ``separated`` flags the contexts whose likelihood alone has no maximum
    (the prior still gives a finite mode there).

    Parameters
    ----------
    prior_sd : float
        Standard deviation of the normal prior on every slope (1.0 in the paper).
    intercept_prior_sd : float
        Standard deviation of the normal prior on the intercept.
    """

    prior_sd: float = 1.0
    intercept_prior_sd: float = INTERCEPT_PRIOR_SD

    def __call__(self, X, y, *, mask=None, rng=None) -> EstimateResult:
        """Fit X (A, T, K), y (A, T); ``rng`` is unused (the method is deterministic)."""
        fit = fit_logit(X, y, mask=mask, prior_sd=self.prior_sd,
                        intercept_prior_sd=self.intercept_prior_sd)
        lower, upper = wald_interval(fit.coef, fit.stderr)
        return EstimateResult(coef=fit.coef, converged=fit.converged, lower=lower, upper=upper,
                              separated=fit.separated, intercept=fit.intercept)
