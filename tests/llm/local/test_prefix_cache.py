"""Shared prompt prefixes run once: the plan (which prompts share which prefix) is the cheapest split of the
sorted prompts, and the logits read through a shared prefix's cache equal whole-prompt forward passes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfinterp.llm.local.prefix import common_prefix, plan_cost, plan_prefixes

from .conftest import ARCHITECTURES, tiny_model

# token sequences over a 3-letter alphabet, so that long shared prefixes are common
seqs_st = st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=7), min_size=0, max_size=7)


def _runs(seqs, order, prefix):
    """The plan's runs: consecutive prompts with the same nonzero prefix of the same tokens."""
    runs, prev = [], None
    for i in order:
        key = (prefix[i], tuple(seqs[i][:prefix[i]])) if prefix[i] else None
        if key is None or key != prev:
            runs.append([])
        runs[-1].append(i)
        prev = key
    return runs


def _brute_force(seqs) -> int:
    """Least tokens run over every split of the sorted prompts into consecutive runs."""
    order = sorted(range(len(seqs)), key=lambda i: tuple(seqs[i]))
    best = sum(map(len, seqs))
    for cuts in itertools.product([0, 1], repeat=max(0, len(order) - 1)):
        total, run = 0, [order[0]]
        for i, cut in zip(order[1:], cuts):
            if cut:
                total += _run_cost(seqs, run)
                run = []
            run.append(i)
        best = min(best, total + _run_cost(seqs, run))
    return best


def _run_cost(seqs, run):
    if len(run) == 1:
        return len(seqs[run[0]])
    p = min(min(common_prefix(seqs[run[0]], seqs[i]) for i in run), min(len(seqs[i]) for i in run) - 1)
    return p + sum(len(seqs[i]) - p for i in run)


@settings(max_examples=150, deadline=None)
@given(seqs_st)
def test_plan_shares_true_prefixes_at_least_cost(seqs):
    order, prefix = plan_prefixes(seqs)
    assert sorted(order) == list(range(len(seqs)))
    assert [tuple(seqs[i]) for i in order] == sorted(tuple(s) for s in seqs)
    for i, s in enumerate(seqs):
        assert 0 <= prefix[i] < len(s)  # at least one token of each prompt is run
    for run in _runs(seqs, order, prefix):
        assert len(run) > 1 or prefix[run[0]] == 0  # a prompt alone shares nothing
        assert len({tuple(seqs[i][:prefix[i]]) for i in run}) == 1
    cost = plan_cost(seqs, order, prefix)
    if seqs:
        assert cost == _brute_force(seqs)  # the cheapest split (2^(n-1) of them tried)
    assert cost <= sum(map(len, seqs))


def test_plan_of_the_paper_shape_shares_each_context():
    """Prompts of two contexts (a shared system message, then per-context text, then the options) run each
    context's prefix once, not only the system message they all share."""
    rng = np.random.default_rng(0)
    system, ctx = [1] * 20, {0: [2] * 30, 1: [3] * 30}
    seqs = [system + ctx[c] + list(rng.integers(10, 99, size=50)) for c in (0, 1) for _ in range(8)]
    order, prefix = plan_prefixes(seqs)
    assert prefix == [50] * 16
    assert plan_cost(seqs, order, prefix) == 2 * 50 + 16 * 50


def test_empty_sequence_is_refused():
    with pytest.raises(ValueError, match="empty"):
        plan_prefixes([[1, 2], []])


@pytest.fixture(scope="module")
def tiny_pair(tiny_dir):
    """The tiny random Llama twice: reading through shared prefixes, and whole prompts."""
    from selfinterp.llm.local.engine import Engine
    from selfinterp.llm.local.model import resolve_model

    shared = Engine(resolve_model(str(tiny_dir), None, where="test"), device="cpu", dtype="float32")
    whole = Engine(shared.source, device="cpu", dtype="float32", tokenizer=shared.tok, model=shared.base,
                   share_prefix=False)
    return shared, whole


def _decision_prompts(engine):
    """Paper-like prompts: 2 contexts x 3 option pairs in both orders, and one prompt alone."""
    out = []
    for q in ("Which car would you buy?", "Which flat would you rent for a year?"):
        for a, b in [(1, 7), (22, 5), (13, 13)]:
            for x, y in [(a, b), (b, a)]:
                out.append([{"role": "system", "content": "Decide on behalf of others."},
                            {"role": "user", "content": f"{q}\nA:\nprice: {x}\nB:\nprice: {y}"}])
    out.append([{"role": "user", "content": "Nothing shared here."}])
    return [engine.render(m) for m in out]


