"""The local backend's parts: the answer-only loss mask, batched logits, replies, settings and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfinterp.errors import InputError, MissingExtraError

from .conftest import ARCHITECTURES, local_experiment, tiny_model

MSGS = [{"role": "system", "content": "Decide for others."},
        {"role": "user", "content": "Option A or option B?"},
        {"role": "assistant", "content": "A"}]


def test_loss_mask_covers_the_answer_only(smol_tokenizer):
    from selfinterp.llm.local.train import IGNORE, encode_example

    tok = smol_tokenizer
    ids, labels = encode_example(tok, MSGS)
    assert len(ids) == len(labels)
    # the ids are exactly the chat template's rendering of the example
    assert tok.decode(ids) == tok.apply_chat_template(MSGS, tokenize=False)
    kept = [i for i, lab in enumerate(labels) if lab != IGNORE]
    # one contiguous run at the end: the answer "A" (token 49) and the template's end of turn
    assert kept == list(range(kept[0], len(ids)))
    assert [labels[i] for i in kept] == [ids[i] for i in kept]
    assert tok.decode([ids[i] for i in kept]) == "A<|im_end|>\n"
    assert ids[kept[0]] == 49
    # everything before is the prompt with its generation prompt, masked
    assert tok.decode(ids[:kept[0]]) == tok.apply_chat_template(MSGS[:2], tokenize=False, add_generation_prompt=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# answers as the experiment's: labels and JSON (ASCII and Latin letters; SmolLM2's GGUF vocabulary does not
# round-trip every code point, e.g. unassigned planes)
@given(answer=st.text(st.characters(min_codepoint=32, max_codepoint=0x17F), min_size=1, max_size=40)
       .filter(lambda s: s.strip() and "<|" not in s))
def test_loss_mask_property(smol_tokenizer, answer):
    from selfinterp.llm.local.train import IGNORE, encode_example

    msgs = MSGS[:2] + [{"role": "assistant", "content": answer}]
    ids, labels = encode_example(smol_tokenizer, msgs)
    answer_ids = [t for t, lab in zip(ids, labels) if lab != IGNORE]
    assert smol_tokenizer.decode(answer_ids) == answer + "<|im_end|>\n"
    assert labels[:len(ids) - len(answer_ids)] == [IGNORE] * (len(ids) - len(answer_ids))


def test_template_injects_its_own_system_prompt(smol_tokenizer):
    """SmolLM2's template adds a system prompt of its own when a request has none (the paper's prompts have one)."""
    text = smol_tokenizer.apply_chat_template(MSGS[1:2], tokenize=False, add_generation_prompt=True)
    assert "You are a helpful AI assistant named SmolLM" in text
    text = smol_tokenizer.apply_chat_template(MSGS[:2], tokenize=False, add_generation_prompt=True)
    assert "SmolLM" not in text


# Gemma 2's chat template (google/gemma-2-2b-it's tokenizer_config.json): it raises on a system message
GEMMA2 = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
          "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
          "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}")


def test_template_that_refuses_a_system_message(smol_tokenizer):
    """Gemma 2's template raises on a system message: it opens the first user turn instead, and the loss mask
    still covers the answer only."""
    import copy

    from selfinterp.llm.local.model import check_chat_template, refuses_system, render_chat
    from selfinterp.llm.local.train import IGNORE, encode_example

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = GEMMA2
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template(MSGS[:2], tokenize=False)
    assert refuses_system(tok) and not refuses_system(smol_tokenizer)
    check_chat_template(tok, where="test")
    prompt = render_chat(tok, MSGS[:2], add_generation_prompt=True)
    assert prompt == (f"{tok.bos_token}<start_of_turn>user\nDecide for others.\n\nOption A or option B?<end_of_turn>\n"
                      "<start_of_turn>model\n")
    ids, labels = encode_example(tok, MSGS)
    kept = [i for i, lab in enumerate(labels) if lab != IGNORE]
    assert kept == list(range(kept[0], len(ids)))
    assert tok.decode([ids[i] for i in kept]) == "A<end_of_turn>\n"
    assert tok.decode(ids[:kept[0]]) == prompt
    # a template that takes a system message renders it as given
    assert render_chat(smol_tokenizer, MSGS[:2], add_generation_prompt=True) == smol_tokenizer.apply_chat_template(
        MSGS[:2], tokenize=False, add_generation_prompt=True)


def test_model_whose_template_refuses_a_system_message_runs(tmp_path, shared, tiny_dir):
    """The backend answers the paper's prompts (system message first) on such a model, says so once, and
    records it in the manifest's description."""
    from selfinterp.design import draw_option_pairs
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.contexts import draw_contexts, load_catalog
    from selfinterp.llm.local import make_local_client
    from selfinterp.llm.prompts import PAPER

    d = _with_template(tiny_dir, tmp_path / "m", GEMMA2)
    exp = load_experiment(local_experiment(tmp_path, shared, str(d)))
    said = []
    client = make_local_client(exp, echo=said.append)
    assert len(said) == 1 and "refuses a system message" in said[0]
    assert client.describe()["system_message"] == "first user turn"
    rng = np.random.default_rng(0)
    (ctx,) = draw_contexts(load_catalog(shared / "candidate_scenarios.json"), None, 1, rng)
    (a,), (b,) = draw_option_pairs(ctx, 1, rng)
    msgs = PAPER.decision_messages(ctx, a, b)
    assert msgs[0]["role"] == "system"
    r = client.chat.completions.create(model=exp.model, messages=msgs, temperature=0, max_tokens=1, logprobs=True,
                                       top_logprobs=2).model_dump()
    assert {"A", "B"} <= {t["token"] for t in r["choices"][0]["logprobs"]["content"][0]["top_logprobs"]}


