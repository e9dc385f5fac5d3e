"""Property tests of the readers and parsers on arbitrary input: a clear error or a counted invalid
value, never a crash and never a silent change.  10,000 examples in all per run, drawn from cheap
strategies (sampled edge cases and short texts) so that the file runs in seconds."""

from __future__ import annotations

import argparse
import json
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfinterp.cli import _args
from selfinterp.errors import InputError
from selfinterp.io import read_records, scenarios_dataset
from selfinterp.io._table import read_table
from selfinterp.io.transcript import KEYS, validate_record
from selfinterp.llm.parse import parse_choice, parse_report

def n_examples(n):
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)


# values put in place of a record's own: cheap to draw (sampled), covering every JSON type and the edge cases
JSON = st.sampled_from([None, True, False, 0, -1, 1.5, 1e308, -1e308, float("nan"), float("inf"), "", "A", "B",
                        "x", "ctx", "report", "choice", [], [1], [1.0, 2.0], [1, "x"], [True, 1], [1e308, 0],
                        [500, 0], [-100, 100], [100.5, 0], [1, 2, 3], {}, {"a": 1}, [[1, 2]], 0.5, 2,
                        [10.5, 2.1], [-0.5, 0], [10.6, 0], [0, 2.2], [-0.6, 1]])
# the scenario "ctx": attribute 1 in [0, 10], attribute 2 in [0, 2]; options may stray 5% of the span
RANGES = {"ctx": ([0.0, 0.0], [10.0, 2.0])}


def _within_range(values):
    return all(lo - 0.05 * (hi - lo) <= v <= hi + 0.05 * (hi - lo) for v, lo, hi in zip(values, *RANGES["ctx"]))
GOOD = {"kind": "report", "model": "m", "request_id": "r", "context": "ctx", "A": [1.0, 2.0], "B": [0.0, 1.0],
        "reply": "{}", "report": [10.0, -20.0]}


@st.composite
def records(draw):
    """A valid record with some keys replaced by arbitrary JSON, removed or added."""
    rec = dict(GOOD)
    if draw(st.booleans()):
        rec.update(kind="choice", report=None, choice=draw(st.sampled_from(["A", "B", None])),
                   p_a=draw(st.none() | st.floats(0, 1)), reply=draw(st.sampled_from(["A", "B", " b.", "x"])))
    for key in draw(st.lists(st.sampled_from(KEYS + ("extra",)), max_size=3, unique=True)):
        if draw(st.booleans()):
            rec[key] = draw(JSON)
        else:
            rec.pop(key, None)
    return rec


@n_examples(2500)
@given(records())
def test_a_transcript_record_is_read_as_it_is_or_refused(rec):
    try:
        out = validate_record(rec, "line 1", {"ctx": 2}, RANGES)
    except InputError as exc:
        assert str(exc).startswith("line 1: ")
        return
    # accepted: every value as given (numbers as floats), nothing dropped or invented
    assert set(out) == set(KEYS) and out["request_id"] and out["context"] == "ctx"
    for k in ("A", "B"):
        assert out[k] == [float(v) for v in rec[k]] and all(math.isfinite(v) for v in out[k])
        assert _within_range(out[k])  # an option outside the scenario's range is refused
    if out["kind"] == "report":
        assert out["report"] is None or (out["report"] == [float(v) for v in rec["report"]]
                                         and all(abs(v) <= 100 for v in out["report"]))
    else:
        said = parse_choice(out["reply"])
        assert out["choice"] == rec.get("choice") and (said is None or out["choice"] in (None, "AB"[1 - said]))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("props")


LINE = st.one_of(st.builds(json.dumps, records()), st.text(max_size=10),
                 st.builds(lambda r, k: json.dumps(r)[:-1] + f', "{k}": 1}}', records(), st.sampled_from(KEYS)))


