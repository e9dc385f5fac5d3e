"""Reproduce the paper's whole results table from one model's files in the released layout.

Reads DIR (scenarios.csv, instilled_weights.csv, MODEL_instilled_selections.csv,
MODEL_*weight_reports.csv, ...), or the long-format tables (CSV, Parquet,
JSON lines) that a study file STUDY.toml (or .json) names with their column
mapping, learns each context's weights from the model's choices and scores
its self-reports.  Prints a table, or with --json
one JSON object {"model", "metrics", "notes", "details"}.
"""

from __future__ import annotations

import argparse

from . import _args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR|STUDY.toml",
                        help="directory in the released layout, or a study file (TOML or JSON) naming long-format "
                             "tables and their columns (see docs/tables.md)")
    parser.add_argument("--model", required=True, metavar="NAME", type=_args.model_name,
                        help="model name of the file names, e.g. gpt-4o-2024-08-06")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--plot", metavar="FILE.png", type=_args.output_file,
                        help="draw reported vs learned weights, one panel per condition (needs the 'plot' extra)")
    parser.add_argument("--n-boot", type=_args.bounded_int(1, 1_000_000), default=2000, metavar="N",
                        help="bootstrap resamples per interval (default 2000)")
    parser.add_argument("--seed", type=_args.seed, default=0, metavar="S", help="seed of the resampling (default 0)")
    parser.add_argument("--calls-per-context", type=_args.bounded_int(1, 1000), default=None, metavar="R",
                        help="report calls made per context; missing rows are invalid replies "
                             "(default: the study file's calls_per_context, else 10)")


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..errors import InputError, require
    from ..replicate import compute, format_table, plot_replication

    if args.n_boot < 1:
        raise InputError(f"--n-boot must be at least 1, got {args.n_boot}")
    if args.plot:
        # fail before the work when the extra is missing
        require("matplotlib", "plot")
    source = Path(args.directory)
    if source.is_file() and source.suffix.lower() in (".toml", ".json"):
        from ..io import read_study_file

        source = read_study_file(source, args.model, calls_per_context=args.calls_per_context)
    elif source.is_file():
        raise InputError(f"{source}: expected a directory in the released layout or a study file (.toml or .json)")

    def check(data):
        C = max([d.sizes["context"] for d in (*data.choices.values(), *data.reports.values())] or [0])
        _args.check_memory(f"--n-boot {args.n_boot:,} over {C:,} contexts", _args.bootstrap_bytes(args.n_boot, C))

    rep = compute(source, args.model, n_boot=args.n_boot, rng=args.seed,
                  calls_per_context=args.calls_per_context or 10, check=check)
    if args.plot:
        plot_replication(rep, args.plot)
    if args.json:
        print(json.dumps(rep.result, allow_nan=False))
    else:
        print(format_table(rep.result))
        if args.plot:
            print(f"\nplot written to {args.plot}")
    return 0
