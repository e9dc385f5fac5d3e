"""Estimate the study simulator's parameters from one model's transcripts in the released layout.

Reads DIR (scenarios.csv, instilled_weights.csv, MODEL_instilled_selections.csv,
MODEL_*weight_reports.csv, ...) and fits the generative model of
`selfinterp study` / `selfinterp power` by simulated moments: choice noise,
position bias and instillation fidelity from the choices, and per condition
the reports' slope, offset, noise, coarseness and invalid rate.  Writes FILE,
a small versioned TOML file for `--calibration FILE`.
"""

from __future__ import annotations

import argparse

from . import _args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="directory in the released layout")
    parser.add_argument("--model", required=True, metavar="NAME", type=_args.model_name,
                        help="model name of the file names, e.g. gpt-4o-2024-08-06")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", type=_args.output_file,
                        help="calibration file to write (TOML)")
    parser.add_argument("--seed", type=_args.seed, default=0, metavar="S",
                        help="seed of the calibration simulation (default 0)")
    parser.add_argument("--tiles", type=_args.bounded_int(1, 10_000), default=20, metavar="N",
                        help="copies of the real contexts simulated per moment evaluation (default 20)")
    parser.add_argument("--calls-per-context", type=_args.bounded_int(1, 1000), default=10, metavar="R",
                        help="report calls made per context; missing rows are invalid replies (default 10)")
    parser.add_argument("--train-examples", type=_args.bounded_int(1, 1_000_000), default=50, metavar="N",
                        help="preference-instillation examples per context, for costing (default 50)")


def main(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from ..errors import InputError
    from ..study import calibrate, save_calibration

    for name in ("tiles", "calls_per_context", "train_examples"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    command = "selfinterp " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else None
    model = calibrate(args.directory, args.model, tiles=args.tiles, seed=args.seed,
                      calls_per_context=args.calls_per_context, train_examples=args.train_examples,
                      command=command, check=check_sizes)
    path = save_calibration(model, args.output)
    print(format_model(model))
    print(f"\ncalibration written to {path}")
    return 0


def check_sizes(tiles: int, parts, K: int, R: int) -> None:
    """Refuse a --tiles whose simulation would not fit in memory, saying the estimate (called by
    :func:`selfinterp.study.calibrate` once the files are read, before the simulation).

    The running time grows with the memory (at most 200 evaluations of the simulated moments per
    fit); with --tiles at most 10,000 a simulation that fits runs for hours at worst, never days.
    """
    n = max(tiles * c for c, _ in parts)
    T = max(t for _, t in parts)
    _args.check_memory(f"--tiles {tiles:,} (a simulation of {n:,} contexts x {T:,} choices x {R:,} reports, "
                       f"{K} attributes)", 8 * 4 * n * (T * (2 * K + 2) + R * K))


def format_model(model) -> str:
    """A short text summary of a StudyModel."""
    c, n = model.instilled, model.native
    lines = [f"calibrated on {model.provenance.get('model', '?')}",
             f"  instilled choices: scale {c.scale:.4f}/weight unit, instillation noise sd {c.instill_sd:.1f}, "
             f"position bias {c.bias:+.3f} (sd {c.bias_sd:.3f}) logits",
             f"  native choices:    scale {n.scale:.4f}/weight unit, position bias {n.bias:+.3f} "
             f"(sd {n.bias_sd:.3f}) logits",
             "  reports:           slope  offset  sd_context  sd_report  grid  invalid"]
    for k, r in model.reports.items():
        lines.append(f"    {k:<16} {r.slope:6.3f} {r.offset:7.2f} {r.sd_context:11.2f} {r.sd_report:10.2f} "
                     f"{r.grid:5g} {100 * r.invalid_rate:7.1f}%")
    for note in model.provenance.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)
