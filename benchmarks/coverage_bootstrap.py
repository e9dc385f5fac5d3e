"""Coverage of the cluster bootstrap's 95% intervals for a pooled correlation with clustered pairs.

Studies of C contexts x 5 attributes whose reports share a context effect
(report = 0.5 w + 60 e + 30 u_context, w uniform on [-100, 100]); the true
pooled r comes from one study of 400,000 contexts.  Prints the share of
intervals containing it, per method, with its Monte-Carlo standard error.
The figures are quoted in docs/replicate.md.

Usage: python benchmarks/coverage_bootstrap.py [--contexts 100] [--studies 1000] [--n-boot 500]
"""

from __future__ import annotations

import argparse

import numpy as np

from selfinterp import score as sc

METHODS = ("percentile", "bca", "studentized")


def draw(C, g):
    w = g.uniform(-100, 100, (C, 5))
    return 0.5 * w + 60 * g.standard_normal((C, 5)) + 30 * g.standard_normal((C, 1)), w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--contexts", type=int, default=100)
    ap.add_argument("--studies", type=int, default=1000)
    ap.add_argument("--n-boot", type=int, default=500)
    a = ap.parse_args()
    truth = sc.pooled_r(*draw(400_000, np.random.default_rng(0)))
    hits = {m: 0 for m in METHODS}
    for i in range(a.studies):
        x, y = draw(a.contexts, np.random.default_rng(1000 + i))
        for m in METHODS:
            (lo, hi), _ = sc.cluster_bootstrap(x, y, n_boot=a.n_boot, rng=i, method=m)
            hits[m] += lo <= truth <= hi
    print(f"{a.studies} studies of {a.contexts} contexts x 5 attributes, {a.n_boot} resamples; true r {truth:.4f}")
    for m in METHODS:
        p = hits[m] / a.studies
        print(f"  {m:<12} coverage {p:.3f} +- {np.sqrt(p * (1 - p) / a.studies):.3f}")


if __name__ == "__main__":
    main()
