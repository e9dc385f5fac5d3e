"""Long-format tables of one's own transcripts (selfinterp.io.table).

The reference: the paper's released GPT-4o files, rewritten as long tables
(one row per choice, one per report call), read back into the same Datasets
and replicated: every metric equals the one from the released layout.
Hypothesis checks round trips of arbitrary tables in every format and that
every kind of bad value is named by file, line and column."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfinterp.cli import main as cli_main
from selfinterp.errors import InputError
from selfinterp.io import Columns, read_choices_table, read_released, read_reports_table, read_study_tables
from selfinterp.replicate import compute

from conftest import MODEL

ATTRS = ("price", "rating", "distance")
COLS = Columns(context="scenario", attributes=ATTRS,
               a={k: f"A_{k}" for k in ATTRS}, b={k: f"B_{k}" for k in ATTRS}, choice="selection",
               report={k: f"w_{k}" for k in ATTRS}, condition="condition")


def write(path, header, rows):
    """Write rows (lists of values; None = empty) as CSV, JSON lines or Parquet, by suffix."""
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows([["" if v is None else v for v in r] for r in rows])
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(dict(zip(header, r))) + "\n" for r in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = {h: [r[i] for r in rows] for i, h in enumerate(header)}
        def column(v):  # a column with any text is a text column (a number in it as text)
            if any(isinstance(x, str) for x in v):
                return pa.array([None if x is None else str(x) for x in v], type=pa.string())
            return pa.array(v, type=pa.float64())

        pq.write_table(pa.table({h: column(v) for h, v in cols.items()}), path)
    return path


# ---------------------------------------------------------------------------------------------
# the paper's files as long tables


def _paper_as_tables(data, tmp_path):
    K = 5
    attrs = tuple(f"a{k}" for k in range(K))
    cols = Columns(context="scenario", attributes=attrs, a={k: f"A_{k}" for k in attrs},
                   b={k: f"B_{k}" for k in attrs}, choice="selection",
                   report={k: f"w_{k}" for k in attrs}, condition="condition",
                   target={k: f"target_{k}" for k in attrs})
    header = ["scenario", "selection", *cols.a.values(), *cols.b.values(), *cols.target.values()]
    files = {}
    for key, ds in data.choices.items():
        rows = []
        for c, name in enumerate(ds["context"].values):
            target = ds["target_weight"].values[c] if "target_weight" in ds else [None] * K
            for t in np.flatnonzero(ds["mask"].values[c]):
                rows.append([name, "A" if ds["y"].values[c, t] == 1 else "B",
                             *ds["A"].values[c, t], *ds["B"].values[c, t], *target])
        files[key] = write(tmp_path / f"{key}.csv", header, rows)
    rows = []
    for cond, ds in data.reports.items():
        for c, name in enumerate(ds["context"].values):
            for r in np.flatnonzero(ds["report_valid"].values[c]):
                rows.append([name, cond, *ds["report"].values[c, r]])
    reports = write(tmp_path / "reports.csv", ["scenario", "condition", *cols.report.values()], rows)
    return cols, files, reports


def test_paper_files_as_long_tables_replicate_identically(shared_data, tmp_path, capsys):
    from selfinterp.io import read_scenarios

    data = read_released(shared_data, MODEL)
    cols, files, reports = _paper_as_tables(data, tmp_path)
    scen = read_scenarios(shared_data / "scenarios.csv")
    mine = read_study_tables(MODEL, columns=cols, choices=files, reports=reports, scenarios=scen)
    for key in data.choices:
        assert np.array_equal(mine.choices[key]["X"].values, data.choices[key]["X"].values)
    want = compute(data, n_boot=200, rng=0).result["metrics"]
    # the tables scored through the command line (read_study_tables underneath): a study file naming them,
    # its paths relative to itself
    (tmp_path / "scenarios.csv").symlink_to(shared_data / "scenarios.csv")
    study = tmp_path / "study.toml"
    study.write_text(tomli_w.dumps({
        **{key: p.name for key, p in files.items()}, "reports": reports.name, "scenarios": "scenarios.csv",
        "columns": {k: v for k, v in vars(cols).items() if v is not None}}))
    assert cli_main(["replicate", str(study), "--model", MODEL, "--json", "--n-boot", "200"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == json.loads(json.dumps(want))


# ---------------------------------------------------------------------------------------------
# round trips and errors on arbitrary tables

names = st.sampled_from(["tea", "loan", "flat", "job"])
value = st.floats(-1e3, 1e3, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def choice_tables(draw):
    n = draw(st.integers(1, 25))
    rows = [[draw(names), draw(st.sampled_from(["A", "B"])), *[draw(value) for _ in range(6)]]
            for _ in range(n)]
    return rows


HEADER = ["scenario", "selection", *COLS.a.values(), *COLS.b.values()]
RANGES = {"price": (0, 10), "rating": (1, 5), "distance": (0, 100)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=choice_tables(), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]))
def test_choice_tables_round_trip(tmp_path, rows, suffix):
    ds = read_choices_table(write(tmp_path / f"t{suffix}", HEADER, rows), COLS, ranges=RANGES)
    order = list(dict.fromkeys(r[0] for r in rows))
    assert list(ds["context"].values) == order
    span = np.array([10.0, 4.0, 100.0])
    seen = {c: 0 for c in order}
    for r in rows:
        c, t = order.index(r[0]), seen[r[0]]
        seen[r[0]] += 1
        assert ds["y"].values[c, t] == (r[1] == "A") and ds["mask"].values[c, t]
        np.testing.assert_allclose(ds["X"].values[c, t], (np.array(r[2:5]) - np.array(r[5:8])) / span)
    assert int(ds["mask"].values.sum()) == len(rows)


BAD = {  # kind -> (column index, bad value, what the message says)
    "unknown context": (0, "nowhere", "unknown context 'nowhere'"),
    "non-numeric": (3, "cheap", "'cheap' is not a number"),
    "choice": (1, "C", "choice 'C' is neither A nor B"),
    "missing attribute": (6, None, "missing attribute 'rating'"),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=choice_tables(), data=st.data(), suffix=st.sampled_from([".csv", ".jsonl", ".parquet"]))
def test_every_bad_value_is_named_by_file_line_and_column(tmp_path, rows, data, suffix):
    from selfinterp.io import scenarios_dataset

    kind = data.draw(st.sampled_from(sorted(BAD)))
    col, bad, says = BAD[kind]
    i = data.draw(st.integers(0, len(rows) - 1))
    rows[i][col] = bad
    path = write(tmp_path / f"bad{suffix}", HEADER, rows)
    four = ["tea", "loan", "flat", "job"]
    scen = scenarios_dataset(four, [list(ATTRS)] * 4, [[0, 1, 0]] * 4, [[10, 5, 100]] * 4)
    with pytest.raises(InputError) as e:
        read_choices_table(path, COLS, scenarios=scen)
    where = f"row {i + 1}" if suffix == ".parquet" else f"line {i + 2 if suffix == '.csv' else i + 1}"
    assert str(e.value) == f"{path}, {where}, column {HEADER[col]!r}: {says}"


@pytest.mark.parametrize("p,ok", [("0.25", True), ("1", True), ("1.5", False), ("-0.1", False), ("x", False)])
def test_probabilities_must_lie_in_0_1(tmp_path, p, ok):
    cols = Columns(context="c", attributes=("x",), diff={"x": "dx"}, p_a="pa")
    path = write(tmp_path / "p.csv", ["c", "dx", "pa"], [["s", 0.5, 0.5], ["s", -0.2, p]])
    if ok:
        ds = read_choices_table(path, cols)
        assert ds["y"].values.tolist() == [[0.5, float(p)]] and ds["X"].values[0, 1, 0] == -0.2
    else:
        with pytest.raises(InputError, match=re.escape(f"{path}, line 3, column 'pa': ")):
            read_choices_table(path, cols)


def test_missing_duplicated_and_unparsable_columns(tmp_path):
    p = write(tmp_path / "m.csv", HEADER[:-1], [["tea", "A", 1, 2, 3, 4, 5]])
    with pytest.raises(InputError, match=re.escape(f"{p}, line 1 (header): missing column 'B_distance'")):
        read_choices_table(p, COLS)
    p = write(tmp_path / "d.csv", HEADER + ["selection"], [["tea", "A", 1, 2, 3, 4, 5, 6, "B"]])
    with pytest.raises(InputError, match=re.escape(f"{p}, line 1 (header): column 'selection' appears twice")):
        read_choices_table(p, COLS)
    p = tmp_path / "u.jsonl"
    p.write_text('{"scenario": "tea"}\n{"scenario": \n')
    with pytest.raises(InputError, match=re.escape(f"{p}, line 1: missing column 'selection'")):
        read_choices_table(p, COLS)
    p.write_text(json.dumps(dict(zip(HEADER, ["tea", "A", 1, 2, 3, 4, 5, 6]))) + "\n{oops\n")
    with pytest.raises(InputError, match=re.escape(f"{p}, line 2: unparsable JSON")):
        read_choices_table(p, COLS)
    p.write_text('{"scenario": "tea", "scenario": "loan"}\n')
    with pytest.raises(InputError, match=re.escape(f"{p}, line 1: column 'scenario' appears twice")):
        read_choices_table(p, COLS)
    p = write(tmp_path / "short.csv", HEADER, [["tea", "A", 1, 2]])
    with pytest.raises(InputError, match=re.escape(f"{p}, line 2: 4 fields, the header has 8")):
        read_choices_table(p, COLS)


def test_invalid_self_reports_are_counted(tmp_path):
    rows = [["tea", "base", 10, -20, 5], ["tea", "base", None, None, None], ["loan", "base", 1, 2, 3],
            ["loan", "instilled", 4, 5, 6]]
    path = write(tmp_path / "r.csv", ["scenario", "condition", *COLS.report.values()], rows)
    reps = read_reports_table(path, COLS, calls_per_context=3)
    base = reps["base"]
    assert list(base["context"].values) == ["tea", "loan"]
    assert base["report_valid"].values.tolist() == [[True, False, False], [True, False, False]]
    assert base["report"].values[0, 0].tolist() == [10, -20, 5]
    assert reps["instilled"]["report_valid"].values.sum() == 1
    rows[1][3] = None
    rows[1][2] = 7
    path = write(tmp_path / "r2.csv", ["scenario", "condition", *COLS.report.values()], rows)
    with pytest.raises(InputError, match=re.escape(f"{path}, line 3, column 'w_rating': missing attribute 'rating'")):
        read_reports_table(path, COLS)
    with pytest.raises(InputError, match="more than calls_per_context = 1"):
        read_reports_table(tmp_path / "r.csv", COLS, calls_per_context=1)


def test_replicate_reads_a_study_file_and_names_every_bad_input(tmp_path, capsys):
    """``selfinterp replicate STUDY.toml``: a bad study file names the file and the key; a bad value in a
    table, the table's file, line and column; both before any analysis, with no traceback."""
    write(tmp_path / "c.csv", ["ctx", "ans", "d1", "d2"],
          [["tea", "A", 0.5, -0.2], ["tea", "B", -0.5, 0.1], ["tea", "A", 0.3, 0.3], ["loan", "B", -0.1, -0.9],
           ["loan", "A", 0.2, 0.4], ["loan", "B", -0.6, 0.2]])
    write(tmp_path / "r.csv", ["ctx", "w1", "w2"], [["tea", 90, -10], ["tea", None, None], ["loan", 40, 80]])
    spec = {"instilled": "c.csv", "reports": "r.csv", "calls_per_context": 2,
            "columns": {"context": "ctx", "attributes": ["x", "y"], "diff": {"x": "d1", "y": "d2"},
                        "choice": "ans", "report": {"x": "w1", "y": "w2"}}}
    study = tmp_path / "study.json"

    def run(**change):
        study.write_text(json.dumps({**spec, **change}))
        rc = cli_main(["replicate", str(study), "--model", "mine", "--json", "--n-boot", "50"])
        return rc, capsys.readouterr()

    rc, out = run()
    assert rc == 0, out.err
    got = json.loads(out.out)
    assert got["metrics"]["reports_vs_learned"]["n"] == 4                  # 2 contexts x 2 attributes
    assert got["metrics"]["invalid_report_rate"]["value"] == pytest.approx(0.5)  # 2 of 4 calls: the empty row, the missing call
    for change, message in [
        (dict(colour="red"), f"{study}: colour: unknown key"),
        (dict(columns={**spec["columns"], "choise": "ans"}), f"{study}: columns.choise: unknown field"),
        (dict(columns={**spec["columns"], "diff": "d1"}), f"{study}: columns.diff: expected attribute -> column"),
        (dict(instilled="nowhere.csv"), f"{study}: instilled: {tmp_path / 'nowhere.csv'}: no such file"),
        (dict(calls_per_context=0), f"{study}: calls_per_context: expected a positive whole number"),
        (dict(columns={**spec["columns"], "choice": "d1"}),
         f"{tmp_path / 'c.csv'}, line 2, column 'd1': choice '0.5' is neither A nor B"),
        (dict(columns={**spec["columns"], "report": {"x": "w1", "y": "ctx"}}),
         f"{tmp_path / 'r.csv'}, line 2, column 'ctx': 'tea' is not a number"),
    ]:
        rc, out = run(**change)
        assert rc == 2 and out.out == "" and message in out.err and "Traceback" not in out.err, (change, out.err)
    (tmp_path / "notes.txt").write_text("")
    assert cli_main(["replicate", str(tmp_path / "notes.txt"), "--model", "mine"]) == 2
    assert "expected a directory in the released layout or a study file" in capsys.readouterr().err
