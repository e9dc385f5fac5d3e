"""The generative model's parameters, the calibration file and the report model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from selfinterp.errors import InputError
from selfinterp.study import DEFAULT_MODEL, ReportModel, StudyDesign, load_calibration, save_calibration
from selfinterp.study.model import mean_reports, simulate_reports, weight_sd


def test_calibration_file_round_trip(tmp_path):
    path = save_calibration(DEFAULT_MODEL, tmp_path / "cal.toml")
    back = load_calibration(path)
    assert back == DEFAULT_MODEL
    assert back.provenance["model"] == "gpt-4o-2024-08-06"


def test_calibration_file_from_another_version_is_refused(tmp_path):
    path = save_calibration(DEFAULT_MODEL, tmp_path / "cal.toml")
    path.write_text(path.read_text().replace("version = 1", "version = 2"))
    with pytest.raises(InputError, match="version 2"):
        load_calibration(path)


def test_calibration_file_with_a_missing_field_names_it(tmp_path):
    path = save_calibration(DEFAULT_MODEL, tmp_path / "cal.toml")
    text = path.read_text()
    # drop the sd_report line of the [reports.itrained] table only
    head, tail = text.split("[reports.itrained]")
    tail = tail.replace("sd_report = ", "#sd_report = ", 1)
    path.write_text(head + "[reports.itrained]" + tail)
    with pytest.raises(InputError, match=r"reports\.itrained.*sd_report"):
        load_calibration(path)


def test_calibration_file_with_a_missing_section_or_bad_value(tmp_path):
    path = save_calibration(DEFAULT_MODEL, tmp_path / "cal.toml")
    text = path.read_text()
    path.write_text(text.replace("[choices.native]", "[choices.natives]"))
    with pytest.raises(InputError, match=r"choices\.native"):
        load_calibration(path)
    path.write_text(text.replace("invalid_rate = 0.0", "invalid_rate = 1.5", 1))
    with pytest.raises(InputError, match="invalid_rate"):
        load_calibration(path)
    path.write_text("not toml = = =")
    with pytest.raises(InputError, match="TOML"):
        load_calibration(path)
    with pytest.raises(InputError, match="does not exist"):
        load_calibration(tmp_path / "nope.toml")


def test_base_model_must_carry_no_information():
    reports = dict(DEFAULT_MODEL.reports)
    reports["base"] = dataclasses.replace(reports["base"], slope=0.1)
    with pytest.raises(InputError, match="slope must be 0"):
        dataclasses.replace(DEFAULT_MODEL, reports=reports)


@pytest.mark.parametrize("field,value", [("contexts", 0), ("contexts", 1), ("choices", 0),
                                         ("reports", -1), ("attributes", 1), ("choices", 2.5)])
def test_impossible_study_designs(field, value):
    with pytest.raises(InputError, match=field):
        StudyDesign(**{field: value})


def test_reports_are_coarse_clipped_and_sometimes_invalid():
    rm = ReportModel(slope=2.0, offset=10.0, sd_context=20.0, sd_report=30.0, grid=10.0, invalid_rate=0.2)
    gen = np.random.default_rng(1)
    w = gen.uniform(-100, 100, (4000, 5))
    rep, valid = simulate_reports(w, rm, 5, gen)
    assert rep.shape == (4000, 5, 5) and valid.shape == (4000, 5)
    assert np.all(np.mod(rep, 10) == 0)
    assert rep.min() == -100 and rep.max() == 100  # slope 2 pushes many beyond the range
    # 20,000 Bernoulli(0.8) validity draws: sd of the share 0.0028; |dev| < 0.015 fails with p < 1e-7
    assert abs(valid.mean() - 0.8) < 0.015
    mean, n = mean_reports(rep, valid)
    c = np.flatnonzero(n >= 2)[0]
    assert np.allclose(mean[c], rep[c][valid[c]].mean(axis=0))
    assert np.all(mean[n == 0] == 0)


def test_single_report_correlation_matches_simulation_and_can_be_set():
    rm = DEFAULT_MODEL.reports["instilled"]
    wsd = weight_sd(DEFAULT_MODEL.instilled.instill_sd)
    rm2 = rm.with_single_report_r(0.6, wsd)
    assert rm2.single_report_r(wsd) == pytest.approx(0.6)
    assert rm2.sd_context / rm2.sd_report == pytest.approx(rm.sd_context / rm.sd_report)
    # the analytic r of an unrounded report agrees with a large simulation (200,000 pairs:
    # the sd of r is below 0.002, the tolerance 0.01 is > 5 sd)
    gen = np.random.default_rng(3)
    from selfinterp.study.model import draw_targets

    w = draw_targets(40_000, 5, gen) + DEFAULT_MODEL.instilled.instill_sd * gen.standard_normal((40_000, 5))
    fine = dataclasses.replace(rm2, grid=1e-9)
    rep, valid = simulate_reports(w, fine, 1, gen)
    from selfinterp.logit import normalize_weights

    assert np.corrcoef(rep[:, 0].ravel(), normalize_weights(w).ravel())[0, 1] == pytest.approx(0.6, abs=0.01)
    with pytest.raises(InputError):
        rm.with_single_report_r(1.2, wsd)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from selfinterp.study import ChoiceModel, StudyModel  # noqa: E402

_pos = st.floats(0.0, 1e4, allow_nan=False)
_real = st.floats(-1e4, 1e4, allow_nan=False)
_choice = st.builds(ChoiceModel, scale=st.floats(1e-6, 1e3), instill_sd=_pos, bias=_real, bias_sd=_pos)


def _report(slope):
    return st.builds(ReportModel, slope=slope, offset=_real, sd_context=_pos, sd_report=_pos,
                     grid=st.floats(1e-3, 200.0), invalid_rate=st.floats(0.0, 0.999))


_model = st.builds(
    StudyModel, instilled=_choice, native=_choice,
    reports=st.fixed_dictionaries({"base": _report(st.just(0.0)), "instilled": _report(_real),
                                   "itrained": _report(_real), "native": _report(_real),
                                   "native_itrained": _report(_real)}),
    design=st.builds(StudyDesign, contexts=st.integers(2, 10**6), choices=st.integers(1, 10**4),
                     reports=st.integers(1, 100)),
    provenance=st.fixed_dictionaries({"model": st.text(max_size=30), "files": st.lists(st.text(max_size=20), max_size=3)}),
)


@settings(max_examples=30)
@given(_model)
def test_any_model_survives_the_calibration_file(tmp_path_factory, model):
    path = save_calibration(model, tmp_path_factory.mktemp("cal") / "m.toml")
    back = load_calibration(path)
    assert back == model
    assert back.provenance == model.provenance


def test_calibration_file_refuses_values_toml_cannot_hold(tmp_path):
    bad = dataclasses.replace(DEFAULT_MODEL, provenance={"note": "x", "r": float("nan")})
    with pytest.raises(InputError, match=r"non-finite value \(nan\) to a calibration file \(provenance.r\)"):
        save_calibration(bad, tmp_path / "bad.toml")
    assert not (tmp_path / "bad.toml").exists()
