"""The local backend behind the ``openai`` client's interface, in process.

:class:`LocalClient` answers the calls the pipeline makes of an OpenAI client
(``files.create``, ``fine_tuning.jobs.create / retrieve / list_events``,
``chat.completions.create``) with the same request bodies and replies, so the
stages, the request cache, the manifest, resume and transcripts serve both
backends unchanged.

- Files are stored by content hash in ``OUT/local/files``.
- A job is recorded when created (its id derives from what it trains, so the
  same request is the same job) and trained when it is first waited on.
- Chat completions with ``logprobs`` read the next token's log-probabilities
  (the top ``top_logprobs`` and, always, both labels); others are generated
  greedily.  The async client gathers the requests in flight into batches.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import time
from pathlib import Path
from types import SimpleNamespace

from ...errors import InputError
from ..manifest import package_versions, sha256_file
from .engine import Engine
from .model import LOCAL_MODULES
from .train import log_event, read_job, train_job, write_job

__all__ = ["LocalClient", "local_versions"]


def local_versions() -> dict:
    """The versions of the local backend's libraries (the manifest records them)."""
    return package_versions(LOCAL_MODULES + ("sentencepiece",))


class _Obj(SimpleNamespace):
    """A reply object: attributes plus ``model_dump`` as the openai client's models have."""

    def model_dump(self, mode: str = "json", **kw) -> dict:
        return copy.deepcopy(self._data)  # the caller owns its dict, as with the openai client


def _obj(data: dict) -> _Obj:
    o = _Obj(**{k: v for k, v in data.items()})
    o._data = data
    return o


