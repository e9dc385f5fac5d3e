"""One open-weight model in this process: batched next-token log-probabilities, greedy generation, adapters.

Prompts are rendered by the model's own chat template.  Forward passes are
batched and left-padded (positions counted from each prompt's first real
token, so a padded prompt reads the same logits as alone).  A fine-tuned
"model" is a LoRA adapter of the base model, named ``ft:local:SUFFIX:HASH``
after the hash of its content; the base model is the same weights with every
adapter disabled.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path

from ...errors import InputError
from .model import (ModelSource, check_chat_template, choose_device, choose_dtype, label_token_ids, load_model,
                    load_tokenizer)

__all__ = ["Engine", "adapter_name", "adapter_hash", "save_adapter", "quiet_peft"]

ADAPTER_PREFIX = "ft:local:"


@contextmanager
def quiet_peft():
    """PEFT reads transformers' deprecated ``is_gradient_checkpointing``; that FutureWarning is theirs, not the user's."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def adapter_hash(folder) -> str:
    """SHA-256 of an adapter's weights file and its (sanitised) config, together."""
    folder = Path(folder)
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def adapter_name(suffix: str, digest: str) -> str:
    return f"{ADAPTER_PREFIX}{suffix}:{digest[:16]}"


def save_adapter(peft_model, folder, *, base_label: str, adapter: str = "default") -> str:
    """Write the adapter's weights and config (base model named by ``base_label``, never a path); its hash."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in
             get_peft_model_state_dict(peft_model, adapter_name=adapter, save_embedding_layers=False).items()}
    save_file(state, str(folder / "adapter_model.safetensors"))
    cfg = peft_model.peft_config[adapter].to_dict()
    cfg["base_model_name_or_path"] = base_label
    cfg["revision"] = None
    cfg = json.loads(json.dumps(cfg, default=sorted))  # sets (target_modules) as sorted lists
    (folder / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True), encoding="utf-8")
    return adapter_hash(folder)


class Engine:
    """The base model, its tokenizer and the adapters loaded so far.

    Parameters
    ----------
    source : ModelSource
    device, dtype : str
        "auto" or explicit ("cpu", "cuda", "cuda:1"; "float32", "bfloat16", "float16").
    adapters_dir : path
        Where adapters are stored, one folder per content hash.
    labels : the two choice labels (each must be one token).
    """

    def __init__(self, source: ModelSource, *, device: str = "auto", dtype: str = "auto", adapters_dir=None,
                 labels=("A", "B"), where: str = "model", threads: int | None = None, tokenizer=None, model=None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.source = source
        self.device = choose_device(device)
        self.dtype = choose_dtype(dtype, self.device)
        self.where = where
        self.tok = tokenizer if tokenizer is not None else load_tokenizer(source, where=where)
        check_chat_template(self.tok, where=f"{where}: model {source.label!r}")
        self.label_ids = label_token_ids(self.tok, labels, where=f"{where}: model {source.label!r}")
        self._base = model
        self.adapters_dir = Path(adapters_dir) if adapters_dir else None
        self._peft = None  # a PeftModel around the base once an adapter is loaded
        self._loaded: set[str] = set()

    # ------------------------------------------------------------------ model and adapters
    @property
    def base(self):
        """The base model (loaded on first use); adapters are removed while training."""
        if self._base is None:
            self._base = load_model(self.source, device=self.device, dtype=self.dtype, where=self.where)
        return self._base

    def release_adapters(self):
        """The bare base model, every loaded adapter removed (they are reloaded from disk when asked for)."""
        if self._peft is not None:
            self._base = self._peft.unload()
            self._peft = None
            self._loaded.clear()
        return self.base

    def adapter_folder(self, name: str) -> Path:
        if self.adapters_dir is None or not name.startswith(ADAPTER_PREFIX):
            raise InputError(f"model {name!r} is neither the base model {self.source.label!r} nor a local adapter")
        folder = self.adapters_dir / name.rsplit(":", 1)[1]
        if not (folder / "adapter_model.safetensors").is_file():
            raise InputError(f"model {name!r}: no adapter at {folder.name} in the run's adapter store")
        return folder

    @contextmanager
    def using(self, name: str):
        """The model to run for ``name``: the base (adapters disabled) or one adapter."""
        if name == self.source.label:
            if self._peft is None:
                yield self.base
            else:
                with self._peft.disable_adapter():
                    yield self._peft
            return
        folder = self.adapter_folder(name)
        key = folder.name
        if self._peft is None:
            from peft import PeftModel

            with quiet_peft():
                self._peft = PeftModel.from_pretrained(self.base, str(folder), adapter_name=key, is_trainable=False)
            self._peft.eval()
        elif key not in self._loaded:
            self._peft.load_adapter(str(folder), adapter_name=key, is_trainable=False)
        self._loaded.add(key)
        self._peft.set_adapter(key)
        yield self._peft

    # ------------------------------------------------------------------ prompts
    def render(self, messages) -> str:
        """The prompt text for ``messages``; a final assistant message is continued, not closed."""
        if messages and messages[-1].get("role") == "assistant":
            return self.tok.apply_chat_template(messages, tokenize=False, continue_final_message=True)
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _batch(self, prompts):
        import torch

        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        pos = (torch.cumsum(mask, dim=1) - 1).clamp(min=0)
        return ids, mask, pos

    # ------------------------------------------------------------------ inference
    def next_token_logprobs(self, name: str, prompts: list[str]):
        """(n, vocab) float32 log-probabilities of the token after each prompt (one left-padded batch)."""
        with self.using(name) as model:
            return self.logprobs_of(model, prompts)

    def logprobs_of(self, model, prompts: list[str]):
        """:meth:`next_token_logprobs` of a given model object (the base, or a PEFT model in memory)."""
        import torch

        ids, mask, pos = self._batch(prompts)
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=1)
        return torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu()

    def generate(self, name: str, prompts: list[str], max_new_tokens: int) -> list[tuple[list[int], bool]]:
        """Greedy continuations: per prompt (new token ids, stopped at an end token)."""
        import torch

        ids, mask, _ = self._batch(prompts)
        stop = {t for t in (self.tok.eos_token_id, self.tok.convert_tokens_to_ids("<|im_end|>")) if t is not None
                and t != self.tok.unk_token_id}
        with torch.inference_mode(), self.using(name) as model:
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, pad_token_id=self.tok.pad_token_id,
                                 eos_token_id=sorted(stop))
        res = []
        for row in out[:, ids.shape[1]:].tolist():
            toks, stopped = [], False
            for t in row:
                if t in stop:
                    stopped = True
                    break
                toks.append(t)
            res.append((toks, stopped))
        return res
