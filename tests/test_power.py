"""The Monte-Carlo power engine, the sweep (resume, dask) and the budget."""

from __future__ import annotations

import contextlib
import json
import socket

import pytest

import selfinterp.study.power as pw
from selfinterp.cli import main as cli
from selfinterp.errors import InputError
from selfinterp.study import DEFAULT_MODEL, Design, cheapest, design_cost, design_grid, load_prices, run_design, sweep

SMALL = dict(replicates=30, seed=3)


def test_same_seed_same_numbers_whatever_the_blocking(monkeypatch):
    d = Design(20, 10, 2)
    a = run_design(d, DEFAULT_MODEL, 40, seed=1)
    # one group of 10 replicates per block instead of all four in one block
    monkeypatch.setattr(pw, "BLOCK_TRIALS", 1)
    b = run_design(d, DEFAULT_MODEL, 40, seed=1)
    assert a == b
    c = run_design(d, DEFAULT_MODEL, 40, seed=2)
    assert c["learned_vs_target"] != a["learned_vs_target"]
    twenty = run_design(d, DEFAULT_MODEL, 20, seed=1)
    assert twenty == pw.run_designs([d], DEFAULT_MODEL, 20, seed=1)[0]
    # the NumPy reference estimator gives the same summaries to rounding
    ref = run_design(d, DEFAULT_MODEL, 20, seed=1, backend="numpy")
    assert ref["learned_vs_target"]["mean"] == pytest.approx(twenty["learned_vs_target"]["mean"], abs=1e-9)
    assert ref["power_training_effect"] == twenty["power_training_effect"]


def test_grid_drops_repeated_designs():
    assert design_grid([10, 10, 20], [5], [1], [None, None]) == [Design(10, 5, 1), Design(20, 5, 1)]


def test_a_design_does_not_depend_on_the_grid_around_it():
    one = sweep([Design(20, 10, 2)], DEFAULT_MODEL, **SMALL, progress=False)[0]
    many = sweep(design_grid([8, 20], [10], [1, 2]), DEFAULT_MODEL, **SMALL, progress=False)
    assert many[3] == one


def test_power_engine_reproduces_the_calibrated_study():
    # The built-in calibration was fitted to the paper's design (100 x 50 x 10), where
    # GPT-4o gave r(learned, target) = 0.844 and r(reports, learned) = 0.543.  The mean of
    # 200 simulated studies has a standard error below 0.004 for both.
    r = run_design(Design(100, 50, 10), DEFAULT_MODEL, 200, seed=0)
    assert r["learned_vs_target"]["mean"] == pytest.approx(0.844, abs=0.015)
    assert r["reports_vs_learned"]["mean"] == pytest.approx(0.543, abs=0.02)
    assert abs(r["base_reports_vs_learned"]["mean"]) < 0.02
    assert r["learned_vs_target"]["lo"] < r["learned_vs_target"]["mean"] < r["learned_vs_target"]["hi"]
    assert r["power_vs_control"] > 0.99
    assert 0.03 < r["ci_halfwidth"] < 0.09
    assert r["undefined"] == 0


def test_power_grows_with_the_effect_and_vanishes_without_one():
    res = sweep(design_grid([30], [20], [3], [0.0, 0.25]), DEFAULT_MODEL, replicates=200, seed=0,
                progress=False)
    # with no effect the one-sided rejection rate is about 2.5%: above 9% of 200 has p < 1e-4
    assert res[0]["power_training_effect"] < 0.09
    assert res[1]["power_training_effect"] > 0.5


@pytest.mark.parametrize("kwargs,match", [
    (dict(contexts=0, choices=10, reports=1), "contexts"),
    (dict(contexts=3, choices=10, reports=1), "at least 4 contexts"),
    (dict(contexts=10, choices=0, reports=1), "choices"),
    (dict(contexts=10, choices=5, reports=0), "reports"),
])
def test_impossible_designs_are_refused(kwargs, match):
    with pytest.raises(InputError, match=match):
        Design(**kwargs)


def test_bad_effect_is_refused_before_any_design_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(pw, "run_designs", lambda *a, **k: calls.append(a))
    with pytest.raises(InputError, match="training effect"):
        sweep(design_grid([10], [5], [1], [0.1, 0.9]), DEFAULT_MODEL, replicates=5, progress=False)
    assert calls == []


