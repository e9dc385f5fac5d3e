"""Time ``selfinterp replicate`` on the paper's GPT-4o files (target: under 2 s after import).

Usage::

    python benchmarks/bench_replicate.py [DIR] [--model NAME] [--repeat N] [--n-boot B]

Prints the first call (which also loads numba's on-disk cache and xarray's
lazy imports), then the median and range of ``--repeat`` further calls, and
a breakdown of one call into reading, fitting and scoring.  The machine is
shared, so read the median; a spread well above it means other load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

t_import = time.perf_counter()
from selfinterp import replicate as rp  # noqa: E402
from selfinterp.io import read_released  # noqa: E402

t_import = time.perf_counter() - t_import


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", nargs="?", default=str(REPO.parent / "shared" / "data" / "plunkett2025"))
    ap.add_argument("--model", default="gpt-4o-2024-08-06")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--n-boot", type=int, default=2000)
    a = ap.parse_args()

    t = time.perf_counter()
    res = rp.replicate(a.directory, a.model, n_boot=a.n_boot, rng=0)
    first = time.perf_counter() - t
    times, cpu = [], []
    for i in range(a.repeat):
        t, c = time.perf_counter(), time.process_time()
        rp.replicate(a.directory, a.model, n_boot=a.n_boot, rng=i)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)

    # one call taken apart
    t0 = time.perf_counter()
    data = read_released(a.directory, a.model)
    t1 = time.perf_counter()
    for ds in data.choices.values():
        rp.learned_weights(ds)
    t2 = time.perf_counter()

    m = res["metrics"]["reports_vs_learned"]
    try:
        import os

        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    except OSError:  # pragma: no cover - not on every platform
        pass
    print(f"import selfinterp.replicate: {t_import:.2f} s")
    print(f"first replicate() call (numba cache load, lazy imports): {first:.2f} s")
    print(f"replicate() with n_boot={a.n_boot}, median of {a.repeat}: {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f})")
    print(f"  CPU time of this process (all threads), median: {statistics.median(cpu):.3f} s")
    print(f"  of which reading the files {t1 - t0:.3f} s, fitting both choice sets {t2 - t1:.3f} s, "
          f"scoring and resampling the rest")
    print(f"target 2 s: median is {statistics.median(times) / 2.0:.2f} of it")
    print(f"check: reports vs learned r = {m['r']:.3f}, 95% CI [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]")


if __name__ == "__main__":
    main()
