"""Core kernels: pure array functions, no xarray, no I/O, no printing.

Each algorithm has a NumPy reference (``*_numpy``), a numba implementation
(``*_numba``) and, where useful, a JAX implementation (``*_jax``), all with
the same signature and the same results.
"""
