"""Killed runs resume without asking anything twice; the Batch API path; faults and bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from selfinterp.cli import main as cli_main
from selfinterp.errors import InputError
from selfinterp.llm.cache import CacheVersionError, RequestCache
from selfinterp.llm.client import LLMError, Requester, make_client
from selfinterp.llm.config import load_experiment
from selfinterp.llm.elicit import ChoiceSpec, choice_bodies
from selfinterp.llm.pipeline import ExperimentRun, design
from selfinterp.llm.prompts import PAPER

from .conftest import fake_for, write_experiment

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _chat_keys(fake, delivered=True):
    return [e["key"] for e in fake.log if e["path"] in ("chat", "batch") and e["delivered"] == delivered]


def _no_key_in(root: Path, key: str):
    for p in root.rglob("*"):
        if p.is_file():
            assert key.encode() not in p.read_bytes(), p


def test_sigkill_in_choice_stage_then_resume(tmp_path, shared, api_key):
    path = write_experiment(tmp_path, shared, method="sample", n_native=2, n_reports=2, concurrency=4)
    exp = load_experiment(path)
    fake = fake_for(exp)
    url = fake.start()
    env = dict(os.environ, PYTHONPATH=SRC)
    cmd = [sys.executable, "-m", "selfinterp", "run", str(path), "--base-url", url]
    try:
        with open(tmp_path / "first.log", "wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            # the choice stage asks 10 contexts x 40 pairs x 2 orders = 800 questions: kill after 300
            fake.kill = (300, proc.pid)
            assert proc.wait(timeout=600) == -signal.SIGKILL
        n_first = len(_chat_keys(fake))
        assert n_first == 300
        with open(tmp_path / "second.log", "wb") as log:
            assert subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600).returncode == 0, \
                (tmp_path / "second.log").read_text()[-2000:]
    finally:
        fake.stop()
    # the server's log: no answered question was asked again.  The requests in flight at the
    # kill (the one being answered, and at most concurrency - 1 others waiting) were never
    # answered; after the restart each of them is answered exactly once
    answered = _chat_keys(fake)
    assert len(answered) == len(set(answered))
    unanswered = [e for e in fake.log if e["path"] == "chat" and not e["delivered"]]
    assert 1 <= len(unanswered) <= 4 and unanswered[0]["fault"] == "killed client"
    assert all(answered.count(e["key"]) == 1 for e in unanswered)
    # one job per stage, none started twice
    assert sum(e["path"] == "/v1/fine_tuning/jobs" for e in fake.log) == 4
    # complete transcripts: every question of the choice stage has its reply
    recs = [json.loads(s) for s in (exp.out / "transcripts" / "choices.jsonl").read_text().splitlines()]
    assert len(recs) == 800 and all(r["reply"] in ("A", "B") for r in recs)
    assert len({r["request_id"] for r in recs}) == 800
    man = json.loads((exp.out / "manifest.json").read_text())
    assert len(man["runs"]) == 1  # the second start is recorded beside the first
    _no_key_in(exp.out, api_key)
    assert api_key not in (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()


def test_batch_path_partial_and_out_of_order(tmp_path, shared, api_key):
    path = write_experiment(tmp_path, shared, n_instilled=6, n_native=2, n_train=10, n_pairs=20, n_pairs_native=10,
                            n_reports=2, examples=4, batch="true")
    exp = load_experiment(path)
    # a fifth of each batch fails (in the error file); results come back shuffled
    fake = fake_for(exp, batch_error_rate=0.2)
    exp = load_experiment(path, base_url=fake.start())
    try:
        run = ExperimentRun(exp, echo=lambda s: None)
        summary = run.run()
        run.close()
    finally:
        fake.stop()
    keys = _chat_keys(fake)
    assert len(keys) == len(set(keys))  # the batch's failures, and only they, were asked again directly
    via_batch = sum(e["path"] == "batch" for e in fake.log)
    direct = sum(e["path"] == "chat" for e in fake.log)
    assert via_batch > 0 and 0 < direct < via_batch
    man = json.loads((exp.out / "manifest.json").read_text())
    done = man["stages"]["choices"]["batches_done"]
    assert done[0]["errors"] > 0 and done[0]["stored"] + done[0]["errors"] == 6 * 20 * 2
    errors = (exp.out / "logs" / "choices.batch_errors.jsonl").read_text().splitlines()
    assert len(errors) == done[0]["errors"]
    recs = (exp.out / "transcripts" / "choices.jsonl").read_text().splitlines()
    assert len(recs) == 240 and all(json.loads(r)["p_a"] is not None for r in recs)
    # batch usage is priced at the batch discount (here: tokens counted, the fake model unpriced)
    assert {r["source"] for r in summary["cost"]["inference"]} == {"batch", "sync"}


def _bodies(exp, n=12):
    contexts, _ = design(exp)
    rng = np.random.default_rng(0)
    ctx = contexts[0]
    a = rng.uniform(ctx.lo, ctx.hi, (n, 5)).round()
    b = rng.uniform(ctx.lo, ctx.hi, (n, 5)).round()
    return choice_bodies(PAPER, "base-model-1", ctx, a, b, ChoiceSpec(method="logprobs", both_orders=False))


async def _ask(url, cache, bodies, timeout=1.0):
    async with make_client(url, max_retries=3, timeout=timeout, asynchronous=True) as client:
        return await Requester(client, cache, concurrency=3).chat_many(bodies)


def test_faults_are_retried_and_nothing_asked_twice(tmp_path, shared, api_key):
    exp = load_experiment(write_experiment(tmp_path, shared))
    fake = fake_for(exp)
    url = fake.start()
    bodies = _bodies(exp)
    cache = RequestCache(tmp_path / "c.sqlite")
    try:
        fake.faults = [{"status": 429, "retry_after": 0.2, "message": "Rate limit reached"}, {"status": 500},
                       {"close": True}, {"sleep": 2.0}, {"status": 503}]
        out = asyncio.run(_ask(url, cache, bodies))
    finally:
        fake.stop()
        cache.close()
    assert len(out) == 12 and all(r["choices"][0]["logprobs"] for r in out)
    assert not fake.faults  # every fault was met and retried through
    answered = _chat_keys(fake)
    assert len(answered) == 12 and len(set(answered)) == 12


def test_refused_request_stops_with_the_servers_message_and_keeps_the_rest(tmp_path, shared, api_key):
    exp = load_experiment(write_experiment(tmp_path, shared))
    fake = fake_for(exp)
    url = fake.start()
    bodies = _bodies(exp)
    bodies[5] = bodies[5] | {"model": "gpt-4o-retired"}
    cache = RequestCache(tmp_path / "c.sqlite")
    try:
        with pytest.raises(LLMError, match="HTTP 404: The model `gpt-4o-retired` does not exist"):
            asyncio.run(_ask(url, cache, bodies))
        n_stored = len(cache)
        assert n_stored >= 1
        # a malformed (cut-off) reply is not stored and stops the stage with a clear message
        bodies[5] = bodies[5] | {"model": "base-model-1"}
        fake.malformed = 1
        with pytest.raises(LLMError):
            asyncio.run(_ask(url, cache, bodies))
        out = asyncio.run(_ask(url, cache, bodies))
    finally:
        fake.stop()
    assert len(out) == 12 and len(cache) == 12
    answered = [e["key"] for e in fake.log if e["path"] == "chat" and e.get("status") == 200]
    assert len(answered) == len(set(answered)) == 12  # every good answer was received once


def test_refused_and_failed_jobs(tmp_path, shared, api_key, capsys):
    path = write_experiment(tmp_path, shared)
    exp = load_experiment(path)
    fake = fake_for(exp, refuse_models={"base-model-1"})
    url = fake.start()
    try:
        assert cli_main(["run", str(path), "--base-url", url]) == 1
    finally:
        fake.stop()
    err = capsys.readouterr().err
    assert "fine-tuning job refused: HTTP 400: Model base-model-1 is not available for fine-tuning (deprecated)" in err
    man = json.loads((exp.out / "manifest.json").read_text())
    assert "job_id" not in man["stages"]["instill"]
    assert man["stages"]["instill"]["training_file"]["id"].startswith("file-")

    # a file id the server no longer knows is refused with the server's message too
    fake = fake_for(exp, fail_jobs=True)
    url = fake.start()
    try:
        assert cli_main(["run", str(path), "--base-url", url]) == 1
        assert "HTTP 400: invalid training_file: file-1" in capsys.readouterr().err
        (tmp_path / "b").mkdir()
        path = write_experiment(tmp_path / "b", shared)
        assert cli_main(["run", str(path), "--base-url", url]) == 1
    finally:
        fake.stop()
    err = capsys.readouterr().err
    assert "failed: Training file has too few examples" in err


def test_manifest_of_another_experiment_and_cache_of_another_version(tmp_path, shared, api_key, capsys):
    path = write_experiment(tmp_path, shared)
    exp = load_experiment(path)
    fake = fake_for(exp, job_polls=10**9)  # the job never finishes: only set-up matters here
    url = fake.start()
    try:
        run = ExperimentRun(load_experiment(path, base_url=url), echo=lambda s: None)
        run.instill_files()
        run.close()
        other = write_experiment(tmp_path, shared, seed=8)
        assert cli_main(["run", str(other), "--base-url", url]) == 2
        assert "belongs to another experiment" in capsys.readouterr().err
    finally:
        fake.stop()
    db = sqlite3.connect(tmp_path / "out" / "requests.sqlite")
    db.execute("UPDATE meta SET value='99' WHERE key='format'")
    db.commit()
    db.close()
    with pytest.raises(CacheVersionError, match="format 99, this selfinterp reads format 1"):
        RequestCache(tmp_path / "out" / "requests.sqlite")
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="not a selfinterp request cache"):
        RequestCache(tmp_path / "junk.sqlite")


class _Crash(Exception):
    pass


def _crash(_seconds):
    raise _Crash  # the process "dies" while waiting between two polls


def test_restart_picks_up_the_running_job_and_batch(tmp_path, shared, api_key):
    from selfinterp.llm.batch import run_batch
    from selfinterp.llm.jobs import Backoff

    path = write_experiment(tmp_path, shared, n_instilled=6, n_native=0, n_train=10)
    exp = load_experiment(path)
    fake = fake_for(exp, job_polls=3, batch_polls=2)
    exp = load_experiment(path, base_url=fake.start())
    try:
        run = ExperimentRun(exp, echo=lambda s: None, sleep=_crash)
        train, val = run.instill_files()
        run.job("instill", exp.model, train, val, "instill", {})
        with pytest.raises(_Crash):
            run.wait("instill")
        run.close()
        # started again: the job is read from the manifest, not created again, and its model used
        run = ExperimentRun(exp, echo=lambda s: None, sleep=lambda s: None)
        run.job("instill", exp.model, train, val, "instill", {})
        model = run.wait("instill")
        assert model.startswith("ft:base-model-1:fake-org:instill:")
        assert sum(e["path"] == "/v1/fine_tuning/jobs" for e in fake.log) == 1
        assert sum(e["path"] == "/v1/files" for e in fake.log) == 2  # training and validation, once each
        bodies = _bodies(exp)
        with pytest.raises(_Crash):
            run_batch(run.sync, run.cache, run.manifest, "s", bodies, workdir=tmp_path, backoff=Backoff(0, 1, 0),
                      sleep=_crash)
        counts = run_batch(run.sync, run.cache, run.manifest, "s", bodies, workdir=tmp_path,
                           backoff=Backoff(0, 1, 0), sleep=lambda s: None)
        run.close()
    finally:
        fake.stop()
    assert sum(e["path"] == "/v1/batches" for e in fake.log) == 1
    assert counts == {"asked": 12, "stored": 12, "errors": 0}


@pytest.mark.parametrize("batch", [False, True])
def test_a_stage_computes_each_request_key_once_and_reads_the_cache_once(tmp_path, shared, api_key, monkeypatch,
                                                                          batch):
    """elicit -> (batch) -> Requester.chat_many: one request_key and one cache read per body (the batch
    path reads back only what the batch stored); a second pass is served from the cache alone."""
    from selfinterp.llm import batch as batch_mod
    from selfinterp.llm import cache as cache_mod
    from selfinterp.llm import client as client_mod
    from selfinterp.llm import pipeline as pipeline_mod

    exp = load_experiment(write_experiment(tmp_path, shared, batch=str(batch).lower()))
    fake = fake_for(exp, batch_polls=1)
    exp = load_experiment(exp.source, base_url=fake.start())
    calls = {"key": 0, "read": 0}
    real_key, real_many = cache_mod.request_key, RequestCache.get_many

    def counting_key(*a):
        calls["key"] += 1
        return real_key(*a)

    def counting_many(self, keys):
        keys = list(keys)
        calls["read"] += len(keys)
        return real_many(self, keys)

    for mod in (pipeline_mod, client_mod, batch_mod):
        monkeypatch.setattr(mod, "request_key", counting_key)
    monkeypatch.setattr(RequestCache, "get_many", counting_many)
    monkeypatch.setattr(RequestCache, "get", lambda *a: pytest.fail("a cache read one key at a time"))
    monkeypatch.setattr(RequestCache, "has", lambda *a: pytest.fail("a cache read one key at a time"))
    bodies = _bodies(exp)
    try:
        run = ExperimentRun(exp, echo=lambda s: None, sleep=lambda s: None)
        out = run.elicit("choices", bodies)
        assert len(out) == 12 and calls["key"] == 12
        assert calls["read"] == (24 if batch else 12)  # the batch's answers are read back once
        calls.update(key=0, read=0)
        n_asked = len(_chat_keys(fake))
        assert run.elicit("choices", bodies) == out and calls == {"key": 12, "read": 12}
        assert len(_chat_keys(fake)) == n_asked
    finally:
        fake.stop()
