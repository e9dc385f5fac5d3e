"""Reader and writer of the paper's released layout, for any model name.

The layout of Plunkett et al. (2025) is a directory holding

| file | content |
| --- | --- |
| ``scenarios.csv`` | contexts: ``scenario, question, attr1..K, attr1_min..attrK_min, attr1_max..attrK_max`` |
| ``instilled_weights.csv`` | target weights ``scenario, attr1..K`` |
| ``<model>_instilled_selections.csv`` | choices on the instilled contexts: ``model, scenario, selection (A/B), A_attribute_1..K, B_attribute_1..K`` |
| ``<model>_instilled_latent_selections.csv`` | choices on the native ("latent") contexts |
| ``<model>_<infix>weight_reports.csv`` | self-reports: ``explaining_model, version, scenario, report_attr1..K, A_attribute_1..K, B_attribute_1..K`` |
| ``<model>_<infix>regression_results.csv`` | the authors' learned weights ``scenario, b_attr1..K`` |

Only ``scenarios.csv`` is required; every other file is optional and, when
absent, is listed in :attr:`ReleasedData.absent`.  Report files are found by
the pattern ``<model>_*weight_reports.csv``: the text between ``<model>_`` and
``weight_reports.csv`` (without its trailing underscore) is the *condition*,
``"base"`` when empty (the untrained model's own reports).  Regression
results are keyed ``"instilled"`` (``<model>_regression_results.csv``) and
``"latent"``; choices ``"instilled"`` and ``"latent"``.

Invalid reports.  The released report files hold only the valid replies:
``calls_per_context`` calls (10 in the paper) were made per context and the
rows of invalid replies (wrong keys, not JSON) were dropped.  A reports
Dataset therefore has a ``report`` dimension of length ``calls_per_context``;
the rows read fill its first slots and the remaining slots are invalid
(``report_valid`` False, ``report`` NaN).  A context with more rows than
calls is an error.  A context with no valid reply at all does not appear in
the file; :func:`align_reports` adds such contexts as all-invalid once the
expected contexts are known.

Datasets (the layout of :mod:`selfinterp.labelled`; ``context`` coordinates
are scenario names, ``attribute`` coordinates ``attr1..attrK``):

- scenarios: ``question`` (context), ``attribute_name``, ``attr_min``,
  ``attr_max`` (context, attribute).
- choices: ``X`` (context, trial, attribute) range-normalised A-minus-B
  differences ``(A - B) / (max - min)``; ``y`` (context, trial) 1 when A was
  chosen; ``mask`` (context, trial) for ragged trial counts; the raw option
  values ``A`` and ``B`` (context, trial, attribute); ``model_id`` (context,
  trial) the model column; ``attribute_name``, ``attr_min``, ``attr_max``
  and, when every context has one, ``target_weight`` (context, attribute).
  Padded trials hold zeros (``mask`` False) and ``model_id`` "".
- reports: ``report`` (context, report, attribute), ``report_valid``
  (context, report), the option values shown ``A`` and ``B`` (context,
  report, attribute), ``explaining_model`` and ``version`` (context,
  report); invalid slots hold NaN and "".  Because ``report`` shares its
  dimension's name, xarray lists it among the coordinates (not the
  ``data_vars``); ``ds["report"]`` reaches it as usual.

Duplicated rows are errors: a repeated scenario in ``scenarios.csv``,
``instilled_weights.csv`` or a regression file, and an exactly repeated line
in a selections or reports file (with option values drawn from continuous
ranges a repeat is a copy, not a coincidence).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from ._table import Table, format_number, read_table, write_table

__all__ = [
    "ReleasedData", "read_released", "write_released", "read_scenarios", "read_target_weights",
    "read_selections", "read_reports", "read_regression", "align_reports", "scenarios_dataset",
    "reports_dataset", "selections_dataset", "scenarios_from_contexts", "write_scenarios", "write_target_weights", "write_selections",
    "write_reports", "write_regression", "CHOICE_FILES", "REGRESSION_FILES", "STANDARD_REPORTS",
]

# key -> file name suffix after "<model>_"
CHOICE_FILES = {"instilled": "instilled_selections.csv", "latent": "instilled_latent_selections.csv"}
REGRESSION_FILES = {"instilled": "regression_results.csv", "latent": "latent_regression_results.csv"}
# the report conditions of the paper's runs: listed as absent when missing
STANDARD_REPORTS = ("base", "instilled", "itrained_first_50_of_100_50ex",
                    "itrained_last_50_of_100_50ex", "instilled_latent",
                    "itrained_all_100_50ex_latent")
REPORT_SUFFIX = "weight_reports.csv"
CA = ("context", "attribute")


def _attrs(K):
    return [f"attr{k + 1}" for k in range(K)]


def _option_columns(K):
    return [f"A_attribute_{k + 1}" for k in range(K)] + [f"B_attribute_{k + 1}" for k in range(K)]


def report_file(model: str, condition: str) -> str:
    """File name of the reports of ``condition`` (``"base"`` -> ``<model>_weight_reports.csv``)."""
    return f"{model}_{REPORT_SUFFIX}" if condition == "base" else f"{model}_{condition}_{REPORT_SUFFIX}"


# ---------------------------------------------------------------------------------------------
# scenarios and target weights


def _check_unique(table: Table, names: list[str], what: str = "scenario") -> None:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            raise InputError(f"{table.where(i)}: duplicated {what} {name!r} (first on line "
                             f"{int(table.lines[first[name]])})")
        first[name] = i


def _scenario_columns(path: Path):
    """The columns of scenarios.csv, K being the number of ``attrN`` columns of its header."""
    def columns(header):
        K = sum(1 for n in header if re.fullmatch(r"attr\d+", n))
        if K == 0:
            raise InputError(f"{path}, line 1: no attribute columns attr1, attr2, ... in the header")
        a = _attrs(K)
        return ["scenario", "question"] + a + [f"{x}_min" for x in a] + [f"{x}_max" for x in a]

    return columns


def scenarios_dataset(context, attribute_name, attr_min, attr_max, question=None) -> xr.Dataset:
    """Build a scenarios Dataset from arrays.

    Parameters
    ----------
    context : sequence of str (C,)
        Scenario names (unique).
    attribute_name : array of str (C, K)
    attr_min, attr_max : array (C, K)
        Attribute ranges; ``attr_max > attr_min`` everywhere.
    question : sequence of str (C,), optional
        Defaults to "".
    """
    context = [str(c) for c in context]
    if len(set(context)) != len(context):
        raise InputError("scenario names must be unique")
    lo = np.asarray(attr_min, dtype=np.float64)
    hi = np.asarray(attr_max, dtype=np.float64)
    names = np.asarray(attribute_name, dtype=str)
    C, K = lo.shape
    if hi.shape != (C, K) or names.shape != (C, K) or len(context) != C:
        raise InputError("context (C,), attribute_name, attr_min and attr_max (C, K) must agree in shape")
    bad = ~(hi > lo)
    if bad.any():
        c, k = np.argwhere(bad)[0]
        raise InputError(f"scenario {context[c]!r}, attribute {k + 1}: max ({hi[c, k]}) must exceed "
                         f"min ({lo[c, k]})")
    q = np.asarray([""] * C if question is None else [str(s) for s in question], dtype=object)
    return xr.Dataset(
        {"question": ("context", q.astype(str)), "attribute_name": (CA, names),
         "attr_min": (CA, lo), "attr_max": (CA, hi)},
        coords={"context": np.asarray(context, dtype=object).astype(str), "attribute": _attrs(K)},
    )


def scenarios_from_contexts(contexts) -> xr.Dataset:
    """Scenarios Dataset of :class:`selfinterp.design.Context` objects (all with the same K)."""
    contexts = list(contexts)
    if not contexts:
        raise InputError("no contexts")
    Ks = {len(c.attributes) for c in contexts}
    if len(Ks) != 1:
        raise InputError(f"contexts must share their number of attributes, got {sorted(Ks)}")
    return scenarios_dataset([c.name for c in contexts],
                             [[a.name for a in c.attributes] for c in contexts],
                             [[a.min for a in c.attributes] for c in contexts],
                             [[a.max for a in c.attributes] for c in contexts],
                             [c.question for c in contexts])


def read_scenarios(path) -> xr.Dataset:
    """Read ``scenarios.csv`` into a scenarios Dataset (see the module docstring)."""
    path = Path(os.fspath(path))
    t = read_table(path, _scenario_columns(path))
    K = sum(1 for c in t.header if re.fullmatch(r"attr\d+", c))
    a = _attrs(K)
    if len(t) == 0:
        raise InputError(f"{path}: no scenarios")
    names = t.strings("scenario")
    _check_unique(t, names)
    lo = t.numbers([f"{x}_min" for x in a])
    hi = t.numbers([f"{x}_max" for x in a])
    bad = ~(hi > lo)
    if bad.any():
        r, k = np.argwhere(bad)[0]
        raise InputError(f"{t.where(r)}: attr{k + 1}_max ({hi[r, k]}) must exceed attr{k + 1}_min "
                         f"({lo[r, k]})")
    attr_names = np.array([t.strings(x) for x in a], dtype=str).T.reshape(len(t), K)
    ds = scenarios_dataset(names, attr_names, lo, hi, t.strings("question"))
    ds.attrs["source"] = str(path)
    return ds


def _scenario_rows(t: Table, names: list[str], scenarios: xr.Dataset) -> np.ndarray:
    """Index into ``scenarios`` of each row's scenario; unknown names are errors."""
    index = {str(c): i for i, c in enumerate(scenarios["context"].values)}
    out = np.empty(len(names), dtype=np.int64)
    for r, name in enumerate(names):
        i = index.get(name)
        if i is None:
            raise InputError(f"{t.where(r)}: unknown scenario {name!r} (not in scenarios.csv)")
        out[r] = i
    return out


