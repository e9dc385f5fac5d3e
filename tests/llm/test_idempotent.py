"""Creates are made once: a server that does an upload, a job or a batch and drops its reply gets no second one."""

from __future__ import annotations

import json

import pytest

from selfinterp.llm.batch import run_batch
from selfinterp.llm.client import LLMError
from selfinterp.llm.config import load_experiment
from selfinterp.llm.jobs import Backoff
from selfinterp.llm.pipeline import ExperimentRun

from .conftest import fake_for, write_experiment
from .test_resume import _bodies


class _Crash(Exception):
    pass


def _crash(_seconds):
    raise _Crash


def _server_objects(fake):
    return ({p: sum(v["purpose"] == p for v in fake.files.values()) for p in ("fine-tune", "batch")},
            len(fake.jobs), len(fake.batches))


@pytest.fixture
def small(tmp_path, shared, api_key):
    path = write_experiment(tmp_path, shared, n_instilled=4, n_native=0, n_train=10)
    exp = load_experiment(path)
    fake = fake_for(exp, job_polls=1, batch_polls=1)
    exp = load_experiment(path, base_url=fake.start())
    yield exp, fake
    fake.stop()


def test_lost_replies_of_uploads_jobs_and_batches_create_nothing_twice(small, tmp_path):
    exp, fake = small
    # every create is done by the server and its reply dropped, once each
    fake.drop = {"/v1/files": 3, "/v1/fine_tuning/jobs": 1, "/v1/batches": 1}
    run = ExperimentRun(exp, echo=lambda s: None, sleep=lambda s: None)
    train, val = run.instill_files()
    run.job("instill", exp.model, train, val, "instill", {})
    assert run.wait("instill").startswith("ft:base-model-1:fake-org:instill:")
    counts = run_batch(run.sync, run.cache, run.manifest, "s", _bodies(exp), workdir=tmp_path,
                       backoff=Backoff(0, 1, 0), sleep=lambda s: None, attempts=3)
    run.close()
    assert fake.drop == {"/v1/files": 0, "/v1/fine_tuning/jobs": 0, "/v1/batches": 0}  # every fault was met
    # one training file, one validation file, one batch input (its output file is "batch_output"); one job; one batch
    assert _server_objects(fake) == ({"fine-tune": 2, "batch": 1}, 1, 1)
    assert counts == {"asked": 12, "stored": 12, "errors": 0}
    man = json.loads((exp.out / "manifest.json").read_text())
    job = fake.jobs[man["stages"]["instill"]["job_id"]]
    assert job["training_file"] == man["stages"]["instill"]["training_file"]["id"]
    assert job["metadata"] == {"selfinterp_run": man["run_id"], "selfinterp_stage": "instill"}
    assert "job_pending" not in man["stages"]["instill"]


def test_a_run_killed_before_the_reply_finds_its_job_when_started_again(small):
    exp, fake = small
    fake.drop = {"/v1/fine_tuning/jobs": 1}
    run = ExperimentRun(exp, echo=lambda s: None, sleep=_crash)
    train, val = run.instill_files()
    with pytest.raises(_Crash):  # dies while waiting to check the server
        run.job("instill", exp.model, train, val, "instill", {})
    run.close()
    man = json.loads((exp.out / "manifest.json").read_text())
    assert "job_id" not in man["stages"]["instill"] and man["stages"]["instill"]["job_pending"]
    run = ExperimentRun(exp, echo=lambda s: None, sleep=lambda s: None)
    run.job("instill", exp.model, train, val, "instill", {})
    run.close()
    assert len(fake.jobs) == 1
    assert json.loads((exp.out / "manifest.json").read_text())["stages"]["instill"]["job_id"] in fake.jobs


def test_a_refused_create_is_not_retried_and_a_failed_job_is_retried_only_on_request(small, capsys):
    exp, fake = small
    fake.refuse_models = {"base-model-1"}
    run = ExperimentRun(exp, echo=lambda s: None, sleep=lambda s: None)
    train, val = run.instill_files()
    with pytest.raises(LLMError, match="fine-tuning job refused: HTTP 400"):
        run.job("instill", exp.model, train, val, "instill", {})
    assert sum(e["path"] == "/v1/fine_tuning/jobs" for e in fake.log) == 1
    fake.refuse_models, fake.fail_jobs = set(), True
    run.job("instill", exp.model, train, val, "instill", {})
    with pytest.raises(LLMError, match="--retry-failed"):
        run.wait("instill")
    run.job("instill", exp.model, train, val, "instill", {})  # without the flag: the same failed job
    assert len(fake.jobs) == 1
    run.close()
    fake.fail_jobs = False
    run = ExperimentRun(exp, echo=lambda s: None, sleep=lambda s: None, retry_failed=True)
    run.job("instill", exp.model, train, val, "instill", {})
    assert run.wait("instill").startswith("ft:")
    run.close()
    man = json.loads((exp.out / "manifest.json").read_text())["stages"]["instill"]
    assert len(fake.jobs) == 2 and man["failed_jobs"][0]["status"] == "failed"

