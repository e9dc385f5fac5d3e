"""JAX simulator: draw A/B option differences and choices on the default device.

The same model as :mod:`.simulate` with JAX's own random numbers: context
``first_context + a`` draws from ``jax.random.fold_in(key, first_context + a)``,
a (n_trials, 2K + 1) block of uniforms laid out as in :mod:`.simulate`
(A's attributes, B's attributes, the choice draw).  Results therefore do not
depend on batching, but they are not the numbers of the NumPy/numba kernels
(another generator).  JAX is imported on first use only.
"""

from __future__ import annotations

from functools import partial

_CACHE: dict = {}


def _build():
    import jax
    import jax.numpy as jnp

    def one(k, w, s, b, *, n_trials, dtype):
        K = w.shape[0]
        u = jax.random.uniform(k, (n_trials, 2 * K + 1), dtype=dtype)
        x = u[:, :K] - u[:, K:2 * K]
        eta = x @ w + b
        stochastic = u[:, 2 * K] < jax.nn.sigmoid(s * eta)
        y = jnp.where(jnp.isinf(s), eta > 0, stochastic)
        return x, y.astype(dtype)

    def draw(weights, scale, intercept, key, ctx, n_trials, dtype, trials_first=False):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, ctx)
        axes = (2, 1) if trials_first else (0, 0)  # X (T, K, A), y (T, A): contexts last
        return jax.vmap(partial(one, n_trials=n_trials, dtype=dtype), out_axes=axes)(
            keys, weights, scale, intercept)

    @partial(jax.jit, static_argnames=("n_trials", "dtype", "trials_first"))
    def simulate(weights, scale, intercept, key, first_context, *, n_trials, dtype,
                 trials_first=False):
        ctx = first_context + jnp.arange(weights.shape[0], dtype=jnp.uint32)
        return draw(weights, scale, intercept, key, ctx, n_trials, dtype, trials_first)

    @partial(jax.jit, static_argnames=("n_trials", "dtype"))
    def simulate_ids(weights, scale, intercept, key, ctx, *, n_trials, dtype):
        return draw(weights, scale, intercept, key, ctx, n_trials, dtype)

    return simulate, simulate_ids


def simulate_jax(weights, n_trials, scale, intercept, key, first_context=0, dtype=None,
                 contexts=None, trials_first=False):
    """Simulate on the JAX default device; returns JAX arrays X (A, T, K), y (A, T).

    ``weights`` (A, K), ``scale`` and ``intercept`` (A,) (np.inf scale: the
    deterministic rule, ties to B); ``key`` a ``jax.random`` key.  ``dtype``
    defaults to the dtype of ``weights``.  Row ``a`` is context
    ``first_context + a``, or ``contexts[a]`` when that (A,) array of context
    numbers is given (to draw again, in one call, the contexts of a batch that
    need their choices).  ``trials_first=True`` lays the same draws out as
    X (T, K, A) and y (T, A), contexts last (the CUDA kernel's layout).  Every
    input is moved to the device explicitly (``jax.device_put``; a no-op for
    arrays already there), so the call runs under
    ``jax.transfer_guard("disallow")``.
    """
    import jax
    import numpy as np

    if "sim" not in _CACHE:
        _CACHE["sim"], _CACHE["sim_ids"] = _build()
    dtype = np.dtype(weights.dtype if dtype is None else dtype)
    put = jax.device_put
    args = (put(weights.astype(dtype)), put(scale.astype(dtype)), put(intercept.astype(dtype)), key)
    if contexts is None:
        return _CACHE["sim"](*args, put(np.uint32(first_context)), n_trials=int(n_trials),
                             dtype=dtype, trials_first=bool(trials_first))
    if trials_first:
        raise ValueError("trials_first is for simulate_jax's own contexts (no contexts=)")
    return _CACHE["sim_ids"](*args, put(np.asarray(contexts, dtype=np.uint32)),
                             n_trials=int(n_trials), dtype=dtype)