@pytest.mark.parametrize("batch_size", [4, 13])
def test_shared_prefix_logits_equal_whole_prompt_passes(tiny_pair, batch_size):
    """Batches that split a context's prompts, mix contexts and a prompt alone read the same log-probabilities
    as whole prompts batched, and as one unpadded forward pass per prompt (float32)."""
    import torch

    shared, whole = tiny_pair
    # and a short prompt alone, batched with prompts that share a prefix: padded rows that see no token at all
    seqs = shared.encode(_decision_prompts(shared)) + [[0, 5, 6, 7]]  # first in token order
    order, prefix = plan_prefixes(seqs)
    assert sum(p > 0 for p in prefix) == 12 and plan_cost(seqs, order, prefix) < sum(map(len, seqs))
    assert len(seqs[-1]) < min(len(s) - p for s, p in zip(seqs, prefix) if p)
    got = torch.empty((len(seqs), len(shared.tok)))
    seen = []
    for idx, lp in shared.iter_logprobs(shared.base, seqs, batch_size):
        assert len(idx) <= batch_size
        got[idx] = lp
        seen += idx
        if len(seqs) - 1 in idx:
            assert any(prefix[i] for i in idx)
    assert sorted(seen) == list(range(len(seqs)))
    assert torch.isfinite(got).all()
    ref = whole.next_token_logprobs(whole.source.label, seqs)
    assert torch.allclose(got, ref, atol=1e-5, rtol=0)
    with torch.inference_mode():
        for i, s in enumerate(seqs):
            one = torch.log_softmax(shared.base(input_ids=torch.tensor([s])).logits[0, -1].float(), -1)
            assert torch.allclose(got[i], one, atol=1e-5, rtol=0)


def test_sliding_window_model_runs_whole_prompts(tiny_pair):
    """A model whose cache keeps a window, not every key and value, shares no prefix and reads the logits of
    one forward pass per prompt (its window, 4 tokens, is shorter than the prompts)."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    from selfinterp.llm.local.engine import Engine

    tok = tiny_pair[0].tok
    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, sliding_window=4,
                        pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    eng = Engine(tiny_pair[0].source, device="cpu", dtype="float32", tokenizer=tok,
                 model=MistralForCausalLM(cfg).eval())
    assert eng._cache_kwarg() is None
    seqs = eng.encode(_decision_prompts(eng)[:4])
    got = eng.logprobs_of(eng.base, seqs)
    with torch.inference_mode():
        for i, s in enumerate(seqs):
            one = torch.log_softmax(eng.base(input_ids=torch.tensor([s])).logits[0, -1].float(), -1)
            assert torch.allclose(got[i], one, atol=1e-5, rtol=0)


def test_shared_prefix_through_a_lora_adapter(tiny_dir, tiny_pair):
    """Through a PEFT model (a LoRA adapter with nonzero weights, and with the adapter disabled) the shared
    prefix reads what whole prompts read."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from selfinterp.llm.local.engine import Engine, quiet_peft

    shared, _ = tiny_pair
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    with quiet_peft():
        peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.eval()
    eng = Engine(shared.source, device="cpu", dtype="float32", tokenizer=shared.tok, model=base)
    seqs = eng.encode(_decision_prompts(eng))
    for ctx in (lambda: peft.disable_adapter(), None):
        with ctx() if ctx else torch.inference_mode():
            eng.share_prefix = True
            got = eng.logprobs_of(peft, seqs)
            eng.share_prefix = False
            ref = eng.logprobs_of(peft, seqs)
        assert torch.allclose(got, ref, atol=1e-5, rtol=0)
    assert not torch.allclose(got, shared.logprobs_of(shared.base, seqs), atol=1e-3)  # the adapter counts



@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_other_architectures_read_the_logits_of_single_passes(tiny_pair, arch):
    """Left-padded batches (through shared prefixes where the model's cache keeps every key and value) read
    the log-probabilities of one unpadded forward pass per prompt, in each family."""
    import torch

    from selfinterp.llm.local.engine import Engine

    tok = tiny_pair[0].tok
    eng = Engine(tiny_pair[0].source, device="cpu", dtype="float32", tokenizer=tok, model=tiny_model(arch, tok))
    seqs = eng.encode(_decision_prompts(eng))
    got = eng.logprobs_of(eng.base, seqs)
    # the Gemma models keep a window in some layers: whole prompts; the others share their prefixes
    assert (eng._cache_kwarg() is None) == arch.startswith("gemma")
    with torch.inference_mode():
        for i, s in enumerate(seqs):
            one = torch.log_softmax(eng.base(input_ids=torch.tensor([s])).logits[0, -1].float(), -1)
            assert torch.allclose(got[i], one, atol=1e-5, rtol=0), (arch, i, (got[i] - one).abs().max())