def read_target_weights(path, scenarios: xr.Dataset) -> xr.DataArray:
    """Read ``instilled_weights.csv``: DataArray ``target_weight`` (context, attribute), file order."""
    K = scenarios.sizes["attribute"]
    t = read_table(path, ["scenario"] + _attrs(K))
    names = t.strings("scenario")
    _scenario_rows(t, names, scenarios)
    _check_unique(t, names)
    w = t.numbers(_attrs(K)).reshape(len(t), K)
    t.check_range(_attrs(K), w, -100.0, 100.0, "the weight scale")
    return xr.DataArray(w, dims=CA, coords={"context": np.array(names, dtype=str),
                                             "attribute": _attrs(K)}, name="target_weight")


def read_regression(path, scenarios: xr.Dataset) -> xr.DataArray:
    """Read ``<model>_*regression_results.csv``: DataArray ``weight`` (context, attribute)."""
    K = scenarios.sizes["attribute"]
    t = read_table(path, ["scenario"] + [f"b_attr{k + 1}" for k in range(K)])
    names = t.strings("scenario")
    _scenario_rows(t, names, scenarios)
    _check_unique(t, names)
    w = t.numbers([f"b_attr{k + 1}" for k in range(K)]).reshape(len(t), K)
    return xr.DataArray(w, dims=CA, coords={"context": np.array(names, dtype=str),
                                             "attribute": _attrs(K)}, name="weight")


