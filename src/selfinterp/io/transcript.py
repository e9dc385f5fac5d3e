"""The toolkit's own transcript format: JSON lines, one object per query.

Every query sent to a model (a choice between two options, or a request to
report its weights) is one line of UTF-8 JSON, an object with these keys:

| key | type | meaning |
| --- | --- | --- |
| ``kind`` | ``"choice"`` or ``"report"`` | what was asked |
| ``model`` | string | the model queried (e.g. a fine-tune id) |
| ``request_id`` | string | unique within the file |
| ``context`` | string | scenario name (a context of the scenarios Dataset) |
| ``A``, ``B`` | list of K numbers | raw option values shown (for a report: the example pair in the prompt), in the context's attribute order |
| ``reply`` | string | the raw reply text, verbatim (kept even when invalid) |
| ``choice`` | ``"A"``, ``"B"`` or null | the parsed choice (choice lines; null = unparseable) |
| ``p_a`` | number in [0, 1] or null | P(A) from log-probabilities (choice lines, optional) |
| ``report`` | list of K numbers or null | the parsed report in attribute order (report lines; null = invalid reply: not JSON, wrong keys) |
| ``metadata`` | object | anything else (prompt id, temperature, timing...) |

``kind``, ``model``, ``request_id``, ``context``, ``A``, ``B`` and ``reply``
are required; ``choice`` and ``p_a`` may appear (non-null) only on choice
lines, ``report`` only on report lines; ``metadata`` is optional; any other
key is an error (a misspelt key would otherwise be ignored), and so is a
key given twice in one line.  Numbers must be finite; ``request_id`` must
not be empty; a ``report`` lies in [-100, 100] (the reply parser's scale);
a ``choice`` must agree with its ``reply`` where the reply is a bare label
(``A``, `` b.``...).  A UTF-8 byte-order mark at the start is accepted.
Example::

    {"kind": "choice", "model": "m", "request_id": "c-0", "context": "loose_leaf_tea",
     "A": [52.0, 7.0, 56.0, 5.0, 2.0], "B": [65.0, 2.0, 31.0, 6.0, 7.0],
     "reply": "A", "choice": "A", "p_a": 0.93}
    {"kind": "report", "model": "m", "request_id": "r-0", "context": "loose_leaf_tea",
     "A": [14.0, 6.0, 65.0, 4.0, 5.0], "B": [20.0, 6.0, 74.0, 1.0, 6.0],
     "reply": "{\\"caffeine_content\\": 10, ...}", "report": [10, 0, 20, 50, 20]}

Reading (:func:`read_transcript`) needs the scenarios Dataset (names and
ranges, from :func:`selfinterp.io.read_scenarios` or, for designs made with
:mod:`selfinterp.design`, :func:`selfinterp.io.scenarios_from_contexts`) and gives the same
Datasets as the released layout: a choices Dataset (``X`` range-normalised
A-minus-B differences, ``y``, ``mask``...) and a reports Dataset
(``report``, ``report_valid``...).  Unparseable choices and invalid reports
stay in the Datasets with ``mask`` / ``report_valid`` False and their raw
``reply``; their numbers are in the attrs ``n_invalid``.  Errors name the
file and the 1-based line.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from .released import _context_vars, _group, reports_dataset

__all__ = ["Transcript", "read_records", "write_transcript", "read_transcript", "to_records", "KEYS"]

KEYS = ("kind", "model", "request_id", "context", "A", "B", "reply", "choice", "p_a", "report", "metadata")
REQUIRED = ("kind", "model", "request_id", "context", "A", "B", "reply")


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _numbers(where, key, value, K):
    if not isinstance(value, list) or len(value) != K:
        n = len(value) if isinstance(value, list) else type(value).__name__
        raise InputError(f"{where}: {key!r} must be a list of {K} numbers, got {n}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"{where}: {key!r} holds {v!r}, not a finite number")
    return [float(v) for v in value]


def _check_options(where, ctx, out, ranges):
    """Option values within the scenario's [min, max], give or take the released reader's tolerance
    (:data:`selfinterp.io.released.OPTION_TOLERANCE` of the span)."""
    from .released import OPTION_TOLERANCE

    lo, hi = ranges[ctx]
    for key in ("A", "B"):
        for k, (v, a, b) in enumerate(zip(out[key], lo, hi)):
            tol = OPTION_TOLERANCE * (b - a)
            if not a - tol <= v <= b + tol:
                raise InputError(f"{where}: {key!r} attribute {k + 1} is {v!r}, outside the scenario "
                                 f"{ctx!r}'s range [{a:g}, {b:g}]")


def validate_record(rec, where: str, n_attributes: dict | None = None, ranges: dict | None = None) -> dict:
    """Check one transcript object; return it with numbers as floats and defaults filled.

    ``n_attributes`` maps known context names to K; an unknown context is an
    error when it is given.  ``ranges`` maps context names to their attributes'
    ``(minima, maxima)``: an option value outside them (give or take 5% of the
    span, as in the released layout) is an error.
    """
    if not isinstance(rec, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    unknown = sorted(set(rec) - set(KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; allowed {list(KEYS)}")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise InputError(f"{where}: missing key(s) {missing}")
    kind = rec["kind"]
    if kind not in ("choice", "report"):
        raise InputError(f"{where}: kind must be 'choice' or 'report', got {kind!r}")
    for k in ("model", "request_id", "context", "reply"):
        if not isinstance(rec[k], str):
            raise InputError(f"{where}: {k!r} must be a string, got {type(rec[k]).__name__}")
    if not rec["request_id"]:
        raise InputError(f"{where}: 'request_id' must not be empty")
    ctx = rec["context"]
    if n_attributes is not None and ctx not in n_attributes:
        raise InputError(f"{where}: unknown scenario {ctx!r} (not in the scenarios)")
    K = n_attributes[ctx] if n_attributes is not None else len(rec["A"]) if isinstance(rec["A"], list) else -1
    out = {k: rec[k] for k in REQUIRED}
    out["A"] = _numbers(where, "A", rec["A"], K)
    out["B"] = _numbers(where, "B", rec["B"], K)
    if ranges is not None and ctx in ranges:
        _check_options(where, ctx, out, ranges)
    choice, p_a, report = rec.get("choice"), rec.get("p_a"), rec.get("report")
    if kind == "choice":
        if report is not None:
            raise InputError(f"{where}: a choice line cannot hold a 'report'")
        if choice not in ("A", "B", None):
            raise InputError(f"{where}: choice must be 'A', 'B' or null, got {choice!r}")
        from ..llm.parse import parse_choice  # (the package's __init__ is not needed for reading)

        said = parse_choice(rec["reply"])
        if choice is not None and said is not None and "AB"[1 - said] != choice:
            raise InputError(f"{where}: choice {choice!r} contradicts the reply {rec['reply']!r}")
        if p_a is not None and (isinstance(p_a, bool) or not isinstance(p_a, (int, float))
                                or not 0.0 <= p_a <= 1.0):
            raise InputError(f"{where}: p_a must be a number in [0, 1] or null, got {p_a!r}")
        out["choice"] = choice
        out["p_a"] = None if p_a is None else float(p_a)
        out["report"] = None
    else:
        if choice is not None or p_a is not None:
            raise InputError(f"{where}: a report line cannot hold 'choice' or 'p_a'")
        out["choice"] = out["p_a"] = None
        out["report"] = None if report is None else _numbers(where, "report", report, K)
        if out["report"] is not None and any(abs(v) > 100.0 for v in out["report"]):
            bad = next(v for v in out["report"] if abs(v) > 100.0)
            raise InputError(f"{where}: 'report' holds {bad!r}, outside the weight scale [-100, 100] "
                             "(an invalid reply is written with report null)")
    meta = rec.get("metadata", {})
    if not isinstance(meta, dict):
        raise InputError(f"{where}: metadata must be an object, got {type(meta).__name__}")
    out["metadata"] = meta
    return out


def read_records(path, scenarios: xr.Dataset | None = None) -> list[dict]:
    """Read and validate every line of a transcript file.

    With ``scenarios``, contexts must be known, the option and report
    lists must have that context's K entries and the option values must lie
    within the context's ranges (give or take 5% of the span).  Duplicated ``request_id`` and
    blank lines are errors.  Returns the records as dicts (all keys present).
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise InputError(f"{path}: file not found" if not path.exists() else f"{path}: not a regular file")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark is accepted, as in the CSV reader
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 text (byte {exc.start})") from exc
    K = ranges = None
    if scenarios is not None:
        names = [str(c) for c in scenarios["context"].values]
        K = {c: int(scenarios.sizes["attribute"]) for c in names}
        ranges = dict(zip(names, zip(scenarios["attr_min"].values.tolist(), scenarios["attr_max"].values.tolist())))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out, seen = [], {}
    for i, line in enumerate(lines, start=1):
        where = f"{path}, line {i}"
        if not line.strip():
            raise InputError(f"{where}: blank line")
        try:
            rec = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg})") from exc
        except _DuplicateKey as exc:
            raise InputError(f"{where}: key {exc.args[0]!r} appears twice in one object") from None
        except RecursionError:
            raise InputError(f"{where}: JSON nested too deeply") from None
        rec = validate_record(rec, where, K, ranges)
        rid = rec["request_id"]
        if rid in seen:
            raise InputError(f"{where}: duplicated request_id {rid!r} (first on line {seen[rid]})")
        seen[rid] = i
        out.append(rec)
    return out