# the part of Qwen3's chat template that matters here: an answer after the last user turn is rendered after a
# thinking block (closed empty when it has no reasoning), and enable_thinking=false closes an empty one in the
# generation prompt, where the model would otherwise open its own
QWEN3 = ("{%- for m in messages %}{%- if m.role == 'assistant' %}"
         "{{ '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + m.content + '<|im_end|>\\n' }}"
         "{%- else %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
         "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
         "{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}"
         "{%- endif %}{%- endif %}")


def test_template_variables_of_a_thinking_model(smol_tokenizer):
    """Qwen3's template puts an empty thinking block between the generation prompt and the answer unless
    enable_thinking is false: an error naming the fix without it; with it, the answer follows the prompt at
    once and the loss mask covers the answer only."""
    import copy

    from selfinterp.llm.local.model import check_chat_template, render_chat
    from selfinterp.llm.local.train import IGNORE, encode_example

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = QWEN3
    with pytest.raises(InputError, match=r"between the generation prompt and the assistant's answer.*"
                                         r"chat_template_kwargs = \{ enable_thinking = false \}"):
        check_chat_template(tok, where="test")
    off = {"enable_thinking": False}
    check_chat_template(tok, off, where="test")
    prompt = render_chat(tok, MSGS[:2], off, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    ids, labels = encode_example(tok, MSGS, template_kwargs=off)
    kept = [i for i, lab in enumerate(labels) if lab != IGNORE]
    assert tok.decode([ids[i] for i in kept]) == "A<|im_end|>\n" and tok.decode(ids[:kept[0]]) == prompt
    # a prefilled answer continues after the same closed block
    pre = render_chat(tok, MSGS[:2] + [{"role": "assistant", "content": '{"'}], off, continue_final_message=True)
    assert pre == prompt + '{"'


# the date logic of Llama 3.1 to 3.3's chat template, around plain turns
LLAMA3_DATE = ("{%- if not date_string is defined %}{%- if strftime_now is defined %}"
               "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = '26 Jul 2024' %}"
               "{%- endif %}{%- endif %}{{ bos_token }}<|start_header_id|>system<|end_header_id|>\\n\\n"
               "Today Date: {{ date_string }}\\n\\n{{ messages[0]['content'] }}<|eot_id|>"
               "{%- for m in messages[1:] %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\\n\\n"
               "{{ m['content'] }}<|eot_id|>{%- endfor %}"
               "{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\\n\\n{%- endif %}")


def test_template_that_writes_todays_date(smol_tokenizer):
    """Llama 3's template writes today's date into every prompt unless date_string is given: an error naming
    the fix, and with it the prompts are the same on any day."""
    import copy

    from selfinterp.llm.local.model import check_chat_template, render_chat

    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = LLAMA3_DATE
    with pytest.raises(InputError, match=r"today's date into every prompt.*date_string = \"26 Jul 2024\""):
        check_chat_template(tok, where="test")
    pinned = {"date_string": "26 Jul 2024"}
    check_chat_template(tok, pinned, where="test")
    assert "Today Date: 26 Jul 2024" in render_chat(tok, MSGS[:2], pinned, add_generation_prompt=True)


def test_generation_stops_at_the_templates_end_of_turn(smol_tokenizer):
    """The special token that closes an assistant's turn, as the template renders it: SmolLM2's <|im_end|>,
    Gemma's <end_of_turn> where the tokenizer has it as a special token; none where the marker is plain text."""
    import copy

    from selfinterp.llm.local.model import end_of_turn_id

    assert end_of_turn_id(smol_tokenizer) == smol_tokenizer.convert_tokens_to_ids("<|im_end|>")
    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = GEMMA2
    assert end_of_turn_id(tok) is None  # "<end_of_turn>" is several plain tokens of SmolLM2's vocabulary
    tok.add_special_tokens({"additional_special_tokens": ["<end_of_turn>"]})
    assert end_of_turn_id(tok) == tok.convert_tokens_to_ids("<end_of_turn>") >= len(smol_tokenizer)


def _with_template(tiny_dir, d, template):
    import shutil

    shutil.copytree(tiny_dir, d)
    (d / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    (d / "tokenizer_config.json").write_text(json.dumps(cfg | {"chat_template": template}))
    return d


def test_run_with_template_variables(tmp_path, shared, tiny_dir, torch1, capsys, monkeypatch):
    """A whole run on a model with Qwen3's template: stopped before any training without enable_thinking =
    false; with it, every stage runs, its jobs train on prompts that close the thinking block, and the setting
    is part of the experiment's identity (absent, the identity is as before the setting existed)."""
    from selfinterp.cli import main as cli_main
    from selfinterp.llm.local import train
    from selfinterp.llm.local.settings import parse_local

    seen, encode = [], train._encode_file  # the template variables each training file is rendered with
    monkeypatch.setattr(train, "_encode_file", lambda tok, path, kw: seen.append(kw) or encode(tok, path, kw))
    d = _with_template(tiny_dir, tmp_path / "m", QWEN3)
    _bad(tmp_path, shared, str(d), "enable_thinking = false")
    (good := tmp_path / "good").mkdir()
    path = local_experiment(good, shared, str(d), n_native=0, local="""
        max_steps = 1
        chat_template_kwargs = { enable_thinking = false }
        """)
    assert cli_main(["run", str(path)]) == 0
    out = good / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["local"]["settings"]["chat_template_kwargs"] == {"enable_thinking": False}
    job = json.loads((out / "local" / "jobs" / manifest["stages"]["instill"]["job_id"] / "job.json").read_text())
    assert job["status"] == "succeeded" and job["identity"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert len(seen) == 3 and all(kw == {"enable_thinking": False} for kw in seen)  # instill and two folds
    assert "chat_template_kwargs" not in parse_local({}, where="t").identity()
    assert parse_local({"chat_template_kwargs": {"enable_thinking": False}}, where="t").identity() != \
        parse_local({}, where="t").identity()


@pytest.fixture(scope="module")
def tiny_engine(tiny_dir):
    from selfinterp.llm.local.engine import Engine
    from selfinterp.llm.local.model import resolve_model

    return Engine(resolve_model(str(tiny_dir), None, where="test"), device="cpu", dtype="float32")


def _direct_pa(engine, prompt):
    """P(A)/(P(A)+P(B)) from one unpadded forward pass of the bare transformers model."""
    import torch

    ids = engine.tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode(), engine.using(engine.source.label) as model:
        logits = model(input_ids=ids).logits[0, -1].double()
    lp = torch.log_softmax(logits, -1)
    a, b = engine.label_ids
    return float(torch.exp(lp[a]) / (torch.exp(lp[a]) + torch.exp(lp[b]))), float(1 - lp[[a, b]].exp().sum())


def _prompts(engine, n):
    rng = np.random.default_rng(0)
    words = ["cheap", "fast", "quiet", "large", "safe", "near", "new", "warm"]
    return [engine.render([{"role": "user", "content": " ".join(rng.choice(words, size=rng.integers(2, 30)))}])
            for _ in range(n)]


def test_batched_left_padded_logits_equal_single_passes(tiny_engine):
    prompts = _prompts(tiny_engine, 6)
    lp = tiny_engine.next_token_logprobs(tiny_engine.source.label, prompts).double()
    a, b = tiny_engine.label_ids
    for i, p in enumerate(prompts):
        pa, _ = _direct_pa(tiny_engine, p)
        got = float(lp[i, a].exp() / (lp[i, a].exp() + lp[i, b].exp()))
        assert got == pytest.approx(pa, abs=1e-5)


@pytest.mark.parametrize("arch", ("llama",) + ARCHITECTURES)
def test_training_loss_on_the_answer_logits_equals_the_full_loss(tiny_engine, arch):
    """The collated batch keeps the logits of the answer positions only; its loss and gradients are the
    model's loss over every position with the prompt masked (right-padded rows of different lengths), in
    each family (Gemma's soft-capped logits too)."""
    import torch

    from selfinterp.llm.local.train import IGNORE, _collate, answer_logits_only, encode_example

    tok = tiny_engine.tok
    model = tiny_engine.base if arch == "llama" else tiny_model(arch, tok)
    rows = []
    for k, answer in enumerate(["A", "B", '{"price": 3, "size": -40}']):
        msgs = [{"role": "user", "content": "pick " * (3 + 7 * k)}, {"role": "assistant", "content": answer}]
        ids, labels = encode_example(tok, msgs)
        rows.append({"input_ids": ids, "labels": labels})
    only = answer_logits_only(model)
    # the text models' loss is transformers' shared one; Gemma 3's image-and-text model has one of its own
    # before transformers 5 (which ignores shift_labels): every position's logits there
    assert only or arch == "gemma3-vision"
    batch = _collate(tok.pad_token_id, only)(rows)
    if only:
        n = int((batch["labels"] != IGNORE).sum())
        assert batch["logits_to_keep"].numel() < batch["input_ids"].shape[1] // 2  # the prompts' logits skipped
        assert int((batch["shift_labels"] != IGNORE).sum()) == n  # every answer token is still trained
    else:
        assert set(batch) == {"input_ids", "labels", "attention_mask"}

    last_down = [w for name, w in model.named_parameters() if name.endswith("mlp.down_proj.weight")][-1]

    def loss_and_grad(**kw):
        model.zero_grad()
        loss = model(**kw).loss
        loss.backward()
        return loss.detach(), last_down.grad.clone()

    model.train()
    try:
        short, g_short = loss_and_grad(**batch)
        full, g_full = loss_and_grad(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                     labels=batch["labels"])
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    assert torch.allclose(short, full, rtol=1e-6, atol=1e-6)
    assert torch.allclose(g_short, g_full, rtol=1e-5, atol=1e-8) and g_full.abs().max() > 0


def test_labels_always_returned_and_replies_parse(tiny_dir, tmp_path, shared):
    """A logprobs reply lists both labels even outside the top k; the pipeline's parser reads P(A) from it."""
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.elicit import ChoiceSpec, read_choices
    from selfinterp.llm.local import make_local_client
    from selfinterp.llm.prompts import PAPER

    exp = load_experiment(local_experiment(tmp_path, shared, str(tiny_dir)))
    client = make_local_client(exp, echo=lambda *_: None)
    eng = client.engine
    prompts = _prompts(eng, 3)
    bodies = [{"model": exp.model, "messages": [{"role": "user", "content": p}], "temperature": 0, "max_tokens": 1,
               "logprobs": True, "top_logprobs": 1} for p in prompts]
    replies = [client.chat.completions.create(**b).model_dump(mode="json", exclude_unset=True) for b in bodies]
    for r, b in zip(replies, bodies):
        top = r["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        assert {"A", "B"} <= {t["token"] for t in top}
        lp = eng.next_token_logprobs(exp.model, [eng.render(b["messages"])])[0]
        a, bb = eng.label_ids
        assert next(t["logprob"] for t in top if t["token"] == "A") == pytest.approx(float(lp[a]), abs=1e-6)
    y, det = read_choices(replies, 3, PAPER, ChoiceSpec(both_orders=False))
    assert np.all((y > 0) & (y < 1)) and np.all(det["leftover"] > 0.5)  # a random model spreads its mass


def test_async_batcher_answers_as_the_sync_client(tiny_dir, tmp_path, shared):
    import asyncio

    from selfinterp.llm.cache import RequestCache
    from selfinterp.llm.client import Requester
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.local import make_local_client

    exp = load_experiment(local_experiment(tmp_path, shared, str(tiny_dir)))
    client = make_local_client(exp, echo=lambda *_: None)
    bodies = [{"model": exp.model, "messages": [{"role": "user", "content": f"Is {i} odd?"}], "temperature": 0,
               "max_tokens": 1 + i % 3, **({"logprobs": True, "top_logprobs": 2} if i % 2 else {})}
              for i in range(11)]
    calls = []
    real = client._b.complete_many
    client._b.complete_many = lambda bs: calls.append(len(bs)) or real(bs)

    async def go():
        async with client.asynchronous() as ac:
            return await Requester(ac, RequestCache(tmp_path / "c.sqlite"), concurrency=8).chat_many(bodies)

    got = asyncio.run(go())
    assert sum(calls) == 11 and max(calls) > 1  # the concurrent requests were gathered
    for b, r in zip(bodies, got):
        want = real([b])[0]
        assert r["choices"][0]["message"]["content"] == want["choices"][0]["message"]["content"]
        assert r["usage"] == want["usage"]


# ---------------------------------------------------------------------- bad input, each before any training


def _bad(tmp_path, shared, model, match, **kw):
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.pipeline import ExperimentRun

    with pytest.raises(InputError, match=match):
        exp = load_experiment(local_experiment(tmp_path, shared, model, **kw))
        ExperimentRun(exp, echo=lambda *_: None).close()
    assert not (tmp_path / "out" / "local" / "jobs").exists() or not any((tmp_path / "out" / "local" / "jobs").iterdir())


def test_bad_model_paths(tmp_path, shared, torch1):
    _bad(tmp_path, shared, str(tmp_path / "nowhere.gguf"), "does not exist")
    (tmp_path / "empty").mkdir()
    _bad(tmp_path, shared, str(tmp_path / "empty"), "no config.json")
    (tmp_path / "fake.gguf").write_text("not a model")
    _bad(tmp_path, shared, str(tmp_path / "fake.gguf"), "neither a model folder nor a GGUF")
    _bad(tmp_path, shared, "not a model id", "neither a file, a folder nor a hub id")


def test_gguf_of_an_unloadable_architecture(tmp_path, shared, torch1):
    import gguf

    path = tmp_path / "odd.gguf"
    w = gguf.GGUFWriter(str(path), "rwkv-unheard")
    w.add_tensor("x", np.zeros(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    _bad(tmp_path, shared, str(path), "architecture 'rwkv-unheard' cannot be loaded by transformers")


def test_missing_local_extra(tmp_path, shared, torch1, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    from selfinterp.cli import main as cli_main
    from selfinterp.llm.config import load_experiment

    path = local_experiment(tmp_path, shared, "any/model")
    with pytest.raises(MissingExtraError, match=r"\['peft'\].*pip install 'selfinterp\[local\]'"):
        load_experiment(path)
    assert cli_main(["run", str(path)]) == 2


def test_chat_template_without_assistant_turn(tmp_path, shared, tiny_dir):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(tiny_dir, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    tpl = "{% for m in messages %}{% if m['role'] != 'assistant' %}<|im_start|>{{ m['content'] }}<|im_end|>{% endif %}{% endfor %}"
    (d / "chat_template.jinja").unlink(missing_ok=True)
    cfg["chat_template"] = tpl
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    _bad(tmp_path, shared, str(d), "no assistant turn")


def test_labels_must_be_single_tokens(tmp_path, shared, tiny_dir):
    extra = 'template = { label_a = "Alpha-one", label_b = "Beta-two", decision = "{question} {option_a} {option_b}" }'
    _bad(tmp_path, shared, str(tiny_dir), "label 'Alpha-one' is .* tokens", extra=extra)


def test_more_memory_than_the_device_has(tmp_path, shared, tiny_dir, monkeypatch):
    from selfinterp.llm.local import model

    monkeypatch.setattr(model, "available_memory", lambda device: 1000)
    _bad(tmp_path, shared, str(tiny_dir), r"needs about .* GiB in float32 on cpu, which has 0.0 GiB free")


@pytest.mark.parametrize("local, extra, match", [
    ("bogus = 1", "", r"unknown key\(s\) \['bogus'\] in \[local\]"),
    ('dtype = "int4"', "", "dtype must be one of"),
    ("lora_r = 0", "", "lora_r must be positive"),
    ('device = "tpu"', "", "device must be"),
    ('target_modules = "layers.(2"', "", "target_modules 'layers.\\(2' is not a regular expression"),
    ('chat_template_kwargs = "enable_thinking"', "", "chat_template_kwargs must be a table"),
    ("chat_template_kwargs = { tools = [1] }", "", "chat_template_kwargs must be a table"),
    ("", 'base_url = "http://127.0.0.1:1/v1"', "base_url is for the openai backend"),
])
def test_bad_local_settings(tmp_path, shared, torch1, local, extra, match):
    from selfinterp.llm.config import load_experiment

    with pytest.raises(InputError, match=match):
        load_experiment(local_experiment(tmp_path, shared, "any/model", local=local, extra=extra))


def test_bad_stage_hyperparameters(tmp_path, shared, torch1):
    from selfinterp.llm.config import load_experiment

    path = local_experiment(tmp_path, shared, "any/model")
    text = path.read_text().replace("[instill]\n", "[instill]\nhyperparameters = { warmup = 3 }\n")
    path.write_text(text)
    with pytest.raises(InputError, match=r"\[instill\] hyperparameters: hyperparameter 'warmup' is not known"):
        load_experiment(path)
    path.write_text(text.replace("warmup = 3", "n_epochs = 0"))
    with pytest.raises(InputError, match="n_epochs must be a positive int"):
        load_experiment(path)


def test_openai_fingerprint_unchanged_by_the_backend_fields(tmp_path, shared):
    """Existing output directories of the server path keep their fingerprint."""
    from ..conftest import write_experiment
    from selfinterp.llm.config import load_experiment

    exp = load_experiment(write_experiment(tmp_path, shared))
    assert exp.backend == "openai" and exp.local is None
    import dataclasses
    import hashlib

    d = {k: v for k, v in dataclasses.asdict(exp).items()
         if k not in {"base_url", "out", "concurrency", "max_retries", "timeout", "batch", "poll_first", "poll_max",
                      "prices", "source", "catalog", "roles", "max_usd", "backend", "local",
                      "stop_if_all_invalid"}}
    from selfinterp.llm.manifest import sha256_file

    d["catalog_sha256"] = sha256_file(exp.catalog)
    d["roles_sha256"] = sha256_file(exp.roles)
    assert exp.fingerprint() == hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def test_gradient_checkpointing_learns_the_same_adapter(tiny_dir, tmp_path, shared, torch1, monkeypatch):
    """`gradient_checkpointing = true` recomputes activations in the backward pass: the same job learns the
    same adapter (to float rounding), it is not part of the job's identity (the same job id, so a job killed
    for lack of memory resumes with it), and the base model is left without it."""
    from safetensors.torch import load_file

    from selfinterp.design import context_rngs, draw_option_pairs
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.local import make_local_client
    from selfinterp.llm.local.train import read_job
    from selfinterp.llm.pipeline import design, stream

    from .conftest import new_job, rule_file

    from transformers import Trainer

    steps = []  # per training step: whether the model recomputes activations
    step = Trainer.training_step

    def training_step(self, model, *a, **kw):
        steps.append(any(getattr(m, "gradient_checkpointing", False) for m in model.modules()))
        return step(self, model, *a, **kw)

    monkeypatch.setattr(Trainer, "training_step", training_step)
    adapters, ids = [], []
    for on in (False, True):
        steps.clear()
        d = tmp_path / str(on)
        d.mkdir()
        exp = load_experiment(local_experiment(d, shared, str(tiny_dir), n_native=0, local=(
            f"batch_size = 2\nmax_steps = 3\nlearning_rate = 1e-2\ngradient_checkpointing = {str(on).lower()}")))
        contexts, _ = design(exp)
        pairs = [draw_option_pairs(c, 3, g) for c, g in zip(contexts, context_rngs(stream(2, "t"), len(contexts)))]
        path = rule_file(exp, contexts, "AB", pairs, d / "train.jsonl")
        client = make_local_client(exp, echo=lambda *_: None)
        job, folder = new_job(client._b, exp, path, suffix="gc", seed=1)
        done = client._b.retrieve_job(job.id)
        assert done.status == "succeeded" and steps == [on] * 3
        rec = read_job(folder)
        assert rec["gradient_checkpointing"] is on
        events = (folder / "events.jsonl").read_text()
        assert ("gradient checkpointing" in events) is on
        assert not any(getattr(m, "gradient_checkpointing", False) for m in client.engine.release_adapters().modules())
        adapters.append(load_file(str(client._b.root / rec["adapter"] / "adapter_model.safetensors")))
        ids.append(job.id)
    assert ids[0] == ids[1]
    assert adapters[0].keys() == adapters[1].keys()
    for k in adapters[0]:
        torch1.testing.assert_close(adapters[0][k], adapters[1][k], rtol=1e-4, atol=1e-6)
    assert any(adapters[0][k].abs().max() > 0 for k in adapters[0] if "lora_B" in k)  # it trained


@pytest.mark.parametrize("value", ["1", '"yes"'])
def test_gradient_checkpointing_must_be_a_boolean(tmp_path, shared, torch1, value):
    from selfinterp.llm.config import load_experiment

    with pytest.raises(InputError, match=r"\[local\] gradient_checkpointing must be true or false"):
        load_experiment(local_experiment(tmp_path, shared, "any/model", local=f"gradient_checkpointing = {value}"))


def test_a_failed_job_is_trained_again_only_when_created_again(tiny_dir, tmp_path, shared, torch1, monkeypatch):
    """A job whose training failed stays failed when polled, in this run or the next (nothing trains behind
    the user's back); created again (what --retry-failed does), it is queued and trains."""
    from selfinterp.design import context_rngs, draw_option_pairs
    from selfinterp.llm.config import load_experiment
    from selfinterp.llm.local import client as local_client
    from selfinterp.llm.local import make_local_client
    from selfinterp.llm.pipeline import design, stream

    from .conftest import new_job, rule_file

    exp = load_experiment(local_experiment(tmp_path, shared, str(tiny_dir), n_native=0,
                                           local="batch_size = 2\nmax_steps = 2"))
    contexts, _ = design(exp)
    pairs = [draw_option_pairs(c, 2, g) for c, g in zip(contexts, context_rngs(stream(2, "t"), len(contexts)))]
    path = rule_file(exp, contexts, "AB", pairs, tmp_path / "train.jsonl")
    calls = []
    real = local_client.train_job

    def failing(folder, engine):
        calls.append(folder)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(local_client, "train_job", failing)
    b = make_local_client(exp, echo=lambda *_: None)._b
    job, folder = new_job(b, exp, path, suffix="f", seed=1)
    got = b.retrieve_job(job.id)
    assert got.status == "failed" and "RuntimeError: out of memory" in got.error["message"]
    assert b.retrieve_job(job.id).status == "failed"
    again = make_local_client(exp, echo=lambda *_: None)._b  # the next run
    assert again.retrieve_job(job.id).status == "failed" and len(calls) == 1
    monkeypatch.setattr(local_client, "train_job", real)
    assert new_job(again, exp, path, suffix="f", seed=1)[0].status == "queued"
    assert again.retrieve_job(job.id).status == "succeeded" and len(calls) == 1
