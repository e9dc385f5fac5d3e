"""The JSON-lines transcript format: round trips, agreement with the released layout, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfinterp.errors import InputError
from selfinterp.llm.parse import parse_choice
from selfinterp.io import (
    read_records,
    read_released,
    read_transcript,
    scenarios_dataset,
    to_records,
    write_transcript,
)
from selfinterp.labelled import fit_dataset

from conftest import MODEL


@pytest.fixture(scope="module")
def released(shared_data):
    return read_released(shared_data, MODEL)


def _records_from_released(released, n_contexts=10):
    """The GPT-4o choices and native reports as transcript records."""
    ch = released.choices["instilled"].isel(context=slice(0, n_contexts))
    rp = released.reports["instilled_latent"]
    recs = []
    for c, name in enumerate(ch["context"].values):
        for t in range(ch.sizes["trial"]):
            letter = "A" if ch["y"].values[c, t] == 1 else "B"
            recs.append({"kind": "choice", "model": "m", "request_id": f"c{c}-{t}", "context": str(name),
                         "A": ch["A"].values[c, t].tolist(), "B": ch["B"].values[c, t].tolist(),
                         "reply": f" {letter}\n", "choice": letter, "metadata": {"temperature": 1.0}})
    for c, name in enumerate(rp["context"].values):
        for r in range(10):
            ok = bool(rp["report_valid"].values[c, r])
            shown = rp["attr_min"].values[c].tolist()
            recs.append({"kind": "report", "model": "m", "request_id": f"r{c}-{r}", "context": str(name),
                         "A": rp["A"].values[c, r].tolist() if ok else shown,
                         "B": rp["B"].values[c, r].tolist() if ok else shown,
                         "reply": "{...}" if ok else "I cannot say",
                         "report": rp["report"].values[c, r].tolist() if ok else None})
    return recs


def test_transcript_of_released_data_gives_the_same_datasets(released, tmp_path):
    path = write_transcript(tmp_path / "t.jsonl", _records_from_released(released))
    tr = read_transcript(path, released.scenarios)
    ch = released.choices["instilled"].isel(context=slice(0, 10))
    for v in ("X", "y", "mask", "A", "B", "attr_min", "attr_max"):
        np.testing.assert_array_equal(tr.choices[v].values, ch[v].values, err_msg=v)
    rp = released.reports["instilled_latent"]
    np.testing.assert_array_equal(tr.reports["report_valid"].values, rp["report_valid"].values)
    np.testing.assert_array_equal(tr.reports["report"].values, rp["report"].values)
    assert tr.reports.attrs["n_invalid"] == 34 and tr.choices.attrs["n_invalid"] == 0
    assert tr.reports["reply"].values[~rp["report_valid"].values][0] == "I cannot say"
    # one estimator for both sources
    np.testing.assert_allclose(fit_dataset(tr.choices[["X", "y", "mask"]])["weight"].values,
                               fit_dataset(ch[["X", "y", "mask"]])["weight"].values)


def test_records_and_datasets_round_trip(released, tmp_path):
    recs = _records_from_released(released, n_contexts=3)
    p1 = write_transcript(tmp_path / "a.jsonl", recs)
    back = read_records(p1, released.scenarios)
    assert [r["request_id"] for r in back] == [r["request_id"] for r in recs]
    assert back[0]["metadata"] == {"temperature": 1.0} and back[0]["p_a"] is None
    tr = read_transcript(p1, released.scenarios)
    tr2 = read_transcript(write_transcript(tmp_path / "b.jsonl", to_records(tr)), released.scenarios)
    assert tr.choices.drop_attrs().identical(tr2.choices.drop_attrs())
    assert tr.reports.drop_attrs().identical(tr2.reports.drop_attrs())


def test_soft_labels_and_unparseable_choices(tmp_path):
    scen = scenarios_dataset(["ctx"], [["u", "v"]], [[0.0, 0.0]], [[10.0, 2.0]])
    recs = [
        {"kind": "choice", "model": "m", "request_id": "1", "context": "ctx", "A": [5, 1], "B": [0, 2],
         "reply": "A", "choice": "A", "p_a": 0.8},
        {"kind": "choice", "model": "m", "request_id": "2", "context": "ctx", "A": [1, 1], "B": [2, 2],
         "reply": "Neither", "choice": None, "p_a": 0.4},
    ]
    path = write_transcript(tmp_path / "t.jsonl", recs)
    hard = read_transcript(path, scen).choices
    np.testing.assert_array_equal(hard["mask"].values, [[True, False]])
    np.testing.assert_allclose(hard["X"].values[0], [[0.5, -0.5], [-0.1, -0.5]])
    assert hard.attrs["n_invalid"] == 1 and hard["reply"].values[0, 1] == "Neither"
    soft = read_transcript(path, scen, outcome="p_a").choices
    np.testing.assert_allclose(soft["y"].values, [[0.8, 0.4]])
    assert soft["mask"].all() and soft.attrs["n_invalid"] == 0


GOOD = {"kind": "report", "model": "m", "request_id": "r", "context": "ctx", "A": [1, 2], "B": [0, 1],
        "reply": "{}", "report": [10, -20]}


@pytest.mark.parametrize("line, match", [
    ("{not json", "not valid JSON"),
    (json.dumps([1, 2]), "expected a JSON object"),
    (json.dumps({**GOOD, "reprot": 1}), r"unknown key\(s\) \['reprot'\]"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "reply"}), r"missing key\(s\) \['reply'\]"),
    (json.dumps({**GOOD, "context": "nowhere"}), "unknown scenario 'nowhere'"),
    (json.dumps({**GOOD, "report": [1, 2, 3]}), "'report' must be a list of 2 numbers, got 3"),
    (json.dumps({**GOOD, "A": [1, "x"]}), "'A' holds 'x', not a finite number"),
    (json.dumps({**GOOD, "kind": "vote"}), "kind must be 'choice' or 'report'"),
    (json.dumps({**GOOD, "choice": "A"}), "a report line cannot hold"),
    (json.dumps({**GOOD, "kind": "choice", "report": None, "choice": "C"}), "choice must be 'A', 'B' or null"),
    (json.dumps({**GOOD, "kind": "choice", "report": None, "p_a": 1.5}), r"p_a must be a number in \[0, 1\]"),
    (json.dumps({**GOOD, "request_id": "z"}).replace("10", "NaN"), "'report' holds nan, not a finite number"),
    (json.dumps(GOOD), r"duplicated request_id 'r' \(first on line 2\)"),
    ("", "blank line"),
    # nothing silent: a repeated key (the last would win), an empty id, a choice the reply contradicts
    (json.dumps({**GOOD, "request_id": "z"})[:-1] + ', "context": "ctx"}', "key 'context' appears twice"),
    (json.dumps({**GOOD, "request_id": ""}), "'request_id' must not be empty"),
    (json.dumps({**GOOD, "kind": "choice", "report": None, "choice": "A", "reply": " b."}),
     "choice 'A' contradicts the reply ' b.'"),
    (json.dumps({**GOOD, "request_id": "z", "report": [500, 0]}), r"'report' holds 500.0, outside the weight scale"),
    # option values out of the scenario's range (u in [0, 10], v in [0, 2]; 5% of the span is tolerated)
    (json.dumps({**GOOD, "request_id": "z", "A": [1000, 1]}), r"'A' attribute 1 is 1000.0, outside the scenario "
                                                               r"'ctx''s range \[0, 10\]"),
    (json.dumps({**GOOD, "request_id": "z", "B": [0, -0.2]}), r"'B' attribute 2 is -0.2, outside"),
    ('{"metadata": ' + "[" * 100000 + "]" * 100000 + "}", "JSON nested too deeply"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, match):
    scen = scenarios_dataset(["ctx"], [["u", "v"]], [[0.0, 0.0]], [[10.0, 2.0]])
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({**GOOD, "request_id": "q"}) + "\n" + json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(InputError, match=rf"t.jsonl, line 3: {match}"):
        read_records(path, scen)


def test_a_byte_order_mark_is_accepted(tmp_path):
    scen = scenarios_dataset(["ctx"], [["u", "v"]], [[0.0, 0.0]], [[10.0, 2.0]])
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert read_records(path, scen)[0]["report"] == [10.0, -20.0]


def test_missing_file_and_several_models(tmp_path):
    scen = scenarios_dataset(["ctx"], [["u", "v"]], [[0.0, 0.0]], [[10.0, 2.0]])
    with pytest.raises(InputError, match="file not found"):
        read_records(tmp_path / "none.jsonl", scen)
    path = write_transcript(tmp_path / "t.jsonl", [GOOD, {**GOOD, "request_id": "s", "model": "n"}])
    with pytest.raises(InputError, match=r"several models \['m', 'n'\]; pass model="):
        read_transcript(path, scen)
    assert read_transcript(path, scen, model="n").reports.sizes["report"] == 1
    with pytest.raises(InputError, match="record 1: duplicated request_id"):
        write_transcript(tmp_path / "u.jsonl", [GOOD, GOOD])


# ---------------------------------------------------------------------------------------------
# property: write -> read -> records is the identity on arbitrary valid records

NUM = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)
TEXT = st.text(max_size=20)  # any unicode, quotes and newlines included


@st.composite
def record_lists(draw):
    K = draw(st.integers(1, 4))
    ctx = draw(st.lists(st.text(alphabet="abc_", min_size=1, max_size=4), min_size=1, max_size=3, unique=True))
    n = draw(st.integers(1, 12))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(["choice", "report"]))
        rec = {"kind": kind, "model": draw(st.sampled_from(["m", "ft:m:x"])), "request_id": f"id-{i}",
               "context": draw(st.sampled_from(ctx)), "A": draw(st.lists(NUM, min_size=K, max_size=K)),
               "B": draw(st.lists(NUM, min_size=K, max_size=K)), "reply": draw(TEXT),
               "metadata": draw(st.dictionaries(st.text(max_size=5), st.integers() | TEXT, max_size=2))}
        if kind == "choice":
            rec["choice"] = draw(st.sampled_from(["A", "B", None]))
            said = parse_choice(rec["reply"])
            if said is not None and rec["choice"] is not None:  # a bare label and its choice agree
                rec["choice"] = "AB"[1 - said]
            rec["p_a"] = draw(st.none() | st.floats(0, 1))
            rec["report"] = None
        else:
            rec["choice"] = rec["p_a"] = None
            rec["report"] = draw(st.none() | st.lists(st.floats(-100, 100), min_size=K, max_size=K))
        out.append(rec)
    return K, ctx, out


@given(record_lists())
def test_write_read_round_trip(tmp_path_factory, data):
    K, ctx, recs = data
    path = write_transcript(tmp_path_factory.mktemp("t") / "t.jsonl", recs)
    back = read_records(path, scenarios_dataset(ctx, [[f"a{k}" for k in range(K)]] * len(ctx),
                                                np.full((len(ctx), K), -1e9), np.full((len(ctx), K), 1e9)))
    norm = [{**r, "A": [float(v) for v in r["A"]], "B": [float(v) for v in r["B"]],
             "report": None if r["report"] is None else [float(v) for v in r["report"]]} for r in recs]
    assert back == norm


def test_scenarios_from_design_contexts(tmp_path):
    from selfinterp.design import Attribute, Context
    from selfinterp.io import scenarios_from_contexts

    ctxs = [Context("tea", (Attribute("caffeine", "mg", 0, 70), Attribute("leaf", "mm", 0.1, 10)), "Which tea?"),
            Context("pan", (Attribute("size", "cm", 10, 30), Attribute("weight", "kg", 0.5, 3)))]
    scen = scenarios_from_contexts(ctxs)
    assert list(scen["context"].values) == ["tea", "pan"]
    np.testing.assert_array_equal(scen["attr_max"].values, [[70, 10], [30, 3]])
    assert scen["question"].values[0] == "Which tea?"
    rec = {"kind": "choice", "model": "m", "request_id": "1", "context": "pan", "A": [20, 1], "B": [10, 3],
           "reply": "B", "choice": "B"}
    ch = read_transcript(write_transcript(tmp_path / "t.jsonl", [rec]), scen).choices
    np.testing.assert_allclose(ch["X"].values[0, 0], [0.5, -0.8])
    with pytest.raises(InputError, match="share their number of attributes"):
        scenarios_from_contexts([ctxs[0], Context("x", (Attribute("a", "", 0, 1),))])
