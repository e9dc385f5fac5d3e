"""Your own transcripts in: long-format tables (CSV, Parquet, JSON lines) with a column mapping.

One row per choice (a *choices* table) or per self-report call (a *reports*
table).  A :class:`Columns` mapping says which column holds what:

- ``context``: the decision context (scenario) of the row;
- the options: ``a`` and ``b`` (attribute -> column of option A's / B's
  value), or ``diff`` (attribute -> column of A minus B, used as given);
- the outcome: ``choice`` ("A" or "B") or ``p_a`` (P(A) in [0, 1], e.g. from
  logprobs);
- ``report`` (attribute -> column of the reported weight), and optionally
  ``condition`` (the column naming the report condition) and ``target``
  (attribute -> column of the context's target weight, on choices rows;
  a table whose target columns are all empty has none).

The readers load into the toolkit's Datasets: :func:`read_choices_table`
gives a choices Dataset (context, trial, attribute) and
:func:`read_reports_table` reports Datasets (context, report, attribute), the
layouts :func:`selfinterp.fit_dataset`, :mod:`selfinterp.score`,
``calibrate`` and ``replicate`` read; :func:`read_study_tables` puts a whole
study together as a :class:`~selfinterp.io.ReleasedData`.

Every bad value is an :class:`~selfinterp.errors.InputError` naming the file,
the line (the header is line 1; for Parquet, the row counting from 1) and
the column: a missing, duplicated or unparsable column, an unknown context, a
non-numeric or missing attribute value, a choice that is neither A nor B, a
probability outside [0, 1].  A reports row whose report columns are all
empty is an invalid self-report: it is counted as an invalid call
(``report_valid`` False), as the released layout counts them.  Parquet needs
pyarrow (``pip install pyarrow``).
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["Columns", "read_choices_table", "read_reports_table", "read_study_tables", "read_study_file"]

FORMATS = ("csv", "parquet", "jsonl")


@dataclass(frozen=True)
class Columns:
    """Which column of a long-format table holds what (see the module docstring).

    ``attributes`` fixes the attributes' order; every mapping (``a``, ``b``,
    ``diff``, ``report``, ``target``) is keyed by these names.
    """

    context: str
    attributes: tuple
    a: dict | None = None
    b: dict | None = None
    diff: dict | None = None
    choice: str | None = None
    p_a: str | None = None
    report: dict | None = None
    condition: str | None = None
    target: dict | None = None

    def __post_init__(self):
        attrs = tuple(self.attributes)
        object.__setattr__(self, "attributes", attrs)
        if not attrs or len(set(attrs)) != len(attrs):
            raise InputError(f"Columns: attributes must be distinct names, got {list(attrs)}")
        for field in ("a", "b", "diff", "report", "target"):
            m = getattr(self, field)
            if m is not None and set(m) != set(attrs):
                raise InputError(f"Columns.{field} must map exactly the attributes {list(attrs)}, "
                                 f"got {sorted(m)}")

    def for_choices(self) -> list[str]:
        if (self.a is None) != (self.b is None) or (self.a is None) == (self.diff is None):
            raise InputError("Columns: give the options as a and b, or as diff (A minus B)")
        if (self.choice is None) == (self.p_a is None):
            raise InputError("Columns: give the outcome as choice (A/B) or as p_a (P(A))")
        opts = [self.a[k] for k in self.attributes] + [self.b[k] for k in self.attributes] \
            if self.a is not None else [self.diff[k] for k in self.attributes]
        tgt = [self.target[k] for k in self.attributes] if self.target else []
        return [self.context, self.choice or self.p_a, *opts, *tgt]

    def for_reports(self) -> list[str]:
        if self.report is None:
            raise InputError("Columns: a reports table needs report (attribute -> column)")
        return [self.context] + ([self.condition] if self.condition else []) + \
            [self.report[k] for k in self.attributes]


# ---------------------------------------------------------------------------------------------
# rows of any format: (where, {column: text or value})


def _format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"{path}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = path.suffix.lower()
    for f, ends in (("csv", (".csv",)), ("parquet", (".parquet", ".pq")), ("jsonl", (".jsonl", ".ndjson"))):
        if suffix in ends:
            return f
    raise InputError(f"{path}: cannot tell the format from the suffix {suffix!r}; pass format= "
                     f"({', '.join(FORMATS)})")


def _rows(path: Path, fmt: str, needed: list[str]):
    """[(line, {column: value})] for the ``needed`` columns; errors name file, line and column."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if fmt == "csv":
        return _csv_rows(path, needed)
    if fmt == "jsonl":
        return _jsonl_rows(path, needed)
    return _parquet_rows(path, needed)


