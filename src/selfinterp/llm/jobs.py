"""Fine-tuning jobs: upload, create, poll with backoff, stream events, resume from the manifest."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .client import LLMError, describe_error
from .manifest import Manifest, sha256_file

__all__ = ["upload_file", "start_finetune", "wait_finetune", "Backoff"]

_TERMINAL_BAD = {"failed", "cancelled"}


class Backoff:
    """Poll intervals: ``first``, growing by ``factor`` up to ``maximum`` seconds."""

    def __init__(self, first: float = 5.0, factor: float = 1.5, maximum: float = 120.0):
        self.next, self.factor, self.maximum = first, factor, maximum

    def wait(self, sleep=time.sleep) -> None:
        sleep(self.next)
        self.next = min(self.next * self.factor, self.maximum)


def upload_file(client, manifest: Manifest, record: dict, key: str, path: Path, purpose: str) -> str:
    """Upload ``path`` once: its id is kept in ``record`` with the file's hash and reused while it matches."""
    digest = sha256_file(path)
    prev = record.get(key)
    if prev and prev.get("sha256") == digest:
        return prev["id"]
    try:
        with open(path, "rb") as f:
            obj = client.files.create(file=(path.name, f), purpose=purpose)
    except Exception as exc:
        raise LLMError(f"upload of {path.name} refused: {describe_error(exc)}") from None
    record[key] = {"id": obj.id, "sha256": digest, "name": path.name}
    manifest.save()
    return obj.id


def _stream_events(client, job_id: str, record: dict, log_path: Path, echo) -> None:
    try:
        page = client.fine_tuning.jobs.list_events(job_id, limit=100)
    except Exception:  # events are informative only; a failure to list them does not stop the job
        return
    seen = set(record.setdefault("events_seen", []))
    new = [e for e in page.data if e.id not in seen]
    with open(log_path, "a", encoding="utf-8") as f:
        for e in sorted(new, key=lambda e: e.created_at):
            f.write(json.dumps({"job": job_id, "id": e.id, "created_at": e.created_at, "level": e.level,
                                "message": e.message}) + "\n")
            echo(f"[{job_id}] {e.message}")
            seen.add(e.id)
    record["events_seen"] = sorted(seen)


def start_finetune(client, manifest: Manifest, stage: str, *, model: str, train: Path, validation: Path | None,
                   suffix: str | None, seed: int | None, hyperparameters: dict | None, echo=print) -> str:
    """Create one supervised fine-tuning job unless the manifest already has it; return its id.

    The job id is written to the manifest the moment the server returns it; a
    restarted run finds it there and polls that job instead of starting another.
    A refused job raises :class:`LLMError` with the server's message.
    """
    rec = manifest.stage(stage)
    if rec.get("base_model") not in (None, model):
        raise LLMError(f"stage {stage}: the manifest's job was trained from {rec['base_model']!r}, not {model!r}")
    if "job_id" not in rec:
        train_id = upload_file(client, manifest, rec, "training_file", train, "fine-tune")
        val_id = upload_file(client, manifest, rec, "validation_file", validation, "fine-tune") if validation else None
        method = {"type": "supervised", "supervised": {"hyperparameters": dict(hyperparameters or {})}}
        kw = {"model": model, "training_file": train_id, "method": method}
        if val_id:
            kw["validation_file"] = val_id
        if suffix:
            kw["suffix"] = suffix
        if seed is not None:
            kw["seed"] = seed
        try:
            job = client.fine_tuning.jobs.create(**kw)
        except Exception as exc:
            raise LLMError(f"stage {stage}: fine-tuning job refused: {describe_error(exc)}") from None
        rec.update(job_id=job.id, base_model=model, requested=method)
        manifest.save()
        echo(f"[{stage}] fine-tuning job {job.id} created")
    return rec["job_id"]


def wait_finetune(client, manifest: Manifest, stage: str, *, events_log: Path, backoff: Backoff | None = None,
                  echo=print, sleep=time.sleep) -> str:
    """Poll the stage's job with backoff, streaming its events; return the fine-tuned model's name.

    Records the hyperparameters the job really used.  A failed or cancelled
    job raises :class:`LLMError` with the server's message.
    """
    rec = manifest.stage(stage)
    if rec.get("fine_tuned_model"):
        return rec["fine_tuned_model"]
    job_id = rec["job_id"]
    backoff = backoff or Backoff()
    while True:
        try:
            job = client.fine_tuning.jobs.retrieve(job_id)
        except Exception as exc:
            raise LLMError(f"stage {stage}: cannot read job {job_id}: {describe_error(exc)}") from None
        _stream_events(client, job_id, rec, events_log, echo)
        rec["status"] = job.status
        manifest.save()
        if job.status == "succeeded":
            break
        if job.status in _TERMINAL_BAD:
            err = getattr(job, "error", None)
            msg = getattr(err, "message", None) or str(err)
            raise LLMError(f"stage {stage}: fine-tuning job {job_id} {job.status}: {msg}")
        backoff.wait(sleep)
    data = job.model_dump(mode="json")
    method = data.get("method") or {}
    rec.update(fine_tuned_model=job.fine_tuned_model, trained_tokens=data.get("trained_tokens"),
               hyperparameters=(method.get("supervised") or {}).get("hyperparameters") or data.get("hyperparameters"),
               result_files=data.get("result_files"))
    manifest.save()
    return job.fine_tuned_model
