"""A counting heuristic: how often the choice follows each attribute's sign."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..logit import prepare_outcomes
from ._result import EstimateResult

__all__ = ["SignAgreement"]


@dataclass(frozen=True)
class SignAgreement:
    """Per attribute, the mean of sign(x_k) * (2y - 1) over a context's trials.

    +1 when A was chosen every time it was better on attribute k, -1 when it
    was never chosen then: vote counting, the uncentred correlation of
    sign(x_k) with the choice.  It needs no fitting, ignores magnitudes and
    the other attributes, and is on its own scale (``scale="other"``).
    Always ``converged``; no interval.
    """

    def __call__(self, X, y, *, mask=None, rng=None) -> EstimateResult:
        """Score X (A, T, K), y (A, T); ``rng`` is unused."""
        Xc, f, w = prepare_outcomes(X, y, mask)
        votes = np.einsum("atk,at->ak", np.sign(Xc), w * (2.0 * f - 1.0))
        coef = votes / w.sum(axis=1)[:, None]
        return EstimateResult(coef=coef, converged=np.ones(len(coef), dtype=bool), scale="other")
