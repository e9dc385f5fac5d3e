"""Calibration on the released GPT-4o files, and the acceptance checks of its predictions.

The predictions are checked against real quantities the calibration was not
fitted to: r(learned, target) when the real selections are subsampled to 10,
20 and 30 choices per context (the calibration saw only the full 50), and
r(reports, learned) with a single report per context (it saw 10-report means).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from selfinterp.cli import main as cli
from selfinterp.errors import InputError
from selfinterp.io import read_released
from selfinterp.logit import fit_logit, normalize_weights
from selfinterp.study import DEFAULT_MODEL, Design, calibrate, load_calibration, run_design

from conftest import MODEL


@pytest.fixture(scope="module")
def calibrated(shared_data):
    return calibrate(shared_data, MODEL)


@pytest.fixture(scope="module")
def real(shared_data):
    data = read_released(shared_data, MODEL)
    ch = data.choices["instilled"]
    return {"X": ch["X"].values, "y": ch["y"].values, "target": ch["target_weight"].values,
            "reports": data.reports["instilled"], "context": [str(c) for c in ch["context"].values]}


# Calibration is a Monte-Carlo fit: recalibrating with another seed moves the parameters by
# up to about 4% (offsets, near 0, by up to 2 report points; the mean position bias by 0.02
# logits).  The tolerances are twice that, so the test holds if the simulator's random
# streams change, and fails if the calibration or the defaults really move.
RTOL = 0.08
ATOL = {"offset": 2.0, "bias": 0.05}


def _close(a, b):
    return {k: (getattr(a, k), getattr(b, k)) for k in vars(a)
            if not np.isclose(getattr(a, k), getattr(b, k), rtol=RTOL, atol=ATOL.get(k, 1e-9))}


def test_calibration_reproduces_the_built_in_defaults(calibrated):
    # the defaults' provenance: this very computation (seed 0, 20 tiles)
    assert calibrated.design == DEFAULT_MODEL.design
    for part in ("instilled", "native"):
        assert _close(getattr(calibrated, part), getattr(DEFAULT_MODEL, part)) == {}, part
    for cond, rm in calibrated.reports.items():
        assert _close(rm, DEFAULT_MODEL.reports[cond]) == {}, cond
    mom = calibrated.provenance["moments"]
    assert mom["instilled_choices"]["r_learned_target"][0] == pytest.approx(0.8439, abs=1e-4)
    assert calibrated.reports["instilled"].grid == 10 and calibrated.reports["base"].grid == 5
    assert calibrated.reports["native"].invalid_rate == pytest.approx(34 / 1000)


def _subsampled_r(real, n_choices, n_sub=100, seed=0):
    """Mean r(learned, target) over n_sub random subsets of n_choices choices per context."""
    gen = np.random.default_rng(seed)
    X, y, T = real["X"], real["y"], real["target"]
    C, Tn, K = X.shape
    idx = np.argsort(gen.random((n_sub, C, Tn)), axis=2)[:, :, :n_choices]
    Xs = np.take_along_axis(np.broadcast_to(X, (n_sub, C, Tn, K)), idx[..., None], axis=2)
    ys = np.take_along_axis(np.broadcast_to(y, (n_sub, C, Tn)), idx, axis=2)
    L = normalize_weights(fit_logit(Xs.reshape(-1, n_choices, K), ys.reshape(-1, n_choices),
                                    check_separation=False).coef).reshape(n_sub, C * K)
    return float(np.mean([np.corrcoef(l, T.ravel())[0, 1] for l in L]))


def test_predicts_r_learned_target_with_fewer_choices(calibrated, real):
    # Real values from 100 random subsamples (seed 0): about 0.69, 0.78, 0.82.  The
    # prediction is the mean over 300 simulated studies (standard error < 0.002).
    for n_choices, paper in ((10, 0.68), (20, 0.79), (30, 0.82)):
        observed = _subsampled_r(real, n_choices)
        assert observed == pytest.approx(paper, abs=0.015)
        predicted = run_design(Design(100, n_choices, 10), calibrated, 300, seed=1)["learned_vs_target"]["mean"]
        assert predicted == pytest.approx(observed, abs=0.03), n_choices


def test_predicts_r_reports_learned_with_a_single_report(calibrated, real):
    L = normalize_weights(fit_logit(real["X"], real["y"]).coef)
    rep = real["reports"]["report"].transpose("context", "report", "attribute").values
    valid = real["reports"]["report_valid"].values
    pos = [real["context"].index(str(c)) for c in real["reports"]["context"].values]
    gen = np.random.default_rng(0)
    rs = []
    for _ in range(200):  # one random valid report per context
        pick = np.array([gen.choice(np.flatnonzero(v)) for v in valid])
        single = rep[np.arange(len(pick)), pick]
        rs.append(np.corrcoef(single.ravel(), L[pos].ravel())[0, 1])
    observed = float(np.mean(rs))
    assert observed == pytest.approx(0.41, abs=0.01)
    predicted = run_design(Design(100, 50, 1), calibrated, 300, seed=2)["reports_vs_learned"]["mean"]
    assert predicted == pytest.approx(observed, abs=0.04)


def test_calibrate_cli_writes_a_file_study_and_power_accept(tmp_path, shared_data, capsys):
    # a copy without the native and introspection files: those parts keep the defaults
    d = tmp_path / "data"
    d.mkdir()
    for name in ("scenarios.csv", "instilled_weights.csv", f"{MODEL}_instilled_selections.csv",
                 f"{MODEL}_weight_reports.csv", f"{MODEL}_instilled_weight_reports.csv"):
        shutil.copy(shared_data / name, d / name)
    out = tmp_path / "cal.toml"
    assert cli(["calibrate", str(d), "--model", MODEL, "-o", str(out), "--tiles", "4"]) == 0
    text = capsys.readouterr().out
    assert "calibration written" in text and "default" in text
    m = load_calibration(out)
    assert m.reports["itrained"] == DEFAULT_MODEL.reports["itrained"]
    assert m.reports["instilled"] != DEFAULT_MODEL.reports["instilled"]
    assert any("itrained" in n for n in m.provenance["notes"])
    assert cli(["power", "--calibration", str(out), "--contexts", "8", "--choices", "5", "--reports", "1",
                "--replicates", "5", "--no-progress"]) == 0
    assert cli(["study", "--calibration", str(out), "--contexts", "10", "--choices", "5", "--reports", "2",
                "--n-boot", "50"]) == 0


def test_calibrate_needs_choices_and_targets(tmp_path, shared_data):
    shutil.copy(shared_data / "scenarios.csv", tmp_path / "scenarios.csv")
    shutil.copy(shared_data / f"{MODEL}_weight_reports.csv", tmp_path / f"{MODEL}_weight_reports.csv")
    with pytest.raises(InputError, match="instilled_selections"):
        calibrate(tmp_path, MODEL)
