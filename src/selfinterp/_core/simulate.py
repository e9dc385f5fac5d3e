"""Simulation kernels: draw A/B option differences and choices.

Layout of the random draws of one context: trial ``t`` uses draws
``t * (2K + 1) + j``; ``j < K`` are option A's normalised attribute values,
``K <= j < 2K`` option B's, ``j = 2K`` the choice (drawn, and ignored, under
the deterministic rule too, so that the layout does not depend on the rule).
Both kernels follow it and perform the same floating-point operations in the
same order (no fused multiply-add, the same exp), so their results are
bit-identical, not merely close.

A logit choice is A when ``u < sigmoid(z)``, ``z = scale * (x . w + b)``,
with ``u`` the choice draw.  The sigmoid uses the polynomial exp of
:mod:`.vecmath` (:func:`~.vecmath.exp_nonpos_np` / :func:`~.vecmath.logistic`),
written out operation by operation, because NumPy's and libm's ``exp`` may
differ in the last bit.

numba's on-disk cache is keyed on this file alone: a change to :mod:`.rng`
or :mod:`.vecmath` must come with a change here (or a cleared ``__pycache__``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, set_parallel_chunksize

from .rng import context_seed, context_seed_np, uniform, uniform_np
from .vecmath import exp_nonpos_np, logistic

BLOCK = 64  # contexts per work item


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
        e = exp_nonpos_np(-np.abs(z))
        inv = 1.0 / (1.0 + e)
        p = np.where(z >= 0.0, inv, e * inv)
        y[sto] = u[sto, :, 2 * K] < p
    return np.ascontiguousarray(X), y


@njit(cache=True, error_model="numpy", _nrt=False)
def simulate_context(cs, w, s, b, T, u, xt, eta, y):
    """One context's draws: ``xt[k, t]`` (attribute-major, k < K) and ``y[t]``, t < T.

    ``cs`` is the context's seed (:func:`.rng.context_seed`), ``w`` its (K,)
    weights, ``s`` and ``b`` its scale and intercept; ``u`` (T (2K + 1),) and
    ``eta`` (T,) are work space.  Shared by the simulator and the fused
    simulate-and-fit kernel, which draws into the estimator's own buffers.
    """
    K = w.shape[0]
    D = 2 * K + 1
    # all of the context's draws in one loop: it vectorises (64-bit multiplies)
    for i in range(T * D):
        u[i] = uniform(cs, i)
    for t in range(T):
        eta[t] = 0.0
    for k in range(K):  # same summation order as the reference
        wk = w[k]
        for t in range(T):
            d = u[t * D + k] - u[t * D + K + k]
            xt[k, t] = d
            eta[t] += d * wk
    if math.isinf(s):
        for t in range(T):
            y[t] = 1.0 if eta[t] + b > 0.0 else 0.0
    else:
        for t in range(T):
            p = logistic(s * (eta[t] + b))[1]
            y[t] = 1.0 if u[t * D + 2 * K] < p else 0.0


@njit(cache=True, parallel=True, error_model="numpy")
def _simulate_blocks(weights, n_trials, scale, intercept, key, first_context, X, y):
    A, K = weights.shape
    T = n_trials
    n_blocks = (A + BLOCK - 1) // BLOCK
    for blk in prange(n_blocks):
        u = np.empty(T * (2 * K + 1))
        xt = np.empty((K, T))  # attribute-major, so the loops over trials vectorise
        eta = np.empty(T)
        for a in range(blk * BLOCK, min(A, (blk + 1) * BLOCK)):
            simulate_context(context_seed(key, first_context + a), weights[a], scale[a],
                             intercept[a], T, u, xt, eta, y[a])
            for t in range(T):
                for k in range(K):
                    X[a, t, k] = xt[k, t]


def simulate_numba(weights, n_trials, scale, intercept, key, first_context=0, out=None):
    """numba simulator, parallel over blocks of contexts; bit-identical to the reference.

    ``out``: (X, y) to write into (checked by the caller), else new arrays.
    """
    A, K = weights.shape
    X, y = (np.empty((A, n_trials, K)), np.empty((A, n_trials))) if out is None else out
    old = set_parallel_chunksize(1)
    try:
        _simulate_blocks(weights, int(n_trials), scale, intercept, np.uint64(key),
                         int(first_context), X, y)
    finally:
        set_parallel_chunksize(old)
    return X, y
