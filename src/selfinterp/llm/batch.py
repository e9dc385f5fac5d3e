"""The Batch API path: requests as JSONL with ``custom_id``, results read back into the cache.

The custom_id of each line is the request's cache key, so results are matched
whatever order they come back in; a partial result (expired batch, lines in
the error file) stores what succeeded and leaves the rest for another round.
The batch id is recorded in the manifest at once: a restarted run polls the
same batch instead of paying for a second one.  The input file and the batch
are created at most once each, with a lost reply reconciled against the
server's lists (:func:`selfinterp.llm.jobs.create_once`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from .cache import RequestCache, request_key
from .client import CHAT, LLMError, describe_error
from .jobs import _OPT_STR, _STR, Backoff, ask, create_once, listing, run_tag, upload_file
from .manifest import Manifest

__all__ = ["run_batch"]

_DONE = {"completed", "failed", "expired", "cancelled"}


def _read_lines(client, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    try:
        text = client.files.content(file_id).text
    except Exception as exc:
        raise LLMError(f"batch result file {file_id}: cannot be read: {describe_error(exc)}") from None
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                raise LLMError(f"batch result file {file_id}, line {i}: not JSON") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("response") or {}, dict):
                raise LLMError(f"batch result file {file_id}, line {i}: not a result object ({line[:80]!r})")
            out.append(obj)
    return out


def run_batch(client, cache: RequestCache, manifest: Manifest, stage: str, bodies: Sequence[dict], *,
              workdir: Path, backoff: Backoff | None = None, echo=print, sleep=None, attempts: int = 4,
              keys: Sequence[str] | None = None, cached: Sequence[bool] | None = None) -> dict:
    """Ask for every uncached body through one batch; store what comes back.

    ``keys`` (the bodies' request keys) and ``cached`` (whether each is stored) where the caller
    has them already: they are then neither computed nor looked up again.

    Returns counts ``{"asked", "stored", "errors"}``; the error lines are
    appended to ``workdir/<stage>.batch_errors.jsonl``.  Uncached bodies remain
    where the batch did not answer them (the caller sends them again).
    """
    import time

    sleep = sleep or time.sleep
    rec = manifest.stage(stage).setdefault("batch", {})
    keys = list(keys) if keys is not None else [request_key(CHAT, b) for b in bodies]
    if "batch_id" not in rec:
        cached = list(cached) if cached is not None else [cache.has(k) for k in keys]
        todo = {k: b for k, b, c in zip(keys, bodies, cached) if not c}
        if not todo:
            return {"asked": 0, "stored": 0, "errors": 0}
        path = workdir / f"{stage}.batch_input.jsonl"
        path.write_text("".join(json.dumps({"custom_id": k, "method": "POST", "url": CHAT, "body": b}) + "\n"
                                for k, b in todo.items()), encoding="utf-8")
        again = {"attempts": attempts, "backoff": Backoff(backoff.next, backoff.factor, backoff.maximum)
                 if backoff else None, "sleep": sleep}
        file_id = upload_file(client, manifest, rec, "input", path, "batch", **again)
        # one tag per round of this stage: a later round's batch is never taken for an earlier one's
        tag = run_tag(manifest, f"{stage}#{len(manifest.stage(stage).get('batches_done', []))}")
        pending = rec.get("batch_pending") == {"input_file": file_id, "tag": tag}
        rec["batch_pending"] = {"input_file": file_id, "tag": tag}
        manifest.save()
        nc = client.with_options(max_retries=0)

        def find():
            for b in listing(lambda: nc.batches.list(limit=100), f"stage {stage}: batch: GET /batches",
                             {"id": _STR, "input_file_id": _OPT_STR}):
                meta = getattr(b, "metadata", None) or {}
                if b.input_file_id == file_id and (not meta or all(meta.get(k) == v for k, v in tag.items())):
                    return b
            return None

        batch = create_once(lambda: nc.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h",
                                                      metadata=tag),
                            find, what=f"stage {stage}: batch", pending=pending, **again)
        rec.pop("batch_pending", None)
        rec.update(batch_id=batch.id, input_file=file_id, n_requests=len(todo), status=batch.status)
        manifest.save()
        echo(f"[{stage}] batch {batch.id} created with {len(todo)} requests")
    bodies_by_key = dict(zip(keys, bodies))
    backoff = backoff or Backoff()
    while True:
        batch = ask(lambda: client.batches.retrieve(rec["batch_id"]),
                    f"stage {stage}: poll of batch {rec['batch_id']} (GET /batches/{rec['batch_id']})",
                    {"status": _STR, "output_file_id": _OPT_STR, "error_file_id": _OPT_STR})
        rec["status"] = batch.status
        manifest.save()
        if batch.status in _DONE:
            break
        backoff.wait(sleep)
    stored = 0
    for line in _read_lines(client, batch.output_file_id):
        key, resp = line.get("custom_id"), line.get("response") or {}
        if key in bodies_by_key and resp.get("status_code") == 200 and isinstance(resp.get("body"), dict):
            cache.put(key, CHAT, bodies_by_key[key], resp["body"], source="batch")
            stored += 1
    errors = _read_lines(client, getattr(batch, "error_file_id", None))
    if errors:
        with open(workdir / f"{stage}.batch_errors.jsonl", "a", encoding="utf-8") as f:
            for e in errors:
                f.write(json.dumps(e) + "\n")
    # the batch is spent: a later round for what it left out is a new batch
    manifest.stage(stage).setdefault("batches_done", []).append(
        {"batch_id": rec["batch_id"], "status": batch.status, "stored": stored, "errors": len(errors)})
    manifest.stage(stage).pop("batch")
    manifest.save()
    if batch.status == "failed" and stored == 0:
        errs = getattr(getattr(batch, "errors", None), "data", None) or []
        msg = "; ".join(getattr(e, "message", str(e)) for e in errs) or "no reason given"
        raise LLMError(f"stage {stage}: batch {rec['batch_id']} failed: {msg}")
    return {"asked": rec.get("n_requests", 0), "stored": stored, "errors": len(errors)}
