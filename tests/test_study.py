"""`selfinterp study`: one simulated study in the released layout, scored like real transcripts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfinterp.cli import main as cli
from selfinterp.io import read_released, write_released
from selfinterp.replicate import METRICS
from selfinterp.study import DEFAULT_MODEL, StudyDesign
from selfinterp.study.simulate import simulate_study


def test_study_round_trip_through_replicate(tmp_path, capsys):
    out = tmp_path / "sim"
    assert cli(["study", "--json", "--out", str(out), "--seed", "4"]) == 0
    study = json.loads(capsys.readouterr().out)
    assert set(study["metrics"]) == set(METRICS)
    assert all(study["metrics"][k] is not None for k in METRICS)
    assert cli(["replicate", str(out), "--model", "simulated", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["metrics"] == study["metrics"]


def test_study_table_needs_no_data_and_no_key(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("SELFINTERP_SHARED_DATA", "/nonexistent")
    assert cli(["study", "--n-boot", "200"]) == 0
    text = capsys.readouterr().out
    assert "simulated study" in text and "reports vs learned" in text


def test_simulated_transcripts_read_back_identically(tmp_path):
    data, truth = simulate_study(DEFAULT_MODEL, StudyDesign(contexts=12, choices=8, reports=3,
                                                            native_contexts=6, native_choices=9), rng=2)
    write_released(tmp_path, "m", data)
    back = read_released(tmp_path, "m", calls_per_context=3)
    for key in ("instilled", "latent"):
        a, b = data.choices[key], back.choices[key]
        assert np.array_equal(a["X"].values, b["X"].values)  # so `study` scores in memory
        assert np.array_equal(a["y"].values, b["y"].values)
    for key, ds in data.reports.items():
        assert np.array_equal(ds["report_valid"].values, back.reports[key]["report_valid"].values)
        v = ds["report_valid"].values
        assert np.array_equal(ds["report"].values[v], back.reports[key]["report"].values[v])
    assert np.array_equal(back.target_weight.values[:12], truth["target"])


def test_simulated_study_follows_the_generative_model():
    # 2,000 contexts: the study-level statistics are close to the model's population values
    design = StudyDesign(contexts=2000, choices=50, reports=10, native_contexts=20, native_choices=20)
    data, truth = simulate_study(DEFAULT_MODEL, design, rng=0)
    rep = data.reports["instilled"]
    v = rep["report_valid"].values
    assert v.all()  # the instilled model's invalid rate is 0
    r = rep["report"].values
    assert np.all(np.mod(r, 10) == 0) and np.abs(r).max() <= 100
    base = data.reports["base"]["report"].values.mean(axis=1)
    from selfinterp.logit import normalize_weights

    # the base model's mean reports carry no information: |r| < 0.05 (10,000 pairs, sd 0.01)
    assert abs(np.corrcoef(base.ravel(), normalize_weights(truth["effective"]).ravel())[0, 1]) < 0.05
    ch = data.choices["instilled"]
    u = np.einsum("ctk,ck->ct", ch["X"].values, truth["target"])
    # the calibrated agreement with the target rule is 0.826 (100,000 choices: sd < 0.002)
    assert np.mean((u > 0) == (ch["y"].values == 1)) == pytest.approx(0.826, abs=0.01)


@pytest.mark.parametrize("seed", range(8))
def test_simulated_transcripts_are_valid_released_files(tmp_path, seed):
    # the reader refuses repeated lines: coarse reports of one context can coincide, the
    # option pairs shown with them must keep the lines apart
    data, _ = simulate_study(DEFAULT_MODEL, rng=seed)
    write_released(tmp_path, "simulated", data)
    back = read_released(tmp_path, "simulated")
    assert set(back.reports) == set(data.reports)
