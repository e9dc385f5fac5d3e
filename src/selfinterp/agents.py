"""Utility agents and their choice rules.

utility = sum_k w_k (x_k - min_k) / (max_k - min_k).  A rule turns the utility
difference (A minus B) into P(choose A) or into a sampled choice:

- ``deterministic``: A iff its utility is strictly higher (ties go to B, as in
  the paper);
- ``logit``: sigmoid(scale * (dU + bias));
- ``probit``: Phi(scale * (dU + bias));

and any of them can lapse: with probability ``lapse`` the agent picks at
random.  ``bias`` is the position bias (intercept), positive towards A.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit, ndtr

from .design import normalise_values
from .errors import InputError

__all__ = ["ChoiceRule", "utility"]


def utility(values, weights, lo, hi) -> np.ndarray:
    """Utility of options ``values`` (..., K) under ``weights`` (..., K)."""
    return np.sum(np.asarray(weights) * normalise_values(values, lo, hi), axis=-1)


@dataclass(frozen=True)
class ChoiceRule:
    kind: Literal["deterministic", "logit", "probit"] = "deterministic"
    scale: float = 1.0
    lapse: float = 0.0
    bias: float = 0.0

    def __post_init__(self):
        if self.kind not in ("deterministic", "logit", "probit"):
            raise InputError(f"unknown choice rule {self.kind!r}")
        if not (0.0 <= self.lapse <= 1.0):
            raise InputError(f"lapse must lie in [0, 1], got {self.lapse}")
        if not self.scale > 0:
            raise InputError(f"scale must be positive, got {self.scale}")

    def p_choose_a(self, du) -> np.ndarray:
        """P(choose A) given utility differences ``du`` (A minus B)."""
        z = np.asarray(du, dtype=np.float64) + self.bias
        if self.kind == "deterministic":
            p = (z > 0).astype(np.float64)
        elif self.kind == "logit":
            p = expit(self.scale * z)
        else:
            p = ndtr(self.scale * z)
        return self.lapse * 0.5 + (1.0 - self.lapse) * p

    def choose(self, du, rng) -> np.ndarray:
        """Sampled choices (1 = A, 0 = B) given ``du``; ``rng`` as for default_rng."""
        p = self.p_choose_a(du)
        u = np.random.default_rng(rng).random(p.shape)
        return (u < p).astype(np.float64)
