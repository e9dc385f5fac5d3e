"""Reader and writer of the released layout: the GPT-4o files, round trips, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from selfinterp.errors import InputError
from selfinterp.io import (
    ReleasedData,
    align_reports,
    read_released,
    read_reports,
    read_scenarios,
    read_selections,
    reports_dataset,
    scenarios_dataset,
    selections_dataset,
    write_released,
)
from selfinterp.io.released import CHOICE_FILES, REGRESSION_FILES, report_file

from conftest import MODEL


@pytest.fixture(scope="module")
def released(shared_data) -> ReleasedData:
    return read_released(shared_data, MODEL)


def test_reads_every_file_of_the_gpt4o_release(released):
    assert released.absent == []
    assert set(released.choices) == {"instilled", "latent"}
    assert set(released.regression) == {"instilled", "latent"}
    assert set(released.reports) == {"base", "instilled", "itrained_first_50_of_100_50ex",
                                     "itrained_last_50_of_100_50ex", "instilled_latent",
                                     "itrained_all_100_50ex_latent"}
    assert released.scenarios.sizes == {"context": 1100, "attribute": 5}
    ch = released.choices["instilled"]
    assert ch.sizes == {"context": 100, "trial": 50, "attribute": 5}
    assert ch["mask"].all() and int(ch["y"].sum()) > 0
    # row 1 of the selections file: loose_leaf_tea, A chosen, values as written
    assert str(ch["context"].values[0]) == "loose_leaf_tea"
    np.testing.assert_array_equal(ch["A"].values[0, 0], [52, 7, 56, 5, 2])
    np.testing.assert_array_equal(ch["B"].values[0, 0], [65, 2, 31, 6, 7])
    assert ch["y"].values[0, 0] == 1
    # X = (A - B) / (max - min) with loose_leaf_tea's ranges (0-70, 0.1-10, 0-100, 1-7, 1-8)
    np.testing.assert_allclose(ch["X"].values[0, 0], [-13 / 70, 5 / 9.9, 25 / 100, -1 / 6, -5 / 7])
    np.testing.assert_array_equal(ch["target_weight"].values[0], [-100, 95, 72, -67, -1])
    assert released.choices["latent"].sizes["trial"] == 100


def test_invalid_reports_are_the_missing_rows(released):
    latent = released.reports["instilled_latent"]
    assert latent.sizes["report"] == 10
    # 966 rows kept of 100 contexts x 10 calls: 34 invalid replies
    assert int(latent["report_valid"].sum()) == 966 == latent.attrs["n_valid"]
    assert np.isnan(latent["report"].values[~latent["report_valid"].values]).all()
    assert released.reports["instilled"]["report_valid"].all()


def test_write_released_reproduces_the_files_byte_for_byte(released, shared_data, tmp_path):
    written = write_released(tmp_path, MODEL, released)
    assert len(written) == 12
    for p in written:
        assert p.read_bytes() == (shared_data / p.name).read_bytes(), p.name
    assert read_released(tmp_path, MODEL).identical(released)


def _copy(shared_data, dst: Path, model: str, drop=()) -> Path:
    dst.mkdir()
    for p in shared_data.glob("*.csv"):
        name = p.name.replace(MODEL, model)
        if name not in drop:
            shutil.copy(p, dst / name)
    return dst


def test_other_model_names_and_missing_optional_files(shared_data, tmp_path, released):
    other = "qwen2.5-7b-instruct"
    drop = {f"{other}_instilled_latent_selections.csv", report_file(other, "base"),
            f"{other}_latent_regression_results.csv", "instilled_weights.csv"}
    d = read_released(_copy(shared_data, tmp_path / "x", other, drop), other)
    assert d.model == other
    assert sorted(d.absent) == sorted(drop)
    assert set(d.choices) == {"instilled"} and "base" not in d.reports
    assert d.target_weight is None and "target_weight" not in d.choices["instilled"]
    assert d.choices["instilled"].drop_vars("target_weight", errors="ignore").drop_attrs().identical(
        released.choices["instilled"].drop_vars("target_weight").drop_attrs())


def test_align_reports_adds_absent_contexts_as_invalid(released):
    rep = released.reports["instilled_latent"]
    ctx = list(rep["context"].values) + ["loose_leaf_tea"]
    a = align_reports(rep, ctx)
    assert a.sizes["context"] == 101 and a.attrs["n_absent_contexts"] == 1
    assert not a["report_valid"].values[-1].any() and np.isnan(a["report"].values[-1]).all()
    assert a.isel(context=slice(0, 100)).drop_attrs().identical(rep.drop_attrs())
    with pytest.raises(InputError, match="not expected here"):
        align_reports(rep, ctx[:10])


# ---------------------------------------------------------------------------------------------
# bad input: every message names the file and the line (the header is line 1)


@pytest.fixture
def small(shared_data, tmp_path) -> Path:
    """A copy of the GPT-4o directory to break."""
    return _copy(shared_data, tmp_path / "d", MODEL)


def _edit_line(path: Path, line: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[line - 1] = new
    path.write_text("\n".join(lines), encoding="utf-8")


def _line(path: Path, line: int) -> str:
    return path.read_text(encoding="utf-8").split("\n")[line - 1]


SEL = f"{MODEL}_instilled_selections.csv"
REP = f"{MODEL}_instilled_weight_reports.csv"


@pytest.mark.parametrize("case, file, line, edit, message", [
    ("unknown scenario", SEL, 7, lambda s: s.replace("loose_leaf_tea", "no_such_tea"), "unknown scenario 'no_such_tea'"),
    ("too few fields", SEL, 12, lambda s: s.rsplit(",", 1)[0], "12 field(s), expected 13"),
    ("too many fields", REP, 3, lambda s: s + ",1", "19 field(s), expected 18"),
    ("non-numeric", SEL, 5, lambda s: s[: s.rindex(",")] + ",abc", "column 'B_attribute_5': 'abc' is not a finite number"),
    ("empty value", REP, 9, lambda s: ",".join(f if i != 3 else "" for i, f in enumerate(s.split(","))), "column 'report_attr1': '' is not a finite number"),
    ("nan value", REP, 4, lambda s: s[: s.rindex(",")] + ",nan", "'nan' is not a finite number"),
    ("bad selection", SEL, 20, lambda s: s.replace(",A,", ",C,").replace(",B,", ",C,"), "selection must be 'A' or 'B', got 'C'"),
    ("bad header", SEL, 1, lambda s: s.replace("selection", "choice"), "missing column(s) ['selection'] and unknown column(s) ['choice']"),
    ("scenario max <= min", "scenarios.csv", 3, lambda s: s.replace(",1200.0", ",1.0"), "attr2_max (1.0) must exceed attr2_min (300.0)"),
    # nothing read silently: numbers Python's float() would take, values outside their scale or range
    ("underscored number", SEL, 6, lambda s: s[: s.rindex(",")] + ",1_0", "column 'B_attribute_5': '1_0' is not a finite number"),
    ("full-width digits", REP, 5, lambda s: s[: s.rindex(",")] + ",\uff13", "'\uff13' is not a finite number"),
    ("padded number", REP, 6, lambda s: s[: s.rindex(",")] + ", 3", "' 3' is not a finite number"),
    ("target weight 150", "instilled_weights.csv", 4, lambda s: s.rsplit(",", 1)[0] + ",150", "column 'attr5': 150.0 is outside the weight scale [-100, 100]"),
    ("option far outside", SEL, 8, lambda s: s[: s.rindex(",")] + ",1000000", "column 'B_attribute_5': 1000000.0 is outside the scenario's range"),
    ("report option outside", REP, 7, lambda s: s[: s.rindex(",")] + ",-1e308", "is outside the scenario's range"),
])
def test_bad_input_names_file_and_line(small, case, file, line, edit, message):
    path = small / file
    _edit_line(path, line, edit(_line(path, line)))
    with pytest.raises(InputError) as err:
        read_released(small, MODEL)
    text = str(err.value)
    assert str(path) in text and f"line {line}" in text, text
    assert message in text, text


@pytest.mark.parametrize("value", ["500", "-1000", "1e12", "1e308", "100.5"])
def test_reports_outside_the_weight_scale_are_counted_invalid(small, shared_data, value):
    scen = read_scenarios(shared_data / "scenarios.csv")
    before = read_reports(small / REP, scen)
    path = small / REP
    cells = _line(path, 3).split(",")
    cells[4] = value  # report_attr2 of the second report of the first context
    _edit_line(path, 3, ",".join(cells))
    after = read_reports(path, scen)
    assert after.attrs["n_valid"] == before.attrs["n_valid"] - 1 and after.attrs["n_out_of_scale"] == 1
    assert not after["report_valid"].values[0, 1] and np.isnan(after["report"].values[0, 1]).all()
    # the other reports are untouched, and the context's mean leaves the bad one out
    np.testing.assert_array_equal(after["report"].values[0, 2:], before["report"].values[0, 2:])


def test_duplicated_rows_are_errors(small):
    sel = small / SEL
    lines = sel.read_text().split("\n")
    lines.insert(30, lines[9])  # line 10 repeated as line 31
    sel.write_text("\n".join(lines))
    with pytest.raises(InputError, match=rf"{SEL}, line 31: duplicated row \(same as line 10\)"):
        read_released(small, MODEL)


def test_duplicated_scenario_is_an_error(small):
    w = small / "instilled_weights.csv"
    lines = w.read_text().split("\n")
    lines[5] = lines[2]
    w.write_text("\n".join(lines))
    with pytest.raises(InputError, match=r"instilled_weights.csv, line 6: duplicated scenario 'cutting_board' \(first on line 3\)"):
        read_released(small, MODEL)


def test_more_reports_than_calls_is_an_error(small, shared_data):
    scen = read_scenarios(shared_data / "scenarios.csv")
    with pytest.raises(InputError, match=r"line 11: scenario 'loose_leaf_tea' has 10 reports, more than the 9"):
        read_reports(small / REP, scen, calls_per_context=9)


def test_missing_and_unreadable_files(small, tmp_path):
    (small / "scenarios.csv").unlink()
    with pytest.raises(InputError, match=r"scenarios.csv: file not found"):
        read_released(small, MODEL)
    (small / "scenarios.csv").mkdir()
    with pytest.raises(InputError, match=r"scenarios.csv: not a regular file"):
        read_released(small, MODEL)
    with pytest.raises(InputError, match="not a directory"):
        read_released(tmp_path / "nowhere", MODEL)


def test_unknown_model_and_bad_bytes(small):
    with pytest.raises(InputError, match="no files for model 'gpt-5'"):
        read_released(small, "gpt-5")
    (small / REP).write_bytes(b"explaining_model,version\n\xff\xfe\n")
    with pytest.raises(InputError, match=rf"{REP}, line 2: not valid UTF-8"):
        read_released(small, MODEL)
    (small / REP).write_bytes(b"")
    with pytest.raises(InputError, match=rf"{REP}: file is empty"):
        read_released(small, MODEL)


# ---------------------------------------------------------------------------------------------
# round trip of arbitrary data: write_released is the inverse of read_released

NAMES = st.text(alphabet="abcxyz_0123456789-", min_size=1, max_size=8)
FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
UNIT = st.floats(0, 1)


def _in_range(u, lo, hi, first):
    """Option values lo + u (hi - lo) for the contexts ``first`` (u (n, ..., K)); the first attribute
    made distinct across rows (no duplicated lines)."""
    lo, hi = lo[first], hi[first]
    shape = (len(first),) + (1,) * (u.ndim - 2) + (lo.shape[-1],)
    out = lo.reshape(shape) + u * (hi - lo).reshape(shape)
    n = out[..., 0].size
    out[..., 0] = lo[:, 0].reshape(shape[:-1]) + (hi - lo)[:, 0].reshape(shape[:-1]) * (
        np.arange(n).reshape(out.shape[:-1]) + 0.5) / n
    return out


@st.composite
def released_data(draw):
    K = draw(st.integers(1, 4))
    C = draw(st.integers(2, 5))
    names = draw(st.lists(NAMES, min_size=C, max_size=C, unique=True))
    lo = np.array(draw(st.lists(st.lists(FINITE, min_size=K, max_size=K), min_size=C, max_size=C)))
    span = np.array(draw(st.lists(st.lists(st.floats(1e-3, 1e4), min_size=K, max_size=K), min_size=C, max_size=C)))
    # questions with commas, quotes and non-ASCII text exercise the CSV quoting
    q = draw(st.lists(st.text(alphabet='ab ,"\'é?', max_size=12), min_size=C, max_size=C))
    scen = scenarios_dataset(names, np.array([[f"{n}_a{k}" for k in range(K)] for n in names]),
                             lo, lo + span, q)
    tw = xr.DataArray(np.array(draw(st.lists(st.lists(st.integers(-100, 100), min_size=K, max_size=K),
                                              min_size=C, max_size=C)), dtype=float),
                      dims=("context", "attribute"),
                      coords={"context": scen["context"].values, "attribute": scen["attribute"].values},
                      name="target_weight")
    choices = {}
    for key in draw(st.lists(st.sampled_from(sorted(CHOICE_FILES)), unique=True, max_size=2)):
        sub = draw(st.lists(st.integers(0, C - 1), min_size=1, max_size=C, unique=True))
        T = draw(st.integers(1, 6))
        counts = draw(st.lists(st.integers(1, T), min_size=len(sub), max_size=len(sub)))
        counts[0] = T  # the trial dimension is as long as the longest context
        mask = np.arange(T)[None, :] < np.array(counts)[:, None]
        vals = np.array(draw(st.lists(UNIT, min_size=2 * len(sub) * T * K, max_size=2 * len(sub) * T * K)))
        A, B = (_in_range(v, lo, lo + span, sub) for v in vals.reshape(2, len(sub), T, K))
        y = np.array(draw(st.lists(st.integers(0, 1), min_size=len(sub) * T, max_size=len(sub) * T))).reshape(len(sub), T)
        choices[key] = selections_dataset(A, B, y, mask=mask, context=[names[i] for i in sub],
                                          scenarios=scen, model_id="ft:m", target_weight=tw)
    reports = {}
    for cond in draw(st.lists(st.sampled_from(["base", "instilled", "x_latent"]), unique=True, max_size=3)):
        sub = draw(st.lists(st.integers(0, C - 1), min_size=1, max_size=C, unique=True))
        counts = draw(st.lists(st.integers(1, 10), min_size=len(sub), max_size=len(sub)))
        valid = np.arange(10)[None, :] < np.array(counts)[:, None]
        rep = np.array(draw(st.lists(st.integers(-100, 100) | st.floats(-100, 100), min_size=len(sub) * 10 * K,
                                     max_size=len(sub) * 10 * K)), dtype=float).reshape(len(sub), 10, K)
        ab = np.array(draw(st.lists(UNIT, min_size=2 * len(sub) * 10 * K, max_size=2 * len(sub) * 10 * K)))
        ab = np.stack([_in_range(v, lo, lo + span, sub) for v in ab.reshape(2, len(sub), 10, K)])
        reports[cond] = reports_dataset(rep, valid, context=[names[i] for i in sub], scenarios=scen,
                                        A=ab[0], B=ab[1], explaining_model="ft:m", version=cond)
    regression = {}
    for key in draw(st.lists(st.sampled_from(sorted(REGRESSION_FILES)), unique=True, max_size=2)):
        regression[key] = tw.copy(data=np.array(draw(st.lists(FINITE | st.just(-0.0), min_size=C * K, max_size=C * K))).reshape(C, K)).rename("weight")
    if not (choices or reports or regression):
        regression["instilled"] = tw.rename("weight")
    return ReleasedData("model-x", scen, tw if draw(st.booleans()) else None, choices, reports, regression)


@given(data=released_data())
def test_write_then_read_is_identity(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("rt")
    write_released(d, data.model, data)
    back = read_released(d, data.model)
    if data.target_weight is None:
        # without instilled_weights.csv the reader cannot attach targets
        data.choices = {k: v.drop_vars("target_weight") for k, v in data.choices.items()}
    assert back.identical(data)


def test_writer_builds_options_from_differences(released, tmp_path):
    """A simulated choices Dataset (X only) is written with A, B that give back X exactly."""
    ch = released.choices["instilled"].isel(context=slice(0, 3))
    sim = ch[["X", "y", "mask"]]
    data = ReleasedData("sim", released.scenarios, None, {"instilled": sim})
    write_released(tmp_path, "sim", data)
    back = read_selections(tmp_path / "sim_instilled_selections.csv", released.scenarios)
    np.testing.assert_allclose(back["X"].values, ch["X"].values, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(back["y"].values, ch["y"].values)
