"""Simulate a whole self-report study and score it as `selfinterp replicate` scores real transcripts.

Draws the paper's three experiments (instilled preferences with the base-model
control, introspection training tested on held-out halves, native
preferences) from the generative model, writes them in the released layout
(to --out DIR if given) and prints the same table as
`selfinterp replicate` (the same metric keys with --json).  Needs no API key
and no data: the built-in calibration is GPT-4o's.  `selfinterp replicate
DIR --model NAME` on the --out directory gives the same numbers.
"""

from __future__ import annotations

import argparse

from . import _args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibration", metavar="FILE", type=_args.input_file,
                        help="calibration file from `selfinterp calibrate` (default: built-in GPT-4o)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--out", metavar="DIR", type=_args.output_dir,
                        help="write the simulated transcripts here (released layout)")
    parser.add_argument("--seed", type=_args.seed, default=0, metavar="S", help="seed of the simulation (default 0)")
    parser.add_argument("--model", default="simulated", metavar="NAME", type=_args.model_name,
                        help="model name used in the file names (default 'simulated')")
    parser.add_argument("--contexts", type=_args.bounded_int(2, 1_000_000), metavar="C",
                        help="instilled contexts (default: calibration's)")
    parser.add_argument("--choices", type=_args.bounded_int(1, 1_000_000), metavar="T",
                        help="choices per context (default: calibration's)")
    parser.add_argument("--reports", type=_args.bounded_int(1, 100_000), metavar="R",
                        help="report calls per context (default: calibration's)")
    parser.add_argument("--n-boot", type=_args.bounded_int(1, 1_000_000), default=2000, metavar="N",
                        help="bootstrap resamples per interval, as in replicate (default 2000)")


def main(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from ..errors import InputError
    from ..io import write_released
    from ..replicate import compute, format_table
    from ..study import DEFAULT_MODEL, load_calibration
    from ..study.simulate import simulate_study

    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    if args.n_boot < 1:
        raise InputError(f"--n-boot must be at least 1, got {args.n_boot}")
    model = load_calibration(args.calibration) if args.calibration else DEFAULT_MODEL
    changes = {k: getattr(args, k) for k in ("contexts", "choices", "reports") if getattr(args, k) is not None}
    design = dataclasses.replace(model.design, **changes)
    C, T, R, K = design.contexts, design.choices, design.reports, design.attributes
    _args.check_memory(f"a study of {C:,} contexts x {T:,} choices x {R:,} reports ({K} attributes)",
                       8 * 4 * (C * T * (2 * K + 2) + C * R * K))
    _args.check_memory(f"--n-boot {args.n_boot:,} over {C:,} contexts", _args.bootstrap_bytes(args.n_boot, C))
    data, _ = simulate_study(model, design, rng=args.seed, name=args.model)
    if args.out:
        write_released(args.out, args.model, data)
    # scored in memory; the bootstrap seed is replicate's default (0), so
    # `replicate --out DIR` repeats these numbers
    result = compute(data, n_boot=args.n_boot, rng=0).result
    result["directory"] = args.out
    result["simulation"] = {"seed": args.seed, "design": dataclasses.asdict(design),
                            "calibration": args.calibration or "built-in (GPT-4o)"}
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(f"simulated study (seed {args.seed}; calibration {result['simulation']['calibration']}; "
              f"{design.contexts} contexts x {design.choices} choices, {design.reports} reports)")
        print(format_table(result))
        if args.out:
            print(f"\ntranscripts written to {args.out} (`selfinterp replicate {args.out} --model {args.model}`)")
    return 0
