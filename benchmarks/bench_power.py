"""Benchmark of the power engine: a sweep of 20 designs x 1,000 replicates of the paper's design.

Each design simulates 1,000 studies of 100 contexts x 50 choices (5e6 choices,
1e5 logit fits) plus their reports.  Two sweeps of 20 designs are timed:

- *distinct*: 20 designs of 100 contexts and 41, 42, ..., 60 choices, each of
  which needs its own simulation and fits: 1.0e8 simulated choices and 2e6
  fits (the throughput the issue's target is about: at most 10 s);
- *shared*: 20 designs of the paper's design (100 x 50 x 10) that differ only
  in the training effect: they share their simulated choices and fits (common
  random numbers), so the sweep simulates 5e6 choices once and 20 sets of
  reports.

Printed, all measured in this run on the same machine:

- each sweep's wall time (and choices/s for the distinct one);
- where one design's time goes: simulate_and_fit (the fused kernel the
  engine uses), and the rest (reports, scoring, jackknife); and, on the same
  data, simulate_choices then fit_logit one after the other, as the engine
  did before the fused kernel;
- the ratio to a plain loop over replicates (one simulate + one fit call per
  simulated study), timed on a few replicates and scaled;
- accuracy tracking: the mean r(learned, target) and r(reports, learned) of
  the paper's design (0.844 and 0.543 in the real GPT-4o data), so that a
  speed-up that breaks the statistics shows.

Usage: python benchmarks/bench_power.py [--designs 20] [--replicates 1000] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from selfinterp import fit_logit, simulate_and_fit, simulate_choices
from selfinterp.study import DEFAULT_MODEL, Design, run_design, sweep
from selfinterp.study.model import context_bias, draw_targets, effective_weights


def timed(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--designs", type=int, default=20)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=0, help="also time a dask LocalCluster of N processes")
    a = ap.parse_args()
    m = DEFAULT_MODEL
    C, T = 100, 50
    shared = [Design(C, T, 10, round(0.01 * i, 2)) for i in range(a.designs)]
    distinct = [Design(C, T - 9 + i, 10) for i in range(a.designs)]
    run_design(Design(C, T, 10), m, 10)  # load the numba caches before timing

    # one design's parts, side by side on the same data
    n = a.replicates * C
    gen = np.random.default_rng(0)
    w = effective_weights(draw_targets(n, 5, gen), m.instilled, gen)
    b = context_bias(n, m.instilled, gen) / m.instilled.scale
    t_sim, (X, y) = timed(lambda: simulate_choices(w, T, scale=m.instilled.scale, intercept=b, rng=1))
    t_fit, sep = timed(lambda: fit_logit(X, y, check_separation=False))
    del X, y
    t_fused, fused = timed(lambda: simulate_and_fit(w, T, scale=m.instilled.scale, agent_intercept=b, rng=1,
                                                    check_separation=False))
    assert np.array_equal(fused.coef, sep.coef)  # the same numbers
    t_design, res = timed(lambda: run_design(Design(C, T, 10), m, a.replicates, seed=0))
    loop_reps = 20

    def loop():
        for r in range(loop_reps):
            Xr, yr = simulate_choices(w[r * C:(r + 1) * C], T, scale=m.instilled.scale,
                                      intercept=b[r * C:(r + 1) * C], rng=r)
            fit_logit(Xr, yr, check_separation=False)

    t_loop, _ = timed(loop)
    t_loop *= a.replicates / loop_reps

    t0, c0 = time.perf_counter(), time.process_time()
    results = sweep(distinct, m, replicates=a.replicates, seed=0, progress=False)
    t_sweep, c_sweep = time.perf_counter() - t0, time.process_time() - c0
    choices = sum(d.choices for d in distinct) * a.replicates * C
    t0, c0 = time.perf_counter(), time.process_time()
    sweep(shared, m, replicates=a.replicates, seed=0, progress=False)
    t_shared, c_shared = time.perf_counter() - t0, time.process_time() - c0

    print(f"machine: {os.cpu_count()} cores; numba threads {os.environ.get('NUMBA_NUM_THREADS', 'default')}; "
          f"load average {os.getloadavg()[0]:.1f} (other jobs share the cores: compare CPU times)")
    print(f"distinct sweep: {a.designs} designs x {a.replicates} replicates of {C} contexts x "
          f"{distinct[0].choices}..{distinct[-1].choices} choices = {choices:.2e} choices: {t_sweep:.1f} s "
          f"({choices / t_sweep:.2e} choices/s; target <= 10 s), CPU time {c_sweep:.1f} s")
    print(f"shared sweep: {a.designs} designs x {a.replicates} replicates of the paper's design, "
          f"differing in the training effect: {t_shared:.1f} s, CPU time {c_shared:.1f} s")
    print(f"one design ({a.replicates * C * T:.1e} choices), medians of 3: total {t_design:.2f} s = "
          f"simulate_and_fit {t_fused:.2f} s ({t_fused / t_design:.0%}) "
          f"+ reports/scoring {max(t_design - t_fused, 0):.2f} s")
    print(f"  simulate_and_fit (fused) {a.replicates * C * T / t_fused:.2e} choices/s, "
          f"{(t_sim + t_fit) / t_fused:.2f}x simulate_choices then fit_logit "
          f"({t_sim:.2f} s + {t_fit:.2f} s; identical weights)")
    print(f"stacked replicates vs a Python loop over replicates (simulate + fit only): "
          f"{t_loop / t_fused:.1f}x faster ({t_loop:.2f} s vs {t_fused:.2f} s fused)")
    print(f"accuracy: r(learned, target) {res['learned_vs_target']['mean']:.3f} (GPT-4o 0.844), "
          f"r(reports, learned) {res['reports_vs_learned']['mean']:.3f} (GPT-4o 0.543)")
    assert abs(res["learned_vs_target"]["mean"] - 0.844) < 0.02
    if a.workers:
        from distributed import Client

        from selfinterp.study import local_cluster

        with local_cluster(a.workers) as cl, Client(cl) as client:
            sweep(distinct[:2], m, replicates=10, seed=0, client=client, progress=False)  # warm workers
            t0 = time.perf_counter()
            remote = sweep(distinct, m, replicates=a.replicates, seed=0, client=client, progress=False)
            t_dask = time.perf_counter() - t0
        assert remote == results
        print(f"dask LocalCluster of {a.workers} processes: {t_dask:.1f} s "
              f"for the distinct sweep ({t_sweep / t_dask:.2f}x the single process), identical results")


if __name__ == "__main__":
    main()
