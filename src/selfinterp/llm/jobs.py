"""Fine-tuning jobs: upload, create, poll with backoff, stream events, resume from the manifest.

Creating is never retried blindly.  A create (an upload, a job, a batch) is
sent with the client's own retries off; when its reply is lost (a dropped
connection, a timeout, a 5xx) the server may have done it anyway, so before
creating again the run lists what the server has and takes the match: an
upload by its name (which carries the file's hash) and size, a job by its
training file, suffix and the run-and-stage tag in its ``metadata``, a batch by
its input file and tag.  The manifest records a create as pending before it is
sent, so a run killed between the server's work and its reply reconciles the
same way when it is started again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .client import LLMError, describe_error
from .manifest import Manifest, sha256_file

__all__ = ["upload_file", "start_finetune", "wait_finetune", "Backoff", "create_once", "run_tag", "ask", "expect",
           "listing"]

_TERMINAL_BAD = {"failed", "cancelled"}


class Backoff:
    """Poll intervals: ``first``, growing by ``factor`` up to ``maximum`` seconds."""

    def __init__(self, first: float = 5.0, factor: float = 1.5, maximum: float = 120.0):
        self.next, self.factor, self.maximum = first, factor, maximum

    def wait(self, sleep=time.sleep) -> None:
        sleep(self.next)
        self.next = min(self.next * self.factor, self.maximum)


def _ambiguous(exc: BaseException) -> bool:
    """True where the server may have done the request although no reply came (lost reply, timeout, 5xx)."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500 or exc.status_code == 408)


def _not_done(exc: BaseException) -> bool:
    """True where the server says it did not do the request and asks for a later try (429)."""
    import openai

    return isinstance(exc, openai.APIStatusError) and exc.status_code == 429


_STR, _OPT_STR, _INT = (str,), (str, type(None)), (int,)


def expect(obj, attrs, what: str):
    """``obj`` if it is a parsed reply whose ``attrs`` are present; else :class:`LLMError` (a 200 whose body
    is not the JSON asked for: an HTML page from a proxy, plain text, a list, an object without the fields).

    ``attrs``: names (each must be a non-empty string) or a dict of name to the types it may have.
    The client fills a missing field with None, so a field is checked by its type, not by its presence.
    """
    fields = attrs if isinstance(attrs, dict) else {a: _STR for a in attrs}
    if obj is None or isinstance(obj, (str, bytes, list, dict)):
        raise LLMError(f"{what}: the server's reply is not the JSON expected ({str(obj)[:120]!r})")
    for name, types in fields.items():
        v = getattr(obj, name, None)
        if not isinstance(v, types) or isinstance(v, bool) or (types == _STR and not v):
            raise LLMError(f"{what}: the server's reply is not the JSON expected: field {name!r} is {v!r} "
                           f"({str(obj)[:120]!r})")
    return obj


def ask(call, what: str, fields):
    """``call()`` (one request to the server), its reply checked by :func:`expect`; any failure is an
    :class:`LLMError` naming ``what`` (the stage and the request)."""
    try:
        obj = call()
    except LLMError:
        raise
    except Exception as exc:
        raise LLMError(f"{what}: {_failure(exc)}") from None
    return expect(obj, fields, what)


def _failure(exc: BaseException) -> str:
    import openai

    if isinstance(exc, (openai.APIError, LLMError)):
        return describe_error(exc)
    # the client could not parse the body: not JSON, or not the shape of a page
    return f"the server's reply is not the JSON expected ({type(exc).__name__}: {str(exc)[:120]})"


def listing(first, what: str, fields, *, max_pages: int = 50) -> list:
    """Every item of a listing (``first()`` returns its first page), each checked by :func:`expect`.

    Pages are followed while the server says ``has_more``; a page that repeats an item, or more than
    ``max_pages`` pages, is an error rather than an endless loop.
    """
    items, seen = [], set()
    page = ask(first, what, {"data": (list,)})
    for _ in range(max_pages):
        for item in page.data:
            expect(item, fields, what)
            if item.id in seen:
                raise LLMError(f"{what}: the server's listing repeats {item.id!r}")
            seen.add(item.id)
            items.append(item)
        if getattr(page, "has_more", None) is not True or not page.data:
            return items
        page = ask(page.get_next_page, what, {"data": (list,)})
    raise LLMError(f"{what}: the server's listing goes on past {max_pages} pages")


