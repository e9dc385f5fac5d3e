"""GPU benchmark of the JAX device path: simulate on the device and fit there.

Issue 2's GPU target: choices/s of simulating and fitting on an NVIDIA GPU
(target at least 1e10), K = 5 attributes, paper-like weights.  One run:

1. the environment (JAX, its devices, ``nvidia-smi``);
2. agreement, before any timing: on 4,096 contexts x 50 trials simulated on
   the device, the device fit (float64 and float32) against the NumPy
   reference backend on the same choices copied to the host (max abs
   difference of the coefficients, and of the normalised weights, max |w| =
   100; identical separation status);
3. per precision and size: the simulator alone, the fit alone (data already on
   the device; with and without the separation check), simulate + fit with
   nothing leaving the device (the target's figure), and the public
   ``simulate_and_fit_jax`` call (weights in, fits and their checks out).
   Medians of ``--repeats`` timed runs after a warm-up (compilation excluded),
   each ended by ``block_until_ready``.  Also the mean and largest number of
   Newton iterations: under ``vmap`` a batch runs until its slowest context is
   done.

``--budget`` seconds bounds the run: sizes not reached are skipped and said
so.  ``--json FILE`` writes every figure.  Runs on the CPU too (``--quick``),
which is how it is checked where no GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback

import numpy as np

import selfinterp as si
from selfinterp.logit import normalize_weights, prior_precision, simulate_and_fit_jax

K = 5


def paper_weights(A, rng):
    """Targets as in the paper (U(-100, 100), max |w| = 100), on a logit scale of max 2.5."""
    w = rng.uniform(-100, 100, (A, K))
    return 2.5 * w / np.max(np.abs(w), axis=1, keepdims=True)


def median_time(fn, repeats):
    """Median wall time of ``fn()`` (which blocks until the device is done), after a warm-up."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def environment():
    import jax

    info = {"selfinterp": si.__version__, "jax": jax.__version__, "numpy": np.__version__,
            "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
        info["nvidia-smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        info["nvidia-smi"] = f"not available ({exc.__class__.__name__})"
    for k, v in info.items():
        print(f"{k}: {v}")
    return info


def cuda_ok():
    """The CUDA backend runs here (numba-cuda and a GPU)."""
    try:
        from selfinterp._core import logit_cuda
    except ImportError:
        return False
    return logit_cuda.available()


def agreement(rng, A=4096, T=50):
    """Device fits against the NumPy backend on the same device-simulated choices."""
    import jax

    from selfinterp._core.simulate_jax import simulate_jax

    w = paper_weights(A, rng)
    with jax.enable_x64(True):
        X, y = simulate_jax(w, T, np.ones(A), np.zeros(A), jax.random.key(1), dtype=np.float64)
        X, y = np.asarray(X), np.asarray(y)
    ref = si.fit_logit(X, y, backend="numpy")
    out = {}
    backends = ["jax"] + (["cuda"] if cuda_ok() else [])
    for backend, dt in [(b, d) for b in backends for d in (np.float64, np.float32)]:
        try:
            fit = si.fit_logit(X, y, backend=backend, dtype=dt)
        except Exception:
            traceback.print_exc()
            continue
        ok = ref.converged & fit.converged
        out[f"{backend} {np.dtype(dt).name}"] = row = {
            "max_abs_coef": float(np.max(np.abs(fit.coef[ok] - ref.coef[ok]))),
            "max_abs_normalised": float(np.max(np.abs(normalize_weights(fit.coef[ok])
                                                      - normalize_weights(ref.coef[ok])))),
            "status_agree": float(np.mean(fit.separated == ref.separated)),
            "converged_agree": float(np.mean(fit.converged == ref.converged)),
            "n_iter_agree": float(np.mean(fit.n_iter == ref.n_iter)),
        }
        print(f"agreement {backend} {np.dtype(dt).name} vs NumPy backend ({A} x {T}): " +
              ", ".join(f"{k} {v:.3g}" for k, v in row.items()))
    return out


def bench_size(A, T, dtype, repeats, rng):
    """All timings of one size and precision; returns a dict of figures."""
    import jax
    import jax.numpy as jnp

    from selfinterp._core.logit_jax import _settings, fit_batch_jax
    from selfinterp._core.simulate_jax import simulate_jax

    n = A * T
    w = paper_weights(A, rng)
    scale, icpt = np.ones(A), np.zeros(A)
    prec = prior_precision(K, True, 1.0)
    _, dtype, tol, slack, _ = _settings(dtype, 1e-8, prec)
    fit = fit_batch_jax()
    row = {"A": A, "T": T, "dtype": dtype.name, "choices": n}
    with jax.enable_x64(dtype == np.float64):
        dev = [jax.device_put(np.asarray(a, dtype)) for a in (w, scale, icpt)]  # weights in, once
        dprec, dtol, dslack = (jax.device_put(np.asarray(a, dtype)) for a in (prec, tol, slack))
        key = jax.random.key(0)

        def sim():
            return jax.block_until_ready(simulate_jax(dev[0], T, dev[1], dev[2], key, dtype=dtype))

        t, (X, y) = median_time(sim, repeats)
        row["simulate"] = n / t
        ones = jnp.ones_like(y)

        def fitter(check):
            def run():
                return jax.block_until_ready(fit(X, y, ones, dprec, dtol, dslack, fit_intercept=True,
                                                 max_iter=100, check_separation=check, ml=False))
            return run

        t, out = median_time(fitter(True), repeats)
        row["fit"] = n / t
        n_iter = np.asarray(out[3])
        row["n_iter_mean"], row["n_iter_max"] = float(n_iter.mean()), int(n_iter.max())
        row["separated"] = float(np.mean(np.asarray(out[4]) == 1))
        t, _ = median_time(fitter(False), repeats)
        row["fit_no_check"] = n / t
        del X, y, ones, out

        def fused():
            X, y = simulate_jax(dev[0], T, dev[1], dev[2], key, dtype=dtype)
            return jax.block_until_ready(fit(X, y, jnp.ones_like(y), dprec, dtol, dslack,
                                             fit_intercept=True, max_iter=100,
                                             check_separation=True, ml=False))

        t, _ = median_time(fused, repeats)
        row["simulate_fit_on_device"] = n / t
    t, res = median_time(lambda: simulate_and_fit_jax(w, T, key=jax.random.key(0), dtype=dtype,
                                                      fit_backend="jax"), max(1, repeats // 2))
    row["simulate_and_fit_jax"] = n / t
    row["converged"] = float(res.converged.mean())
    if cuda_ok():
        try:
            bench_cuda(row, w, T, dtype, prec, tol, repeats, res)
        except Exception:  # the JAX figures of this size still count
            traceback.print_exc()
            row["cuda_error"] = traceback.format_exc(limit=3)
    print(f"A={A:>9,} T={T:>3} {dtype.name}: " + ", ".join(
        f"{k} {row[k]:.3g}" for k in ("simulate", "fit", "fit_no_check", "simulate_fit_on_device",
                                      "simulate_and_fit_jax", "n_iter_mean", "n_iter_max",
                                      "separated", "converged")), flush=True)
    return row


def bench_cuda(row, w, T, dtype, prec, tol, repeats, jax_fit):
    """The CUDA kernel's timings, on the same weights and key (contexts-last layout)."""
    import jax
    from numba import cuda

    from selfinterp._core.logit_cuda import fit_cuda_device
    from selfinterp._core.simulate_jax import simulate_jax

    A, n = len(w), len(w) * T
    with jax.enable_x64(dtype == np.float64):
        dev = [jax.device_put(np.asarray(a, dtype)) for a in (w, np.ones(A), np.zeros(A))]
        key = jax.random.key(0)

        def sim():
            return jax.block_until_ready(simulate_jax(dev[0], T, dev[1], dev[2], key, dtype=dtype,
                                                      trials_first=True))

        t, (Xt, F) = median_time(sim, repeats)
        row["cuda_simulate_trials_first"] = n / t
        row["cuda_array_interface"] = hasattr(Xt, "__cuda_array_interface__")

        def fit_only():
            out = fit_cuda_device(Xt, F, None, K, True, prec, 100, tol, True, dtype, to_host=False)
            cuda.synchronize()
            return out

        t, out = median_time(fit_only, repeats)
        row["cuda_fit"] = n / t
        n_iter = out[3].copy_to_host()
        row["cuda_n_iter_mean"], row["cuda_n_iter_max"] = float(n_iter.mean()), int(n_iter.max())
        del Xt, F, out

        def fused():
            Xt, F = simulate_jax(dev[0], T, dev[1], dev[2], key, dtype=dtype, trials_first=True)
            jax.block_until_ready((Xt, F))
            out = fit_cuda_device(Xt, F, None, K, True, prec, 100, tol, True, dtype, to_host=False)
            cuda.synchronize()
            return out

        t, _ = median_time(fused, repeats)
        row["cuda_simulate_fit_on_device"] = n / t
    t, res = median_time(lambda: simulate_and_fit_jax(w, T, key=jax.random.key(0), dtype=dtype,
                                                      fit_backend="cuda"), max(1, repeats // 2))
    row["cuda_simulate_and_fit_jax"] = n / t
    ok = res.converged & jax_fit.converged
    row["cuda_vs_jax_max_abs_normalised"] = float(np.max(np.abs(
        normalize_weights(res.coef[ok]) - normalize_weights(jax_fit.coef[ok]))))
    row["cuda_vs_jax_separated_agree"] = float(np.mean(res.separated == jax_fit.separated))
    print(f"   cuda: " + ", ".join(f"{k[5:]} {row[k]:.3g}" for k in row if k.startswith("cuda_")),
          flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (for a CPU check)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=420.0, help="seconds; later sizes are skipped")
    ap.add_argument("--json", help="write every figure to this file")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rng = np.random.default_rng(2025)
    result = {"environment": environment(), "agreement": agreement(rng, A=256 if args.quick else 4096),
              "sizes": [], "skipped": []}
    # about 2e8 choices per float32 size and 1e8 per float64 size: several GB, many times the L2
    if args.quick:
        sizes = [(np.float32, 512, 20), (np.float64, 256, 20)]
    else:
        sizes = [(np.float32, 4_000_000, 50), (np.float64, 2_000_000, 50),
                 (np.float32, 2_000_000, 100), (np.float32, 400_000, 500),
                 (np.float64, 1_000_000, 100), (np.float64, 200_000, 500)]
    for dt, A, T in sizes:
        if time.perf_counter() - t0 > args.budget:
            result["skipped"].append([np.dtype(dt).name, A, T])
            print(f"skipped (budget): A={A:,} T={T} {np.dtype(dt).name}")
            continue
        result["sizes"].append(bench_size(A, T, dt, args.repeats, rng))
        if args.json:  # after every size, so that a run cut short keeps what it measured
            with open(args.json, "w") as fh:
                json.dump(result, fh, indent=1)
    if any("cuda_fit" in r for r in result["sizes"]):
        print("\nCUDA kernel (choices/s):")
        print(f"{'size':>22} {'sim(T,K,A)':>10} {'fit':>10} {'sim+fit':>10} {'public':>10} "
              f"{'iter':>9} {'vs jax':>8}")
        for r in result["sizes"]:
            if "cuda_simulate_and_fit_jax" in r:
                print(f"{r['A']:>9,} x {r['T']:>3} {r['dtype']:>7} "
                      f"{r['cuda_simulate_trials_first']:10.3g} {r['cuda_fit']:10.3g} "
                      f"{r['cuda_simulate_fit_on_device']:10.3g} "
                      f"{r['cuda_simulate_and_fit_jax']:10.3g} "
                      f"{r['cuda_n_iter_mean']:5.2f}/{r['cuda_n_iter_max']:<3d} "
                      f"{r['cuda_vs_jax_max_abs_normalised']:8.2g}")
    print(f"\nsummary (choices/s; {time.perf_counter() - t0:.0f} s in all):")
    print(f"{'size':>22} {'simulate':>10} {'fit':>10} {'fit,nochk':>10} {'sim+fit':>10} "
          f"{'public':>10} {'iter':>9}")
    for r in result["sizes"]:
        print(f"{r['A']:>9,} x {r['T']:>3} {r['dtype']:>7} {r['simulate']:10.3g} {r['fit']:10.3g} "
              f"{r['fit_no_check']:10.3g} {r['simulate_fit_on_device']:10.3g} "
              f"{r['simulate_and_fit_jax']:10.3g} {r['n_iter_mean']:5.2f}/{r['n_iter_max']:<3d}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
