"""Counter-based random numbers shared by the NumPy and numba kernels.

Every random number is a pure function of ``(key, context, index)``: a 64-bit
``key`` derived once from the caller's ``rng``, the *global* index of the
decision context and the index of the draw inside that context.  A result
therefore does not depend on the order in which contexts are processed, on how
they are batched or on the number of threads, and the NumPy reference and the
numba kernel produce bit-identical draws.

The mixing function is the SplitMix64 finaliser (Steele, Lea & Flood 2014),
applied to a Weyl sequence per context, which is how SplitMix64 itself
generates its stream; the context's own starting point is the finaliser of the
key plus the context index times a second odd constant, so that contexts get
independent-looking streams (the construction of ``SeedSequence`` spawning,
in counter form).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _notice  # noqa: F401  (the first-run compile notice)

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
CONTEXT_STRIDE = np.uint64(0xD1B54A32D192ED03)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
S30 = np.uint64(30)
S27 = np.uint64(27)
S31 = np.uint64(31)
S11 = np.uint64(11)
TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53


def seed_sequence(rng=None) -> np.random.SeedSequence:
    """The SeedSequence behind anything ``np.random.default_rng`` accepts.

    None gives fresh entropy from the operating system (a different result
    each call), an int seeds, a SeedSequence is used as it is and a
    Generator contributes its own SeedSequence (spawning from it advances it,
    so two calls with one Generator draw different numbers).
    """
    if isinstance(rng, np.random.SeedSequence):
        return rng
    if isinstance(rng, np.random.Generator):
        return rng.bit_generator.seed_seq
    return np.random.SeedSequence(rng)


def key_from_rng(rng) -> np.uint64:
    """Derive the 64-bit stream key from anything ``np.random.default_rng`` takes."""
    gen = np.random.default_rng(rng)
    return np.uint64(gen.integers(0, 2**64 - 1, dtype=np.uint64, endpoint=True))


@njit(cache=True, inline="always")
def mix64(z):
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)


@njit(cache=True, inline="always")
def context_seed(key, context):
    return mix64(key + (np.uint64(context) + np.uint64(1)) * CONTEXT_STRIDE)


@njit(cache=True, inline="always")
def uniform(cseed, index):
    """Uniform on [0, 1) with 53 random bits: draw ``index`` of a context's stream."""
    z = mix64(cseed + (np.uint64(index) + np.uint64(1)) * GOLDEN)
    return float(z >> S11) * TWO_M53


def mix64_np(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)


def context_seed_np(key: np.uint64, context: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return mix64_np(key + (context.astype(np.uint64) + np.uint64(1)) * CONTEXT_STRIDE)


def uniform_np(cseed: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Vectorised :func:`uniform`; ``cseed`` and ``index`` broadcast."""
    with np.errstate(over="ignore"):
        z = mix64_np(cseed + (index.astype(np.uint64) + np.uint64(1)) * GOLDEN)
    return (z >> S11).astype(np.float64) * TWO_M53
