"""Coverage of `selfinterp replicate`'s 95% intervals across studies simulated from the built-in model.

Prints, for each metric, the true (population) value, the mean estimate and
the share of intervals that contain the truth, with its Monte-Carlo standard
error.  The figures are recorded in docs/study.md.

Usage: python benchmarks/coverage_study.py [--studies 1000] [--n-boot 2000] [--seed 0]
                                           [--method studentized|percentile|bca]
                                           [--metrics base_reports_vs_learned,...]
"""

from __future__ import annotations

import argparse
import time

from selfinterp.study import DEFAULT_MODEL
from selfinterp.study.coverage import COVERAGE_METRICS, coverage, true_values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=1000)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="studentized", choices=("studentized", "percentile", "bca"))
    ap.add_argument("--metrics", default=",".join(COVERAGE_METRICS),
                    help="comma-separated subset of the metrics (default all)")
    a = ap.parse_args()
    metrics = tuple(m for m in a.metrics.split(",") if m)
    t = time.perf_counter()
    truth = true_values(DEFAULT_MODEL, DEFAULT_MODEL.design)
    res = coverage(DEFAULT_MODEL, DEFAULT_MODEL.design, n_studies=a.studies, n_boot=a.n_boot,
                   seed=a.seed, truth=truth, method=a.method, metrics=metrics)
    print(f"{a.studies} simulated studies of the paper's design (built-in GPT-4o model), "
          f"{a.n_boot} bootstrap resamples each ({a.method}), seed {a.seed} ({time.perf_counter() - t:.0f} s)")
    print(f"{'metric':<30} {'truth':>7} {'mean est.':>9} {'coverage':>9} {'+-mcse':>7} {'below':>6} {'above':>6}")
    for k in metrics:
        r = res[k]
        print(f"{k:<30} {r['truth']:7.3f} {r['mean_estimate']:9.3f} {r['coverage']:9.3f} "
              f"{r['mcse']:7.3f} {r['below']:6d} {r['above']:6d}")


if __name__ == "__main__":
    main()