@n_examples(500)
@given(st.lists(LINE, min_size=1, max_size=3), st.booleans())
def test_a_transcript_file_is_read_line_for_line_or_refused_naming_the_line(scratch, lines, bom):
    path = scratch / "t.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "".join(s + "\n" for s in lines).encode("utf-8", "replace"))
    scen = scenarios_dataset(["ctx"], [["u", "v"]], [[0.0, 0.0]], [[10.0, 2.0]])
    try:
        recs = read_records(path, scen)
    except InputError as exc:
        assert re.match(rf"{re.escape(str(path))}(, line [1-{len(lines)}])?: ", str(exc)), str(exc)
        return
    assert len(recs) == len(lines)  # every line is a record: none skipped
    assert all(_within_range(r["A"]) and _within_range(r["B"]) for r in recs)
    assert len({r["request_id"] for r in recs}) == len(recs)


CELL = st.one_of(st.text(max_size=5), st.floats().map(repr), st.integers().map(str),
                 st.sampled_from(["1_000", "\uff11\uff12", " 3", "3 ", "+.5", "1e3", "-0", "inf", "NaN", "", "1e999",
                                  "0x10", "1,5", "\u0663", "--1", "1e", ".", "5."]))


@n_examples(2000)
@given(st.lists(CELL, min_size=1, max_size=4))
def test_a_csv_number_is_read_exactly_or_refused_naming_line_and_column(scratch, cells):
    path = scratch / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write("x\n" + "".join(json.dumps(c) + "\n" for c in cells))  # quoted: any text is one field
    try:
        t = read_table(path, ["x"])
        values = t.numbers(["x"])[:, 0]
    except InputError as exc:
        assert re.search(r", line \d+(: column 'x': .* is not a finite number|: )", str(exc)), str(exc)
        return
    for cell, v in zip(cells, values):  # accepted: a plain ASCII number, read as float() reads it
        assert re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", cell, re.ASCII) and v == float(cell)


NAMES = ["price", "Size_cm", "battery life"]
REPLY = st.one_of(
    st.text(max_size=12),
    st.builds(json.dumps, st.dictionaries(st.sampled_from(NAMES + ["price ", "PRICE", "x"]),
                                          st.integers(-200, 200) | st.floats() | st.text(max_size=4), max_size=4)),
    st.builds(lambda d: "```json\n" + json.dumps(d) + "\n```",
              st.fixed_dictionaries({n: st.integers(-100, 100) for n in NAMES})),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(1, 5000)),
)


@n_examples(2500)
@given(REPLY)
def test_a_report_reply_is_a_valid_report_or_an_invalid_one_with_its_reason(text):
    p = parse_report(text, NAMES)
    if not p.valid:
        assert p.error
        return
    w = p.weights
    assert w.shape == (3,) and np.isfinite(w).all() and (np.abs(w) <= 100).all()
    body = json.loads(text.strip().removeprefix("```json").removesuffix("```"))
    assert sorted(float(v) for v in body.values()) == sorted(w.tolist())  # the values given, none changed


@n_examples(1500)
@given(st.text(max_size=4) | st.sampled_from(["A", " a.", "B", "b", "A.", "AB", "B..", ""]))
def test_a_choice_reply_is_a_label_or_nothing(text):
    c = parse_choice(text)
    assert c in (0, 1, None)
    assert (c is not None) == (text.strip().rstrip(".").casefold() in ("a", "b"))


@n_examples(1000)
@given(st.text(max_size=8) | st.sampled_from(["", ",", "1,,2", "0", "1000", "1001", "1e3", "nan", "inf", "3, 4"]))
def test_option_values_are_parsed_or_refused_by_argparse(text):
    for parse in (_args.bounded_int(1, 1000), _args.int_list(1, 1000), _args.float_list):
        try:
            v = parse(text)
        except argparse.ArgumentTypeError as exc:
            assert "got" in str(exc)
            continue
        vals = v if isinstance(v, list) else [v]
        assert vals and all(not isinstance(x, float) or not math.isnan(x) for x in vals)