def _check_header(path, names, needed, where="line 1 (header)"):
    seen = set()
    for n in names:
        if n in seen and n in needed:
            raise InputError(f"{path}, {where}: column {n!r} appears twice")
        seen.add(n)
    for n in needed:
        if n not in seen:
            raise InputError(f"{path}, {where}: missing column {n!r}")


def _csv_rows(path, needed):
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    reader = csv.reader(_io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{path}: empty file (no header)") from None
    except csv.Error as e:
        raise InputError(f"{path}, line 1: unparsable CSV ({e})") from None
    header = [h.strip() for h in header]
    _check_header(path, header, needed)
    idx = {n: header.index(n) for n in needed}
    out = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise InputError(f"{path}, line {start}: unparsable CSV ({e})") from None
        if not row or all(not c.strip() for c in row):
            continue  # a blank line
        if len(row) != len(header):
            raise InputError(f"{path}, line {start}: {len(row)} fields, the header has {len(header)}")
        out.append((f"line {start}", {n: row[i] for n, i in idx.items()}))
    return out


def _jsonl_rows(path, needed):
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None

    def pairs(items):
        keys = [k for k, _ in items]
        dup = next((k for k in keys if keys.count(k) > 1 and k in needed), None)
        if dup is not None:
            raise InputError(f"column {dup!r} appears twice")
        return dict(items)

    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line, object_pairs_hook=pairs)
        except InputError as e:
            raise InputError(f"{path}, line {i}: {e}") from None
        except json.JSONDecodeError as e:
            raise InputError(f"{path}, line {i}: unparsable JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(rec, dict):
            raise InputError(f"{path}, line {i}: expected a JSON object, got {type(rec).__name__}")
        missing = next((n for n in needed if n not in rec), None)
        if missing is not None:
            raise InputError(f"{path}, line {i}: missing column {missing!r}")
        out.append((f"line {i}", {n: rec[n] for n in needed}))
    return out


def _parquet_rows(path, needed):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own ArrowInvalid etc.
        raise InputError(f"{path}: unparsable Parquet ({e})") from None
    _check_header(path, table.column_names, needed, where="schema")
    cols = {n: table.column(n).to_pylist() for n in needed}
    return [(f"row {i + 1}", {n: cols[n][i] for n in needed}) for i in range(table.num_rows)]


# ---------------------------------------------------------------------------------------------
# values


def _empty(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))


def _text(path, where, col, v) -> str:
    if _empty(v):
        raise InputError(f"{path}, {where}, column {col!r}: empty")
    if isinstance(v, (dict, list, bool)):
        raise InputError(f"{path}, {where}, column {col!r}: expected a name, got {v!r}")
    return str(v).strip()