def write_transcript(path, records) -> Path:
    """Validate ``records`` (dicts in the schema) and write them as JSON lines.

    Raises InputError naming the record (0-based index) of the first bad one;
    nothing is written then.
    """
    path = Path(os.fspath(path))
    lines, seen = [], set()
    for i, rec in enumerate(records):
        rec = validate_record(rec, f"record {i}")
        if rec["request_id"] in seen:
            raise InputError(f"record {i}: duplicated request_id {rec['request_id']!r}")
        seen.add(rec["request_id"])
        lines.append(json.dumps({k: rec[k] for k in KEYS}, ensure_ascii=False, allow_nan=False))
    path.write_text("".join(s + "\n" for s in lines), encoding="utf-8")
    return path


@dataclass
class Transcript:
    """The Datasets of one model's transcript.

    Attributes
    ----------
    model : str
    choices : xr.Dataset or None
        Choices Dataset (context, trial, attribute): ``X``, ``y``, ``mask``
        (True for usable choices), ``A``, ``B``, ``choice`` ("A"/"B"/"" when
        unparseable), ``p_a`` (NaN when absent), ``reply``, ``request_id``,
        ``attribute_name``, ``attr_min``, ``attr_max``; attrs ``n_invalid``
        and ``outcome``.  Padded trials have ``request_id`` "".
    reports : xr.Dataset or None
        Reports Dataset (context, report, attribute) as
        :func:`selfinterp.io.read_reports` gives, plus ``reply`` and
        ``request_id``; attrs ``n_invalid``.
    """

    model: str
    choices: xr.Dataset | None
    reports: xr.Dataset | None


