"""Simulation kernels: draw A/B option differences and choices.

Layout of the random draws of one context: trial ``t`` uses draws
``t * (2K + 1) + j``; ``j < K`` are option A's normalised attribute values,
``K <= j < 2K`` option B's, ``j = 2K`` the choice.  Both kernels follow it, so
their results are bit-identical.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .rng import context_seed, context_seed_np, uniform, uniform_np


def simulate_numpy(weights, n_trials, scale, intercept, key, first_context=0):
    """NumPy reference simulator; see :func:`selfinterp.simulate_choices`."""
    A, K = weights.shape
    D = 2 * K + 1
    ctx = np.arange(first_context, first_context + A, dtype=np.uint64)
    cseed = context_seed_np(key, ctx)[:, None, None]
    idx = (np.arange(n_trials, dtype=np.uint64)[:, None] * np.uint64(D)
           + np.arange(D, dtype=np.uint64)[None, :])
    u = uniform_np(cseed, idx[None])  # (A, T, D)
    X = u[:, :, :K] - u[:, :, K:2 * K]
    # Same summation order as the numba kernel, so ties resolve identically.
    eta = np.zeros((A, n_trials))
    for k in range(K):
        eta += X[:, :, k] * weights[:, k, None]
    eta += intercept[:, None]
    y = np.empty((A, n_trials))
    det = np.isinf(scale)
    if det.any():
        y[det] = (eta[det] > 0.0)
    sto = ~det
    if sto.any():
        z = scale[sto, None] * eta[sto]
        p = np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                     np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))
        y[sto] = u[sto, :, 2 * K] < p
    return X, y


@njit(cache=True, parallel=True, fastmath=False)
def simulate_numba(weights, n_trials, scale, intercept, key, first_context=0):
    """numba simulator, parallel over contexts; bit-identical to the reference."""
    A, K = weights.shape
    D = 2 * K + 1
    X = np.empty((A, n_trials, K))
    y = np.empty((A, n_trials))
    for a in prange(A):
        cs = context_seed(key, first_context + a)
        s = scale[a]
        det = math.isinf(s)
        b = intercept[a]
        for t in range(n_trials):
            base = t * D
            eta = 0.0
            for k in range(K):
                d = uniform(cs, base + k) - uniform(cs, base + K + k)
                X[a, t, k] = d
                eta += d * weights[a, k]
            eta += b
            if det:
                y[a, t] = 1.0 if eta > 0.0 else 0.0
            else:
                z = s * eta
                e = math.exp(-abs(z))
                p = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
                y[a, t] = 1.0 if uniform(cs, base + 2 * K) < p else 0.0
    return X, y
