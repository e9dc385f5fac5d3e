"""Benchmark weight-recovery estimators on simulated agents.

Runs every estimator (the built-in ones, or a subset, plus your own given as
``module:attribute``) on a grid of regimes (trials per context, choice noise,
attributes, position bias, lapses), with replicates, and reports recovery of
the true weights, interval coverage, separation and time.  Without grid
options the default grid runs (31 regimes built around the paper's: 5
attributes, 50 choices, deterministic rule).
"""

from __future__ import annotations

import argparse

from . import _args

DEFAULT_SEED = 20250


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("grid (any of these replaces the default grid by the "
                                  "full factorial of the values given)")
    g.add_argument("--trials", type=_args.int_list(1, 1_000_000), help="trials per context, e.g. 10,50,200")
    g.add_argument("--noise", type=_args.float_list,
                   help="logit inverse temperatures on the utility scale (inf: deterministic), "
                        "e.g. 0.005,0.02,0.1,inf")
    g.add_argument("--attributes", type=_args.int_list(1, 1000), help="numbers of attributes, e.g. 2,5,10")
    g.add_argument("--bias", type=_args.float_list, help="position biases towards A (utility units)")
    g.add_argument("--lapse", type=_args.float_list, help="lapse rates, e.g. 0,0.1")
    parser.add_argument("--contexts", type=_args.bounded_int(1, 1_000_000), default=30,
                        help="agents per replicate (default 30)")
    parser.add_argument("--replicates", type=_args.bounded_int(1, 1_000_000), default=2,
                        help="replicates per regime (default 2)")
    parser.add_argument("--seed", type=_args.seed, default=DEFAULT_SEED, help=f"seed (default {DEFAULT_SEED})")
    parser.add_argument("--estimators", help="comma-separated subset of the built-in estimators "
                        "(ml,map,firth,ridge_cv,lpm,sign,posterior_mean); default all")
    parser.add_argument("--user", action="append", default=[], metavar="MODULE:ATTR",
                        help="add your own estimator (a callable, or a class to instantiate "
                             "without arguments); repeatable")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--markdown", action="store_true",
                        help="print markdown tables (pooled r, normalised RMSE, coverage)")
    parser.add_argument("--out", metavar="FILE.nc", type=_args.output_file, help="save the full results (netCDF)")
    parser.add_argument("--plot", metavar="FILE.png", type=_args.output_file,
                        help="plot recovery and coverage vs trials")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _load_user(spec: str):
    import importlib

    from ..errors import InputError

    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise InputError(f"--user expects MODULE:ATTRIBUTE, got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"--user {spec}: cannot load it ({exc})") from exc
    if isinstance(obj, type):
        obj = obj()
    if not callable(obj):
        raise InputError(f"--user {spec} is not callable")
    return f"{attr}", obj


def build_grid(args):
    import math

    from ..estimators.benchmark import Regime, default_grid

    if all(getattr(args, k) is None for k in ("trials", "noise", "attributes", "bias", "lapse")):
        return default_grid()
    return [Regime(T, s, n_attributes=K, bias=b, lapse=lp)
            for T in (args.trials or [50]) for s in (args.noise or [0.02, math.inf])
            for K in (args.attributes or [5]) for b in (args.bias or [0.0])
            for lp in (args.lapse or [0.0])]


def main(args) -> int:
    import json
    import sys
    import time

    from ..errors import InputError
    from ..estimators import default_estimators
    from ..estimators.benchmark import markdown_table, plot_benchmark, run_benchmark, summarise

    ests = default_estimators()
    if args.estimators:
        wanted = [x.strip() for x in args.estimators.split(",") if x.strip()]
        unknown = [x for x in wanted if x not in ests]
        if unknown:
            raise InputError(f"unknown estimator(s) {unknown}; built-in: {sorted(ests)}")
        ests = {k: ests[k] for k in wanted}
    for spec in args.user:
        name, fn = _load_user(spec)
        if name in ests:
            raise InputError(f"--user {spec}: the name {name!r} is taken")
        ests[name] = fn
    grid = build_grid(args)
    big = max(grid, key=lambda r: r.n_trials * r.n_attributes)
    _args.check_memory(f"a replicate of {args.contexts:,} contexts x {big.n_trials:,} trials x "
                       f"{big.n_attributes} attributes", 8 * 4 * args.contexts * big.n_trials * (big.n_attributes + 2))
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    ds = run_benchmark(ests, grid, n_contexts=args.contexts, n_replicates=args.replicates,
                       seed=args.seed, progress=progress)
    elapsed = time.perf_counter() - t0
    ds.attrs["elapsed_s"] = elapsed
    if args.out:
        ds.to_netcdf(args.out, engine="h5netcdf")
    if args.plot:
        plot_benchmark(ds, args.plot)
    if args.json:
        print(json.dumps({"elapsed_s": elapsed, "seed": args.seed, "n_contexts": args.contexts,
                          "n_replicates": args.replicates, "results": summarise(ds)}, indent=1))
    elif args.markdown:
        for metric, title in (("r_pooled", "Pooled r with the true weights (normalised)"),
                              ("nrmse", "Normalised RMSE (max |w| = 100)"),
                              ("coverage", "Coverage of 95% intervals (likelihood-scale slopes)"),
                              ("time_s", "Seconds per call")):
            print(f"**{title}** (mean of {args.replicates} replicates x {args.contexts} contexts; "
                  f"sep. = share of separated contexts)\n")
            print(markdown_table(ds, metric, digits=3 if metric == "time_s" else 2))
    else:
        print(markdown_table(ds, "r_pooled"))
        for rec in summarise(ds):
            for msg in rec["errors"]:
                print(f"{rec['estimator']} failed in {rec['regime']}: {msg}")
    if not args.quiet:
        print(f"benchmark: {len(grid)} regimes x {args.replicates} replicates x {len(ests)} "
              f"estimators in {elapsed:.1f} s", file=sys.stderr)
    return 0
