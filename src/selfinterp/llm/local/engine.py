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
                    end_of_turn_id, load_tokenizer, render_chat)

__all__ = ["Engine", "adapter_name", "adapter_hash", "save_adapter", "quiet_peft", "unload"]

ADAPTER_PREFIX = "ft:local:"


@contextmanager
def quiet_peft():
    """PEFT's warnings that are not the user's: it reads transformers' deprecated ``is_gradient_checkpointing``,
    and older releases, saving a checkpoint, warn that its config names no base model (selfinterp names none
    there on purpose: the stored adapters name the base model as the experiment does)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message="Could not find a config file in", category=UserWarning)
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


def unload(peft_model):
    """The base model of ``peft_model`` with every adapter removed, and no trace of them (older PEFT leaves
    ``peft_config`` on it, and a later ``get_peft_model`` would then stack a second set of adapters)."""
    base = peft_model.unload()
    if "peft_config" in vars(base):
        del base.peft_config
    return base


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
    share_prefix : bool
        Run a prefix that prompts of a batch share once (its keys and values copied to each), and only the
        rest of each prompt; False runs every prompt whole.  Both read the same logits (to float rounding).
    chat_template_kwargs : dict
        The chat template's own variables (e.g. ``{"enable_thinking": False}`` for Qwen3).
    """

    def __init__(self, source: ModelSource, *, device: str = "auto", dtype: str = "auto", adapters_dir=None,
                 labels=("A", "B"), where: str = "model", threads: int | None = None, tokenizer=None, model=None,
                 share_prefix: bool = True, chat_template_kwargs: dict | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.source = source
        self.device = choose_device(device)
        self.dtype = choose_dtype(dtype, self.device)
        self.where = where
        self.tok = tokenizer if tokenizer is not None else load_tokenizer(source, where=where)
        self.chat_kwargs = dict(chat_template_kwargs or {})  # the chat template's own variables
        check_chat_template(self.tok, self.chat_kwargs, where=f"{where}: model {source.label!r}")
        self.label_ids = label_token_ids(self.tok, labels, where=f"{where}: model {source.label!r}")
        # generation stops at the end of the assistant's turn, or at the end of the text
        self.stop_ids = {t for t in (self.tok.eos_token_id, end_of_turn_id(self.tok, self.chat_kwargs))
                         if t is not None and t != self.tok.unk_token_id}
        self._base = model
        self.adapters_dir = Path(adapters_dir) if adapters_dir else None
        self._peft = None  # a PeftModel around the base once an adapter is loaded
        self._loaded: set[str] = set()
        self.share_prefix = share_prefix  # run a prefix shared by prompts of a batch once (see iter_logprobs)
        self._cache_kw: str | None = None

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
            self._base = unload(self._peft)
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
            return render_chat(self.tok, messages, self.chat_kwargs, continue_final_message=True)
        return render_chat(self.tok, messages, self.chat_kwargs, add_generation_prompt=True)

    def encode(self, prompts: list[str]) -> list[list[int]]:
        """The token ids of rendered prompts (no special tokens added: the chat template has them)."""
        return self.tok(list(prompts), add_special_tokens=False)["input_ids"]

    def _ids(self, prompts) -> list[list[int]]:
        prompts = list(prompts)
        return self.encode(prompts) if prompts and isinstance(prompts[0], str) else [list(p) for p in prompts]

    def _left_padded(self, seqs: list[list[int]], offsets=None):
        """(ids, mask, positions) of ``seqs`` left-padded; positions count real tokens from ``offsets`` (0)."""
        import torch

        width = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in seqs], dtype=torch.long)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=torch.long)
        pos = (torch.cumsum(mask, dim=1) - 1).clamp(min=0)
        if offsets is not None:
            pos = pos + torch.tensor(offsets, dtype=torch.long)[:, None]
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def _batch(self, prompts):
        return self._left_padded(self._ids(prompts))

    # ------------------------------------------------------------------ inference
    def next_token_logprobs(self, name: str, prompts):
        """(n, vocab) float32 log-probabilities of the token after each prompt (text, or token ids)."""
        with self.using(name) as model:
            return self.logprobs_of(model, prompts)

    def logprobs_of(self, model, prompts):
        """:meth:`next_token_logprobs` of a given model object (the base, or a PEFT model in memory)."""
        import torch

        seqs = self._ids(prompts)
        out = torch.empty((len(seqs), 0))
        for idx, lp in self.iter_logprobs(model, seqs, batch_size=max(1, len(seqs))):
            if out.shape[1] == 0:
                out = torch.empty((len(seqs), lp.shape[1]), dtype=lp.dtype)
            out[idx] = lp
        return out

    def iter_logprobs(self, model, seqs: list[list[int]], batch_size: int):
        """Yield (indices into ``seqs``, their (k, vocab) float32 next-token log-probabilities), batch by batch.

        With ``share_prefix`` (the default), prompts are taken in token order and a
        prefix shared by several of them (:func:`~selfinterp.llm.local.prefix.plan_prefixes`)
        is run once per batch; its keys and values are copied to each of its prompts, and
        only the rest of each prompt runs.  Every batch is left-padded; positions count
        real tokens, so each prompt reads the logits it reads alone.
        """
        import torch

        from .prefix import plan_prefixes

        if self.share_prefix and self._cache_kwarg():
            order, prefix = plan_prefixes(seqs)
        else:
            order, prefix = sorted(range(len(seqs)), key=lambda i: len(seqs[i])), [0] * len(seqs)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            with torch.inference_mode():
                logits = self._last_logits(model, [seqs[i] for i in idx], [prefix[i] for i in idx])
            yield idx, torch.log_softmax(logits.float(), dim=-1).cpu()

    def _cache_kwarg(self) -> str | None:
        """The forward's name for a cache of keys and values, where prefixes can be shared (plain layers only)."""
        if self._cache_kw is None:
            import inspect

            params = inspect.signature(type(self.base).forward).parameters
            kw = "cache" if "cache" in params else "past_key_values" if "past_key_values" in params else ""
            try:
                from transformers import DynamicCache
                from transformers.cache_utils import DynamicLayer

                layers = getattr(DynamicCache(config=self.base.config), "layers", None)
            except (ImportError, TypeError):  # an older transformers' cache: whole prompts
                layers = None
            # sliding-window or recurrent layers keep other states than every key and value: no sharing
            if layers is None or any(type(x) is not DynamicLayer for x in layers):
                kw = ""
            self._cache_kw = kw
        return self._cache_kw or None

    def _last_logits(self, model, seqs: list[list[int]], prefix: list[int]):
        """(n, vocab) last-position logits; prompt i's first ``prefix[i]`` tokens run once per distinct prefix."""
        import torch

        if not any(prefix):
            ids, mask, pos = self._left_padded(seqs)
            return model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False,
                         logits_to_keep=1).logits[:, -1, :]
        from transformers import DynamicCache

        kw = self._cache_kwarg()
        keys = {}  # distinct prefixes, in order of first use
        for s, p in zip(seqs, prefix):
            if p:
                keys.setdefault(tuple(s[:p]), len(keys))
        pids, pmask, ppos = self._left_padded([list(k) for k in keys])
        cache = DynamicCache(config=model.config)
        model(input_ids=pids, attention_mask=pmask, position_ids=ppos, use_cache=True, logits_to_keep=1,
              **{kw: cache})
        row = torch.tensor([keys[tuple(s[:p])] if p else 0 for s, p in zip(seqs, prefix)], device=pids.device)
        has = torch.tensor([1 if p else 0 for p in prefix], device=pids.device)
        sids, smask, spos = self._left_padded([s[p:] for s, p in zip(seqs, prefix)], offsets=prefix)
        # each prompt's copy of its prefix's keys and values (a prompt without one masks them all)
        mine = DynamicCache([(x.keys[row], x.values[row]) for x in cache.layers], config=model.config)
        mask = torch.cat([pmask[row] * has[:, None], smask], dim=1)
        return model(input_ids=sids, attention_mask=mask, position_ids=spos, use_cache=True, logits_to_keep=1,
                     **{kw: mine}).logits[:, -1, :]

    def generate(self, name: str, prompts, max_new_tokens: int) -> list[tuple[list[int], bool]]:
        """Greedy continuations of prompts (text, or token ids): per prompt (new token ids, stopped at an end token)."""
        import torch

        ids, mask, _ = self._batch(prompts)
        with torch.inference_mode(), self.using(name) as model:
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, pad_token_id=self.tok.pad_token_id,
                                 eos_token_id=sorted(self.stop_ids))
        res = []
        for row in out[:, ids.shape[1]:].tolist():
            toks, stopped = [], False
            for t in row:
                if t in self.stop_ids:
                    stopped = True
                    break
                toks.append(t)
            res.append((toks, stopped))
        return res