# ---------------------------------------------------------------------------------------------
# selections and reports


def _check_no_repeated_lines(t: Table) -> None:
    # joined strings, not tuples: strings are not tracked by the garbage collector
    if len(set(map("\x00".join, t.rows))) == len(t.rows):
        return
    first: dict[tuple, int] = {}
    for i, row in enumerate(t.rows):
        key = tuple(row)
        if key in first:
            raise InputError(f"{t.where(i)}: duplicated row (same as line {int(t.lines[first[key]])})")
        first[key] = i


OPTION_TOLERANCE = 0.05


def _check_options(t: Table, opts: list[str], values: np.ndarray, rows_ctx: np.ndarray,
                   scenarios: xr.Dataset) -> None:
    """Option values (R, 2K) within their scenario's [min, max], give or take 5% of the span.

    The paper's files round option values for display: up to 1.01% of the span
    lies outside [min, max] there (0 where the minimum is 0.1, for example).
    """
    lo, hi = scenarios["attr_min"].values[rows_ctx], scenarios["attr_max"].values[rows_ctx]
    tol = OPTION_TOLERANCE * (hi - lo)
    lo, hi = np.concatenate([lo - tol, lo - tol], axis=1), np.concatenate([hi + tol, hi + tol], axis=1)
    t.check_range(opts, values, lo, hi, "the scenario's range")


def _group(rows_ctx: np.ndarray):
    """Contexts in order of first appearance, and each row's slot within its context."""
    order, inverse = [], np.empty(len(rows_ctx), dtype=np.int64)
    seen: dict[int, int] = {}
    slot = np.empty(len(rows_ctx), dtype=np.int64)
    counts: list[int] = []
    for r, c in enumerate(rows_ctx):
        g = seen.get(int(c))
        if g is None:
            g = seen[int(c)] = len(order)
            order.append(int(c))
            counts.append(0)
        inverse[r] = g
        slot[r] = counts[g]
        counts[g] += 1
    return np.asarray(order, dtype=np.int64), inverse, slot, np.asarray(counts, dtype=np.int64)


def _context_vars(scenarios: xr.Dataset, ctx_idx: np.ndarray) -> dict:
    sub = scenarios.isel(context=ctx_idx)
    return {"attribute_name": (CA, sub["attribute_name"].values),
            "attr_min": (CA, sub["attr_min"].values), "attr_max": (CA, sub["attr_max"].values)}


