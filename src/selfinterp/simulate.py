"""Array-level simulator of A/B choices by utility agents."""

from __future__ import annotations

import numpy as np

from ._core.rng import key_from_rng
from ._validate import as_float_array, broadcast_per_context, check_finite
from .errors import InputError

__all__ = ["simulate_choices", "simulate_choices_jax"]


def simulate_choices(weights, n_trials: int, *, scale=1.0, intercept=0.0, rng=None,
                     first_context: int = 0, backend: str = "auto", out=None):
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
    rng : None, int, SeedSequence or Generator
        Anything ``np.random.default_rng`` accepts; one 64-bit key is drawn
        from it.  None (the default) draws fresh entropy: a different result
        each call; pass a seed to reproduce one.  Context ``first_context + i`` then gets its own counter-based
        stream, so a result is the same whatever the batching or threading:
        simulating contexts 0..99 at once or as 0..49 and 50..99 (with
        ``first_context=50`` and the same key) gives the same numbers.
    first_context : int
        Global index of the first row of ``weights``.
    backend : {"auto", "numba", "numpy"}
        Both give bit-identical results; "auto" is numba.
    out : tuple (X, y) of ndarrays, optional
        Arrays to write the results into (float64, C-contiguous, writeable, of
        the shapes below), as NumPy's ``out=``: a loop that simulates batch
        after batch then reuses its memory, and does not pay for the first
        touch of fresh pages, which at A = 100,000 x T = 50 costs the numba
        kernel more than its draws.

    Returns
    -------
    X : ndarray (A, n_trials, K) float64, each entry in [-1, 1]
    y : ndarray (A, n_trials) float64 in {0, 1}
        ``out`` itself when given.
    """
    weights, scale, intercept = _check_arguments(weights, n_trials, scale, intercept)
    if backend not in ("auto", "numba", "numpy"):
        raise InputError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")
    A, K = weights.shape
    if out is not None:
        _check_out(out, (A, int(n_trials), K))
    key = _key(rng)
    if backend in ("auto", "numba"):
        from ._core.simulate import simulate_numba

        return simulate_numba(weights, int(n_trials), scale, intercept, key, int(first_context), out=out)
    from ._core.simulate import simulate_numpy

    X, y = simulate_numpy(weights, int(n_trials), scale, intercept, key, int(first_context))
    if out is None:
        return X, y
    out[0][...] = X
    out[1][...] = y
    return out


def _check_out(out, shape):
    """``out`` must be two float64, C-contiguous, writeable arrays of the result's shapes."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise InputError("out must be a tuple (X, y) of two arrays")
    for name, arr, shp in (("X", out[0], shape), ("y", out[1], shape[:2])):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float64 or arr.shape != shp:
            got = (getattr(arr, "dtype", type(arr).__name__), getattr(arr, "shape", None))
            raise InputError(f"out {name} must be a float64 array of shape {shp}, got {got}")
        if not (arr.flags.c_contiguous and arr.flags.writeable):
            raise InputError(f"out {name} must be C-contiguous and writeable")
    if np.shares_memory(out[0], out[1]):
        raise InputError("out X and y must not share memory")


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