def create_once(create, find, *, what: str, attempts: int, pending: bool = False, backoff: Backoff | None = None,
                sleep=time.sleep):
    """The object ``create()`` makes, made at most once on the server.

    ``create`` is called with the client's retries off; after a failure that
    leaves it unknown whether the server created the object, ``find()`` (a
    listing of what the server has) is asked first and its match returned.
    ``pending``: an earlier run sent this create and did not see the reply, so
    ``find()`` is asked before anything is sent.  At most ``attempts`` creates
    are sent, ``backoff`` apart; a refusal (4xx other than 429) raises :class:`LLMError` at once.
    """
    def found():
        try:
            return find()
        except Exception as exc:
            raise LLMError(f"{what}: the server's reply was lost and its list of what exists could not be read "
                           f"({describe_error(exc)}); nothing is created again until it can be checked: "
                           "run the same command again later") from None

    if pending and (obj := found()) is not None:
        return obj
    last, backoff = None, backoff or Backoff(1.0, 2.0, 60.0)
    for attempt in range(max(1, attempts)):
        if attempt:
            backoff.wait(sleep)
            if _ambiguous(last) and (obj := found()) is not None:
                return obj
        try:
            return expect(create(), ("id",), what)
        except LLMError:
            raise
        except Exception as exc:
            if not (_ambiguous(exc) or _not_done(exc)):
                raise LLMError(f"{what} refused: {describe_error(exc)}") from None
            last = exc
    if _ambiguous(last) and (obj := found()) is not None:
        return obj
    raise LLMError(f"{what}: {describe_error(last)} ({attempts} attempts; the server was checked and has not "
                   "created it)")


def run_tag(manifest: Manifest, stage: str) -> dict:
    """The ``metadata`` that marks a job or batch as this run's, for this stage."""
    return {"selfinterp_run": manifest.run_id, "selfinterp_stage": stage}


def upload_name(path: Path, digest: str) -> str:
    """The name a file is uploaded under: its own with the first 16 hex digits of its SHA-256."""
    return f"{path.stem}.{digest[:16]}{path.suffix}"


def upload_file(client, manifest: Manifest, record: dict, key: str, path: Path, purpose: str, *,
                attempts: int = 4, backoff: Backoff | None = None, sleep=time.sleep) -> str:
    """Upload ``path`` once: its id is kept in ``record`` with the file's hash and reused while it matches.

    The upload's name carries the file's hash, so after a lost reply the
    server's file list is matched on name, size and purpose (see :func:`create_once`).
    """
    digest = sha256_file(path)
    prev = record.get(key)
    if prev and prev.get("sha256") == digest and prev.get("id"):
        return prev["id"]
    name, size = upload_name(path, digest), path.stat().st_size
    pending = bool(prev and prev.get("pending") and prev.get("sha256") == digest)
    record[key] = {"pending": True, "sha256": digest, "name": path.name, "uploaded_as": name}
    manifest.save()
    nc = client.with_options(max_retries=0)

    def create():
        with open(path, "rb") as f:
            return nc.files.create(file=(name, f), purpose=purpose)

    def find():
        for obj in listing(lambda: nc.files.list(purpose=purpose), f"upload of {path.name}: GET /files",
                           {"id": _STR, "filename": _OPT_STR, "bytes": _INT}):
            if obj.filename == name and obj.bytes == size and getattr(obj, "purpose", purpose) == purpose:
                return obj
        return None

    obj = create_once(create, find, what=f"upload of {path.name}", attempts=attempts, pending=pending,
                      backoff=backoff, sleep=sleep)
    record[key] = {"id": obj.id, "sha256": digest, "name": path.name, "uploaded_as": name}
    manifest.save()
    return obj.id


def _stream_events(client, job_id: str, record: dict, log_path: Path, echo) -> None:
    try:
        events = listing(lambda: client.fine_tuning.jobs.list_events(job_id, limit=100), "events",
                         {"id": _STR, "created_at": (int, float), "message": _OPT_STR}, max_pages=1)
    except LLMError:  # events are informative only; a failure to list them does not stop the job
        return
    seen = set(record.setdefault("events_seen", []))
    new = [e for e in events if e.id not in seen]
    with open(log_path, "a", encoding="utf-8") as f:
        for e in sorted(new, key=lambda e: e.created_at):
            f.write(json.dumps({"job": job_id, "id": e.id, "created_at": e.created_at, "level": e.level,
                                "message": e.message}) + "\n")
            echo(f"[{job_id}] {e.message}")
            seen.add(e.id)
    record["events_seen"] = sorted(seen)


def _matches_job(job, *, model: str, train_id: str, suffix: str | None, tag: dict) -> bool:
    """A listed job is this stage's: same training file and base model; suffix and tag where the server keeps them."""
    meta = getattr(job, "metadata", None) or {}
    job_suffix = getattr(job, "suffix", None)
    return (job.training_file == train_id and job.model == model
            and (not meta or all(meta.get(k) == v for k, v in tag.items()))
            and (job_suffix is None or job_suffix == suffix))