def read_selections(path, scenarios: xr.Dataset, target_weight: xr.DataArray | None = None) -> xr.Dataset:
    """Read ``<model>_instilled[_latent]_selections.csv`` into a choices Dataset.

    Contexts appear in the order of their first row; trials in file order.
    ``target_weight`` (from :func:`read_target_weights`) is attached when it
    covers every context of the file.
    """
    K = scenarios.sizes["attribute"]
    opts = _option_columns(K)
    t = read_table(path, ["model", "scenario", "selection"] + opts)
    if len(t) == 0:
        raise InputError(f"{t.path}: no choices")
    rows_ctx = _scenario_rows(t, t.strings("scenario"), scenarios)
    sel = t.strings("selection")
    for r, s in enumerate(sel):
        if s not in ("A", "B"):
            raise InputError(f"{t.where(r)}: selection must be 'A' or 'B', got {s!r}")
    values = t.numbers(opts)
    _check_options(t, opts, values, rows_ctx, scenarios)
    _check_no_repeated_lines(t)
    order, g, slot, counts = _group(rows_ctx)
    C, T = len(order), int(counts.max())
    A = np.zeros((C, T, K))
    B = np.zeros((C, T, K))
    y = np.zeros((C, T))
    mask = np.zeros((C, T), dtype=bool)
    model_id = np.full((C, T), "", dtype=object)
    A[g, slot] = values[:, :K]
    B[g, slot] = values[:, K:]
    y[g, slot] = np.asarray([s == "A" for s in sel], dtype=np.float64)
    mask[g, slot] = True
    model_id[g, slot] = t.strings("model")
    ds = selections_dataset(A, B, y, mask=mask, context=scenarios["context"].values[order],
                            scenarios=scenarios, model_id=model_id, target_weight=target_weight)
    ds.attrs["source"] = str(t.path)
    return ds


def selections_dataset(A, B, y, *, mask=None, context, scenarios: xr.Dataset, model_id="",
                       target_weight: xr.DataArray | None = None) -> xr.Dataset:
    """Build a choices Dataset from raw option values.

    Parameters
    ----------
    A, B : array (C, T, K)
        Raw option values; ``X = (A - B) / (max - min)`` per attribute.
    y : array (C, T)
        1 when A was chosen, else 0.
    mask : bool array (C, T), optional
        True for trials that exist (default all); padded trials are zeroed.
    context : sequence of str (C,)
        Scenario names, all in ``scenarios``.
    model_id : str or array of str (C, T)
        The ``model`` column (the queried model's id).
    target_weight : xr.DataArray (context, attribute), optional
        Attached when it covers every context.
    """
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    C, T, K = A.shape
    mask = np.ones((C, T), bool) if mask is None else np.asarray(mask, bool)
    if B.shape != A.shape or np.shape(y) != (C, T) or mask.shape != (C, T):
        raise InputError(f"A, B (C, T, K), y and mask (C, T) disagree: {A.shape}, {B.shape}, "
                         f"{np.shape(y)}, {mask.shape}")
    idx = _scenario_index(context, scenarios)
    if scenarios.sizes["attribute"] != K:
        raise InputError(f"choices have {K} attributes, the scenarios {scenarios.sizes['attribute']}")
    m3 = mask[..., None]
    A = np.where(m3, A, 0.0)
    B = np.where(m3, B, 0.0)
    sub = scenarios.isel(context=idx)
    span = (sub["attr_max"].values - sub["attr_min"].values)[:, None, :]
    CT, CTK = ("context", "trial"), ("context", "trial", "attribute")
    mid = np.where(mask, np.broadcast_to(np.asarray(model_id, dtype=object), (C, T)), "")
    ds = xr.Dataset(
        {"X": (CTK, (A - B) / span), "y": (CT, np.where(mask, np.asarray(y, dtype=np.float64), 0.0)),
         "mask": (CT, mask), "A": (CTK, A), "B": (CTK, B), "model_id": (CT, mid.astype(str)),
         **_context_vars(scenarios, idx)},
        coords={"context": sub["context"].values, "attribute": _attrs(K)},
    )
    return _attach_target(ds, target_weight)


def _attach_target(ds: xr.Dataset, target_weight):
    if target_weight is None:
        return ds
    have = set(map(str, target_weight["context"].values))
    if all(str(c) in have for c in ds["context"].values):
        ds["target_weight"] = (CA, target_weight.sel(context=ds["context"].values).values)
    return ds


