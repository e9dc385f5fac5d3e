"""A whole local run on a tiny random Llama (SmolLM2's tokenizer), then every checkpoint of it evaluated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfinterp.cli import main as cli_main

from .conftest import local_experiment


def _reports_in_json(path):
    """A stand-in for the random model's report text: a random Llama writes no valid JSON, and a stage
    whose replies are all invalid stops the run.  The text is generated as usual (so decoding and its
    accounting run), then replaced by a report over the prompt's attributes, its values drawn from a
    hash of the prompt; the real model's reports are checked in test_local_smollm2.py."""
    import hashlib

    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.local.client import _Backend
    from selfinterp.llm.pipeline import design

    contexts, _ = design(load_experiment(path))
    generated = _Backend._generated_replies

    def replies(self, model, bodies, prompts, max_tokens):
        out = generated(self, model, bodies, prompts, max_tokens)
        for b, r in zip(bodies, out):
            user = next(m["content"] for m in b["messages"] if m["role"] == "user")
            ctx = next(c for c in contexts if c.question in user)
            seed = int.from_bytes(hashlib.sha256(user.encode()).digest()[:4], "little")
            w = np.random.default_rng(seed).uniform(-100, 100, len(ctx.attributes)).round()
            r["choices"][0]["message"]["content"] = json.dumps({a.name: v for a, v in zip(ctx.attributes, w)})
        return out

    return replies


@pytest.fixture(scope="module")
def tiny_run(tiny_dir, shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny-run")
    (tmp / "tiny").symlink_to(tiny_dir)
    path = local_experiment(tmp, shared_data, "tiny", local="batch_size = 4\nmax_steps = 4\nsave_steps = 2\n"
                                                           "learning_rate = 1e-2", report_max_tokens=8)
    from selfinterp.llm.local.client import _Backend

    with pytest.MonkeyPatch.context() as mp:  # for the run and for every checkpoint's reports
        mp.setattr(_Backend, "_generated_replies", _reports_in_json(path))
        assert cli_main(["run", str(path)]) == 0
        yield path, tmp / "out"


def test_tiny_run_writes_every_stage(tiny_run, capsys):
    path, out = tiny_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert {s: r["status"] for s, r in manifest["stages"].items()} == dict.fromkeys(
        ("instill", "itrain_first", "itrain_last", "itrain_all"), "succeeded")
    summary = json.loads((out / "summary.json").read_text())
    thr = summary["local_throughput"]
    assert thr["prefill"] > 0 and thr["decode"] > 0 and thr["train"] > 0 and thr["device"] == "cpu"


def test_checkpoints_along_step(tiny_run, tmp_path, capsys):
    from safetensors.torch import load_file

    from selfinterp.labelled import open_dataset
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.finetune_data import deterministic_choice
    from selfinterp.llm.pipeline import ExperimentRun

    path, out = tiny_run
    capsys.readouterr()
    png = tmp_path / "instill.png"
    assert cli_main(["checkpoints", str(path), "--n-boot", "50", "--plot", str(png)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in printed["steps"]] == [2, 4]
    assert png.stat().st_size > 5000
    ds = open_dataset(out / "checkpoints_instill.nc")
    assert list(ds["step"].values) == [2, 4] and ds["r_learned_target_ci"].dims == ("step", "bound")
    job = json.loads((out / "local" / "jobs" / json.loads((out / "manifest.json").read_text())["stages"]["instill"]
                      ["job_id"] / "job.json").read_text())
    # the checkpoint of the last step holds the final adapter's weights
    ck = load_file(str(out / "local" / "adapters" / ds["model"].values[-1].rsplit(":", 1)[1] /
                       "adapter_model.safetensors"))
    final = load_file(str(out / "local" / job["adapter"] / "adapter_model.safetensors"))
    assert ck.keys() == final.keys() and all(np.array_equal(ck[k].numpy(), final[k].numpy()) for k in ck)
    # decision accuracy as recomputed from the step's transcript and the targets
    run = ExperimentRun(load_experiment(path), echo=lambda *_: None)
    try:
        for step in (2, 4):
            recs = [json.loads(x) for x in (out / "transcripts" / f"instill_step{step}_choices.jsonl").read_text()
                    .splitlines()]
            right = []
            for i in run.instilled:
                ctx, w = run.contexts[i], run.targets[i]
                rs = [r for r in recs if r["metadata"]["context_index"] == i]
                for t in range(4):
                    ab = next(r for r in rs if r["metadata"]["trial"] == t and r["metadata"]["order"] == "AB")
                    ba = next(r for r in rs if r["metadata"]["trial"] == t and r["metadata"]["order"] == "BA")
                    y = (ab["p_a"] + 1 - ba["p_a"]) / 2
                    want = deterministic_choice(ctx, w, np.array([ab["A"]]), np.array([ab["B"]]))[0]
                    right.append((y > 0.5) == want)
            assert float(ds["decision_accuracy"].sel(step=step)) == pytest.approx(np.mean(right))
    finally:
        run.close()
    # the same command again asks nothing new
    from selfinterp.llm.cache import RequestCache

    n = len(RequestCache(out / "requests.sqlite"))
    assert cli_main(["checkpoints", str(path), "--n-boot", "50"]) == 0
    assert len(RequestCache(out / "requests.sqlite")) == n


def test_checkpoints_bad_input(tiny_run, tiny_dir, tmp_path, shared, capsys):
    path, out = tiny_run
    assert cli_main(["checkpoints", str(path), "--n-boot", "0"]) == 2
    other = local_experiment(tmp_path, shared, str(tiny_dir))  # a run not started
    assert cli_main(["checkpoints", str(other)]) == 2
    assert "has not finished training" in capsys.readouterr().err