def _number(path, where, col, v, what="value") -> float:
    if _empty(v):
        raise InputError(f"{path}, {where}, column {col!r}: missing {what}")
    if isinstance(v, bool) or isinstance(v, (dict, list)):
        raise InputError(f"{path}, {where}, column {col!r}: {v!r} is not a number")
    try:
        x = float(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        raise InputError(f"{path}, {where}, column {col!r}: {v!r} is not a number") from None
    if not math.isfinite(x):
        raise InputError(f"{path}, {where}, column {col!r}: {v!r} is not a finite number")
    return x


def _known(path, where, col, name, known):
    if known is not None and name not in known:
        raise InputError(f"{path}, {where}, column {col!r}: unknown context {name!r}")


def _scenarios(contexts, columns: Columns, scenarios, ranges):
    """The scenarios Dataset: the one given, else one built from ``ranges`` over ``contexts``."""
    from .released import scenarios_dataset

    if scenarios is not None:
        return scenarios
    K = len(columns.attributes)
    if ranges is None:
        lo, hi = np.zeros(K), np.ones(K)
    else:
        if set(ranges) != set(columns.attributes):
            raise InputError(f"ranges must give (min, max) for exactly the attributes "
                             f"{list(columns.attributes)}, got {sorted(ranges)}")
        lo = np.array([float(ranges[k][0]) for k in columns.attributes])
        hi = np.array([float(ranges[k][1]) for k in columns.attributes])
    C = len(contexts)
    return scenarios_dataset(contexts, np.array([list(columns.attributes)] * C, dtype=object).reshape(C, K),
                             np.tile(lo, (C, 1)), np.tile(hi, (C, 1)))


def _group_rows(contexts_of_rows):
    """Contexts in order of first appearance and each row's slot within its context."""
    order, slot, count = {}, [], {}
    for c in contexts_of_rows:
        order.setdefault(c, len(order))
        slot.append(count.get(c, 0))
        count[c] = count.get(c, 0) + 1
    return list(order), np.array([order[c] for c in contexts_of_rows], dtype=np.intp), np.array(slot), count


# ---------------------------------------------------------------------------------------------
# readers


def read_choices_table(path, columns: Columns, *, scenarios=None, ranges=None, format: str | None = None):
    """A choices Dataset (context, trial, attribute) from a long-format table, one row per choice.

    Parameters
    ----------
    path : path
        A ``.csv``, ``.parquet`` or ``.jsonl`` file (or say which with ``format``).
    columns : Columns
        The mapping: ``context``, the options (``a`` and ``b``, or ``diff``)
        and the outcome (``choice`` or ``p_a``); ``target`` optionally.
    scenarios : xr.Dataset, optional
        Known contexts with their attribute ranges (e.g.
        :func:`~selfinterp.io.read_scenarios`); a context not in it is an
        error.  Without it the table's contexts are taken as they come.
    ranges : dict attribute -> (min, max), optional
        Without ``scenarios``: the attributes' ranges, used to normalise A and
        B to ``X = (A - B) / (max - min)``; default (0, 1), i.e. ``X = A - B``.
        ``diff`` columns are used as given.

    Returns
    -------
    xr.Dataset
        ``X``, ``y`` (1 = A chosen, or P(A)), ``mask`` (ragged contexts) and,
        with ``target``, ``target_weight``; contexts in order of first
        appearance, trials in file order.
    """
    from ..labelled import choices_dataset

    path = Path(os.fspath(path))
    rows = _rows(path, _format(path, format), columns.for_choices())
    if not rows:
        raise InputError(f"{path}: no rows")
    K = len(columns.attributes)
    known = None if scenarios is None else set(scenarios["context"].values.tolist())
    ctx = []
    for where, r in rows:
        name = _text(path, where, columns.context, r[columns.context])
        _known(path, where, columns.context, name, known)
        ctx.append(name)
    names, ci, slot, count = _group_rows(ctx)
    sc = _scenarios(names, columns, scenarios, ranges)
    sub = sc.sel(context=names)
    span = sub["attr_max"].values - sub["attr_min"].values
    C, T = len(names), max(count.values())
    X = np.zeros((C, T, K))
    y = np.zeros((C, T))
    mask = np.zeros((C, T), bool)
    target = np.full((C, K), np.nan) if columns.target else None
    # target columns all empty in a table (e.g. native contexts): no target weights
    no_target = bool(columns.target) and all(_empty(r[col]) for _, r in rows for col in columns.target.values())
    for (where, r), c, t in zip(rows, ci, slot):
        if columns.choice is not None:
            v = _text(path, where, columns.choice, r[columns.choice])
            if v not in ("A", "B"):
                raise InputError(f"{path}, {where}, column {columns.choice!r}: choice {v!r} is neither A nor B")
            y[c, t] = 1.0 if v == "A" else 0.0
        else:
            p = _number(path, where, columns.p_a, r[columns.p_a], "probability")
            if not 0.0 <= p <= 1.0:
                raise InputError(f"{path}, {where}, column {columns.p_a!r}: probability {p!r} is outside [0, 1]")
            y[c, t] = p
        for k, att in enumerate(columns.attributes):
            if columns.diff is not None:
                col = columns.diff[att]
                X[c, t, k] = _number(path, where, col, r[col], f"attribute {att!r}")
            else:
                a = _number(path, where, columns.a[att], r[columns.a[att]], f"attribute {att!r}")
                b = _number(path, where, columns.b[att], r[columns.b[att]], f"attribute {att!r}")
                X[c, t, k] = (a - b) / span[c, k]
            if target is not None and not no_target:
                col = columns.target[att]
                w = _number(path, where, col, r[col], f"target weight of {att!r}")
                if not math.isnan(target[c, k]) and w != target[c, k]:
                    raise InputError(f"{path}, {where}, column {col!r}: target weight {w!r} differs from "
                                     f"{target[c, k]!r} on an earlier row of context {names[c]!r}")
                target[c, k] = w
        mask[c, t] = True
    ds = choices_dataset(X, y, mask=mask, context=names, target_weight=None if no_target else target,
                         attrs={"source": str(path)})
    return ds.assign(attribute_name=(("context", "attribute"), sub["attribute_name"].values),
                     attr_min=(("context", "attribute"), sub["attr_min"].values),
                     attr_max=(("context", "attribute"), sub["attr_max"].values))


def read_reports_table(path, columns: Columns, *, scenarios=None, ranges=None,
                       calls_per_context: int | None = None, condition: str = "reports",
                       format: str | None = None) -> dict:
    """Reports Datasets (context, report, attribute) from a long-format table, one row per call.

    A row whose report columns are all empty is an invalid self-report: it
    is kept as a slot with ``report_valid`` False.  ``calls_per_context``:
    the calls made per context (a context with fewer rows has the missing
    calls counted invalid, as in the released layout; more rows is an
    error); default the largest number of rows of a context.  Returns
    ``{condition: Dataset}``, keyed by the ``condition`` column's values, or
    by ``condition`` when the mapping has no such column.
    """
    from .released import reports_dataset

    path = Path(os.fspath(path))
    rows = _rows(path, _format(path, format), columns.for_reports())
    if not rows:
        raise InputError(f"{path}: no rows")
    known = None if scenarios is None else set(scenarios["context"].values.tolist())
    K = len(columns.attributes)
    groups: dict = {}
    for where, r in rows:
        name = _text(path, where, columns.context, r[columns.context])
        _known(path, where, columns.context, name, known)
        cond = _text(path, where, columns.condition, r[columns.condition]) if columns.condition else condition
        cols = [columns.report[a] for a in columns.attributes]
        empty = [_empty(r[c]) for c in cols]
        if all(empty):
            vals = None  # an invalid self-report, counted
        else:
            vals = [_number(path, where, c, r[c], f"attribute {a!r}") for c, a in zip(cols, columns.attributes)]
        groups.setdefault(cond, []).append((where, name, vals))
    every = list(dict.fromkeys(n for g in groups.values() for _, n, _ in g))
    sc = _scenarios(every, columns, scenarios, ranges)
    out = {}
    for cond, g in groups.items():
        names, ci, slot, count = _group_rows([n for _, n, _ in g])
        R = max(count.values()) if calls_per_context is None else int(calls_per_context)
        over = next((n for n, m in count.items() if m > R), None)
        if over is not None:
            raise InputError(f"{path}: context {over!r} has {count[over]} report rows of condition {cond!r}, "
                             f"more than calls_per_context = {R}")
        rep = np.full((len(names), R, K), np.nan)
        valid = np.zeros((len(names), R), bool)
        for (_, _, vals), c, s in zip(g, ci, slot):
            if vals is not None:
                rep[c, s] = vals
                valid[c, s] = True
        ds = reports_dataset(rep, valid, context=names, scenarios=sc)
        ds.attrs.update(source=str(path), condition=cond, calls_per_context=R)
        out[cond] = ds
    return out


def read_study_tables(model: str, *, columns: Columns, choices: dict, reports=None, scenarios=None,
                      ranges=None, calls_per_context: int = 10, format: str | None = None):
    """A whole study from long-format tables, ready for ``replicate``.

    ``choices`` maps ``"instilled"`` (and optionally ``"latent"``, the native
    contexts) to a choices table; ``reports`` is a reports table (its
    ``condition`` column names the conditions as the released layout does:
    ``base``, ``instilled``, ``itrained_first_...``, ``instilled_latent``, ...),
    or a dict condition -> table, or a list of tables.  Target weights come
    from the choices tables' ``target`` columns.  Returns a
    :class:`~selfinterp.io.ReleasedData`.
    """
    import xarray as xr

    from .released import ReleasedData, scenarios_dataset

    ch = {key: read_choices_table(p, columns, scenarios=scenarios, ranges=ranges, format=format)
          for key, p in choices.items()}
    reps: dict = {}
    items = [] if reports is None else (list(reports.items()) if isinstance(reports, dict)
                                         else [(None, p) for p in ([reports] if isinstance(reports, (str, os.PathLike)) else reports)])
    for cond, p in items:
        got = read_reports_table(p, columns, scenarios=scenarios, ranges=ranges, calls_per_context=calls_per_context,
                                 condition=cond or "instilled", format=format)
        for k, v in got.items():
            if k in reps:
                raise InputError(f"{p}: condition {k!r} is also in another reports table")
            reps[k] = v
    if scenarios is None:  # every context that appears, with its attributes' ranges
        parts = [ds[["attribute_name", "attr_min", "attr_max"]] for ds in (*ch.values(), *reps.values())]
        merged = xr.concat(parts, dim="context")
        _, first = np.unique(merged["context"].values, return_index=True)
        merged = merged.isel(context=np.sort(first))
        scenarios = scenarios_dataset(merged["context"].values, merged["attribute_name"].values,
                                      merged["attr_min"].values, merged["attr_max"].values)
    target = None
    with_target = [ds["target_weight"] for ds in ch.values() if "target_weight" in ds]
    if with_target:
        target = xr.concat(with_target, dim="context")
    return ReleasedData(model=model, scenarios=scenarios, target_weight=target, choices=ch, reports=reps,
                        calls_per_context=calls_per_context)


# ---------------------------------------------------------------------------------------------
# a study file: which tables, which columns (for `selfinterp replicate STUDY.toml`)

_STUDY_KEYS = {"instilled", "latent", "reports", "scenarios", "format", "calls_per_context", "columns", "ranges"}
_COLUMN_KEYS = {"context", "attributes", "a", "b", "diff", "choice", "p_a", "report", "condition", "target"}


def read_study_file(path, model: str, *, calls_per_context: int | None = None):
    """A whole study from a study file (TOML or JSON) naming its tables and their columns.

    The file holds ``instilled`` (the choices table of the instilled
    contexts), optionally ``latent`` (of the native contexts), ``reports``
    (a table, a list of tables, or a table ``condition -> file``),
    ``scenarios`` (a ``scenarios.csv`` in the released layout: the known
    contexts and the attributes' ranges), ``format``, ``calls_per_context``,
    a ``[columns]`` table (the fields of :class:`Columns`) and a ``[ranges]``
    table (attribute -> [min, max]).  Paths are relative to the file's
    folder.  ``calls_per_context`` given here overrides the file's.  Returns
    :func:`read_study_tables`' :class:`~selfinterp.io.ReleasedData`; an
    unknown key or a value of the wrong kind is an error naming the file and
    the key.
    """
    path = Path(os.fspath(path))
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}, line {exc.lineno}: not JSON: {exc.msg}") from None
    else:
        import tomllib

        try:
            spec = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not TOML: {exc}") from None
    if not isinstance(spec, dict):
        raise InputError(f"{path}: expected a table of keys ({', '.join(sorted(_STUDY_KEYS))})")

    def bad(key, what):
        return InputError(f"{path}: {key}: {what}")

    unknown = sorted(set(spec) - _STUDY_KEYS)
    if unknown:
        raise bad(unknown[0], f"unknown key (expected one of {', '.join(sorted(_STUDY_KEYS))})")
    for key in ("instilled", "columns"):
        if key not in spec:
            raise bad(key, "missing")

    def file(key, v):
        if not isinstance(v, str) or not v:
            raise bad(key, f"expected a file name, got {v!r}")
        p = path.parent / v
        if not p.is_file():
            raise bad(key, f"{p}: no such file")
        return p

    cols = spec["columns"]
    if not isinstance(cols, dict):
        raise bad("columns", "expected a table of the columns' names")
    unknown = sorted(set(cols) - _COLUMN_KEYS)
    if unknown:
        raise bad(f"columns.{unknown[0]}", f"unknown field (expected one of {', '.join(sorted(_COLUMN_KEYS))})")
    for k, v in cols.items():
        ok = (isinstance(v, list) and all(isinstance(x, str) for x in v)) if k == "attributes" else \
            (isinstance(v, dict) and all(isinstance(x, str) for x in v.values())) if k in ("a", "b", "diff", "report", "target") \
            else isinstance(v, str)
        if not ok:
            raise bad(f"columns.{k}", f"expected {'a list of names' if k == 'attributes' else 'attribute -> column' if k in ('a', 'b', 'diff', 'report', 'target') else 'a column name'}, got {v!r}")
    if "context" not in cols or "attributes" not in cols:
        raise bad("columns", "needs context and attributes")
    columns = Columns(**cols)

    ranges = spec.get("ranges")
    if ranges is not None:
        if not isinstance(ranges, dict):
            raise bad("ranges", "expected attribute -> [min, max]")
        for k, v in ranges.items():
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                               for x in v)):
                raise bad(f"ranges.{k}", f"expected [min, max], got {v!r}")
        ranges = {k: tuple(v) for k, v in ranges.items()}
    scenarios = None
    if "scenarios" in spec:
        from .released import read_scenarios

        scenarios = read_scenarios(file("scenarios", spec["scenarios"]))
    fmt = spec.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise bad("format", f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if calls_per_context is None:
        calls_per_context = spec.get("calls_per_context", 10)
        if not isinstance(calls_per_context, int) or isinstance(calls_per_context, bool) or calls_per_context < 1:
            raise bad("calls_per_context", f"expected a positive whole number, got {calls_per_context!r}")
    choices = {key: file(key, spec[key]) for key in ("instilled", "latent") if key in spec}
    reports = spec.get("reports")
    if isinstance(reports, str):
        reports = file("reports", reports)
    elif isinstance(reports, list):
        reports = [file(f"reports[{i}]", v) for i, v in enumerate(reports)]
    elif isinstance(reports, dict):
        reports = {c: file(f"reports.{c}", v) for c, v in reports.items()}
    elif reports is not None:
        raise bad("reports", f"expected a file, a list of files or condition -> file, got {reports!r}")
    return read_study_tables(model, columns=columns, choices=choices, reports=reports, scenarios=scenarios,
                             ranges=ranges, calls_per_context=calls_per_context, format=fmt)