def test_interrupted_sweep_keeps_finished_designs_and_resumes(tmp_path, monkeypatch):
    designs = design_grid([8, 12, 16], [5], [1])
    real = pw.run_designs
    done = []

    def flaky(group, *a, **k):
        if group[0].contexts == 16:
            raise KeyboardInterrupt
        done.extend(d.contexts for d in group)
        return real(group, *a, **k)

    monkeypatch.setattr(pw, "run_designs", flaky)
    with pytest.raises(KeyboardInterrupt):
        sweep(designs, DEFAULT_MODEL, **SMALL, out=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "design_c12_t5_r1_ecalibrated.json", "design_c8_t5_r1_ecalibrated.json"]

    def counting(group, *a, **k):
        done.extend(d.contexts for d in group)
        return real(group, *a, **k)

    monkeypatch.setattr(pw, "run_designs", counting)
    resumed = sweep(designs, DEFAULT_MODEL, **SMALL, out=tmp_path, progress=False)
    assert done == [8, 12, 16]  # only the unfinished design ran again
    monkeypatch.setattr(pw, "run_designs", real)
    assert resumed == sweep(designs, DEFAULT_MODEL, **SMALL, progress=False)
    with pytest.raises(InputError, match="other settings"):
        sweep(designs, DEFAULT_MODEL, replicates=31, seed=3, out=tmp_path, progress=False)


def test_designs_sharing_contexts_and_choices_share_their_choices_only():
    grid = design_grid([20], [10], [1, 3], [None, 0.1])
    together = sweep(grid, DEFAULT_MODEL, **SMALL, progress=False)
    assert together == [run_design(d, DEFAULT_MODEL, **SMALL) for d in grid]
    # common random numbers: the same learned weights, hence the same r(learned, target) ...
    assert len({json.dumps(r["learned_vs_target"]) for r in together}) == 1
    # ... the same weight-trained reports for equal numbers of reports ...
    assert len({json.dumps(r["reports_vs_learned"]) for r in together}) == 2
    assert together[0]["power_vs_control"] == together[1]["power_vs_control"]
    # ... and each design's own introspection-trained reports
    assert len({json.dumps(r["itrained_reports_vs_learned"]) for r in together}) == 4


def test_budget_counts_calls_and_dollars_by_hand():
    t = load_prices()
    c = design_cost(100, 50, 10, t, train_examples=50)
    assert c["api_calls"] == 100 * 50 + 3 * 100 * 10
    tok = t.tokens
    train = 100 * 50 * tok["instill_example"] + 100 * tok["introspection_example"]
    ft = (5000 * (tok["choice_input"] * 3.75 + tok["choice_output"] * 15.0)
          + 2000 * (tok["report_input"] * 3.75 + tok["report_output"] * 15.0)) / 1e6
    base = 1000 * (tok["report_input"] * 2.5 + tok["report_output"] * 10.0) / 1e6
    assert c["cost_usd"] == pytest.approx(train * 3 * 25.0 / 1e6 + ft + base, abs=0.011)
    b = design_cost(100, 50, 10, t, train_examples=50, batch=True)
    assert b["cost_inference_usd"] == pytest.approx(c["cost_inference_usd"] / 2, abs=0.011)
    assert b["cost_finetuning_usd"] == c["cost_finetuning_usd"]


def test_price_table_errors(tmp_path):
    from importlib import resources

    text = resources.files("selfinterp.study").joinpath("prices.toml").read_text()
    bad = tmp_path / "p.toml"
    bad.write_text(text.replace("training = 25.00", "training = -25.00"))
    with pytest.raises(InputError, match="training must be >= 0"):
        load_prices(bad)
    bad.write_text(text.replace("batch_discount = 0.5", "batch_discount = 1.5"))
    with pytest.raises(InputError, match="batch_discount"):
        load_prices(bad)
    with pytest.raises(InputError, match="no prices for model"):
        load_prices(None, "gpt-5")


def test_cheapest_design_reaching_the_target_power():
    rs = [{"power_training_effect": 0.7, "power_vs_control": 1, "cost_usd": 5, "contexts": 1, "choices": 1},
          {"power_training_effect": 0.9, "power_vs_control": 1, "cost_usd": 30, "contexts": 1, "choices": 1},
          {"power_training_effect": 0.85, "power_vs_control": 1, "cost_usd": 20, "contexts": 1, "choices": 1}]
    assert cheapest(rs, 0.8)["cost_usd"] == 20
    assert cheapest(rs, 0.95) is None
    assert cheapest(rs, 0.95, "control")["cost_usd"] == 5


