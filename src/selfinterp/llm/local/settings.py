"""The ``[local]`` table of an experiment file: how the local backend loads, trains and elicits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ...errors import InputError
from .model import ModelSource

__all__ = ["LocalSettings", "parse_local", "JOB_HYPERPARAMETERS", "LOCAL_KEYS"]

# per-stage overrides allowed in [instill] / [introspection] hyperparameters (OpenAI's names and the local ones)
JOB_HYPERPARAMETERS = {"n_epochs": int, "batch_size": int, "learning_rate_multiplier": float, "learning_rate": float,
                       "max_steps": int}
_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class LocalSettings:
    """Settings of the local backend (see docs/local.md); defaults follow the open-weight ports: rank 8 on all
    linear layers."""

    device: str = "auto"
    dtype: str = "auto"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: str | tuple = "all-linear"
    learning_rate: float = 1e-4
    n_epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 8
    seed: int | None = None
    save_steps: int = 50
    eval_batch_size: int = 16
    threads: int | None = None
    training: str = "in-process"  # or "external": jobs are trained by `python -m selfinterp.llm.local.train`
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, slower
    chat_template_kwargs: dict = field(default_factory=dict)  # the chat template's variables (Qwen3: enable_thinking)
    source: ModelSource | None = None

    # what changes results (the experiment's fingerprint); where and how fast it runs does not
    _NOT_IDENTITY = ("device", "eval_batch_size", "threads", "source", "save_steps", "training",
                     "gradient_checkpointing")

    def identity(self) -> dict:
        d = asdict(self)
        for k in self._NOT_IDENTITY:
            d.pop(k, None)
        if not d["chat_template_kwargs"]:  # none: the identity (and job ids) of runs from before the setting
            del d["chat_template_kwargs"]
        return d

    def job_hyperparameters(self, overrides: dict, *, where: str) -> dict:
        """The hyperparameters of one job: these settings, with a stage's overrides."""
        hp = {"lora_r": self.lora_r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout,
              "target_modules": self.target_modules if isinstance(self.target_modules, str)
              else list(self.target_modules), "learning_rate": self.learning_rate, "n_epochs": self.n_epochs,
              "max_steps": self.max_steps, "batch_size": self.batch_size, "save_steps": self.save_steps}
        check_job_hyperparameters(overrides, where=where)
        for k, v in overrides.items():
            if k == "learning_rate_multiplier":
                hp["learning_rate"] = self.learning_rate * v
            else:
                hp[k] = v
        return hp


def check_job_hyperparameters(overrides: dict, *, where: str) -> None:
    for k, v in overrides.items():
        kind = JOB_HYPERPARAMETERS.get(k)
        if kind is None:
            raise InputError(f"{where}: hyperparameter {k!r} is not known to the local backend; "
                             f"known: {sorted(JOB_HYPERPARAMETERS)}")
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) or not isinstance(v, kind) or v <= 0:
            raise InputError(f"{where}: hyperparameter {k} must be a positive {kind.__name__}, got {v!r}")


LOCAL_KEYS = {f for f in LocalSettings.__dataclass_fields__ if f != "source"}


def parse_local(table: dict, *, where: str) -> LocalSettings:
    """A :class:`LocalSettings` from the ``[local]`` table; every key and value checked."""
    if not isinstance(table, dict):
        raise InputError(f"{where}: [local] must be a table")
    if unknown := set(table) - LOCAL_KEYS:
        raise InputError(f"{where}: unknown key(s) {sorted(unknown)} in [local]; known: {sorted(LOCAL_KEYS)}")
    d = LocalSettings()
    kinds = {"device": str, "dtype": str, "training": str, "lora_r": int, "lora_alpha": int, "lora_dropout": float,
             "learning_rate": float, "n_epochs": int, "max_steps": int, "batch_size": int, "seed": int,
             "save_steps": int, "eval_batch_size": int, "threads": int, "gradient_checkpointing": bool}
    out = {}
    for k, v in table.items():
        if kinds.get(k) is bool:
            if not isinstance(v, bool):
                raise InputError(f"{where}: [local] {k} must be true or false, got {v!r}")
            out[k] = v
            continue
        if k == "chat_template_kwargs":
            if not isinstance(v, dict) or not all(isinstance(x, (str, int, float, bool)) for x in v.values()):
                raise InputError(f"{where}: [local] chat_template_kwargs must be a table of the chat template's "
                                 f"variables (strings, numbers, true or false), e.g. {{ enable_thinking = false }}; "
                                 f"got {v!r}")
            out[k] = dict(v)
            continue
        if k == "target_modules":
            if isinstance(v, str) and v:
                if v != "all-linear":  # a regular expression over module names, as PEFT reads it
                    import re

                    try:
                        re.compile(v)
                    except re.error as exc:
                        raise InputError(f"{where}: [local] target_modules {v!r} is not a regular expression "
                                         f"({exc})") from None
                out[k] = v
            elif isinstance(v, list) and v and all(isinstance(x, str) and x for x in v):
                out[k] = tuple(v)
            else:
                raise InputError(f"{where}: [local] target_modules must be \"all-linear\" or a list of module "
                                 f"names, got {v!r}")
            continue
        kind = kinds[k]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) or not isinstance(v, kind):
            raise InputError(f"{where}: [local] {k} must be {kind.__name__}, got {v!r}")
        if kind in (int, float) and (v < 0 if k in ("lora_dropout", "seed") else v <= 0):
            raise InputError(f"{where}: [local] {k} must be {'at least 0' if k in ('lora_dropout', 'seed') else 'positive'}"
                             f", got {v!r}")
        out[k] = v
    if out.get("dtype", "auto") not in _DTYPES:
        raise InputError(f"{where}: [local] dtype must be one of {list(_DTYPES)}, got {out['dtype']!r}")
    dev = out.get("device", "auto")
    if not (dev in ("auto", "cpu") or dev == "cuda" or dev.startswith("cuda:") and dev[5:].isdigit()):
        raise InputError(f"{where}: [local] device must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", got {dev!r}")
    if out.get("training", "in-process") not in ("in-process", "external"):
        raise InputError(f"{where}: [local] training must be \"in-process\" or \"external\", got {out['training']!r}")
    if out.get("lora_dropout", 0.0) >= 1:
        raise InputError(f"{where}: [local] lora_dropout must be below 1, got {out['lora_dropout']}")
    return replace(d, **out)