def read_transcript(path, scenarios: xr.Dataset, *, model: str | None = None,
                    outcome: str = "choice") -> Transcript:
    """Read a JSON-lines transcript into choices and reports Datasets.

    Parameters
    ----------
    path : path
    scenarios : xr.Dataset
        Names and attribute ranges of the contexts (:func:`read_scenarios`).
    model : str, optional
        Keep only this model's lines; required when the file holds several.
    outcome : {"choice", "p_a"}
        ``y`` is 1/0 from the parsed choice, or P(A) from ``p_a``; lines
        without it are invalid (``mask`` False, counted).
    """
    if outcome not in ("choice", "p_a"):
        raise InputError(f"outcome must be 'choice' or 'p_a', got {outcome!r}")
    recs = read_records(path, scenarios)
    models = sorted({r["model"] for r in recs})
    if model is None:
        if len(models) > 1:
            raise InputError(f"{path}: holds several models {models}; pass model=")
        model = models[0] if models else ""
    recs = [r for r in recs if r["model"] == model]
    if not recs:
        raise InputError(f"{path}: no lines for model {model!r}")
    ch = [r for r in recs if r["kind"] == "choice"]
    rp = [r for r in recs if r["kind"] == "report"]
    return Transcript(model, _choices(ch, scenarios, outcome, path) if ch else None,
                      _reports(rp, scenarios, model, path) if rp else None)


def _slots(recs, scenarios):
    idx = _scenario_index_many([r["context"] for r in recs], scenarios)
    order, g, slot, counts = _group(idx)
    return order, g, slot, int(counts.max())


def _scenario_index_many(names, scenarios):
    index = {str(c): i for i, c in enumerate(scenarios["context"].values)}
    return np.asarray([index[n] for n in names], dtype=np.int64)


