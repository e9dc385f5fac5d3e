"""Linear probability model: least squares of the choice on the attribute differences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..logit import prepare_outcomes
from ._result import EstimateResult

__all__ = ["LinearProbability"]


@dataclass(frozen=True)
class LinearProbability:
    """Ordinary least squares of y (0/1) on X and an intercept, per context.

    Batched as one stacked minimum-norm least-squares solve (pseudo-inverse),
    so that contexts with fewer trials than parameters still get the
    minimum-norm solution; those are flagged ``converged=False`` (the
    solution is not unique).  The slopes are on the probability scale, not
    the logit's (``scale="other"``): compare them after normalisation only.
    No interval is given.
    """

    def __call__(self, X, y, *, mask=None, rng=None) -> EstimateResult:
        """Fit X (A, T, K), y (A, T); ``rng`` is unused."""
        Xc, f, w = prepare_outcomes(X, y, mask)
        A, T, K = Xc.shape
        # masked rows are zero rows of the weighted design: they drop out
        sw = np.sqrt(w)
        Z = np.concatenate([Xc, np.ones((A, T, 1))], axis=2) * sw[..., None]
        theta = np.einsum("apt,at->ap", np.linalg.pinv(Z), f * sw)
        rank = np.linalg.matrix_rank(Z)
        return EstimateResult(coef=np.ascontiguousarray(theta[:, :K]), converged=rank == K + 1,
                              intercept=theta[:, K].copy(), scale="other")
