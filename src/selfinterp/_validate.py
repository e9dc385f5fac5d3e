"""Input checks shared by the array API: they run before any work starts."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def as_float_array(name: str, x, ndim: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def check_finite(name: str, arr: np.ndarray, dims: tuple[str, ...]) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        where = _first_bad(bad)
        named = ", ".join(f"{d} {i}" for d, i in zip(dims, where))
        raise InputError(f"{name} has a non-finite value ({arr[where]!r}) at {named}")


def check_range(name: str, arr: np.ndarray, lo: float, hi: np.ndarray | float,
                dims: tuple[str, ...]) -> None:
    bad = (arr < lo) | (arr > hi)
    if bad.any():
        where = _first_bad(bad)
        named = ", ".join(f"{d} {i}" for d, i in zip(dims, where))
        raise InputError(f"{name} must lie in [{lo}, {'n' if np.ndim(hi) else hi}], "
                         f"got {arr[where]!r} at {named}")


def broadcast_per_context(name: str, value, n_contexts: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n_contexts, float(arr))
    if arr.shape != (n_contexts,):
        raise InputError(f"{name} must be a scalar or have shape ({n_contexts},), got {arr.shape}")
    return arr.copy()
