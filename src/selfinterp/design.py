"""Decision designs: attributes, contexts, option pairs and target weights.

A context has K attributes, each with a name, units and a range [min, max].
Option values are drawn uniformly per attribute and rounded as the paper does;
target weights are K draws from U(-100, 100) rescaled so that the largest
|w| is exactly 100 and rounded to integers.  Every function that draws takes
``rng`` (anything ``np.random.default_rng`` accepts) and gives each context its
own stream, spawned from one ``SeedSequence``, so that a context's draws do not
depend on how many other contexts are drawn with it or in what order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._core.rng import seed_sequence
from .errors import InputError

__all__ = ["Attribute", "Context", "decimals_for_range", "round_values", "context_rngs",
           "draw_option_pairs", "draw_target_weights", "normalise_values"]


@dataclass(frozen=True)
class Attribute:
    name: str
    units: str
    min: float
    max: float

    def __post_init__(self):
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise InputError(f"attribute {self.name!r}: range [{self.min}, {self.max}] is not finite")
        if not self.max > self.min:
            raise InputError(f"attribute {self.name!r}: max ({self.max}) must exceed min ({self.min})")


@dataclass(frozen=True)
class Context:
    """A decision context: a question and its attributes."""

    name: str
    attributes: tuple[Attribute, ...]
    question: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def lo(self) -> np.ndarray:
        return np.array([a.min for a in self.attributes])

    @property
    def hi(self) -> np.ndarray:
        return np.array([a.max for a in self.attributes])


def decimals_for_range(span: float) -> int:
    """Decimals kept for values of an attribute of range ``span`` (the paper's rule).

    Integers if the range is >= 5, one decimal if 1 <= range < 5, and
    floor(-log10(range)) + 1 decimals below 1.
    """
    if not span > 0:
        raise InputError(f"range must be positive, got {span}")
    if span >= 5:
        return 0
    if span >= 1:
        return 1
    return int(math.floor(-math.log10(span))) + 1


def round_values(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Round each attribute's values (last axis) as the paper does."""
    out = np.empty_like(values, dtype=np.float64)
    for k, (a, b) in enumerate(zip(np.atleast_1d(lo), np.atleast_1d(hi))):
        out[..., k] = np.round(values[..., k], decimals_for_range(b - a))
    return out


def normalise_values(values, lo, hi) -> np.ndarray:
    """Range-normalise raw attribute values: (x - min) / (max - min)."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    if np.any(~(hi > lo)):
        k = int(np.flatnonzero(~(hi > lo).ravel())[0])
        raise InputError(f"attribute {k}: max must exceed min (got min={lo.ravel()[k]}, max={hi.ravel()[k]})")
    return (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)


def context_rngs(rng, n_contexts: int) -> list[np.random.Generator]:
    """One independent Generator per context, spawned from ``rng``'s SeedSequence
    (``rng``: None, an int, a SeedSequence or a Generator)."""
    return [np.random.default_rng(s) for s in seed_sequence(rng).spawn(n_contexts)]


def draw_option_pairs(context: Context, n_pairs: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_pairs`` option pairs (A, B), each (n_pairs, K), rounded as the paper does.

    ``rng``: None (fresh entropy), an int seed, a SeedSequence or a Generator.
    """
    gen = np.random.default_rng(rng)
    lo, hi = context.lo, context.hi
    a = round_values(gen.uniform(lo, hi, size=(n_pairs, len(lo))), lo, hi)
    b = round_values(gen.uniform(lo, hi, size=(n_pairs, len(lo))), lo, hi)
    return a, b


def draw_target_weights(n_contexts: int, n_attributes: int, rng=None) -> np.ndarray:
    """Target weights (n_contexts, n_attributes): U(-100, 100), max |w| = 100, integers.

    ``rng``: None (fresh entropy, a different draw each call), an int seed, a
    SeedSequence or a Generator, as for ``np.random.default_rng``.

    Context ``i`` uses the ``i``-th stream spawned from ``rng``, so the weights
    of the first contexts do not change when more contexts are drawn.
    """
    if n_contexts < 1 or n_attributes < 1:
        raise InputError(f"need at least one context and one attribute, got {n_contexts} x {n_attributes}")
    out = np.empty((n_contexts, n_attributes))
    for i, g in enumerate(context_rngs(rng, n_contexts)):
        w = g.uniform(-100.0, 100.0, n_attributes)
        out[i] = np.round(w * (100.0 / np.max(np.abs(w))))
    return out
