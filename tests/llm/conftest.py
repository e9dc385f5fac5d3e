"""Fixtures of the LLM-layer tests: an experiment file and the fake server that plays its model."""

from __future__ import annotations

import secrets
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from .fake_openai import FakeOpenAI

# a made-up key, drawn per test session (never a real one): the tests look for it in every output
SECRET = "sk-" + "test-" + secrets.token_hex(12)


def experiment_file(tmp_path, shared, top: dict, tables: dict, toml: str = "") -> Path:
    """``tmp_path/exp.toml``: the paper's catalog and roles, ``top``'s keys, then ``tables`` (name -> keys).

    ``toml`` is TOML text read over the rest, a key at a time: top-level keys,
    and tables whose keys are merged into those of ``tables``.
    """
    data = {**top, "contexts": {"catalog": str(shared / "candidate_scenarios.json"), "roles": str(shared / "roles.csv")}}
    for name, keys in tables.items():
        data[name] = {**data.get(name, {}), **keys}
    for k, v in tomllib.loads(textwrap.dedent(toml)).items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) and isinstance(data.get(k), dict) else v
    path = tmp_path / "exp.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def sizes(s: dict) -> dict:
    """The tables of a small experiment, from the settings every test helper shares."""
    return {"contexts": {"n_instilled": s["n_instilled"], "n_native": s["n_native"]},
            "instill": {"n_train": s["n_train"], "n_validation": s["n_validation"]},
            "choices": {"n_pairs": s["n_pairs"], "n_pairs_native": s["n_pairs_native"]},
            "reports": {"n_reports": s["n_reports"], "max_tokens": s["report_max_tokens"]},
            "introspection": {"examples_per_context": s["examples"]}}


def write_experiment(tmp_path, shared, **over) -> Path:
    """An experiment file on the paper's catalog and roles, small enough for a test."""
    s = dict(seed=7, n_instilled=10, n_native=4, n_train=30, n_validation=5, n_pairs=40, n_pairs_native=40,
             method="logprobs", n_reports=4, examples=3, concurrency=8, batch="false", name="fake-run",
             timeout=5, report_max_tokens=200)
    s.update(over)
    return experiment_file(tmp_path, shared, {"name": s["name"], "seed": s["seed"], "model": "base-model-1",
                                              "out": "out"}, sizes(s), f"""
        instill = {{ hyperparameters = {{ n_epochs = 3 }} }}
        choices = {{ method = "{s['method']}" }}
        requests = {{ concurrency = {s['concurrency']}, max_retries = 3, timeout = {s['timeout']}, batch = {s['batch']}, poll_first = 0.01, poll_max = 0.05 }}
        """)


def fake_for(exp, **kw) -> FakeOpenAI:
    """A fake server knowing the experiment's contexts, with hidden native weights for the base model."""
    from selfinterp.llm.pipeline import design

    contexts, _ = design(exp)
    rng = np.random.default_rng(123)
    ctx = {c.question: ([a.name for a in c.attributes], c.lo, c.hi) for c in contexts}
    native = {c.question: rng.uniform(-100, 100, len(c.attributes)) for c in contexts}
    return FakeOpenAI(ctx, native, **kw)


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    return SECRET


@pytest.fixture
def shared(shared_data):
    return shared_data