def reports_dataset(report, report_valid=None, *, context, scenarios: xr.Dataset, A=None, B=None,
                    explaining_model="", version="") -> xr.Dataset:
    """Build a reports Dataset from arrays.

    Parameters
    ----------
    report : array (C, R, K)
        Reported weights; entries of invalid slots are ignored (stored NaN).
    report_valid : bool array (C, R), optional
        True for valid replies; default all True.
    context : sequence of str (C,)
        Scenario names, all in ``scenarios``.
    A, B : array (C, R, K), optional
        Option values shown in the prompt; default the attributes' minima
        (the released layout needs some values there).
    explaining_model, version : str or array of str (C, R)
    """
    report = np.asarray(report, dtype=np.float64)
    C, R, K = report.shape
    valid = np.ones((C, R), bool) if report_valid is None else np.asarray(report_valid, bool)
    if valid.shape != (C, R):
        raise InputError(f"report_valid has shape {valid.shape}, expected {(C, R)}")
    ctx_idx = _scenario_index(context, scenarios)
    if scenarios.sizes["attribute"] != K:
        raise InputError(f"reports have {K} attributes, the scenarios {scenarios.sizes['attribute']}")
    lo = scenarios["attr_min"].values[ctx_idx][:, None, :]
    A = np.broadcast_to(lo, (C, R, K)) if A is None else np.asarray(A, dtype=np.float64)
    B = np.broadcast_to(lo, (C, R, K)) if B is None else np.asarray(B, dtype=np.float64)
    inv = ~valid[..., None]
    CR = ("context", "report")
    return xr.Dataset(
        {"report": (CR + ("attribute",), np.where(inv, np.nan, report)),
         "report_valid": (CR, valid),
         "A": (CR + ("attribute",), np.where(inv, np.nan, A)),
         "B": (CR + ("attribute",), np.where(inv, np.nan, B)),
         "explaining_model": (CR, np.where(valid, np.broadcast_to(np.asarray(explaining_model, dtype=object), (C, R)), "").astype(str)),
         "version": (CR, np.where(valid, np.broadcast_to(np.asarray(version, dtype=object), (C, R)), "").astype(str)),
         **_context_vars(scenarios, ctx_idx)},
        coords={"context": scenarios["context"].values[ctx_idx], "attribute": _attrs(K)},
    )


def _scenario_index(context, scenarios) -> np.ndarray:
    index = {str(c): i for i, c in enumerate(scenarios["context"].values)}
    out = []
    for c in context:
        if str(c) not in index:
            raise InputError(f"unknown scenario {str(c)!r} (not in the scenarios)")
        out.append(index[str(c)])
    if len(set(out)) != len(out):
        raise InputError("context names must be unique")
    return np.asarray(out, dtype=np.int64)


def read_reports(path, scenarios: xr.Dataset, *, calls_per_context: int = 10) -> xr.Dataset:
    """Read ``<model>_*weight_reports.csv`` into a reports Dataset.

    Each row is one valid reply; ``calls_per_context`` calls were made per
    context, so the ``report`` dimension has that length and the slots after
    a context's rows are invalid replies (``report_valid`` False).  Contexts
    appear in the order of their first row.  The Dataset's attrs give
    ``calls_per_context`` and ``n_valid`` (rows read).
    """
    if int(calls_per_context) < 1:
        raise InputError(f"calls_per_context must be at least 1, got {calls_per_context}")
    K = scenarios.sizes["attribute"]
    rep_cols = [f"report_attr{k + 1}" for k in range(K)]
    opts = _option_columns(K)
    t = read_table(path, ["explaining_model", "version", "scenario"] + rep_cols + opts)
    rows_ctx = _scenario_rows(t, t.strings("scenario"), scenarios)
    rep = t.numbers(rep_cols).reshape(len(t), K)
    values = t.numbers(opts).reshape(len(t), 2 * K)
    _check_options(t, opts, values, rows_ctx, scenarios)
    _check_no_repeated_lines(t)
    # a report outside the weight scale is an invalid reply (as the reply parser has it): counted, never averaged
    in_scale = (np.abs(rep) <= 100.0).all(axis=1)
    order, g, slot, counts = _group(rows_ctx)
    R = int(calls_per_context)
    over = np.flatnonzero(counts > R)
    if len(over):
        c = over[0]
        r = int(np.flatnonzero((g == c) & (slot == R))[0])
        raise InputError(f"{t.where(r)}: scenario {str(scenarios['context'].values[order[c]])!r} has "
                         f"{int(counts[c])} reports, more than the {R} calls made per context "
                         "(calls_per_context)")
    C = len(order)
    report = np.zeros((C, R, K))
    A = np.zeros((C, R, K))
    B = np.zeros((C, R, K))
    valid = np.zeros((C, R), dtype=bool)
    em = np.full((C, R), "", dtype=object)
    ver = np.full((C, R), "", dtype=object)
    report[g, slot] = rep
    A[g, slot] = values[:, :K]
    B[g, slot] = values[:, K:]
    valid[g, slot] = in_scale
    em[g, slot] = t.strings("explaining_model")
    ver[g, slot] = t.strings("version")
    ds = reports_dataset(report, valid, context=scenarios["context"].values[order], scenarios=scenarios,
                         A=A, B=B, explaining_model=em, version=ver)
    ds.attrs.update(source=str(t.path), calls_per_context=R, n_valid=int(in_scale.sum()),
                    n_out_of_scale=int((~in_scale).sum()))
    return ds


