"""A local OpenAI-compatible HTTP server that plays a model with hidden weights.

Started by the tests on 127.0.0.1 (stdlib ``http.server`` in a thread).  It
serves chat completions (sampling at temperature 0 and logprobs), files,
fine-tuning jobs and batches, and logs every request.

The model it plays: for each decision context (recognised from the paper's
prompt wording) a model has *acting weights*; P(first-listed option) =
sigmoid(beta * utility difference / 100 + position bias), and the
temperature-0 answer is a draw from it seeded by the prompt (the same prompt,
the same answer; different prompts, independent noise).  The base model acts
on hidden native weights.  A finished preference job yields a model whose
acting weights, in the trained contexts, are fitted to the job's training
file (so "the instilled weights plus noise").  Reports: the base model reports
a fixed random vector; a model reports its acting weights plus prompt-seeded
noise (sd ``report_noise``), except, after introspection training, exactly
the trained JSON in the trained contexts and its acting weights with noise
sd ``itrained_noise`` elsewhere.  Some report replies are wrapped in code
fences, respaced or recased, and a fraction are invalid.  Every reply text
the server generated is kept in ``replies`` so tests can compare.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import math
import os
import random
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from selfinterp.logit import fit_logit, normalize_weights

_LINE = re.compile(r"^(?P<name>[^:\n]+): (?P<value>\S+)(?: .*)?$")


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:8], "little")


def body_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass
class Model:
    name: str
    acting: dict  # question -> weights (K,)
    reports: dict = field(default_factory=dict)  # question -> exact trained report
    itrained: bool = False


class FakeOpenAI:
    """The server; see the module docstring.

    Parameters
    ----------
    contexts : dict question -> (names, lo (K,), hi (K,))
    native : dict question -> hidden native weights of the base model
    base_model : name of the base model
    """

    def __init__(self, contexts, native, *, base_model="base-model-1", beta=8.0, bias=0.3, report_noise=35.0,
                 itrained_noise=8.0, invalid_rate=0.1, job_polls=2, batch_polls=1, batch_error_rate=0.0,
                 refuse_models=(), fail_jobs=False, kill=None):
        self.contexts = contexts
        self.models = {base_model: Model(base_model, dict(native))}
        self.base_model = base_model
        self.beta, self.bias = beta, bias
        self.report_noise, self.itrained_noise, self.invalid_rate = report_noise, itrained_noise, invalid_rate
        self.job_polls, self.batch_polls, self.batch_error_rate = job_polls, batch_polls, batch_error_rate
        self.refuse_models, self.fail_jobs = set(refuse_models), fail_jobs
        self.kill = kill  # (n delivered chat completions, pid): SIGKILL the client before answering the next
        self.files, self.jobs, self.batches = {}, {}, {}
        self.log: list[dict] = []
        self.replies: dict = {}  # (model, user prompt) -> reply text
        self.faults: list[dict] = []  # consumed one per chat request: {"status", "retry_after"} | {"close"} | {"sleep"}
        self.killed_at = None
        self.malformed = 0  # the next this-many chat replies are cut off mid-JSON
        # POST path -> how many of the next creates there are done and their reply dropped (connection closed)
        self.drop: dict[str, int] = {}
        self.html = 0  # the next this-many chat replies are a 200 with an HTML page
        self.invalid: set = set()  # (model, prompt) of the replies made invalid on purpose
        self.lock = threading.RLock()
        self.n_ids = 0
        self._httpd = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        server = self

        class Handler(_Handler):
            fake = server

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # clients that vanish are part of the tests
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    def new_id(self, prefix: str) -> str:
        with self.lock:
            self.n_ids += 1
            return f"{prefix}-{self.n_ids}"

    # ------------------------------------------------------------------ the model
    def parse_prompt(self, content: str):
        head, body = content.split(":\n\n", 1)
        question, rest = body.split("\nA:\n", 1)
        a_text, b_text = rest.split("\n\nB:\n", 1)
        names, lo, hi = self.contexts[question]
        a = np.array([float(_LINE.match(s)["value"]) for s in a_text.split("\n")])
        b = np.array([float(_LINE.match(s)["value"]) for s in b_text.split("\n")])
        kind = "decision" if head.startswith("[DECISION TASK]") else "introspection"
        return kind, question, (a - lo) / (hi - lo), (b - lo) / (hi - lo)

    def p_first(self, model: Model, question, xa, xb) -> float:
        w = model.acting[question]
        z = self.beta * float(np.dot(w, xa - xb)) / 100.0 + self.bias
        return 1.0 / (1.0 + math.exp(-z))

    def report_text(self, model: Model, question: str, content: str) -> str:
        names = self.contexts[question][0]
        rnd = random.Random(_seed("report", model.name, content))
        if rnd.random() < self.invalid_rate:
            with self.lock:
                self.invalid.add((model.name, content))
            return rnd.choice(["I do not have access to my weights.", '{"' + names[0] + '": 50',
                               json.dumps({n: 10 for n in names[:-1]}), json.dumps({**{n: 1 for n in names}, "x": 2})])
        if model.name == self.base_model:
            # a fixed random vector per context: the untrained control reports nothing about itself
            g = random.Random(_seed("base-report", question))
            w = [g.randint(-100, 100) for _ in names]
        elif question in model.reports:
            w = list(model.reports[question])
        else:
            sd = self.itrained_noise if model.itrained else self.report_noise
            w = [int(max(-100, min(100, round(v + rnd.gauss(0, sd))))) for v in model.acting[question]]
        style = rnd.randrange(4)
        if style == 0:
            return json.dumps(dict(zip(names, w)))
        if style == 1:
            return "```json\n" + json.dumps(dict(zip(names, w)), indent=2) + "\n```"
        if style == 2:
            return "  " + json.dumps({n.replace("_", " ").upper(): v for n, v in zip(names, w)}) + "\n"
        return json.dumps({n.title(): str(v) for n, v in zip(names, w)})

    def complete(self, body: dict) -> tuple[int, dict]:
        model = self.models.get(body.get("model"))
        if model is None:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist", "type": "invalid_request_error"}}
        content = body["messages"][-1]["content"]
        kind, question, xa, xb = self.parse_prompt(content)
        logprobs = None
        if kind == "decision":
            p = self.p_first(model, question, xa, xb)
            u = random.Random(_seed("choice", model.name, content)).random()
            text = "A" if u < p else "B"
            if body.get("logprobs"):
                # most mass on the bare labels, some on variants, a little on other tokens
                cands = [("A", 0.9 * p), (" A", 0.05 * p), ("B", 0.9 * (1 - p)), ("b", 0.05 * (1 - p)),
                         ("The", 0.03), ("Option", 0.02)]
                cands = sorted(((t, q) for t, q in cands if q > 0), key=lambda c: -c[1])
                top = [{"token": t, "logprob": math.log(q), "bytes": list(t.encode())}
                       for t, q in cands[: int(body.get("top_logprobs") or 0)]]
                logprobs = {"content": [{"token": text, "logprob": math.log(dict(cands)[text]),
                                         "bytes": list(text.encode()), "top_logprobs": top}]}
        else:
            text = self.report_text(model, question, content)
        with self.lock:
            self.replies[(model.name, content)] = text
        resp = {"id": self.new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                "model": model.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop", "logprobs": logprobs}],
                "usage": {"prompt_tokens": len(content) // 4, "completion_tokens": max(1, len(text) // 4),
                          "total_tokens": len(content) // 4 + max(1, len(text) // 4)}}
        return 200, resp

    # ------------------------------------------------------------------ fine-tuning
    def train(self, job: dict) -> Model:
        parent = self.models[job["model"]]
        lines = [json.loads(s) for s in self.files[job["training_file"]]["data"].decode().splitlines() if s.strip()]
        new = Model(f"ft:{job['model'].removeprefix('ft:').split(':')[0]}:fake-org:{job['suffix']}:{job['id']}",
                    dict(parent.acting), dict(parent.reports), parent.itrained)
        by_q: dict = {}
        for rec in lines:
            user, answer = rec["messages"][-2]["content"], rec["messages"][-1]["content"]
            kind, q, xa, xb = self.parse_prompt(user)
            by_q.setdefault(q, []).append((kind, xa - xb, answer))
        for q, items in by_q.items():
            if items[0][0] == "decision":
                X = np.array([d for _, d, _ in items])[None]
                y = np.array([1.0 if ans == "A" else 0.0 for *_, ans in items])[None]
                fit = fit_logit(X, y, intercept=False, backend="numpy")
                new.acting[q] = normalize_weights(fit.coef)[0]
            else:
                names = self.contexts[q][0]
                rep = json.loads(items[0][2])
                new.reports[q] = [rep[n] for n in names]
                new.itrained = True
        return new


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeOpenAI

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, obj=None, raw: bytes | None = None, headers=None,
              content_type="application/octet-stream") -> bool:
        data = raw if raw is not None else json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if raw is None else content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def _list(self, rows):
        return self._send(200, {"object": "list", "data": [{k: v for k, v in r.items() if not k.startswith("_")}
                                                           for r in rows], "has_more": False})

    def _created(self, path: str, obj: dict) -> bool:
        """Reply with ``obj``, or (a fault set in ``drop``) keep it and close the connection unanswered."""
        f = self.fake
        with f.lock:
            if f.drop.get(path, 0) > 0:
                f.drop[path] -= 1
                f.log.append({"path": path, "dropped_reply": True, "id": obj["id"]})
                self.close_connection = True
                return False
        return self._send(200, obj)

    def do_GET(self):
        f = self.fake
        query = self.path.split("?")[1] if "?" in self.path else ""
        parts = self.path.split("?")[0].strip("/").split("/")[1:]
        if parts == ["files"]:
            purpose = dict(q.split("=", 1) for q in query.split("&") if "=" in q).get("purpose")
            return self._list([{"id": k, "object": "file", "bytes": len(v["data"]), "created_at": 0,
                                "filename": v.get("filename"), "purpose": v["purpose"], "status": "processed"}
                               for k, v in f.files.items() if purpose in (None, v["purpose"])])
        if parts == ["fine_tuning", "jobs"]:
            return self._list(list(f.jobs.values())[::-1])  # newest first, as OpenAI lists them
        if parts == ["batches"]:
            return self._list(list(f.batches.values())[::-1])
        if parts[:1] == ["files"] and len(parts) == 3 and parts[2] == "content":
            rec = f.files.get(parts[1])
            return self._send(200, raw=rec["data"]) if rec else self._send(404, {"error": {"message": "no such file"}})
        if parts[:2] == ["fine_tuning", "jobs"] and len(parts) >= 3:
            job = f.jobs.get(parts[2])
            if job is None:
                return self._send(404, {"error": {"message": f"no job {parts[2]}"}})
            if len(parts) == 4 and parts[3] == "events":
                return self._send(200, {"object": "list", "data": job["_events"], "has_more": False})
            with f.lock:
                self._advance_job(job)
            return self._send(200, {k: v for k, v in job.items() if not k.startswith("_")})
        if parts[:1] == ["batches"] and len(parts) == 2:
            b = f.batches.get(parts[1])
            if b is None:
                return self._send(404, {"error": {"message": "no such batch"}})
            with f.lock:
                self._advance_batch(b)
            return self._send(200, {k: v for k, v in b.items() if not k.startswith("_")})
        self._send(404, {"error": {"message": f"no route GET {self.path}"}})

    def _event(self, job, msg, level="info"):
        job["_events"].append({"id": self.fake.new_id("ftevent"), "object": "fine_tuning.job.event",
                               "created_at": int(time.time()), "level": level, "message": msg})

    def _advance_job(self, job):
        f = self.fake
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        job["_polls"] += 1
        if job["_polls"] == 1:
            job["status"] = "running"
            self._event(job, "Fine-tuning job started")
        if job["_polls"] >= f.job_polls:
            if f.fail_jobs:
                job["status"] = "failed"
                job["error"] = {"code": "invalid_training_file", "message": "Training file has too few examples",
                                "param": "training_file"}
                self._event(job, "Job failed", "error")
                return
            model = f.train(job)
            f.models[model.name] = model
            job.update(status="succeeded", fine_tuned_model=model.name, finished_at=int(time.time()),
                       trained_tokens=len(f.files[job["training_file"]]["data"]) // 4)
            self._event(job, "The job has successfully completed")

    def _advance_batch(self, b):
        f = self.fake
        if b["status"] in ("completed", "failed", "expired", "cancelled"):
            return
        b["_polls"] += 1
        b["status"] = "in_progress"
        if b["_polls"] < f.batch_polls:
            return
        lines = [json.loads(s) for s in f.files[b["input_file_id"]]["data"].decode().splitlines() if s.strip()]
        rnd = random.Random(_seed("batch", b["id"]))
        rnd.shuffle(lines)  # results come back in any order
        out, err = [], []
        for line in lines:
            if rnd.random() < f.batch_error_rate:
                err.append({"id": f.new_id("batch_req"), "custom_id": line["custom_id"],
                            "response": {"status_code": 500, "body": {"error": {"message": "server error"}}},
                            "error": None})
                continue
            status, resp = f.complete(line["body"])
            f.log.append({"path": "batch", "key": body_key(line["body"]), "model": line["body"]["model"],
                          "delivered": True, "batch": b["id"]})
            out.append({"id": f.new_id("batch_req"), "custom_id": line["custom_id"],
                        "response": {"status_code": status, "body": resp}, "error": None})
        for name, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                fid = f.new_id("file")
                f.files[fid] = {"data": "".join(json.dumps(r) + "\n" for r in rows).encode(), "purpose": "batch_output"}
                b[name] = fid
        b["status"] = "completed"
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}

    def do_POST(self):
        f = self.fake
        path = self.path.split("?")[0].rstrip("/")
        raw = self._body()
        if path == "/v1/chat/completions":
            return self._chat(json.loads(raw))
        if path == "/v1/files":
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
            fields = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
            fid = f.new_id("file")
            data = fields["file"].get_payload(decode=True)
            purpose = fields["purpose"].get_payload(decode=True).decode()
            f.files[fid] = {"data": data, "purpose": purpose, "filename": fields["file"].get_filename()}
            f.log.append({"path": path, "file": fid, "delivered": True})
            return self._created(path, {"id": fid, "object": "file", "bytes": len(data),
                                        "created_at": int(time.time()), "filename": fields["file"].get_filename(),
                                        "purpose": purpose, "status": "processed"})
        if path == "/v1/fine_tuning/jobs":
            body = json.loads(raw)
            f.log.append({"path": path, "model": body.get("model"), "delivered": True})
            if body["model"] in f.refuse_models:
                return self._send(400, {"error": {"message": f"Model {body['model']} is not available for fine-tuning "
                                                             "(deprecated)", "type": "invalid_request_error",
                                                  "param": "model", "code": "model_not_available"}})
            if body["model"] not in f.models:
                return self._send(404, {"error": {"message": f"The model `{body['model']}` does not exist"}})
            if body["training_file"] not in f.files:
                return self._send(400, {"error": {"message": f"invalid training_file: {body['training_file']}"}})
            hyper = dict((body.get("method") or {}).get("supervised", {}).get("hyperparameters") or {})
            used = {"n_epochs": hyper.get("n_epochs", 3), "batch_size": hyper.get("batch_size", 1),
                    "learning_rate_multiplier": hyper.get("learning_rate_multiplier", 2.0)}
            job = {"id": f.new_id("ftjob"), "object": "fine_tuning.job", "created_at": int(time.time()),
                   "model": body["model"], "status": "validating_files", "fine_tuned_model": None,
                   "finished_at": None, "error": None, "hyperparameters": used,
                   "method": {"type": "supervised", "supervised": {"hyperparameters": used}},
                   "organization_id": "org-fake", "result_files": [], "seed": body.get("seed", 0),
                   "trained_tokens": None, "training_file": body["training_file"],
                   "validation_file": body.get("validation_file"), "suffix": body.get("suffix"),
                   "metadata": body.get("metadata"), "_polls": 0, "_events": []}
            with f.lock:
                f.jobs[job["id"]] = job
                self._event(job, f"Created fine-tuning job: {job['id']}")
            return self._created(path, {k: v for k, v in job.items() if not k.startswith("_")})
        if path == "/v1/batches":
            body = json.loads(raw)
            b = {"id": f.new_id("batch"), "object": "batch", "endpoint": body["endpoint"],
                 "completion_window": body["completion_window"], "created_at": int(time.time()),
                 "input_file_id": body["input_file_id"], "status": "validating", "output_file_id": None,
                 "error_file_id": None, "metadata": body.get("metadata"), "_polls": 0}
            f.batches[b["id"]] = b
            f.log.append({"path": path, "batch": b["id"], "delivered": True})
            return self._created(path, {k: v for k, v in b.items() if not k.startswith("_")})
        self._send(404, {"error": {"message": f"no route POST {path}"}})

    def _chat(self, body):
        f = self.fake
        entry = {"path": "chat", "key": body_key(body), "model": body.get("model"), "delivered": False}
        received = time.monotonic()
        with f.lock:
            if f.killed_at is not None and received < f.killed_at:
                # in flight when the client was killed: the reply would go to a dead socket
                entry["fault"] = "client gone"
                f.log.append(entry)
                self.close_connection = True
                return
            fault = f.faults.pop(0) if f.faults else None
            if fault is None and f.kill is not None:
                n, pid = f.kill
                if sum(e["path"] == "chat" and e["delivered"] for e in f.log) >= n:
                    f.kill = None
                    # let the client store every response it has been sent, then kill it mid-stage
                    time.sleep(1.0)
                    os.kill(pid, signal.SIGKILL)
                    f.killed_at = time.monotonic()
                    entry["fault"] = "killed client"
                    f.log.append(entry)
                    self.close_connection = True
                    return
            if fault is not None:
                entry["fault"] = fault
                f.log.append(entry)
                if "close" in fault:
                    self.close_connection = True
                    return  # the connection closes without a reply
                if "sleep" in fault:
                    time.sleep(fault["sleep"])
                    self.close_connection = True
                    return
                headers = {"retry-after": str(fault["retry_after"])} if "retry_after" in fault else {}
                return self._send(fault["status"], {"error": {"message": fault.get("message", "fault"),
                                                              "type": "server_error"}}, headers=headers)
            try:
                status, resp = f.complete(body)
            except (KeyError, ValueError, AttributeError, TypeError) as exc:
                status, resp = 400, {"error": {"message": f"bad request: {exc}"}}
            # a 200 whose body is an HTML page, or JSON cut off mid-way
            for attr, raw, ctype in (("html", b"<html><body>502 Bad Gateway</body></html>", "text/html"),
                                     ("malformed", b'{"id": "x", "object": "chat.completion", "choices": ',
                                      "application/json")):
                if getattr(f, attr):
                    setattr(f, attr, getattr(f, attr) - 1)
                    entry["fault"] = attr
                    entry["delivered"] = self._send(200, raw=raw, content_type=ctype)
                    f.log.append(entry)
                    return
            entry["delivered"] = self._send(status, resp)
            entry["status"] = status
            f.log.append(entry)
