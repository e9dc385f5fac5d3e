"""A run's results in the paper's released layout (CSV files named by model).

Written through :func:`selfinterp.io.write_released` (the toolkit's
released-layout writer) when that module is installed, else through the
small writer below that produces the same files (same columns, same number
formatting), so that ``selfinterp replicate`` reads either.  The layout has
no soft labels: a logprob choice appears as its more probable option (the
probabilities are in the JSON-lines transcripts), and an invalid reply has no
row, as in the paper's files.

Inputs are plain arrays:

- ``choices[key] = dict(idx (C,), A, B (C, T, K) shown options, y (C, T) 1 when
  the option shown first was chosen, mask (C, T), model)``, keys
  ``"instilled"`` and ``"latent"``;
- ``reports[condition] = dict(idx (C,), report (C, R, K), valid (C, R), A, B
  (C, R, K), model)``, conditions as the paper's (``"base"``, ``"instilled"``,
  ``"itrained_first_50_of_100_50ex"``, ...);
- ``regression[key] = (idx (C,), weights (C, K))``.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from ..design import Context

__all__ = ["write_layout", "file_safe"]

CHOICE_FILES = {"instilled": "instilled_selections.csv", "latent": "instilled_latent_selections.csv"}
REGRESSION_FILES = {"instilled": "regression_results.csv", "latent": "latent_regression_results.csv"}


def file_safe(model: str) -> str:
    """A model name usable in the layout's file names."""
    return "".join("_" if ch in '/\\:*?["\0' else ch for ch in model)


def _num(x) -> str:
    x = float(x)
    if x.is_integer() and abs(x) < 2**53:
        return "-0" if x == 0 and np.signbit(x) else str(int(x))
    return repr(x)


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    tmp.replace(path)


def _opts(K: int) -> list[str]:
    return [f"A_attribute_{k}" for k in range(1, K + 1)] + [f"B_attribute_{k}" for k in range(1, K + 1)]


def _write_own(directory: Path, model: str, contexts, targets, choices, reports, regression) -> None:
    K = len(contexts[0].attributes)
    a = [f"attr{k}" for k in range(1, K + 1)]
    _write(directory / "scenarios.csv", ["scenario", "question"] + a + [f"{x}_min" for x in a] + [f"{x}_max" for x in a],
           [[c.name, c.question] + [t.name for t in c.attributes] + [repr(float(t.min)) for t in c.attributes]
            + [repr(float(t.max)) for t in c.attributes] for c in contexts])
    if targets is not None:
        _write(directory / "instilled_weights.csv", ["scenario"] + a,
               [[c.name] + [_num(x) for x in w] for c, w in zip(contexts, targets)])
    for key, d in choices.items():
        rows = [[d["model"], contexts[i].name, "A" if d["y"][j, t] == 1 else "B"]
                + [repr(float(x)) for x in d["A"][j, t]] + [repr(float(x)) for x in d["B"][j, t]]
                for j, i in enumerate(d["idx"]) for t in np.flatnonzero(d["mask"][j])]
        _write(directory / f"{model}_{CHOICE_FILES[key]}", ["model", "scenario", "selection"] + _opts(K), rows)
    for cond, d in reports.items():
        rows = [[d["model"], cond, contexts[i].name] + [_num(x) for x in d["report"][j, r]]
                + [repr(float(x)) for x in d["A"][j, r]] + [repr(float(x)) for x in d["B"][j, r]]
                for j, i in enumerate(d["idx"]) for r in np.flatnonzero(d["valid"][j])]
        name = f"{model}_weight_reports.csv" if cond == "base" else f"{model}_{cond}_weight_reports.csv"
        _write(directory / name, ["explaining_model", "version", "scenario"]
               + [f"report_attr{k}" for k in range(1, K + 1)] + _opts(K), rows)
    for key, (idx, w) in regression.items():
        _write(directory / f"{model}_{REGRESSION_FILES[key]}", ["scenario"] + [f"b_attr{k}" for k in range(1, K + 1)],
               [[contexts[i].name] + [_num(x) for x in row] for i, row in zip(idx, w) if np.all(np.isfinite(row))])


def _write_io(directory: Path, model: str, contexts, targets, choices, reports, regression) -> None:
    import xarray as xr

    from .. import io

    scen = io.scenarios_from_contexts(contexts)
    attrs = scen["attribute"].values

    def da(idx, w):
        return xr.DataArray(np.asarray(w, dtype=np.float64), dims=("context", "attribute"),
                            coords={"context": [contexts[i].name for i in idx], "attribute": attrs})

    target = None if targets is None else da(range(len(contexts)), targets)
    data = io.ReleasedData(
        model=model, scenarios=scen, target_weight=target,
        choices={k: io.selections_dataset(d["A"], d["B"], d["y"], mask=d["mask"],
                                          context=[contexts[i].name for i in d["idx"]], scenarios=scen,
                                          model_id=d["model"], target_weight=target)
                 for k, d in choices.items()},
        reports={c: io.reports_dataset(d["report"], d["valid"], context=[contexts[i].name for i in d["idx"]],
                                       scenarios=scen, A=d["A"], B=d["B"], explaining_model=d["model"], version=c)
                 for c, d in reports.items()},
        regression={k: da(idx, w) for k, (idx, w) in regression.items()})
    io.write_released(directory, model, data)


def write_layout(directory, model: str, contexts: Sequence[Context], targets, *, choices: dict, reports: dict,
                 regression: dict) -> Path:
    """Write the released layout for ``model`` into ``directory`` (see the module docstring)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    writer = _write_io if importlib.util.find_spec("selfinterp.io") is not None else _write_own
    writer(directory, file_safe(model), list(contexts), targets, choices, reports, regression)
    return directory