def align_reports(reports: xr.Dataset, context) -> xr.Dataset:
    """Reports over exactly ``context`` (in that order): absent contexts become all-invalid.

    Contexts of ``reports`` not in ``context`` are an error (nothing is
    dropped silently).
    """
    context = [str(c) for c in context]
    have = [str(c) for c in reports["context"].values]
    extra = sorted(set(have) - set(context))
    if extra:
        raise InputError(f"reports{_src(reports)} hold {len(extra)} context(s) not expected here, "
                         f"e.g. {extra[0]!r}")
    pos = {c: i for i, c in enumerate(have)}
    C = len(context)
    out = {}
    # every variable, ``report`` included: xarray files it under coords (it shares its
    # dimension's name), so data_vars alone would drop it
    for name, var in reports.variables.items():
        if name in reports.indexes:
            continue
        da = reports[name]
        if "context" not in da.dims:
            out[name] = da
            continue
        da = da.transpose("context", ...)
        if da.dtype == bool:
            fill = False
        elif da.dtype.kind in "US":
            fill = ""
        else:
            fill = np.nan
        arr = np.full((C,) + da.shape[1:], fill, dtype=da.dtype)
        for i, c in enumerate(context):
            if c in pos:
                arr[i] = da.values[pos[c]]
        out[name] = (da.dims, arr)
    missing = [c for c in context if c not in pos]
    ds = xr.Dataset(out, coords={"context": np.array(context, dtype=str),
                                 "attribute": reports["attribute"].values}, attrs=dict(reports.attrs))
    ds.attrs["n_absent_contexts"] = len(missing)
    return ds


def _src(ds) -> str:
    s = ds.attrs.get("source")
    return f" ({s})" if s else ""


# ---------------------------------------------------------------------------------------------
# the whole directory


@dataclass(repr=False)
class ReleasedData:
    """Everything read from one model's files in the released layout.

    Attributes
    ----------
    model : str
        The model name used in the file names.
    scenarios : xr.Dataset
        All contexts of ``scenarios.csv`` (see :func:`read_scenarios`).
    target_weight : xr.DataArray or None
        ``instilled_weights.csv`` (context, attribute), None when absent.
    choices : dict of str to xr.Dataset
        ``"instilled"`` and ``"latent"`` choices Datasets, when present.
    reports : dict of str to xr.Dataset
        Reports Datasets keyed by condition (``"base"``, ``"instilled"``,
        ``"itrained_first_50_of_100_50ex"``, ...).
    regression : dict of str to xr.DataArray
        The authors' learned weights, ``"instilled"`` and ``"latent"``.
    absent : list of str
        File names of the paper's standard files that were not found.
    calls_per_context : int
        Report calls made per context.
    """

    model: str
    scenarios: xr.Dataset
    target_weight: xr.DataArray | None = None
    choices: dict = field(default_factory=dict)
    reports: dict = field(default_factory=dict)
    regression: dict = field(default_factory=dict)
    absent: list = field(default_factory=list)
    calls_per_context: int = 10

    def __repr__(self) -> str:
        ch = ", ".join(f"{k} {ds.sizes['context']}x{ds.sizes['trial']}" for k, ds in self.choices.items())
        return (f"<ReleasedData {self.model!r}: {self.scenarios.sizes.get('context', 0)} scenarios; "
                f"choices (contexts x trials) {ch or 'none'}; {len(self.reports)} report conditions "
                f"({', '.join(self.reports) or 'none'}); {len(self.absent)} standard files absent>")

    def identical(self, other: "ReleasedData") -> bool:
        """Same model, same keys and identical Datasets (attrs aside)."""
        def same(a, b):
            if a is None or b is None:
                return a is None and b is None
            return a.drop_attrs().identical(b.drop_attrs())

        return (self.model == other.model and same(self.scenarios, other.scenarios)
                and same(self.target_weight, other.target_weight)
                and all(d1.keys() == d2.keys() and all(same(d1[k], d2[k]) for k in d1)
                        for d1, d2 in ((self.choices, other.choices), (self.reports, other.reports),
                                       (self.regression, other.regression))))


def _check_model(model: str) -> str:
    if not isinstance(model, str) or not model or any(ch in model for ch in "/\\\0*?["):
        raise InputError(f"model must be a non-empty name usable in a file name, got {model!r}")
    return model


