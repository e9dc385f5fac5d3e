"""Option types shared by the commands: every value checked by argparse, before any work starts.

A bad value ends in argparse's usage error naming the option and what was
expected (exit status 2), never in a traceback or a silent default.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

MAX_SEED = 2**63 - 1


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            f = None
        hint = f" (write it in digits, e.g. {int(f)})" if f is not None and f.is_integer() and abs(f) < 1e18 else ""
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}{hint}") from None


def bounded_int(lo: int, hi: int):
    """An integer in [lo, hi]."""
    def parse(text: str) -> int:
        v = _int(text)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in [{lo:,}, {hi:,}], got {text!r}")
        return v
    parse.__name__ = "integer"
    return parse


seed = bounded_int(0, MAX_SEED)


def int_list(lo: int, hi: int):
    """A non-empty comma-separated list of integers in [lo, hi]."""
    one = bounded_int(lo, hi)

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
        return [one(p) for p in parts]
    parse.__name__ = "list of integers"
    return parse


def float_list(text: str) -> list[float]:
    """A non-empty comma-separated list of numbers (``inf`` allowed, NaN not)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        out = [float(p) for p in parts]
    except ValueError:
        out = None
    if not text.strip() or out is None or any(v != v for v in out):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return out


def input_file(text: str) -> str:
    """A path to an existing file (a directory is refused)."""
    p = Path(text)
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; expected a file")
    if not p.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def output_dir(text: str) -> str:
    """A directory to write into (created if absent; an existing file is refused)."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; expected a directory")
    return text


def output_file(text: str) -> str:
    """A file to write (an existing directory is refused)."""
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; expected a file name")
    return text


def model_name(text: str) -> str:
    """A model name that can be part of a file name: printable, no path separator, at most 100 characters."""
    if not text or len(text) > 100 or not text.isprintable() or "/" in text or os.sep in text:
        raise argparse.ArgumentTypeError(f"expected a model name of 1 to 100 printable characters without "
                                         f"'/', got {text[:40]!r}{'...' if len(text) > 40 else ''}")
    return text


def memory_bytes() -> int:
    """Physical memory of this machine (bytes; 8 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


def check_memory(what: str, n_bytes: float) -> None:
    """Refuse work whose arrays would need more than half of this machine's memory, saying the estimate."""
    from ..errors import InputError

    have = memory_bytes()
    if n_bytes > have / 2:
        raise InputError(f"{what} needs about {n_bytes / 2**30:,.1f} GiB of memory, this machine has "
                         f"{have / 2**30:,.1f} GiB; choose smaller sizes")



def bootstrap_bytes(n_boot: int, contexts: int) -> int:
    """Peak memory of one context-resampling bootstrap: a few (resamples x contexts) float64 arrays."""
    return 64 * int(n_boot) * int(contexts)
