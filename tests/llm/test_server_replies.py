"""A non-JSON or unexpected reply to a poll or a listing is a clear error naming the stage and the request.

A local HTTP server answers every GET with one canned body: an HTML page, JSON that is not an
object, an object without the fields asked for, or a listing that never ends.  The polls (a
fine-tuning job, a batch) and the listings a lost create reconciles against (files, jobs, batches)
must each stop with an :class:`LLMError` that names the stage and the request, never a traceback
and never an endless loop.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from selfinterp.llm.batch import run_batch
from selfinterp.llm.cache import RequestCache, request_key
from selfinterp.llm.client import CHAT, LLMError, make_client
from selfinterp.llm.jobs import Backoff, start_finetune, upload_file, wait_finetune
from selfinterp.llm.manifest import Manifest, sha256_file

HTML = ("text/html", b"<html><body>502 Bad Gateway</body></html>")
NOT_JSON = ("application/json", b"<html>oops</html>")
A_LIST = ("application/json", b"[1, 2]")
NO_FIELDS = ("application/json", b'{"object": "thing"}')
WRONG_TYPE = ("application/json", b'{"id": "x", "status": 7, "data": 3}')
ENDLESS = ("application/json", json.dumps({"object": "list", "has_more": True, "data": [
    {"id": "same", "filename": "f", "bytes": 1, "training_file": "t", "model": "m", "input_file_id": "i"}]}).encode())
BAD_REPLIES = [HTML, NOT_JSON, A_LIST, NO_FIELDS, WRONG_TYPE]


@pytest.fixture(scope="module")
def server():
    state = {"reply": HTML, "paths": []}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self):
            state["paths"].append(f"{self.command} {self.path}")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ctype, data = state["reply"]
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    client = make_client(f"http://127.0.0.1:{srv.server_address[1]}/v1", max_retries=0, timeout=10)
    yield client, state
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def manifest(tmp_path):
    return Manifest(tmp_path / "manifest.json", "fp", name="t")


def _no_sleep(_s):
    raise AssertionError("an unexpected reply must stop the poll, not wait for another")


@pytest.mark.parametrize("reply", BAD_REPLIES + [ENDLESS])
def test_polls_and_listings_name_the_stage_and_the_request(server, manifest, tmp_path, api_key, reply):
    client, state = server
    state["reply"] = reply
    # poll of a fine-tuning job
    manifest.stage("itrain").update(job_id="ftjob-1")
    with pytest.raises(LLMError, match=r"stage itrain: poll of job ftjob-1 \(GET /fine_tuning/jobs/ftjob-1\): "
                                       r"the server's reply is not the JSON expected"):
        wait_finetune(client, manifest, "itrain", events_log=tmp_path / "events.jsonl", sleep=_no_sleep)
    # poll of a batch
    manifest.stage("choices")["batch"] = {"batch_id": "batch-1"}
    with pytest.raises(LLMError, match=r"stage choices: poll of batch batch-1 \(GET /batches/batch-1\): "
                                       r"the server's reply is not the JSON expected"):
        run_batch(client, None, manifest, "choices", [], workdir=tmp_path, sleep=_no_sleep)
    # the listings a create whose reply was lost is reconciled against: files, jobs, batches
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": []}\n', encoding="utf-8")
    rec = {"training_file": {"pending": True, "sha256": sha256_file(train)}}
    with pytest.raises(LLMError, match=r"upload of train.jsonl: GET /files: "
                                       r"(the server's (reply is not the JSON expected|listing (repeats|goes on)))"):
        upload_file(client, manifest, rec, "training_file", train, "fine-tune", sleep=_no_sleep)
    assert "pending" in rec["training_file"]  # nothing was created: the upload stays pending
    st = manifest.stage("itrain2")
    st.update(training_file={"id": "file-1", "sha256": sha256_file(train)},
              job_pending={"training_file": "file-1", "suffix": None,
                           "tag": {"selfinterp_run": manifest.run_id, "selfinterp_stage": "itrain2"}})
    with pytest.raises(LLMError, match=r"stage itrain2: fine-tuning job: GET /fine_tuning/jobs: the server's "
                                       r"(reply is not the JSON expected|listing (repeats|goes on))"):
        start_finetune(client, manifest, "itrain2", model="m", train=train, validation=None, suffix=None,
                       seed=None, hyperparameters=None, sleep=_no_sleep, echo=lambda *_: None)
    assert "job_id" not in st
    # a batch whose create's reply was lost: its input file is known, the listing is read before any create
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    cache = RequestCache(tmp_path / "cache")
    path = tmp_path / "reports.batch_input.jsonl"
    key = request_key(CHAT, body)
    path.write_text(json.dumps({"custom_id": key, "method": "POST", "url": CHAT, "body": body}) + "\n",
                    encoding="utf-8")
    tag = {"selfinterp_run": manifest.run_id, "selfinterp_stage": "reports#0"}
    manifest.stage("reports")["batch"] = {"input": {"id": "file-2", "sha256": sha256_file(path)},
                                          "batch_pending": {"input_file": "file-2", "tag": tag}}
    state["paths"].clear()
    with pytest.raises(LLMError, match=r"stage reports: batch: GET /batches: the server's "
                                       r"(reply is not the JSON expected|listing (repeats|goes on))"):
        run_batch(client, cache, manifest, "reports", [body], workdir=tmp_path, sleep=_no_sleep)
    assert state["paths"] and not any(p.startswith("POST") for p in state["paths"])  # nothing created


def test_an_unexpected_create_reply_is_an_error_and_an_endless_listing_stops(server, manifest, tmp_path, api_key):
    client, state = server
    train = tmp_path / "t.jsonl"
    train.write_text("{}\n", encoding="utf-8")
    for reply in (NO_FIELDS, A_LIST, HTML):
        state["reply"] = reply
        with pytest.raises(LLMError, match=r"upload of t.jsonl: the server's reply is not the JSON expected"):
            upload_file(client, manifest, {}, "f", train, "batch", attempts=1, backoff=Backoff(0, 1, 0),
                        sleep=_no_sleep)