def report_conditions(directory, model: str) -> dict[str, Path]:
    """Report files of ``model`` in ``directory``: condition -> path, sorted by condition."""
    directory = Path(directory)
    prefix = f"{model}_"
    found = {}
    for p in directory.iterdir():
        n = p.name
        if n.startswith(prefix) and n.endswith(REPORT_SUFFIX):
            infix = n[len(prefix): len(n) - len(REPORT_SUFFIX)]
            if infix == "":
                found["base"] = p
            elif infix.endswith("_"):
                found[infix[:-1]] = p
    return dict(sorted(found.items()))


def read_released(directory, model: str, *, calls_per_context: int = 10) -> ReleasedData:
    """Read one model's files of the released layout from ``directory``.

    Only ``scenarios.csv`` is required, plus at least one file of ``model``
    (so that a misspelt model name is an error, not an empty result).
    Missing optional files are listed in ``absent``.

    Raises
    ------
    InputError
        Missing directory or ``scenarios.csv``, no file for ``model``, or any
        bad file (the message names the file and line).
    """
    model = _check_model(model)
    directory = Path(os.fspath(directory))
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    scenarios = read_scenarios(directory / "scenarios.csv")
    absent = []
    wpath = directory / "instilled_weights.csv"
    target = read_target_weights(wpath, scenarios) if wpath.exists() else None
    if target is None:
        absent.append(wpath.name)
    choices, regression = {}, {}
    for key, suffix in CHOICE_FILES.items():
        p = directory / f"{model}_{suffix}"
        if p.exists():
            choices[key] = read_selections(p, scenarios, target)
        else:
            absent.append(p.name)
    reports = {}
    for cond, p in report_conditions(directory, model).items():
        reports[cond] = read_reports(p, scenarios, calls_per_context=calls_per_context)
    absent += [report_file(model, c) for c in STANDARD_REPORTS if c not in reports]
    for key, suffix in REGRESSION_FILES.items():
        p = directory / f"{model}_{suffix}"
        if p.exists():
            regression[key] = read_regression(p, scenarios)
        else:
            absent.append(p.name)
    if not (choices or reports or regression):
        raise InputError(f"{directory}: no files for model {model!r} (expected e.g. "
                         f"{model}_{CHOICE_FILES['instilled']})")
    return ReleasedData(model=model, scenarios=scenarios, target_weight=target, choices=choices,
                        reports=reports, regression=regression, absent=sorted(absent),
                        calls_per_context=int(calls_per_context))


# ---------------------------------------------------------------------------------------------
# writers: the exact inverse of the readers


def write_scenarios(path, scenarios: xr.Dataset) -> None:
    """Write a scenarios Dataset as ``scenarios.csv``."""
    K = scenarios.sizes["attribute"]
    a = _attrs(K)
    header = ["scenario", "question"] + a + [f"{x}_min" for x in a] + [f"{x}_max" for x in a]
    names = scenarios["attribute_name"].values
    lo, hi = scenarios["attr_min"].values, scenarios["attr_max"].values
    rows = [[str(c), str(q), *map(str, names[i]), *map(repr, map(float, lo[i])), *map(repr, map(float, hi[i]))]
            for i, (c, q) in enumerate(zip(scenarios["context"].values, scenarios["question"].values))]
    write_table(path, header, rows)


def _write_weights(path, da: xr.DataArray, prefix: str) -> None:
    da = da.transpose("context", "attribute")
    K = da.sizes["attribute"]
    rows = [[str(c), *map(format_number, da.values[i])] for i, c in enumerate(da["context"].values)]
    write_table(path, ["scenario"] + [f"{prefix}{k + 1}" for k in range(K)], rows)


def write_target_weights(path, target_weight: xr.DataArray) -> None:
    """Write target weights (context, attribute) as ``instilled_weights.csv``."""
    _write_weights(path, target_weight, "attr")


def write_regression(path, weight: xr.DataArray) -> None:
    """Write learned weights (context, attribute) as a ``*regression_results.csv``."""
    _write_weights(path, weight, "b_attr")


def _raw_options(ds: xr.Dataset, scenarios: xr.Dataset, dim: str):
    """Raw option values A, B; built from X when the Dataset has none.

    From differences alone, A = min + max(X, 0) * range and B = min +
    max(-X, 0) * range reproduce X = (A - B) / range exactly.
    """
    if "A" in ds and "B" in ds:
        return ds["A"].transpose("context", dim, "attribute").values, ds["B"].transpose("context", dim, "attribute").values
    idx = _scenario_index(ds["context"].values, scenarios)
    lo = scenarios["attr_min"].values[idx][:, None, :]
    span = (scenarios["attr_max"].values[idx] - scenarios["attr_min"].values[idx])[:, None, :]
    X = ds["X"].transpose("context", dim, "attribute").values
    return lo + np.maximum(X, 0.0) * span, lo + np.maximum(-X, 0.0) * span


