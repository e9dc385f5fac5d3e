"""Follow a local run through training: evaluate every saved checkpoint of a fine-tuning stage.

For each checkpoint (the local backend saves one every [local] save_steps),
asks for choices and self-reports on the stage's evaluation contexts (through
the run's request cache) and measures decision accuracy, r(learned, target)
and r(reports, learned) with replicate's bootstrap intervals.  Writes
OUT/checkpoints_STAGE.nc (an xarray Dataset along `step`) and, with --plot, a
plot of faithfulness and decision accuracy against step.
"""

from __future__ import annotations

import argparse

from . import _args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="the experiment file of a finished local run (backend = \"local\")")
    parser.add_argument("--stage", default="instill", choices=["instill", "itrain_first", "itrain_last", "itrain_all"],
                        help="whose checkpoints (default instill)")
    parser.add_argument("--out", help="output directory (default: the file's out)")
    parser.add_argument("--n-boot", type=_args.bounded_int(1, 1_000_000), default=2000, metavar="N",
                        help="bootstrap resamples (default 2000)")
    parser.add_argument("--plot", metavar="FILE.png", help="plot against step (needs the 'plot' extra)")


def main(args) -> int:
    import json
    import sys

    from ..errors import InputError, require
    from ..llm.config import load_experiment
    from ..llm.local.checkpoints import follow_checkpoints, plot_checkpoints
    from ..llm.pipeline import ExperimentRun

    if args.n_boot < 1:
        raise InputError(f"--n-boot must be at least 1, got {args.n_boot}")
    if args.plot:
        require("matplotlib", "plot")
    exp = load_experiment(args.experiment, out=args.out)

    def echo(msg):  # progress on stderr: stdout holds the JSON result only
        print(msg, file=sys.stderr)

    run = ExperimentRun(exp, echo=echo)
    try:
        ds = follow_checkpoints(run, args.stage, n_boot=args.n_boot, echo=echo)
    finally:
        run.close()
    if args.plot:
        plot_checkpoints(ds, args.plot)
    rows = [{"step": int(s), "decision_accuracy": _num(ds["decision_accuracy"].sel(step=s)),
             "r_learned_target": _num(ds["r_learned_target"].sel(step=s)),
             "r_reports_learned": _num(ds["r_reports_learned"].sel(step=s))} for s in ds["step"].values]
    print(json.dumps({"out": str(exp.out / f"checkpoints_{args.stage}.nc"), "steps": rows}, indent=2))
    return 0


def _num(x):
    v = float(x)
    return None if v != v else v
