"""Benchmark of the numeric core: estimators and simulator, side by side on the same data.

One run, one data set per size (K = 5 attributes, paper-like weights):

* estimators: selfinterp's numba and JAX backends (all contexts) against a loop
  of statsmodels ``Logit`` and of scikit-learn ``LogisticRegression`` (one
  BLAS thread via threadpoolctl, tight tolerances).  The loops fit a subset of
  the contexts and their choices/s are extrapolated per choice: a loop's cost
  is linear in the number of contexts, and fitting 100,000 contexts one at a
  time would take an hour;
* agreement: the max abs difference of the normalised weights (max |w| = 100)
  between every method and the numba backend, on the same objective
  (statsmodels: plain maximum likelihood; scikit-learn: L2 with C = 1, i.e.
  the normal(0, 1) prior on the slopes and a flat intercept), and the
  correlation of the numba weights with the targets;
* simulator: numba (and JAX) against a plain vectorised NumPy simulator
  (``rng.uniform`` draws, the same model);
* memory: peak resident memory of fitting 1e6 contexts x 50 trials x 5
  attributes, in a fresh process (``--memory``).

Times are medians of ``--repeats`` runs after a warm-up (compilation excluded;
numba's cache makes it a one-off anyway).  The machine may be shared: the
ratios between methods, measured in the same run, are the figures to quote;
the script also prints the CPU time the process got, so that a loaded machine
shows.  Usage::

    python benchmarks/bench_core.py            # A=10,000 x T=100, A=100,000 x T=50, A=2,000 x T=500
    python benchmarks/bench_core.py --quick    # small sizes, a minute
    python benchmarks/bench_core.py --memory   # adds the 1e6 x 50 x 5 memory check
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np

import selfinterp as si
from selfinterp.logit import normalize_weights

K = 5


def paper_weights(A, rng):
    """Targets as in the paper (U(-100, 100), max |w| = 100), on a logit scale of max 2.5."""
    w = rng.uniform(-100, 100, (A, K))
    w = 100 * w / np.max(np.abs(w), axis=1, keepdims=True)
    return w / 100 * 2.5


def timed(fn, repeats):
    """Median wall time and median CPU time (this process, all threads) of ``fn()``."""
    fn()  # warm-up: compilation, caches
    walls, cpus = [], []
    out = None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus)), out


def peak_traced(fn):
    """Peak of the memory allocated through Python and NumPy during ``fn()`` (bytes).

    tracemalloc sees NumPy's arrays (the outputs and temporaries that scale
    with the data), not numba's per-block work buffers (a few kB) nor JAX's
    device buffers; measured in a separate, untimed call.
    """
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def numpy_simulator(weights, T, rng):
    """The plain vectorised NumPy simulator the issue compares against."""
    A, K = weights.shape
    X = rng.uniform(size=(A, T, K)) - rng.uniform(size=(A, T, K))
    p = 1.0 / (1.0 + np.exp(-np.einsum("atk,ak->at", X, weights)))
    return X, (rng.uniform(size=(A, T)) < p).astype(np.float64)


def statsmodels_loop(X, y):
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    out = np.full((len(X), K), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        for a in range(len(X)):
            Z = np.column_stack([X[a], np.ones(len(X[a]))])
            try:
                res = sm.Logit(y[a], Z).fit(method="newton", tol=1e-10, maxiter=100, disp=0)
                out[a] = res.params[:K]
            except Exception:  # perfect separation raises in older statsmodels
                pass
    return out


def sklearn_loop(X, y):
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((len(X), K))
    for a in range(len(X)):
        if y[a].min() == y[a].max():  # scikit-learn refuses one-class data
            continue
        m = LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-10, max_iter=200)
        out[a] = m.fit(X[a], y[a]).coef_[0]
    return out


def jax_on_device(weights, T, dtype):
    """Simulate and fit on the JAX default device, data never leaving it."""
    import jax

    from selfinterp._core.logit_jax import fit_batch_jax
    from selfinterp.logit import prior_precision
    from selfinterp.simulate import simulate_choices_jax

    prec = prior_precision(K, True, 1.0)

    def run():
        with jax.enable_x64(dtype == np.float64):
            X, y = simulate_choices_jax(weights, T, key=jax.random.key(0), dtype=dtype)
            out = fit_batch_jax()(X, y, jax.numpy.ones_like(y), jax.numpy.asarray(prec, dtype),
                                  1e-8 if dtype == np.float64 else 16 * np.finfo(dtype).eps,
                                  1e-12 if dtype == np.float64 else 16 * np.finfo(dtype).eps,
                                  fit_intercept=True, max_iter=100, check_separation=True,
                                  ml=False)
            return jax.block_until_ready(out)
    return run


def maxdiff(a, b, ok):
    return float(np.max(np.abs(normalize_weights(a[ok]) - normalize_weights(b[ok])))) if ok.any() else np.nan


def bench_size(A, T, n_loop, repeats, rng, use_jax, rows):
    w = paper_weights(A, rng)
    n = A * T
    print(f"\n=== A = {A:,} contexts x T = {T} trials x K = {K} ({n:,} choices) ===")

    # --- simulator ---
    t_sim, c_sim, (X, y) = timed(lambda: si.simulate_choices(w, T, rng=1), repeats)
    t_np, c_np, _ = timed(lambda: numpy_simulator(w, T, np.random.default_rng(1)), repeats)
    print(f"data: X {X.nbytes / 1e6:.0f} MB, y {y.nbytes / 1e6:.0f} MB")
    mem = {"simulate numba": peak_traced(lambda: si.simulate_choices(w, T, rng=1)),
           "simulate numpy": peak_traced(lambda: numpy_simulator(w, T, np.random.default_rng(1))),
           "fit numba": peak_traced(lambda: si.fit_logit(X, y))}
    print("peak traced memory (MB): " + ", ".join(f"{k} {v / 1e6:.0f}" for k, v in mem.items()))
    # into reused buffers (out=): what a loop over batches does; no first touch of fresh pages
    buf = (np.empty_like(X), np.empty_like(y))
    t_out, c_out, _ = timed(lambda: si.simulate_choices(w, T, rng=1, out=buf), repeats)
    assert np.array_equal(buf[0], X) and np.array_equal(buf[1], y)
    print(f"simulate  numba  {n / t_sim:10.3g} choices/s  (CPU {n / c_sim:.3g} choices per CPU-s)")
    print(f"simulate  numba into out= buffers  {n / t_out:10.3g} choices/s  (CPU {n / c_out:.3g})  "
          f"numba/numpy = {t_np / t_out:.1f}x")
    print(f"simulate  numpy  {n / t_np:10.3g} choices/s  (CPU {n / c_np:.3g})   numba/numpy = {t_np / t_sim:.1f}x")
    rows.append((A, T, "simulate numba", n / t_sim, n / c_sim, t_np / t_sim))
    rows.append((A, T, "simulate numba, out= buffers", n / t_out, n / c_out, t_np / t_out))
    rows.append((A, T, "simulate numpy (plain)", n / t_np, n / c_np, 1.0))
    del buf

    # --- estimators on the same data ---
    t_nb, c_nb, fit = timed(lambda: si.fit_logit(X, y), repeats)
    t_ml, c_ml, fit_ml = timed(lambda: si.fit_logit(X, y, prior_sd=None), repeats)
    print(f"fit numba (MAP, separation check)  {n / t_nb:10.3g} choices/s  (CPU {n / c_nb:.3g})  "
          f"mean n_iter {fit.n_iter.mean():.2f}, separated {fit.separated.mean():.2%}")
    print(f"fit numba (ML, separation check)   {n / t_ml:10.3g} choices/s  (CPU {n / c_ml:.3g})")

    sub = slice(0, n_loop)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        t_sm, c_sm, b_sm = timed(lambda: statsmodels_loop(X[sub], y[sub]), 1)
        t_sk, c_sk, b_sk = timed(lambda: sklearn_loop(X[sub], y[sub]), 1)
    m = n_loop * T
    print(f"statsmodels Logit loop ({n_loop} contexts, extrapolated per choice) "
          f"{m / t_sm:10.3g} choices/s   numba/statsmodels = {t_sm / m / (t_nb / n):.0f}x")
    print(f"sklearn LogisticRegression loop ({n_loop} contexts)             "
          f"{m / t_sk:10.3g} choices/s   numba/sklearn = {t_sk / m / (t_nb / n):.0f}x")
    rows.append((A, T, "fit numba MAP", n / t_nb, n / c_nb, t_sm / m / (t_nb / n)))
    rows.append((A, T, "fit numba ML", n / t_ml, n / c_ml, t_sm / m / (t_ml / n)))
    rows.append((A, T, "statsmodels loop", m / t_sm, m / c_sm, 1.0))
    rows.append((A, T, "sklearn loop", m / t_sk, m / c_sk, t_sm / t_sk))

    # agreement on the same objective
    ok_ml = fit_ml.converged[sub] & ~fit_ml.separated[sub] & np.all(np.isfinite(b_sm), axis=1)
    map_flat = si.fit_logit(X[sub], y[sub], intercept_prior_sd=None)
    ok_sk = np.ones(n_loop, bool)
    print(f"agreement: numba ML vs statsmodels  max |dw| = {maxdiff(fit_ml.coef[sub], b_sm, ok_ml):.2g} "
          f"(normalised weights, {ok_ml.sum()} non-separated contexts)")
    print(f"agreement: numba MAP (flat intercept) vs sklearn  max |dw| = "
          f"{maxdiff(map_flat.coef, b_sk, ok_sk):.2g}")
    r = np.corrcoef(normalize_weights(fit.coef).ravel(), normalize_weights(w).ravel())[0, 1]
    print(f"recovery: corr(numba normalised weights, targets) = {r:.3f}")

    if use_jax:
        for dt in (np.float64, np.float32):
            t_jx, c_jx, fj = timed(lambda: si.fit_logit(X, y, backend="jax", dtype=dt), repeats)
            same = fit.converged & ~fit.separated
            d = maxdiff(fit.coef, fj.coef, same)
            raw = float(np.max(np.abs(fit.coef[same] - fj.coef[same])))
            print(f"fit jax {np.dtype(dt).name} (CPU)  {n / t_jx:10.3g} choices/s  (CPU {n / c_jx:.3g})  "
                  f"vs numba: max |dcoef| = {raw:.2g}, normalised {d:.2g}, "
                  f"flags equal {np.mean(fj.separated == fit.separated):.4f}")
            rows.append((A, T, f"fit jax {np.dtype(dt).name}", n / t_jx, n / c_jx, t_sm / m / (t_jx / n)))
            t_dev, c_dev, _ = timed(jax_on_device(w, T, dt), repeats)
            print(f"jax simulate+fit on device ({np.dtype(dt).name}, CPU)  {n / t_dev:10.3g} choices/s")
            rows.append((A, T, f"jax sim+fit on device {np.dtype(dt).name}", n / t_dev, n / c_dev,
                         np.nan))


def memory_check(A=1_000_000, T=50):
    """Peak RSS of simulating and fitting A x T x 5 in a fresh process (GB)."""
    # the high-water mark of this process's own memory (VmHWM, kB): ru_maxrss would not do,
    # Linux carries it over from the parent through fork and exec
    code = f"""