def write_selections(path, choices: xr.Dataset, scenarios: xr.Dataset, model: str) -> None:
    """Write a choices Dataset as a ``*_selections.csv`` file.

    Uses the raw option values ``A``/``B`` when present (else builds them from
    ``X``), ``model_id`` when present (else ``model``).  ``y`` must be 0 or 1
    on every unmasked trial (the layout has no soft labels).
    """
    ds = choices.transpose("context", "trial", "attribute")
    _scenario_index(ds["context"].values, scenarios)
    A, B = _raw_options(ds, scenarios, "trial")
    y = ds["y"].values
    mask = ds["mask"].values if "mask" in ds else np.ones(y.shape, bool)
    bad = mask & (y != 0) & (y != 1)
    if bad.any():
        c, t = np.argwhere(bad)[0]
        raise InputError(f"y must be 0 or 1 to write selections, got {y[c, t]!r} at context {c}, trial {t}")
    mid = ds["model_id"].values if "model_id" in ds else np.full(y.shape, model, dtype=object)
    K = ds.sizes["attribute"]
    rows = []
    for c, name in enumerate(ds["context"].values):
        for t in np.flatnonzero(mask[c]):
            rows.append([str(mid[c, t]), str(name), "A" if y[c, t] == 1 else "B",
                         *map(repr, map(float, A[c, t])), *map(repr, map(float, B[c, t]))])
    write_table(path, ["model", "scenario", "selection"] + _option_columns(K), rows)


def write_reports(path, reports: xr.Dataset, scenarios: xr.Dataset, model: str, version: str = "") -> None:
    """Write a reports Dataset as a ``*weight_reports.csv`` file: one row per valid report.

    ``explaining_model``/``version`` default to ``model``/``version`` where the
    Dataset has none.  Invalid slots are not written: the file format records
    them only by their absence.
    """
    ds = reports.transpose("context", "report", "attribute")
    _scenario_index(ds["context"].values, scenarios)
    A, B = _raw_options(ds, scenarios, "report") if "A" in ds else (None, None)
    if A is None:
        idx = _scenario_index(ds["context"].values, scenarios)
        A = B = np.broadcast_to(scenarios["attr_min"].values[idx][:, None, :], ds["report"].shape)
    rep, valid = ds["report"].values, ds["report_valid"].values
    em = ds["explaining_model"].values if "explaining_model" in ds else np.full(valid.shape, model, dtype=object)
    ver = ds["version"].values if "version" in ds else np.full(valid.shape, version, dtype=object)
    K = ds.sizes["attribute"]
    rows = []
    for c, name in enumerate(ds["context"].values):
        for r in np.flatnonzero(valid[c]):
            rows.append([str(em[c, r]), str(ver[c, r]), str(name), *map(format_number, rep[c, r]),
                         *map(repr, map(float, A[c, r])), *map(repr, map(float, B[c, r]))])
    write_table(path, ["explaining_model", "version", "scenario"]
                + [f"report_attr{k + 1}" for k in range(K)] + _option_columns(K), rows)


def write_released(directory, model: str, data: ReleasedData) -> list[Path]:
    """Write ``data`` in the released layout: the inverse of :func:`read_released`.

    ``read_released(directory, model)`` then returns Datasets identical to
    those of ``data`` (for reports, provided every context has a valid
    report and the valid slots come first, as the layout cannot say more).
    Returns the paths written.  Files of absent parts are not written.
    """
    model = _check_model(model)
    directory = Path(os.fspath(directory))
    directory.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(data.choices) - set(CHOICE_FILES)) + sorted(set(data.regression) - set(REGRESSION_FILES))
    if unknown:
        raise InputError(f"unknown keys {unknown}: choices take {list(CHOICE_FILES)}, regression "
                         f"takes {list(REGRESSION_FILES)}")
    written = [directory / "scenarios.csv"]
    write_scenarios(written[0], data.scenarios)
    if data.target_weight is not None:
        written.append(directory / "instilled_weights.csv")
        write_target_weights(written[-1], data.target_weight)
    for key, ds in data.choices.items():
        written.append(directory / f"{model}_{CHOICE_FILES[key]}")
        write_selections(written[-1], ds, data.scenarios, model)
    for cond, ds in data.reports.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", cond) or cond.endswith("_"):
            raise InputError(f"report condition {cond!r} must be letters, digits, '_', '.', '-'")
        written.append(directory / report_file(model, cond))
        write_reports(written[-1], ds, data.scenarios, model, version=cond)
    for key, da in data.regression.items():
        written.append(directory / f"{model}_{REGRESSION_FILES[key]}")
        write_regression(written[-1], da)
    return written