def test_power_cli_json(capsys, tmp_path):
    rc = cli(["power", "--contexts", "8,12", "--choices", "5", "--reports", "1,2", "--replicates", "20",
              "--json", "--no-progress", "--target-power", "0.01", "--batch"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["designs"]) == 4
    for d in out["designs"]:
        for k in ("contexts", "choices", "reports", "power_vs_control", "power_training_effect",
                  "api_calls", "cost_usd"):
            assert k in d
        for k in ("learned_vs_target", "reports_vs_learned"):
            assert set(d[k]) == {"mean", "lo", "hi"} and d[k]["lo"] <= d[k]["mean"] <= d[k]["hi"]
    chosen = out["target_power"]["chosen"]
    assert chosen["cost_usd"] == min(d["cost_usd"] for d in out["designs"])


def test_power_cli_errors_before_the_sweep(capsys, monkeypatch):
    assert cli(["power", "--contexts", "0", "--replicates", "5"]) == 2
    assert "contexts" in capsys.readouterr().err
    assert cli(["power", "--contexts", "10", "--replicates", "5", "--backend", "torch", "--no-progress"]) == 2
    assert "backend" in capsys.readouterr().err
    # a backend that exists but cannot run here: the CUDA kernel without a GPU
    from selfinterp._core import logit_cuda

    monkeypatch.setattr(logit_cuda, "available", lambda: False)
    assert cli(["power", "--contexts", "10", "--replicates", "5", "--backend", "cuda", "--no-progress"]) == 2
    assert "NVIDIA GPU" in capsys.readouterr().err
    assert cli(["power", "--contexts", "10", "--replicates", "5", "--scheduler", "tcp://127.0.0.1:9",
                "--connect-timeout", "1", "--no-progress"]) == 2
    assert "cannot reach the dask scheduler" in capsys.readouterr().err


def test_power_cli_plot(tmp_path, capsys):
    png = tmp_path / "power.png"
    assert cli(["power", "--contexts", "8,12", "--choices", "5", "--reports", "1", "--replicates", "10",
                "--no-progress", "--plot", str(png), "--target-power", "0.8"]) in (0, 1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_power_figure_is_labelled_with_target_and_monte_carlo_intervals():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfinterp.cli.power import _wilson, power_figure

    # Wilson's 95% interval for 0 of 10 studies is [0, 0.278] (z^2/(n+z^2)), finite at the ends
    assert _wilson(0.0, 10)[0] == 0.0 and abs(_wilson(0.0, 10)[1] - 3.8416 / 13.8416) < 1e-12
    lo, hi = _wilson(0.5, 1000)
    assert abs((hi - lo) / 2 - 1.96 * (0.25 / 1000) ** 0.5) < 1e-3
    results = [{"contexts": c, "choices": 5, "reports": 1, "training_effect": None, "replicates": 10,
                "power_vs_control": p, "power_training_effect": p / 2, "ci_halfwidth": 0.3 / c ** 0.5,
                "ci_halfwidth_mcse": 0.01} for c, p in ((8, 0.3), (12, 0.6))]
    fig = power_figure(results, target_power=0.8)
    a0, a1, a2 = fig.axes
    assert all(ax.get_ylabel() and ax.get_xlabel() == "decision contexts per study" for ax in fig.axes)
    assert [ln.get_ydata()[0] for ln in a1.get_lines() if ln.get_linestyle() == "--"] == [0.8]
    assert not [ln for ln in a0.get_lines() if ln.get_linestyle() == "--"]
    assert len(a0.containers) == len(a1.containers) == len(a2.containers) == 1  # error bars
    plt.close(fig)


@contextlib.contextmanager
def _port_held(port):
    """Hold ``port`` on every interface for the block (or leave it to whoever holds it already)."""
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
            sock.listen()
        except OSError:
            pass  # already taken, which is the situation to test
        yield


def test_dask_cluster_of_two_processes_gives_identical_results():
    from distributed import Client

    from selfinterp.study import local_cluster

    designs = design_grid([8, 12], [5], [1, 2])
    local = sweep(designs, DEFAULT_MODEL, **SMALL, progress=False)
    with _port_held(8787), local_cluster(2) as cluster, Client(cluster) as client:  # dask's default port taken
        remote = sweep(designs, DEFAULT_MODEL, **SMALL, client=client, progress=False)
    assert remote == local


def test_power_cli_on_local_worker_processes_matches_one_process(capsys):
    argv = ["power", "--contexts", "8,12", "--choices", "5", "--reports", "2", "--replicates", "20",
            "--json", "--no-progress", "--seed", "5"]
    assert cli(argv) == 0
    one = json.loads(capsys.readouterr().out)
    assert cli(argv + ["--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == one
