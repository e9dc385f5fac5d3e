"""Checks before the first paid call, and stops with a clear message: the plan, the budget, bad replies."""

from __future__ import annotations

import json

import pytest

from selfinterp.cli import main as cli_main
from selfinterp.llm.config import load_experiment

from .conftest import fake_for, write_experiment


def _run(path, url, *extra):
    return cli_main(["run", str(path), "--base-url", url, *extra])


def test_dry_run_prints_every_stage_and_calls_nothing(tmp_path, shared, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # not needed: nothing is called
    path = write_experiment(tmp_path, shared, n_instilled=10, n_native=4, n_pairs=40, n_reports=4)
    text = path.read_text().replace('model = "base-model-1"', 'model = "gpt-4.1-mini-2025-04-14"')
    path.write_text(text)
    assert cli_main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:-1]}
    # 10 instilled contexts x 40 pairs x 2 orders; 4 native x 40 x 2; reports 4 per context
    assert rows["choices"][2] == "800" and rows["choices_native"][2] == "320"
    assert rows["reports_base"][2] == "40" and rows["reports_itrained_all_native"][2] == "16"
    assert rows["instill"][1] == "training" and rows["instill"][2] == "300"  # 10 x 30 training pairs
    assert float(rows["total"][-1]) > 0
    assert not (tmp_path / "out").exists()
    assert cli_main(["run", str(path), "--dry-run", "--retry-failed"]) == 2  # an option that would be ignored
    assert "--retry-failed and --reask-invalid would be ignored" in capsys.readouterr().err


def test_a_design_too_small_is_refused_before_any_job(tmp_path, shared, api_key, capsys):
    path = write_experiment(tmp_path, shared, n_instilled=4, n_native=0, n_train=10, examples=1)
    exp = load_experiment(path)
    fake = fake_for(exp)
    try:
        assert _run(path, fake.start()) == 2
    finally:
        fake.stop()
    err = capsys.readouterr().err
    assert "stage itrain_first: its training file: 2 examples, fine-tuning needs at least 10" in err
    assert fake.log == [] and not fake.files  # nothing uploaded, nothing asked


def test_max_usd_stops_before_the_stage_that_would_pass_it(tmp_path, shared, api_key, capsys):
    path = write_experiment(tmp_path, shared, n_instilled=4, n_native=0, n_train=10, examples=5)
    text = path.read_text().replace('out = "out"', 'out = "out"\nmax_usd = 0.02\n[prices]\n'
                                    '"base-model-1" = [100.0, 100.0, 100.0, 100.0, 0.01]')
    path.write_text(text)
    exp = load_experiment(path)
    fake = fake_for(exp, job_polls=1)
    try:
        assert _run(path, fake.start()) == 1
    finally:
        fake.stop()
    err = capsys.readouterr().err
    assert "stage choices: spent $0.00 so far and this stage may cost up to $" in err and "max_usd = 0.02" in err
    assert len(fake.jobs) == 1 and not [e for e in fake.log if e["path"] == "chat"]


def test_html_reply_and_an_all_invalid_stage_stop_with_a_clear_message(tmp_path, shared, api_key, capsys):
    path = write_experiment(tmp_path, shared, n_instilled=4, n_native=0, n_train=10, examples=5,
                            method="sample", n_pairs=3, n_reports=2, concurrency=1)
    exp = load_experiment(path)
    fake = fake_for(exp, job_polls=1, invalid_rate=1.0)
    url = fake.start()
    try:
        fake.html = 1
        assert _run(path, url) == 1
        err = capsys.readouterr().err
        assert "stage choices: request " in err and "the reply is not JSON ('<html>" in err
        assert _run(path, url) == 1  # the reports of the base model are all invalid
        err = capsys.readouterr().err
        assert "stage reports_base: none of the 8 replies is valid" in err and "--reask-invalid" in err
        n_asked = len([e for e in fake.log if e["path"] == "chat"])
        fake.invalid_rate = 0.0
        assert _run(path, url) == 1  # without the flag, the stored replies are read again, nothing asked
        assert len([e for e in fake.log if e["path"] == "chat"]) == n_asked
        capsys.readouterr()
        assert _run(path, url, "--reask-invalid") == 0
    finally:
        fake.stop()
    summary = json.loads((exp.out / "summary.json").read_text())
    assert summary["reports_base"]["invalid_replies"] == 0
    # every choice was asked once: the re-asked requests are the 8 invalid reports only (then the rest of the run)
    keys = [e["key"] for e in fake.log if e["path"] == "chat" and e.get("status") == 200]
    assert len(keys) - len(set(keys)) == 8
