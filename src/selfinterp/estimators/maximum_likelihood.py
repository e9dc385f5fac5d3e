"""Maximum likelihood logit per context, with separation flags."""

from __future__ import annotations

from dataclasses import dataclass

from ..logit import fit_logit
from ._result import EstimateResult, wald_interval

__all__ = ["MaximumLikelihood"]

@dataclass(frozen=True)
class MaximumLikelihood:
    """Plain maximum likelihood: :func:`selfinterp.fit_logit` with ``prior_sd=None``.

    Under (quasi-)complete separation the estimate does not exist: such
    contexts come back with ``separated=True`` and ``converged=False``, and
    their ``coef`` is wherever Newton stopped (large, in the separating
    direction).  The interval is the Wald interval ``coef -/+ 1.96 stderr``,
    meaningless where ``separated``.

    Parameters
    ----------
    intercept : bool
        Fit a position bias towards A.
    """

    intercept: bool = True

    def __call__(self, X, y, *, mask=None, rng=None) -> EstimateResult:
        """Fit X (A, T, K), y (A, T); ``rng`` is unused (the method is deterministic)."""
        fit = fit_logit(X, y, mask=mask, intercept=self.intercept, prior_sd=None)
        lower, upper = wald_interval(fit.coef, fit.stderr)
        return EstimateResult(coef=fit.coef, converged=fit.converged, lower=lower, upper=upper,
                              separated=fit.separated, intercept=fit.intercept)
