"""Array-level simulator of A/B choices by utility agents."""

from __future__ import annotations

import numpy as np

from ._core.rng import key_from_rng
from ._validate import as_float_array, broadcast_per_context, check_finite
from .errors import InputError

__all__ = ["simulate_choices", "simulate_choices_jax"]


def simulate_choices(weights, n_trials: int, *, scale=1.0, intercept=0.0, rng=None,
                     first_context: int = 0, backend: str = "auto"):
    """Simulate A/B choices of logit agents with known attribute weights.

    Each context's options have attribute values drawn uniformly on the
    normalised range [0, 1]; ``X`` holds their differences, A minus B.
    P(choose A) = sigmoid(scale * (X @ w + intercept)); ``scale=np.inf`` is
    the paper's deterministic rule (ties go to B).

    Parameters
    ----------
    weights : array (A, K)
        Attribute weights per context.
    n_trials : int
        Choices per context.
    scale, intercept : float or array (A,)
        Inverse temperature and position bias (towards A), per context or shared.
    rng : seed, SeedSequence or Generator
        Anything ``np.random.default_rng`` accepts; one 64-bit key is drawn
        from it.  Context ``first_context + i`` then gets its own counter-based
        stream, so a result is the same whatever the batching or threading:
        simulating contexts 0..99 at once or as 0..49 and 50..99 (with
        ``first_context=50`` and the same key) gives the same numbers.
    first_context : int
        Global index of the first row of ``weights``.
    backend : {"auto", "numba", "numpy"}
        Both give bit-identical results; "auto" is numba.

    Returns
    -------
    X : ndarray (A, n_trials, K) float64, each entry in [-1, 1]
    y : ndarray (A, n_trials) float64 in {0, 1}
    """
    weights, scale, intercept = _check_arguments(weights, n_trials, scale, intercept)
    key = _key(rng)
    if backend in ("auto", "numba"):
        from ._core.simulate import simulate_numba

        return simulate_numba(weights, int(n_trials), scale, intercept, key, int(first_context))
    if backend == "numpy":
        from ._core.simulate import simulate_numpy

        return simulate_numpy(weights, int(n_trials), scale, intercept, key, int(first_context))
    raise InputError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")


def _check_arguments(weights, n_trials, scale, intercept):
    """Validate the simulators' shared arguments before any work; per-context scale and intercept."""
    weights = as_float_array("weights", weights, 2)
    check_finite("weights", weights, ("context", "attribute"))
    A, K = weights.shape
    if A == 0 or K == 0:
        raise InputError(f"weights must have at least one context and one attribute, got {weights.shape}")
    if int(n_trials) != n_trials or n_trials < 1:
        raise InputError(f"n_trials must be a positive integer, got {n_trials!r}")
    scale = broadcast_per_context("scale", scale, A)
    bad = np.isnan(scale) | (scale < 0)
    if bad.any():
        raise InputError(f"scale must be >= 0 (np.inf for the deterministic rule), got {scale[bad][0]!r} "
                         f"at context {int(np.flatnonzero(bad)[0])}")
    intercept = broadcast_per_context("intercept", intercept, A)
    check_finite("intercept", intercept, ("context",))
    return weights, scale, intercept


def _key(rng) -> np.uint64:
    if isinstance(rng, np.uint64):
        return rng
    return key_from_rng(rng)


def simulate_choices_jax(weights, n_trials: int, *, key, scale=1.0, intercept=0.0,
                         first_context: int = 0, dtype=np.float32):
    """Simulate on the JAX default device (a GPU when present), for fitting there.

    Same model and layout as :func:`simulate_choices`, but with JAX's random
    numbers: context ``first_context + i`` draws from
    ``jax.random.fold_in(key, first_context + i)``, so results do not depend
    on batching; they differ from the NumPy/numba draws (another generator).

    Parameters
    ----------
    weights : array (A, K)
    n_trials : int
    key : jax.random key
    scale, intercept : float or array (A,)
    first_context : int
    dtype : np.float32 or np.float64
        float64 runs under a local ``jax.enable_x64``.

    Returns
    -------
    X : jax.Array (A, n_trials, K), y : jax.Array (A, n_trials), on the device.
    """
    from .errors import require

    jax = require("jax", "jax")
    weights, scale, intercept = _check_arguments(weights, n_trials, scale, intercept)
    from ._core.simulate_jax import simulate_jax

    dtype = np.dtype(dtype)
    with jax.enable_x64(dtype == np.float64):
        return simulate_jax(weights.astype(dtype), int(n_trials), scale.astype(dtype),
                            intercept.astype(dtype), key, int(first_context), dtype=dtype)
