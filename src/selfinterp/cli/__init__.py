"""Command-line interface: ``selfinterp COMMAND ...``.

Each command lives in its own module ``selfinterp.cli.<name>`` exposing
``add_arguments(parser)`` and ``main(args) -> int``; those modules import
only argparse at top level so that start-up stays fast (numba kernels are
cached on disk, JAX is imported only when asked for).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .._version import __version__
from ..errors import InputError, MissingExtraError

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "study": ("selfinterp.cli.study", "simulate a whole self-report study and score it like replicate"),
    "power": ("selfinterp.cli.power", "power analysis and API budget of study designs"),
    "calibrate": ("selfinterp.cli.calibrate", "fit the study simulator to transcripts in the released layout"),
    "replicate": ("selfinterp.cli.replicate", "reproduce the paper's results table from released transcripts"),
    "run": ("selfinterp.cli.run", "run an experiment against OpenAI, an OpenAI-compatible server or a local open-weight model"),
    "checkpoints": ("selfinterp.cli.checkpoints", "evaluate every saved checkpoint of a local run's fine-tuning"),
    "bench-estimators": ("selfinterp.cli.bench_estimators", "benchmark weight-recovery estimators"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfinterp",
        description="Simulation-first statistics for self-interpretability studies.",
    )
    parser.add_argument("--version", action="version", version=f"selfinterp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip())
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (already printed, naming the option), --help or --version
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except (InputError, MissingExtraError) as exc:
        print(f"selfinterp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that cannot be read or written: say which and why
        where = exc.filename if exc.filename is not None else "a file"
        print(f"selfinterp {args.command}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"selfinterp {args.command}: error: an input is nested too deeply to read", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"selfinterp {args.command}: error: out of memory; choose smaller sizes", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
