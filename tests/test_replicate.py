"""The paper's table from the released GPT-4o files, other layouts, and the CLI.

Published figures (pooled Pearson r, 100 contexts x 5 attributes; the
release README and Plunkett et al. 2025): learned vs target 0.84, choices
agreeing with the target rule 82.6%, base-model reports 0.10, reports vs
learned 0.54 [about 0.47, 0.62], reports vs target 0.49, after introspection
training 0.74, native 0.46 before and 0.71 after.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from selfinterp.cli import main
from selfinterp.errors import MissingExtraError
from selfinterp.replicate import METRICS, compute, learned_weights, replicate

from conftest import MODEL

PUBLISHED = {
    "learned_vs_target": 0.84,
    "base_reports_vs_learned": 0.10,
    "reports_vs_learned": 0.54,
    "reports_vs_target": 0.49,
    "itrained_reports_vs_learned": 0.74,
    "native_reports_vs_learned": 0.46,
    "native_itrained_reports_vs_learned": 0.71,
}


@pytest.fixture(scope="module")
def rep(shared_data):
    return compute(shared_data, MODEL, n_boot=2000, rng=0)


@pytest.mark.parametrize("key", sorted(PUBLISHED))
def test_published_correlations(rep, key):
    m = rep.result["metrics"][key]
    assert m["r"] == pytest.approx(PUBLISHED[key], abs=0.01)
    assert m["n"] == 500
    assert m["ci"][0] < m["r"] < m["ci"][1]


def test_choice_agreement_and_invalid_rate(rep):
    m = rep.result["metrics"]
    assert m["choice_agreement"]["value"] == pytest.approx(0.826, abs=0.0005)
    assert m["choice_agreement"]["n"] == 5000
    # 34 of the 5000 report calls (the native-context reports) left no valid row
    assert m["invalid_report_rate"] == {"value": 34 / 5000, "n": 5000}
    assert rep.result["details"]["invalid_reports"]["instilled_latent"]["invalid"] == 34


def test_intervals_of_reports_vs_learned(rep):
    m = rep.result["metrics"]["reports_vs_learned"]
    # the paper's interval (brms slope on standardised values): about 0.47 to 0.62
    assert m["ci_regression"][0] == pytest.approx(0.47, abs=0.01)
    assert m["ci_regression"][1] == pytest.approx(0.62, abs=0.01)
    # the context-clustered bootstrap interval is of the same width here
    assert 0.45 < m["ci"][0] < 0.50 and 0.58 < m["ci"][1] < 0.63


def test_training_effects_are_paired_differences(rep):
    m = rep.result["metrics"]
    for key, before, after in [("training_effect", "reports_vs_learned", "itrained_reports_vs_learned"),
                               ("native_training_effect", "native_reports_vs_learned",
                                "native_itrained_reports_vs_learned")]:
        assert m[key]["diff"] == pytest.approx(m[after]["r"] - m[before]["r"])
        assert 0 < m[key]["ci"][0] < m[key]["diff"] < m[key]["ci"][1]


def test_learned_weights_agree_with_the_authors(rep):
    for key in ("instilled", "latent"):
        v = rep.result["details"]["learned_vs_authors"][key]
        assert v["n_contexts"] == 100 and v["mean_context_r"] >= 0.99
    # and directly, per context
    data = rep.data
    ours = learned_weights(data.choices["instilled"])["weight"]
    auth = data.regression["instilled"].sel(context=ours["context"].values)
    r = [np.corrcoef(a, b)[0, 1] for a, b in zip(ours.values, auth.values)]
    assert np.mean(r) >= 0.99
    # the authors rounded to integers: a MAP fit lands within a few units of their posterior means
    assert np.max(np.abs(ours.values - auth.values)) < 5


def test_controls(rep):
    c = rep.result["details"]["controls"]
    # the base model's reports barely beat a constant report, the trained model's do by far
    assert c["reports_vs_learned"]["shuffled_null"]["p_value"] < 0.001
    assert abs(c["reports_vs_learned"]["shuffled_null"]["mean"]) < 0.1
    assert c["reports_vs_learned"]["constant_baseline"]["r"] < 0.2


def test_keys_json_and_determinism(shared_data, rep):
    res = rep.result
    assert tuple(res["metrics"]) == METRICS and res["model"] == MODEL
    json.dumps(res, allow_nan=False)
    again = replicate(shared_data, MODEL, n_boot=2000, rng=0)
    assert again["metrics"] == res["metrics"]
    other = replicate(shared_data, MODEL, n_boot=2000, rng=1)
    assert other["metrics"]["reports_vs_learned"]["r"] == res["metrics"]["reports_vs_learned"]["r"]
    assert other["metrics"]["reports_vs_learned"]["ci"] != res["metrics"]["reports_vs_learned"]["ci"]


def _renamed(shared_data, dst, model, drop=()):
    dst.mkdir()
    for p in shared_data.glob("*.csv"):
        name = p.name.replace(MODEL, model)
        if name not in drop:
            shutil.copy(p, dst / name)
    return dst


def test_other_model_name_gives_the_same_table(shared_data, tmp_path, rep):
    d = _renamed(shared_data, tmp_path / "x", "gpt-4o-mini-2024-07-18")
    res = replicate(d, "gpt-4o-mini-2024-07-18")
    assert res["metrics"] == rep.result["metrics"]


def test_missing_optional_files_give_absent_metrics(shared_data, tmp_path):
    m = "some-model"
    drop = {f"{m}_instilled_latent_selections.csv", f"{m}_weight_reports.csv",
            f"{m}_itrained_first_50_of_100_50ex_weight_reports.csv", "instilled_weights.csv"}
    res = replicate(_renamed(shared_data, tmp_path / "x", m, drop), m)
    met = res["metrics"]
    absent = {"learned_vs_target", "choice_agreement", "base_reports_vs_learned", "reports_vs_target",
              "native_reports_vs_learned", "native_itrained_reports_vs_learned", "native_training_effect"}
    assert {k for k, v in met.items() if v is None} == absent
    # one held-out half is left: scored on its 50 contexts
    assert met["itrained_reports_vs_learned"]["n"] == 250
    assert met["reports_vs_learned"]["r"] == pytest.approx(0.54, abs=0.01)
    assert any("instilled_weights.csv absent" in n for n in res["notes"])
    assert any(f"{m}_weight_reports.csv absent" in n for n in res["notes"])
    assert sorted(res["details"]["absent_files"]) == sorted(drop)


def test_only_reports_and_regressions(shared_data, tmp_path):
    """No selections at all: nothing learned, so only the invalid-report rate is computed."""
    m = "r-only"
    keep = {f"{m}_instilled_weight_reports.csv", "scenarios.csv"}
    d = tmp_path / "x"
    d.mkdir()
    for p in shared_data.glob("*.csv"):
        name = p.name.replace(MODEL, m)
        if name in keep:
            shutil.copy(p, d / name)
    res = replicate(d, m)
    assert [k for k, v in res["metrics"].items() if v is not None] == ["invalid_report_rate"]
    assert res["metrics"]["invalid_report_rate"] == {"value": 0.0, "n": 1000}


# ---------------------------------------------------------------------------------------------
# the CLI


def test_cli_table(shared_data, capsys):
    assert main(["replicate", str(shared_data), "--model", MODEL, "--n-boot", "2000"]) == 0
    out = capsys.readouterr().out
    assert "reports vs learned" in out and "0.543" in out and "82.6%" in out


def test_cli_json(shared_data, capsys):
    assert main(["replicate", str(shared_data), "--model", MODEL, "--json", "--seed", "3"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"] == MODEL and tuple(res["metrics"]) == METRICS
    assert res["metrics"]["learned_vs_target"]["r"] == pytest.approx(0.84, abs=0.01)


def test_cli_plot(shared_data, tmp_path, capsys):
    png = tmp_path / "fig.png"
    assert main(["replicate", str(shared_data), "--model", MODEL, "--plot", str(png), "--n-boot", "2000"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot_without_matplotlib(shared_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    from selfinterp.errors import require

    with pytest.raises(MissingExtraError, match=r"selfinterp\[plot\]"):
        require("matplotlib", "plot")
    assert main(["replicate", str(shared_data), "--model", MODEL, "--plot", str(tmp_path / "f.png")]) == 2
    assert "selfinterp[plot]" in capsys.readouterr().err


def test_cli_errors_name_the_file(shared_data, tmp_path, capsys):
    assert main(["replicate", str(shared_data), "--model", "nope"]) == 2
    assert "no files for model 'nope'" in capsys.readouterr().err
    d = _renamed(shared_data, tmp_path / "x", "m")
    f = d / "m_instilled_selections.csv"
    lines = f.read_text().split("\n")
    lines[3] = lines[3].replace("loose_leaf_tea", "green_tea_x")
    f.write_text("\n".join(lines))
    assert main(["replicate", str(d), "--model", "m", "--json"]) == 2
    err = capsys.readouterr().err
    assert "m_instilled_selections.csv, line 4: unknown scenario 'green_tea_x'" in err


def test_simulated_study_in_the_released_layout(tmp_path):
    """Known weights -> simulated choices and noisy reports -> write_released -> replicate.

    Choices follow P(A) = sigmoid(0.05 * X @ w) with 200 trials per context; reports are the
    target weights plus normal(0, 30) noise, 8 valid of 10 calls per context.  The mean of 8
    reports has noise sd 30 / sqrt(8) = 10.6 against target weights of sd about 58, so
    r(reports, target) is about 58 / sqrt(58^2 + 10.6^2) = 0.98; we accept > 0.95.
    """
    from selfinterp.design import draw_target_weights
    from selfinterp.io import ReleasedData, reports_dataset, scenarios_dataset, write_released
    from selfinterp.labelled import simulate_dataset

    C, K = 40, 5
    names = [f"ctx{i}" for i in range(C)]
    rng = np.random.default_rng(2024)
    w = draw_target_weights(C, K, rng)
    scen = scenarios_dataset(names, [[f"a{k}" for k in range(K)]] * C, np.zeros((C, K)),
                             np.full((C, K), 10.0), [f"Which {n}?" for n in names])
    ch = simulate_dataset(w, 200, scale=0.05, rng=rng, context=names)
    valid = np.tile(np.arange(10) < 8, (C, 1))
    # (reports lie on the weight scale: one outside [-100, 100] would be an invalid reply)
    rep = reports_dataset(np.clip(w[:, None, :] + rng.normal(0, 30, (C, 10, K)), -100, 100), valid, context=names,
                          scenarios=scen)
    tw = ch["target_weight"].rename("target_weight")
    data = ReleasedData("sim", scen, tw, {"instilled": ch[["X", "y", "mask"]]}, {"instilled": rep})
    write_released(tmp_path, "sim", data)
    res = replicate(tmp_path, "sim")
    m = res["metrics"]
    assert m["learned_vs_target"]["r"] > 0.95
    assert m["reports_vs_target"]["r"] > 0.95
    assert m["invalid_report_rate"] == {"value": 0.2, "n": 400}
    assert m["itrained_reports_vs_learned"] is None and m["training_effect"] is None