def _choices(recs, scenarios, outcome, path):
    order, g, slot, T = _slots(recs, scenarios)
    K = scenarios.sizes["attribute"]
    C = len(order)
    A = np.zeros((C, T, K))
    B = np.zeros((C, T, K))
    A[g, slot] = [r["A"] for r in recs]
    B[g, slot] = [r["B"] for r in recs]
    choice = np.full((C, T), "", dtype=object)
    choice[g, slot] = [r["choice"] or "" for r in recs]
    p_a = np.full((C, T), np.nan)
    p_a[g, slot] = [np.nan if r["p_a"] is None else r["p_a"] for r in recs]
    if outcome == "choice":
        valid = choice != ""
        y = (choice == "A").astype(np.float64)
    else:
        valid = np.isfinite(p_a)
        y = np.where(valid, p_a, 0.0)
    text = {k: np.full((C, T), "", dtype=object) for k in ("reply", "request_id")}
    for k, arr in text.items():
        arr[g, slot] = [r[k] for r in recs]
    sub = scenarios.isel(context=order)
    span = (sub["attr_max"].values - sub["attr_min"].values)[:, None, :]
    present = np.zeros((C, T), bool)
    present[g, slot] = True
    CT, CTK = ("context", "trial"), ("context", "trial", "attribute")
    return xr.Dataset(
        {"X": (CTK, np.where(present[..., None], (A - B) / span, 0.0)), "y": (CT, y), "mask": (CT, valid),
         "A": (CTK, A), "B": (CTK, B), "choice": (CT, choice.astype(str)), "p_a": (CT, p_a),
         **{k: (CT, v.astype(str)) for k, v in text.items()}, **_context_vars(scenarios, order)},
        coords={"context": sub["context"].values, "attribute": list(scenarios["attribute"].values)},
        attrs={"source": str(path), "outcome": outcome, "n_invalid": int((present & ~valid).sum())},
    )


def _reports(recs, scenarios, model, path):
    order, g, slot, R = _slots(recs, scenarios)
    K = scenarios.sizes["attribute"]
    C = len(order)
    rep = np.zeros((C, R, K))
    valid = np.zeros((C, R), bool)
    A = np.zeros((C, R, K))
    B = np.zeros((C, R, K))
    for r, c, s in zip(recs, g, slot):
        if r["report"] is not None:
            rep[c, s] = r["report"]
            valid[c, s] = True
        A[c, s] = r["A"]
        B[c, s] = r["B"]
    present = np.zeros((C, R), bool)
    present[g, slot] = True
    ds = reports_dataset(rep, valid, context=scenarios["context"].values[order], scenarios=scenarios,
                         A=A, B=B, explaining_model=model)
    # invalid replies keep the options they were shown: the Dataset loses nothing
    ds["A"] = (("context", "report", "attribute"), np.where(present[..., None], A, np.nan))
    ds["B"] = (("context", "report", "attribute"), np.where(present[..., None], B, np.nan))
    ds["explaining_model"] = (("context", "report"), np.where(present, model, "").astype(str))
    del ds["version"]
    for k in ("reply", "request_id"):
        arr = np.full((C, R), "", dtype=object)
        arr[g, slot] = [r[k] for r in recs]
        ds[k] = (("context", "report"), arr.astype(str))
    ds.attrs.update(source=str(path), n_invalid=int((present & ~valid).sum()))
    return ds


def to_records(transcript: Transcript) -> list[dict]:
    """The records of a :class:`Transcript` (choices first, then reports), without metadata.

    The inverse of :func:`read_transcript` on the Datasets: writing these
    records and reading them back gives identical Datasets when the file
    listed each kind's lines context by context.
    """
    out = []
    if transcript.choices is not None:
        ds = transcript.choices.transpose("context", "trial", "attribute")
        for c, name in enumerate(ds["context"].values):
            for t in np.flatnonzero(ds["request_id"].values[c] != ""):
                p = float(ds["p_a"].values[c, t])
                out.append({"kind": "choice", "model": transcript.model,
                            "request_id": str(ds["request_id"].values[c, t]), "context": str(name),
                            "A": ds["A"].values[c, t].tolist(), "B": ds["B"].values[c, t].tolist(),
                            "reply": str(ds["reply"].values[c, t]),
                            "choice": str(ds["choice"].values[c, t]) or None,
                            "p_a": None if math.isnan(p) else p, "report": None, "metadata": {}})
    if transcript.reports is not None:
        ds = transcript.reports.transpose("context", "report", "attribute")
        for c, name in enumerate(ds["context"].values):
            for r in np.flatnonzero(ds["request_id"].values[c] != ""):
                ok = bool(ds["report_valid"].values[c, r])
                out.append({"kind": "report", "model": transcript.model,
                            "request_id": str(ds["request_id"].values[c, r]), "context": str(name),
                            "A": ds["A"].values[c, r].tolist(), "B": ds["B"].values[c, r].tolist(),
                            "reply": str(ds["reply"].values[c, r]), "choice": None, "p_a": None,
                            "report": ds["report"].values[c, r].tolist() if ok else None,
                            "metadata": {}})
    return out

