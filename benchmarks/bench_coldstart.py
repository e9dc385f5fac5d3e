"""Cold start: each command's first call with an empty numba cache, against its second call.

numba compiles selfinterp's kernels the first time they are called and caches
them on disk, so the first run after an installation pays for compilation and
every later run loads them.  This script runs every CLI command (and the
README's Python example) in a fresh process twice, each command with its own
empty ``NUMBA_CACHE_DIR``: the first call compiles what the command needs, the
second loads it from that cache.  It prints, per command, the wall time and the
CPU time (the process and its threads) of both calls, their ratio, and whether
the first-run compile notice appeared on stderr (it must on the first call
only, when something was compiled).

The machine may be shared: the CPU seconds are the steadier figure, and the
ratio of the two calls, measured side by side, is the one to quote.  The sizes
are small so that the whole table takes a few minutes on two cores.  Usage::

    python benchmarks/bench_coldstart.py                    # every command
    python benchmarks/bench_coldstart.py --only study,readme
    python benchmarks/bench_coldstart.py --data DIR --model NAME   # transcripts for calibrate/replicate

``calibrate`` and ``replicate`` read the paper's released transcripts from
``../shared/data/plunkett2025`` beside the repository when present, else from
a small study written by ``selfinterp study --out`` first (with its own,
warm cache, not timed).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "plunkett2025"
SHARED_MODEL = "gpt-4o-2024-08-06"
NOTICE = "selfinterp: compiling numba kernels"

README_EXAMPLE = """
import numpy as np
import selfinterp as si

w = si.design.draw_target_weights(10_000, 5, rng=0)          # the paper's target weights
X, y = si.simulate_choices(w / 40, 50, rng=1)                # logit agents, 50 choices each
fit = si.fit_logit(X, y, prior_sd=1.0)                      # one MAP logit per context
print(np.corrcoef(fit.normalized().ravel(), w.ravel())[0, 1], fit.separated.mean())
"""


def commands(data: Path, model: str, scratch: Path) -> dict[str, tuple[list[str], set[int]]]:
    """name -> (argv after ``python``, accepted exit codes)."""
    cli = ["-m", "selfinterp"]
    return {
        "--help": (cli + ["--help"], {0}),
        "run (bad file)": (cli + ["run", str(scratch / "missing.toml")], {2}),
        "readme": (["-c", README_EXAMPLE], {0}),
        "study": (cli + ["study"], {0}),
        "power": (cli + ["power", "--contexts", "50", "--replicates", "50", "--no-progress"], {0}),
        "calibrate": (cli + ["calibrate", str(data), "--model", model, "-o", str(scratch / "cal.toml"),
                             "--tiles", "2"], {0}),
        "replicate": (cli + ["replicate", str(data), "--model", model, "--n-boot", "200"], {0}),
        "bench-estimators": (cli + ["bench-estimators", "--trials", "50", "--contexts", "30",
                                    "--replicates", "1", "--quiet"], {0}),
    }


def timed_call(argv: list[str], cache: Path, ok: set[int]) -> tuple[float, float, bool]:
    """(wall s, CPU s, compile notice on stderr) of ``python argv`` with NUMBA_CACHE_DIR=cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode not in ok:
        sys.exit(f"python {' '.join(argv)} exited with {out.returncode}:\n{out.stderr[-2000:]}")
    return wall, cpu, NOTICE in out.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated subset of the commands (default: all)")
    ap.add_argument("--data", type=Path, help="transcripts in the released layout for calibrate/replicate")
    ap.add_argument("--model", help="model name of --data's files")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="selfinterp-coldstart-") as tmp:
        tmp = Path(tmp)
        data, model = args.data, args.model
        if data is None and (SHARED / "scenarios.csv").is_file():
            data, model = SHARED, SHARED_MODEL
        elif data is None:
            data, model = tmp / "study", "simulated"
            subprocess.run([sys.executable, "-m", "selfinterp", "study", "--out", str(data),
                            "--contexts", "60", "--n-boot", "10"], check=True, capture_output=True,
                           env={**os.environ, "NUMBA_CACHE_DIR": str(tmp / "setup-cache")})
        table = commands(data, model or "simulated", tmp)
        names = args.only.split(",") if args.only else list(table)
        unknown = [n for n in names if n not in table]
        if unknown:
            ap.error(f"unknown command(s) {unknown}; choose from {list(table)}")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; each command's first call with "
              "an empty numba cache, then its second call", flush=True)
        header = (f"| {'command':18s} | first: wall s | first: CPU s | second: wall s | second: CPU s "
                  f"| first / second (wall) | notice (first, second) |")
        print(header)
        print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|", flush=True)
        for name in names:
            cmd, ok = table[name]
            cache = tmp / f"cache-{len(os.listdir(tmp))}"
            cache.mkdir()
            w1, c1, n1 = timed_call(cmd, cache, ok)
            w2, c2, n2 = timed_call(cmd, cache, ok)
            print(f"| {name:18s} | {w1:13.2f} | {c1:12.2f} | {w2:14.2f} | {c2:13.2f} "
                  f"| {w1 / w2:21.1f}x | {('yes' if n1 else 'no') + ', ' + ('yes' if n2 else 'no'):22s} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
