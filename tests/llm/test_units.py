"""Parsers, fine-tuning data checks, splits, the cache, prices and the experiment file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfinterp.design import Attribute, Context
from selfinterp.errors import InputError
from selfinterp.llm.cache import RequestCache, request_key
from selfinterp.llm.config import load_experiment
from selfinterp.llm.elicit import ChoiceSpec, choice_bodies, read_choices
from selfinterp.llm.finetune_data import (introspection_examples, preference_examples, split_pairs, two_fold,
                                          validate_examples)
from selfinterp.llm.parse import choice_probabilities, normalise_key, parse_choice, parse_report
from selfinterp.llm.pricing import PriceTable
from selfinterp.llm.prompts import PAPER

NAMES = ["caffeine_content", "leaf_size", "oxidation_level", "steeping_time", "resteep_potential"]
CTX = Context("tea", tuple(Attribute(n, "u", 0.0, 10.0) for n in NAMES), "Which tea?")

weights = st.lists(st.integers(-100, 100), min_size=5, max_size=5)


def _variant(name, how):
    return [name, name.upper(), name.replace("_", " "), " " + name.replace("_", " ").title() + " ",
            name.replace("_", "-")][how]


@given(weights, st.integers(0, 4), st.booleans(), st.sampled_from(["", "  ", "\n\t"]), st.permutations(range(5)))
def test_report_round_trip_tolerates_case_spacing_fences_and_order(w, how, fence, pad, order):
    obj = {_variant(NAMES[k], how): w[k] for k in order}
    text = json.dumps(obj, indent=2 if fence else None)
    if fence:
        text = "```json\n" + text + "\n```"
    parsed = parse_report(pad + text + pad, NAMES)
    assert parsed.valid and parsed.weights.tolist() == [float(v) for v in w]


@given(weights, st.integers(0, 4))
def test_report_with_a_key_missing_extra_or_duplicated_is_invalid(w, drop):
    full = dict(zip(NAMES, w))
    missing = {k: v for i, (k, v) in enumerate(full.items()) if i != drop}
    assert "missing key" in parse_report(json.dumps(missing), NAMES).error
    assert "unexpected key" in parse_report(json.dumps(full | {"price": 3}), NAMES).error
    dup = json.dumps(full)[:-1] + f', "{NAMES[drop].upper()}": 1}}'
    assert "given twice" in parse_report(dup, NAMES).error


@pytest.mark.parametrize("text, reason", [
    (None, "empty"), ("   ", "empty"), ("I cannot tell.", "not JSON"), ('{"a": 1', "not JSON"),
    ("[1, 2, 3, 4, 5]", "not an object"), ('{"caffeine": 1}', "unexpected key"),
    (json.dumps(dict(zip(NAMES, [1, 2, 3, 4, "x"]))), "not a number"),
    (json.dumps(dict(zip(NAMES, [1, 2, 3, 4, True]))), "not a number"),
    (json.dumps(dict(zip(NAMES, [1, 2, 3, 4, 150]))), "outside"),
    ('{"caffeine_content": NaN, "leaf_size": 1, "oxidation_level": 1, "steeping_time": 1, "resteep_potential": 1}',
     "not JSON"),
    ("Here you go: " + json.dumps(dict(zip(NAMES, [1, 2, 3, 4, 5]))), "not JSON"),  # prose is never guessed around
])
def test_invalid_reports_say_why(text, reason):
    p = parse_report(text, NAMES)
    assert not p.valid and reason in p.error


def test_choice_parsing_and_probabilities():
    assert parse_choice(" A\n") == 1 and parse_choice("b.") == 0 and parse_choice("A or B") is None
    top = [{"token": "A", "logprob": math.log(0.5)}, {"token": " A", "logprob": math.log(0.1)},
           {"token": "B", "logprob": math.log(0.3)}, {"token": "The", "logprob": math.log(0.05)}]
    pa, pb, left = choice_probabilities(top)
    assert (pa, pb) == pytest.approx((0.6, 0.3)) and left == pytest.approx(0.1)
    assert normalise_key(" Leaf-Size ") == normalise_key("leaf_size")


def _reply(p_first):
    return {"choices": [{"message": {"content": "A"}, "logprobs": {"content": [{"top_logprobs": [
        {"token": "A", "logprob": math.log(p_first * 0.9)}, {"token": "B", "logprob": math.log((1 - p_first) * 0.9)}]}]}}]}


@given(st.floats(0.05, 0.95), st.floats(-2, 2))
def test_both_orders_cancel_a_position_bias(p, bias):
    # a model with P(A) = p for the pair, plus a logit bias towards whichever option is listed first
    logit = math.log(p / (1 - p))
    first = 1 / (1 + math.exp(-(logit + bias)))
    second = 1 / (1 + math.exp(-(-logit + bias)))  # swapped: the option listed first is B
    spec = ChoiceSpec(method="logprobs")
    y, det = read_choices([_reply(first), _reply(second)], 1, PAPER, spec)
    assert det["leftover"][0, 0] == pytest.approx(0.1)
    # the average of the two orders: exact when there is no bias, and always on p's side of 1/2
    if bias == 0:
        assert y[0] == pytest.approx(p)
    assert (y[0] - 0.5) * (p - 0.5) >= -1e-12
    assert abs(y[0] - p) <= abs(first - p) + 1e-12 or abs(y[0] - p) <= abs(1 - second - p) + 1e-12


def test_choice_bodies_both_orders_swap_the_options():
    a, b = np.full((2, 5), 1.0), np.full((2, 5), 9.0)
    bodies = choice_bodies(PAPER, "m", CTX, a, b, ChoiceSpec(method="logprobs", top_logprobs=5))
    assert len(bodies) == 4 and all(x["max_tokens"] == 1 and x["top_logprobs"] == 5 for x in bodies)
    assert bodies[0]["messages"] == PAPER.decision_messages(CTX, a[0], b[0])
    assert bodies[2]["messages"] == PAPER.decision_messages(CTX, b[0], a[0])


def test_fine_tuning_data_checks():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 10, (12, 5)).round(), rng.uniform(0, 10, (12, 5)).round()
    ex = preference_examples(PAPER, CTX, [100, -50, 0, 20, -10], a, b)
    rep = validate_examples(ex, model="gpt-4.1-mini-2025-04-14")
    assert rep.n_examples == 12 and rep.encoding == "o200k_base" and min(rep.tokens) > 100
    with pytest.raises(InputError, match="9 examples, fine-tuning needs at least 10"):
        validate_examples(ex[:9], model="m")
    bad = [dict(e) for e in ex]
    bad[3] = {"messages": ex[3]["messages"][:-1]}
    with pytest.raises(InputError, match="line 4: the last message must be a non-empty assistant answer"):
        validate_examples(bad, model="m")
    bad[3] = {"messages": [{"role": "tool", "content": "x"}]}
    with pytest.raises(InputError, match="line 4, message 0"):
        validate_examples(bad, model="m")
    with pytest.raises(InputError, match="over the limit"):
        validate_examples(ex, model="m", max_tokens=50)
    intro = introspection_examples(PAPER, CTX, [100, -50, 0, 20, -10], a[:1], b[:1])
    assert json.loads(intro[0]["messages"][-1]["content"]) == dict(zip(NAMES, [100, -50, 0, 20, -10]))
    first, last = two_fold(101)
    assert first.tolist() == list(range(50)) and last.tolist() == list(range(50, 101))
    tr, va = split_pairs(60, 10)
    assert (tr, va) == (slice(0, 50), slice(50, 60))
    with pytest.raises(InputError):
        split_pairs(10, 10)


def test_cache_keys_and_persistence(tmp_path):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    k = request_key("/v1/chat/completions", body)
    assert k == request_key("/v1/chat/completions", dict(reversed(body.items())))
    assert k != request_key("/v1/chat/completions", body | {"temperature": 1})
    c = RequestCache(tmp_path / "c.sqlite")
    c.put(k, "/v1/chat/completions", body, {"model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    c.close()
    c = RequestCache(tmp_path / "c.sqlite")
    assert c.get(k)["usage"]["prompt_tokens"] == 3 and len(c) == 1
    assert c.usage() == [("m", "sync", 3, 1)]
    c.close()


def test_prices():
    t = PriceTable.from_config(None)
    assert t.family("ft:gpt-4.1-mini-2025-04-14:org:x:abc") == ("gpt-4.1-mini", True)
    assert t.family("gpt-4.1-2025-04-14") == ("gpt-4.1", False)
    assert t.inference_cost("gpt-4.1-nano", 1_000_000, 1_000_000, batch=False) == pytest.approx(0.5)
    assert t.inference_cost("gpt-4.1-nano", 1_000_000, 1_000_000, batch=True) == pytest.approx(0.25)
    assert t.inference_cost("smollm2", 10, 10, batch=False) is None
    t2 = PriceTable.from_config({"smollm2": [0, 0, 0, 0, 0]})
    assert t2.inference_cost("smollm2", 10, 10, batch=False) == 0 and t2.version.endswith("+custom")
    with pytest.raises(InputError, match="5 non-negative numbers"):
        PriceTable.from_config({"x": [1, 2]})


@pytest.mark.parametrize("text, match", [
    ('seed = 1\nmodel = "m"\n[contexts]\ncatalog = "c.json"\nn_instiled = 4\n', "unknown key"),
    ('model = "m"\n[contexts]\ncatalog = "c.json"\n', "seed is required"),
    ('seed = 1\n[contexts]\ncatalog = "c.json"\n', "model is required"),
    ('seed = 1\nmodel = "m"\n[contexts]\ncatalog = "missing.json"\n', "not found"),
    ('seed = 1\nmodel = "m"\n[contexts]\ncatalog = "c.json"\n[choices]\nmethod = "vibes"\n', "sample' or 'logprobs"),
    ('seed = 1\nmodel = "m"\n[contexts]\ncatalog = "c.json"\n[choices]\nn_pairs = "50"\n', "n_pairs must be an integer"),
    # every field typed: a number where a string belongs is an error naming the field
    ('seed = 1\nmodel = 4\n[contexts]\ncatalog = "c.json"\n', r"e.toml: model must be a string, got 4"),
    ('seed = 1\nmodel = "m"\nbase_url = 8080\n[contexts]\ncatalog = "c.json"\n', "base_url must be a string"),
    ('seed = 1\nmodel = "m"\nout = 1\n[contexts]\ncatalog = "c.json"\n', "out must be a string"),
    ('seed = 1\nmodel = "m"\n[contexts]\ncatalog = 3\n', r"\[contexts\]: catalog must be a string"),
    ('seed = 1\nmodel = "m"\n[contexts]\ncatalog = "c.json"\nroles = 2\n', "roles must be a string"),
    ('seed = 1\nmodel = "m"\nprices = 3\n[contexts]\ncatalog = "c.json"\n', r"\[prices\] must be a table"),
    ('seed = 1\nmodel = "m"\nmax_usd = "ten"\n[contexts]\ncatalog = "c.json"\n', "max_usd must be a number"),
    ('seed = -1\nmodel = "m"\n[contexts]\ncatalog = "c.json"\n', "seed must be at least 0"),
    ('seed = 1\nmodel = "' + "m" * 300 + '"\n[contexts]\ncatalog = "c.json"\n', "at most 256 characters"),
    ('seed = 1\nmodel = "m"\n[contexts]\ncatalog = "c.json"\n[choices]\nn_pairs = 100000000\n',
     "over the limit of 10,000,000"),
    ('seed = 1\nmodel = "m"\n[contexts]\ncatalog = "c.json"\n[requests]\nconcurrency = 0\n', "at least 1"),
    ('seed = 1\nmodel = "m"\ntemplate = "nope"\n[contexts]\ncatalog = "c.json"\n', "unknown preset"),
    ('seed = 1\nmodel = "m"\n[contexts\n', "not valid TOML"),
])
def test_experiment_file_errors_name_the_problem(tmp_path, text, match):
    (tmp_path / "c.json").write_text("[]")
    (tmp_path / "e.toml").write_text(text)
    with pytest.raises(InputError, match=match):
        load_experiment(tmp_path / "e.toml")