class _Backend:
    """What both clients share: the engine, the run's local folder, the jobs."""

    def __init__(self, exp, echo=print, engine: Engine | None = None):
        self.exp, self.s, self.echo = exp, exp.local, echo
        self.root = exp.out / "local"
        for sub in ("files", "jobs", "adapters"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if engine is not None:  # a model already loaded (for the same model and labels)
            if engine.source.label != self.s.source.label:
                raise InputError(f"the engine runs {engine.source.label!r}, the experiment asks {self.s.source.label!r}")
            engine.release_adapters()
            engine.adapters_dir = self.root / "adapters"
            self.engine = engine
        else:
                self.engine = Engine(self.s.source, device=self.s.device, dtype=self.s.dtype,
                                 adapters_dir=self.root / "adapters", threads=self.s.threads,
                                 labels=(exp.template.label_a, exp.template.label_b), where=str(exp.source),
                                 chat_template_kwargs=self.s.chat_template_kwargs)
        from . import model as _model  # the estimate up front: a model too large stops here, before any training

        _model.check_memory(_model.estimate_params(self.s.source), self.engine.dtype, self.engine.device,
                            where=f"{exp.source}: model {self.s.source.label!r}")
        self.system_turn = ("first user turn" if _model.refuses_system(self.engine.tok, self.engine.chat_kwargs)
                            else "system")
        if self.system_turn != "system":
            self.echo(f"model {self.s.source.label!r}: its chat template refuses a system message, so the system "
                      "message opens the first user turn (followed by a blank line)")
        # measured throughput of this process: [tokens, seconds] of one-token reads and of generation
        self.clock = {"prefill": [0, 0.0], "decode": [0, 0.0]}
        self.trained: list[dict] = []
        self._announced: set[str] = set()

    # ------------------------------------------------------------------ files and jobs
    def create_file(self, file, purpose: str):
        name, fh = file
        data = fh.read()
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / "files" / f"{digest}.jsonl"
        if not path.exists():
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return _obj({"id": f"file-local-{digest[:32]}", "filename": name, "purpose": purpose, "bytes": len(data)})

    def _file(self, file_id: str) -> str:
        digest = file_id.removeprefix("file-local-")
        found = sorted((self.root / "files").glob(f"{digest}*.jsonl"))
        if not file_id.startswith("file-local-") or len(found) != 1:
            raise InputError(f"local backend: no file {file_id!r}")
        return f"files/{found[0].name}"

    def create_job(self, *, model: str, training_file: str, method: dict, validation_file: str | None = None,
                   suffix: str | None = None, seed: int | None = None, metadata: dict | None = None):
        # ``metadata`` (the server path's run-and-stage tag, for reconciling lost replies) is not part of
        # the job's identity here: a local job's id is what it trains, so a create is never ambiguous
        overrides = (method.get("supervised") or {}).get("hyperparameters") or {}
        hp = self.s.job_hyperparameters(overrides, where=f"{self.exp.source}: fine-tuning hyperparameters")
        seed = self.s.seed if self.s.seed is not None else (seed or 0)
        parent = None
        if model != self.s.source.label:
            parent = f"adapters/{self.engine.adapter_folder(model).name}"
        train, val = self._file(training_file), self._file(validation_file) if validation_file else None
        what = {"model": model, "training_file": train, "validation_file": val, "hyperparameters": hp,
                "seed": seed, "suffix": suffix or "ft", "identity": self.s.identity()}
        job_id = "ftjob-local-" + hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]
        folder = self.root / "jobs" / job_id
        if not (folder / "job.json").exists():  # the same request is the same job: never trained twice
            folder.mkdir(parents=True, exist_ok=True)
            src = self.s.source
            location = src.location if src.kind == "hub" else _relpath(src.location, folder)
            write_job(folder, what | self._where_to_train() | {
                "id": job_id, "status": "queued", "parent_adapter": parent, "created_at": int(time.time()),
                "source": {"kind": src.kind, "location": location, "label": src.label}, "dtype": self.engine.dtype,
                "labels": [self.exp.template.label_a, self.exp.template.label_b], "versions": local_versions()})
            log_event(folder, f"job created from {model}")
        elif (job := read_job(folder))["status"] == "failed":  # created again: --retry-failed
            # from its last checkpoint, where and how this run says (none of which changes what it learns)
            job.update(self._where_to_train(), status="queued", error=None)
            write_job(folder, job)
            log_event(folder, "job queued again after its failure (from its last checkpoint)")
        return self._job_obj(read_job(folder))

    def _where_to_train(self) -> dict:
        return {"device": self.engine.device, "threads": self.s.threads,
                "gradient_checkpointing": self.s.gradient_checkpointing}

    def _job_obj(self, job: dict):
        hp = dict(job["hyperparameters"], seed=job["seed"])
        data = {"id": job["id"], "object": "fine_tuning.job", "model": job["model"], "status": job["status"],
                "fine_tuned_model": job.get("fine_tuned_model"), "trained_tokens": job.get("trained_tokens"),
                "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
                "result_files": [job["adapter"]] if job.get("adapter") else [],
                "error": {"message": job.get("error")} if job.get("error") else None,
                "adapter_sha256": job.get("adapter_sha256"), "metrics": job.get("metrics"),
                "versions": job.get("versions")}
        return _obj(data)

    def retrieve_job(self, job_id: str):
        folder = self._job_folder(job_id)
        job = read_job(folder)
        if job["status"] != "succeeded" and self.s.training == "external":
            if job_id not in self._announced:  # trained by another process (e.g. accelerate launch): poll
                self._announced.add(job_id)
                self.echo(f"[{job_id}] waiting for the job to be trained: accelerate launch -m "
                          f"selfinterp.llm.local.train {folder}")
        elif job["status"] in ("queued", "running"):  # a failed job waits for --retry-failed (create_job)
            self.echo(f"[{job_id}] training on {self.engine.device} ({self.engine.dtype})")
            job.update(self._where_to_train())  # as this run says (a resumed job too): results do not change
            write_job(folder, job)
            try:
                job = train_job(folder, self.engine)
                self.trained.append(job)
            except InputError:
                raise
            except Exception as exc:  # reported as the job's failure; a later run resumes from the checkpoint
                job = read_job(folder)
                job.update(status="failed", error=f"{type(exc).__name__}: {exc}")
                write_job(folder, job)
                log_event(folder, f"training failed: {type(exc).__name__}: {exc}", level="error")
        return self._job_obj(job)

    def _job_folder(self, job_id: str) -> Path:
        folder = self.root / "jobs" / job_id
        if not job_id.startswith("ftjob-local-") or not (folder / "job.json").is_file():
            raise InputError(f"local backend: no job {job_id!r} in {self.root / 'jobs'}")
        return folder

    def list_events(self, job_id: str, limit: int = 100):
        path = self._job_folder(job_id) / "events.jsonl"
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()] \
            if path.exists() else []
        return SimpleNamespace(data=[SimpleNamespace(**r) for r in rows[-limit:]])

    # ------------------------------------------------------------------ chat completions
    def complete_many(self, bodies: list[dict]) -> list[dict]:
        """Replies (chat completion dicts) to ``bodies``, batched by model and kind.

        Each prompt is rendered and tokenized once.  One-token reads go to the engine
        all together (it orders them so that prompts sharing a prefix run it once);
        generation runs the shortest prompts together."""
        out: list[dict | None] = [None] * len(bodies)
        groups: dict[tuple, list[int]] = {}
        for i, b in enumerate(bodies):
            _check_body(b)
            kind = "logprobs" if b.get("logprobs") else "generate"
            groups.setdefault((b["model"], kind, int(b.get("max_tokens") or 1)), []).append(i)
        seqs = self.engine.encode([self.engine.render(b["messages"]) for b in bodies]) if bodies else []
        bs = self.s.eval_batch_size
        for (model, kind, max_tokens), idx in groups.items():
            if kind == "logprobs":
                for i, r in zip(idx, self._logprob_replies(model, [bodies[i] for i in idx], [seqs[i] for i in idx])):
                    out[i] = r
                continue
            idx.sort(key=lambda i: len(seqs[i]))
            for s in range(0, len(idx), bs):
                chunk = idx[s:s + bs]
                replies = self._generated_replies(model, [bodies[i] for i in chunk], [seqs[i] for i in chunk],
                                                  max_tokens)
                for i, r in zip(chunk, replies):
                    out[i] = r
        return out  # type: ignore[return-value]

    def _item(self, tid: int, lp: float) -> dict:
        text = self.engine.tok.decode([tid])
        return {"token": text, "logprob": float(lp), "bytes": list(text.encode("utf-8"))}

    def _logprob_replies(self, model, bodies, seqs):
        import torch

        replies: list[dict | None] = [None] * len(bodies)
        t0 = time.perf_counter()
        with self.engine.using(model) as m:
            for idx, lps in self.engine.iter_logprobs(m, seqs, self.s.eval_batch_size):
                for i, lp in zip(idx, lps):
                    k = int(bodies[i].get("top_logprobs") or 0)
                    top = torch.topk(lp, max(k, 1))
                    ids = top.indices.tolist()[:k]
                    # both labels are always returned, inside the top k or not, so P(A) never depends on k
                    extra = [t for t in self.engine.label_ids if t not in ids]
                    items = [self._item(t, lp[t]) for t in ids + extra]
                    best = int(top.indices[0])
                    first = self._item(best, lp[best]) | {"top_logprobs": items}
                    n = len(seqs[i])
                    self.clock["prefill"][0] += n
                    replies[i] = self._reply(model, first["token"], "length", n, 1, {"content": [first]})
        self.clock["prefill"][1] += time.perf_counter() - t0
        return replies

    def _generated_replies(self, model, bodies, seqs, max_tokens):
        for b in bodies:
            if float(b.get("temperature") or 0) != 0:
                raise InputError("the local backend generates greedily: temperature must be 0")
        t0 = time.perf_counter()
        res = self.engine.generate(model, seqs, max_tokens)
        self.clock["decode"][1] += time.perf_counter() - t0
        replies = []
        for b, p, (toks, stopped) in zip(bodies, seqs, res):
            text = self.engine.tok.decode(toks, skip_special_tokens=True)
            msgs = b["messages"]
            if msgs[-1]["role"] == "assistant":  # a prefilled answer: the reply is the whole answer
                text = msgs[-1]["content"] + text
            self.clock["decode"][0] += len(toks) + int(stopped)
            replies.append(self._reply(model, text, "stop" if stopped else "length", len(p),
                                       len(toks) + int(stopped), None))
        return replies

    def _reply(self, model, text, finish, n_prompt, n_completion, logprobs) -> dict:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        if logprobs is not None:
            choice["logprobs"] = logprobs
        blob = json.dumps([model, text, n_prompt], sort_keys=True).encode()
        return {"id": "chatcmpl-local-" + hashlib.sha256(blob).hexdigest()[:24], "object": "chat.completion",
                "created": int(time.time()), "model": model, "choices": [choice],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
                          "total_tokens": n_prompt + n_completion}}


