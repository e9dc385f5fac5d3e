"""Fixtures of the LLM-layer tests: an experiment file and the fake server that plays its model."""

from __future__ import annotations

import secrets
import textwrap

import numpy as np
import pytest

from .fake_openai import FakeOpenAI

# a made-up key, drawn per test session (never a real one): the tests look for it in every output
SECRET = "sk-" + "test-" + secrets.token_hex(12)


def write_experiment(tmp_path, shared, **over) -> object:
    """An experiment file on the paper's catalog and roles, small enough for a test."""
    settings = dict(seed=7, n_instilled=10, n_native=4, n_train=30, n_validation=5, n_pairs=40, n_pairs_native=40,
                    method="logprobs", n_reports=4, examples=3, concurrency=8, batch="false", name="fake-run",
                    timeout=5, report_max_tokens=200)
    settings.update(over)
    text = textwrap.dedent(f"""\
        name = "{settings['name']}"
        seed = {settings['seed']}
        model = "base-model-1"
        out = "out"

        [contexts]
        catalog = "{shared / 'candidate_scenarios.json'}"
        roles = "{shared / 'roles.csv'}"
        n_instilled = {settings['n_instilled']}
        n_native = {settings['n_native']}

        [instill]
        n_train = {settings['n_train']}
        n_validation = {settings['n_validation']}
        hyperparameters = {{ n_epochs = 3 }}

        [choices]
        n_pairs = {settings['n_pairs']}
        n_pairs_native = {settings['n_pairs_native']}
        method = "{settings['method']}"

        [reports]
        n_reports = {settings['n_reports']}
        max_tokens = {settings['report_max_tokens']}

        [introspection]
        examples_per_context = {settings['examples']}

        [requests]
        concurrency = {settings['concurrency']}
        max_retries = 3
        timeout = {settings["timeout"]}
        batch = {settings['batch']}
        poll_first = 0.01
        poll_max = 0.05
        """)
    path = tmp_path / "exp.toml"
    path.write_text(text, encoding="utf-8")
    return path


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