import resource, numpy as np, selfinterp as si

def peak_kb():
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

w = np.random.default_rng(0).uniform(-2.5, 2.5, ({A}, {K}))
X, y = si.simulate_choices(w, {T}, rng=0)
before = peak_kb()
fit = si.fit_logit(X, y)
after = peak_kb()
print(X.nbytes / 1e9, before / 1e6, after / 1e6, fit.converged.mean())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    xgb, before, after, conv = map(float, out.stdout.split())
    print(f"\nmemory: {A:,} x {T} x {K}: X is {xgb:.2f} GB; peak RSS after simulating "
          f"{before:.2f} GB, after fitting {after:.2f} GB (target 4 GB); converged {conv:.4f}")
    return after


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--memory", action="store_true", help="add the 1e6 x 50 x 5 memory check")
    args = ap.parse_args(argv)
    import numba

    print(f"selfinterp {si.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
          f"{platform.processor() or platform.machine()}, {numba.config.NUMBA_NUM_THREADS} threads, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    rng = np.random.default_rng(2025)
    # the two sizes, and T = 500 (its targets hold for T from 50 to 500)
    sizes = [(2_000, 100, 100), (10_000, 50, 100)] if args.quick else [(10_000, 100, 300),
                                                                      (100_000, 50, 300),
                                                                      (2_000, 500, 100)]
    rows = []
    for A, T, n_loop in sizes:
        bench_size(A, T, n_loop, args.repeats, rng, not args.no_jax, rows)
    print("\nsummary (choices/s wall, choices per CPU-second, ratio vs the first baseline):")
    for A, T, name, wall, cpu, ratio in rows:
        print(f"  A={A:>7,} T={T:>3}  {name:34s} {wall:10.3g} {cpu:10.3g}  {ratio:8.1f}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    if args.memory:
        memory_check()


if __name__ == "__main__":
    main()
