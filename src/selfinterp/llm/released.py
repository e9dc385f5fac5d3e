"""Writing a run's results in the paper's released layout (CSV files named by model).

This is the LLM layer's own adapter: the toolkit's released-layout writer
(``selfinterp.io``) was not available when it was written.  Column names and
file names follow ``../shared/data/plunkett2025/README.md``; for logprob
choices the hard ``selection`` (the more probable label) is followed by the
soft label in an extra column ``p_A``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from ..design import Context

__all__ = ["write_scenarios", "write_weights", "write_selections", "write_reports", "write_regression"]


def _fmt(v) -> str:
    return str(float(v))


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    tmp.replace(path)
    return path


def write_scenarios(path: Path, contexts: Sequence[Context]) -> Path:
    K = len(contexts[0].attributes)
    header = (["scenario", "question"] + [f"attr{k}" for k in range(1, K + 1)]
              + [f"attr{k}_min" for k in range(1, K + 1)] + [f"attr{k}_max" for k in range(1, K + 1)])
    rows = [[c.name, c.question] + [a.name for a in c.attributes] + [_fmt(a.min) for a in c.attributes]
            + [_fmt(a.max) for a in c.attributes] for c in contexts]
    return _write(path, header, rows)


def write_weights(path: Path, contexts: Sequence[Context], weights: np.ndarray) -> Path:
    K = weights.shape[1]
    return _write(path, ["scenario"] + [f"attr{k}" for k in range(1, K + 1)],
                  [[c.name] + [int(round(x)) for x in w] for c, w in zip(contexts, weights)])


def write_regression(path: Path, contexts: Sequence[Context], weights: np.ndarray) -> Path:
    K = weights.shape[1]
    return _write(path, ["scenario"] + [f"b_attr{k}" for k in range(1, K + 1)],
                  [[c.name] + [int(round(x)) if np.isfinite(x) else "" for x in w]
                   for c, w in zip(contexts, weights)])


def write_selections(path: Path, model: str, rows: Sequence[tuple]) -> Path:
    """``rows``: (context, values shown as A (K,), values shown as B (K,), P(label A) or None)."""
    K = len(rows[0][1]) if rows else 5
    header = (["model", "scenario", "selection"] + [f"A_attribute_{k}" for k in range(1, K + 1)]
              + [f"B_attribute_{k}" for k in range(1, K + 1)] + ["p_A"])
    out = []
    for ctx, a, b, p in rows:
        if p is None or not np.isfinite(p):
            continue  # an invalid reply has no row, as in the paper's files
        out.append([model, ctx.name, "A" if p > 0.5 else "B"] + [_fmt(x) for x in a] + [_fmt(x) for x in b]
                   + [repr(float(p))])
    return _write(path, header, out)


def write_reports(path: Path, model: str, version: str, rows: Sequence[tuple]) -> Path:
    """``rows``: (context, report (K,) or NaN, values of A (K,), values of B (K,)); invalid reports have no row."""
    K = len(rows[0][2]) if rows else 5
    header = (["explaining_model", "version", "scenario"] + [f"report_attr{k}" for k in range(1, K + 1)]
              + [f"A_attribute_{k}" for k in range(1, K + 1)] + [f"B_attribute_{k}" for k in range(1, K + 1)])
    out = [[model, version, ctx.name] + [_fmt(x) for x in r] + [_fmt(x) for x in a] + [_fmt(x) for x in b]
           for ctx, r, a, b in rows if np.all(np.isfinite(r))]
    return _write(path, header, out)
