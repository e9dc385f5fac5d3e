"""Planning a local run in GPU-hours: tokens to train and to elicit at a measured throughput."""

from __future__ import annotations

import json

import pytest

from selfinterp.cli import main as cli
from selfinterp.errors import InputError
from selfinterp.study import load_prices
from selfinterp.study.budget import design_gpu_hours, parse_throughput


def test_gpu_hours_by_hand():
    t = load_prices()
    tok = t.tokens
    thr = {"train": 2000.0, "prefill": 20000.0, "decode": 500.0}
    g = design_gpu_hours(100, 50, 10, t, thr, train_examples=50, usd_per_gpu_hour=2.0)
    train = (100 * 50 * tok["instill_example"] + 100 * tok["introspection_example"]) * t.epochs
    prefill = 2 * 100 * 50 * tok["choice_input"]  # both orders, one forward pass each
    decode = 3 * 100 * 10 * tok["report_output"]  # base, weight-trained, introspection-trained reports
    hours = train / 2000 / 3600 + prefill / 20000 / 3600 + decode / 500 / 3600
    assert g["train_tokens"] == round(train) and g["prefill_tokens"] == prefill and g["decode_tokens"] == decode
    assert g["gpu_hours"] == pytest.approx(hours, abs=2e-3)
    assert g["cost_gpu_usd"] == pytest.approx(2 * hours, abs=0.01)
    # twice the throughput, half the hours; one order, half the choices' prefill
    g2 = design_gpu_hours(100, 50, 10, t, {k: 2 * v for k, v in thr.items()}, train_examples=50)
    assert g2["gpu_hours"] == pytest.approx(hours / 2, abs=2e-3) and "cost_gpu_usd" not in g2
    assert design_gpu_hours(100, 50, 10, t, thr, both_orders=False)["prefill_tokens"] == prefill // 2


def test_throughput_parsing_and_errors(capsys):
    assert parse_throughput("1e3, 2e4,500") == {"train": 1000.0, "prefill": 20000.0, "decode": 500.0}
    for bad, match in (("1,2", "three numbers"), ("1,x,3", "prefill throughput 'x'"), ("1,0,3", "must be > 0")):
        with pytest.raises(InputError, match=match):
            parse_throughput(bad)
    assert cli(["power", "--contexts", "8", "--replicates", "2", "--gpu-throughput", "1,2", "--no-progress"]) == 2
    assert "three numbers" in capsys.readouterr().err
    assert cli(["power", "--contexts", "8", "--replicates", "2", "--gpu-usd-per-hour", "2", "--no-progress"]) == 2


def test_power_cli_prices_gpu_hours(capsys):
    rc = cli(["power", "--contexts", "8,12", "--choices", "5", "--reports", "2", "--replicates", "5", "--json",
              "--no-progress", "--gpu-throughput", "2000,20000,500", "--gpu-usd-per-hour", "3"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    t = load_prices()
    for d in out["designs"]:
        want = design_gpu_hours(d["contexts"], 5, 2, t, {"train": 2000, "prefill": 20000, "decode": 500},
                                train_examples=50, usd_per_gpu_hour=3)
        assert {k: d[k] for k in want} == want
    assert out["settings"]["gpu_throughput"] == {"train": 2000.0, "prefill": 20000.0, "decode": 500.0}
    assert cli(["power", "--contexts", "8", "--choices", "5", "--reports", "2", "--replicates", "5",
                "--no-progress", "--gpu-throughput", "2000,20000,500"]) == 0
    assert "GPU h" in capsys.readouterr().out
