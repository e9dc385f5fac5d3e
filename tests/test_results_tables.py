"""Results as labelled tables: replicate on data in memory, its tidy
DataFrame and notebook table, short reprs."""

from __future__ import annotations

import numpy as np
import pytest

from selfinterp.errors import InputError
from selfinterp.io import read_released
from selfinterp.replicate import METRICS, compute, replicate, to_dataframe

from conftest import MODEL


@pytest.fixture(scope="module")
def data(shared_data):
    return read_released(shared_data, MODEL)


def test_replicate_in_memory_equals_from_the_directory(shared_data, data):
    from_dir = replicate(shared_data, MODEL, n_boot=2000, rng=0)
    rep = compute(data, n_boot=2000, rng=0)
    assert rep.result["metrics"] == from_dir["metrics"]
    assert rep.result["directory"] is None and from_dir["directory"] == str(shared_data)
    with pytest.raises(InputError, match="'gpt-4o-mini' given"):
        compute(data, "gpt-4o-mini")
    with pytest.raises(InputError, match="model name is needed"):
        compute(shared_data)

    df = rep.to_dataframe()
    assert list(df.columns) == ["metric", "label", "statistic", "value", "ci_low", "ci_high", "n"]
    assert tuple(df["metric"]) == METRICS  # every metric present in the paper's files
    row = df.set_index("metric").loc["reports_vs_learned"]
    m = rep.result["metrics"]["reports_vs_learned"]
    assert (row["statistic"], row["value"], row["ci_low"], row["ci_high"], row["n"]) == \
        ("r", m["r"], m["ci"][0], m["ci"][1], 500)
    eff = df.set_index("metric").loc["training_effect"]
    assert eff["statistic"] == "diff" and eff["n"] == 100 and eff["ci_low"] < eff["value"] < eff["ci_high"]
    rate = df.set_index("metric").loc["invalid_report_rate"]
    assert rate["statistic"] == "rate" and np.isnan(rate["ci_low"])
    html = rep._repr_html_()
    assert "<table" in html and "reports vs learned" in html and "0.543" in html
    assert len(repr(rep)) < 200 and "0.543" in repr(rep)


def test_absent_metrics_leave_the_table(data):
    result = {"metrics": {k: None for k in METRICS} | {"choice_agreement": {"value": 0.8, "n": 10}}}
    df = to_dataframe(result)
    assert list(df["metric"]) == ["choice_agreement"] and df["value"][0] == 0.8


def test_released_data_repr_is_one_short_line(data):
    text = repr(data)
    assert "\n" not in text and len(text) < 400
    assert "instilled 100x50, latent 100x100" in text and MODEL in text and "6 report conditions" in text


def test_calibrate_accepts_data_in_memory(data):
    """The path after loading is the directory's (tests/test_calibrate.py); here:
    data in memory reach it, and its errors name the data, not a path."""
    import dataclasses

    from selfinterp.study import calibrate

    no_targets = dataclasses.replace(data, choices={"instilled": data.choices["instilled"].drop_vars("target_weight")})
    with pytest.raises(InputError, match=f"the data of '{MODEL}': calibration needs the target weights"):
        calibrate(no_targets)
    with pytest.raises(InputError, match="calibration needs gpt-4o-2024-08-06_instilled_selections.csv"):
        calibrate(dataclasses.replace(data, choices={}))