_BODY_KEYS = {"model", "messages", "temperature", "max_tokens", "logprobs", "top_logprobs", "seed"}


def _check_body(b: dict) -> None:
    if unknown := set(b) - _BODY_KEYS:
        raise InputError(f"the local backend does not take request field(s) {sorted(unknown)}")
    if not b.get("messages"):
        raise InputError("a chat request without messages")


def _relpath(location: str, folder: Path) -> str:
    import os

    try:
        return os.path.relpath(location, folder)
    except ValueError:  # another drive
        return location


def _completion(data: dict):
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate(data)


class _Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class LocalClient:
    """The synchronous client (files, fine-tuning jobs, chat completions) of an experiment's local backend."""

    def __init__(self, exp, *, echo=print, engine: Engine | None = None):
        self._b = _Backend(exp, echo=echo, engine=engine)
        b = self._b
        self.files = _Namespace(create=b.create_file)
        self.fine_tuning = _Namespace(jobs=_Namespace(create=b.create_job, retrieve=b.retrieve_job,
                                                      list_events=b.list_events))
        self.chat = _Namespace(completions=_Namespace(create=self._create))

    @property
    def engine(self) -> Engine:
        return self._b.engine

    def with_options(self, **_options) -> "LocalClient":
        """The same client: the server path's per-call options (retries, timeouts) mean nothing in process."""
        return self

    def _create(self, **body):
        return _completion(self._b.complete_many([body])[0])

    def asynchronous(self) -> "AsyncLocalClient":
        return AsyncLocalClient(self._b)

    def model_sha256(self) -> str | None:
        src = self._b.s.source
        return sha256_file(src.location) if src.kind == "gguf" else None

    def describe(self) -> dict:
        """For the manifest: the model (as the experiment names it, and its file's hash), the device, dtype,
        settings and library versions; never a path of this machine."""
        b = self._b
        s = b.s
        return {"model": s.source.label, "source_kind": s.source.kind, "model_sha256": self.model_sha256(),
                "device": b.engine.device, "dtype": b.engine.dtype, "settings": s.identity(),
                "save_steps": s.save_steps, "eval_batch_size": s.eval_batch_size,
                "label_token_ids": b.engine.label_ids, "system_message": b.system_turn, "versions": local_versions()}

    def throughput(self) -> dict:
        """Tokens per second measured in this process (for ``selfinterp power --gpu-throughput``): ``prefill``
        (prompt tokens of one-token reads), ``decode`` (generated tokens, their prompts' time included) and
        ``train`` (trained tokens of the jobs trained here); None where nothing was measured."""
        out = {k: (n / t if t > 0 else None) for k, (n, t) in self._b.clock.items()}
        tr = [j for j in self._b.trained if j.get("metrics", {}).get("train_runtime")]
        out["train"] = (sum(j["trained_tokens"] for j in tr) / sum(j["metrics"]["train_runtime"] for j in tr)
                        if tr else None)
        out["device"], out["dtype"] = self._b.engine.device, self._b.engine.dtype
        return out

    def close(self) -> None:
        pass


class AsyncLocalClient:
    """``chat.completions.create`` as a coroutine: the calls in flight are answered together, in batches."""

    def __init__(self, backend: _Backend):
        self._b = backend
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self.chat = _Namespace(completions=_Namespace(create=self._create))

    async def _create(self, **body):
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((body, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return _completion(await fut)

    async def _flush(self) -> None:
        while self._queue:
            for _ in range(3):  # let every coroutine that is ready put its request in first
                await asyncio.sleep(0)
            batch, self._queue = self._queue, []
            try:
                replies = await asyncio.to_thread(self._b.complete_many, [b for b, _ in batch])
            except BaseException as exc:  # every caller in the batch learns of the failure
                for _, f in batch:
                    if not f.done():
                        f.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, f), r in zip(batch, replies):
                if not f.done():
                    f.set_result(r)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        return False

    async def close(self) -> None:
        pass
