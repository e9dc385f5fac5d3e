"""The paper's preset reproduces its released fine-tuning files byte for byte."""

from __future__ import annotations

import json

import pytest

from selfinterp.errors import InputError
from selfinterp.llm.finetune_data import dumps_jsonl, introspection_examples, preference_examples
from selfinterp.llm.prompts import PAPER, load_template

from .paper import paper_contexts, parse_pair

FILES_PREFS = ["instill_100_prefs.jsonl", "instill_100_prefs_val.jsonl"]
FILES_INTRO = ["instilled_weights_50_training.jsonl", "instilled_weights_50_test.jsonl",
               "instilled_weights_50_test_test_last.jsonl", "instilled_weights_50_training_test_last.jsonl",
               "instilled_weights_100_training.jsonl"]


def _rebuild(shared, name, make):
    contexts = paper_contexts(shared)
    raw = (shared / name).read_text(encoding="utf-8")
    out = []
    for line in raw.split("\n"):
        rec = json.loads(line)
        question, a, b = parse_pair(rec["messages"][1]["content"])
        ctx, w = contexts[question]
        out.extend(make(PAPER, ctx, w, a[None], b[None]))
    return raw, dumps_jsonl(out)


@pytest.mark.parametrize("name", FILES_PREFS)
def test_preference_files_byte_for_byte(shared_data, name):
    # prompts rebuilt from the context and option values, answers from the target
    # weights by the deterministic rule: every byte of the released file, answers included
    raw, rebuilt = _rebuild(shared_data, name, preference_examples)
    assert rebuilt == raw


@pytest.mark.parametrize("name", FILES_INTRO)
def test_introspection_files_byte_for_byte(shared_data, name):
    raw, rebuilt = _rebuild(shared_data, name, introspection_examples)
    assert rebuilt == raw


def test_user_template_renders_and_checks_placeholders():
    t = load_template({"decision": "{question}\n1) {option_a}\n2) {option_b}\nAnswer {label_a} or {label_b}.",
                       "label_a": "1", "label_b": "2", "option_line": "{name}={value}"})
    assert t.system == PAPER.system and t.name == "custom"
    from selfinterp.design import Attribute, Context
    ctx = Context("c", (Attribute("x", "kg", 0, 1), Attribute("y", "", 0, 2)), "Which?")
    msgs = t.decision_messages(ctx, [0.5, 1], [0.25, 2])
    assert msgs[1]["content"] == "Which?\n1) x=0.5\ny=1.0\n2) x=0.25\ny=2.0\nAnswer 1 or 2."
    with pytest.raises(InputError, match="option_b"):
        load_template({"decision": "{question} {option_a}"})
    with pytest.raises(InputError, match="unknown placeholder"):
        load_template({"decision": "{question} {option_a} {option_b} {oops}"})
    with pytest.raises(InputError, match="unknown key"):
        load_template({"decisoin": "x"})
    with pytest.raises(InputError, match="unknown preset"):
        load_template("gpt-paper")