def start_finetune(client, manifest: Manifest, stage: str, *, model: str, train: Path, validation: Path | None,
                   suffix: str | None, seed: int | None, hyperparameters: dict | None, echo=print,
                   attempts: int = 4, backoff: Backoff | None = None, sleep=time.sleep,
                   retry_failed: bool = False) -> str:
    """Create one supervised fine-tuning job unless the manifest already has it; return its id.

    The job id is written to the manifest the moment the server returns it; a
    restarted run finds it there and polls that job instead of starting another.
    A lost reply is reconciled with the server's job list (see :func:`create_once`).
    A refused job raises :class:`LLMError` with the server's message.
    ``retry_failed``: a job recorded as failed or cancelled is kept under
    ``failed_jobs`` and a new one created.
    """
    rec = manifest.stage(stage)
    if rec.get("base_model") not in (None, model):
        raise LLMError(f"stage {stage}: the manifest's job was trained from {rec['base_model']!r}, not {model!r}")
    if retry_failed and "job_id" in rec and rec.get("status") in _TERMINAL_BAD:
        old = {k: rec.pop(k) for k in ("job_id", "status", "job_pending") if k in rec}
        rec.setdefault("failed_jobs", []).append(old)
        rec.pop("events_seen", None)
        manifest.save()
        echo(f"[{stage}] job {old['job_id']} {old['status']}: starting a new one (--retry-failed)")
    if "job_id" not in rec:
        again = {"attempts": attempts, "backoff": backoff, "sleep": sleep}
        train_id = upload_file(client, manifest, rec, "training_file", train, "fine-tune", **again)
        val_id = upload_file(client, manifest, rec, "validation_file", validation, "fine-tune", **again) \
            if validation else None
        method = {"type": "supervised", "supervised": {"hyperparameters": dict(hyperparameters or {})}}
        tag = run_tag(manifest, stage)
        kw = {"model": model, "training_file": train_id, "method": method, "metadata": tag}
        if val_id:
            kw["validation_file"] = val_id
        if suffix:
            kw["suffix"] = suffix
        if seed is not None:
            kw["seed"] = seed
        pending = rec.get("job_pending") == {"training_file": train_id, "suffix": suffix, "tag": tag}
        rec["job_pending"] = {"training_file": train_id, "suffix": suffix, "tag": tag}
        manifest.save()
        nc = client.with_options(max_retries=0)
        failed_ids = {j.get("job_id") for j in rec.get("failed_jobs", [])}

        def find():
            for job in listing(lambda: nc.fine_tuning.jobs.list(limit=100),
                               f"stage {stage}: fine-tuning job: GET /fine_tuning/jobs",
                               {"id": _STR, "training_file": _OPT_STR, "model": _OPT_STR}):
                if job.id not in failed_ids and _matches_job(job, model=model, train_id=train_id, suffix=suffix,
                                                             tag=tag):
                    return job
            return None

        job = create_once(lambda: nc.fine_tuning.jobs.create(**kw), find, what=f"stage {stage}: fine-tuning job",
                          pending=pending, **again)
        rec.pop("job_pending", None)
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
        job = ask(lambda: client.fine_tuning.jobs.retrieve(job_id),
                  f"stage {stage}: poll of job {job_id} (GET /fine_tuning/jobs/{job_id})",
                  {"status": _STR, "fine_tuned_model": _OPT_STR})
        _stream_events(client, job_id, rec, events_log, echo)
        rec["status"] = job.status
        manifest.save()
        if job.status == "succeeded":
            expect(job, ("fine_tuned_model",), f"stage {stage}: job {job_id} succeeded, but its reply")
            break
        if job.status in _TERMINAL_BAD:
            err = getattr(job, "error", None)
            msg = getattr(err, "message", None) or str(err)
            raise LLMError(f"stage {stage}: fine-tuning job {job_id} {job.status}: {msg}. Fix the cause, then run "
                           "again with --retry-failed to start a new job (the failed one stays in the manifest)")
        backoff.wait(sleep)
    data = job.model_dump(mode="json")
    method = data.get("method") or {}
    rec.update(fine_tuned_model=job.fine_tuned_model, trained_tokens=data.get("trained_tokens"),
               hyperparameters=(method.get("supervised") or {}).get("hyperparameters") or data.get("hyperparameters"),
               result_files=data.get("result_files"))
    manifest.save()
    return job.fine_tuned_model
