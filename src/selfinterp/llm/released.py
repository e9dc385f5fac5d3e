"""A run's results in the paper's released layout (CSV files named by model).

Written through :func:`selfinterp.io.write_released` (the toolkit's
released-layout writer), so that ``selfinterp replicate`` reads it.  The layout has
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

from pathlib import Path
from typing import Sequence

import numpy as np

from ..design import Context

__all__ = ["write_layout", "file_safe"]



def file_safe(model: str) -> str:
    """A model name usable in the layout's file names."""
    return "".join("_" if ch in '/\\:*?["\0' else ch for ch in model)


def _write(directory: Path, model: str, contexts, targets, choices, reports, regression) -> None:
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
    _write(directory, file_safe(model), list(contexts), targets, choices, reports, regression)
    return directory
