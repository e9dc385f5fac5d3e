"""`training = "external"`: a job trained by another command, on several processes (as accelerate launch does)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from .conftest import local_experiment, new_job, rule_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_external_job_trained_on_two_processes(tmp_path, shared, tiny_dir, torch1):
    """The run records the job, names the command that trains it, and never trains it itself.  torchrun (the
    launcher under `accelerate launch`) trains it data-parallel on two CPU processes (gloo): each step once,
    one adapter written by the main process, the tokens of both processes counted; the run then finds the
    adapter and asks it."""
    from selfinterp.design import context_rngs, draw_option_pairs
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.local import make_local_client
    from selfinterp.llm.local.train import encode_example, read_job
    from selfinterp.llm.pipeline import design, stream

    (tmp_path / "tiny").symlink_to(tiny_dir)
    exp = load_experiment(local_experiment(tmp_path, shared, "tiny", n_native=0, local=(
        'training = "external"\nbatch_size = 2\nmax_steps = 3\nsave_steps = 2\nlearning_rate = 1e-2')))
    contexts, _ = design(exp)
    pairs = [draw_option_pairs(c, 4, g) for c, g in zip(contexts, context_rngs(stream(2, "train"), len(contexts)))]
    path = rule_file(exp, contexts, "A" * len(contexts), pairs, tmp_path / "train.jsonl")
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    said = []
    client = make_local_client(exp, echo=said.append)
    b = client._b
    job, folder = new_job(b, exp, path, suffix="ext", seed=3)
    for _ in range(2):  # polled: waits, and says once what to run
        assert b.retrieve_job(job.id).status == "queued"
    assert [s for s in said if "accelerate launch -m selfinterp.llm.local.train" in s and str(folder) in s] \
        == [said[-1]]

    # gloo on loopback: it never looks the host's name up (a container's may not resolve)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "selfinterp.llm.local.train", str(folder)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]

    done = read_job(folder)
    assert done["status"] == "succeeded" and done["metrics"]["steps"] == 3
    events = [json.loads(x)["message"] for x in (folder / "events.jsonl").read_text().splitlines()]
    assert [e for e in events if e.startswith("training starts")] == [
        f"training starts: {len(recs)} examples, LoRA rank 8, 2 processes"]
    assert [int(e.split()[1].split("/")[0]) for e in events if e.startswith("step ")] == [1, 2, 3]  # each once
    assert sorted(p.name for p in (b.root / "adapters").iterdir()) == [done["adapter_sha256"][:16]]
    n_tokens = sum(len(encode_example(b.engine.tok, r["messages"], where="")[0]) for r in recs)
    assert abs(done["trained_tokens"] - n_tokens * 3 * 2 * 2 / len(recs)) <= 1  # 3 steps x 2 per process x 2

    got = b.retrieve_job(job.id)
    assert got.status == "succeeded" and got.fine_tuned_model == done["fine_tuned_model"]
    prompt = [exp.template.decision_messages(contexts[0], *[v[0] for v in draw_option_pairs(
        contexts[0], 1, context_rngs(stream(9, "x"), 1)[0])])]
    body = {"messages": prompt[0], "max_tokens": 1, "logprobs": True, "top_logprobs": 2, "temperature": 0}
    tuned = b.complete_many([body | {"model": got.fine_tuned_model}])[0]
    base = b.complete_many([body | {"model": exp.model}])[0]
    lp = [{t["token"]: t["logprob"] for t in x["choices"][0]["logprobs"]["content"][0]["top_logprobs"]}
          for x in (tuned, base)]
    assert lp[0]["A"] - lp[0]["B"] > lp[1]["A"] - lp[1]["B"]  # trained towards "A"
