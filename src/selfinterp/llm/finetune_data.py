"""Fine-tuning data: preference instillation and introspection training, checked before upload.

Each example is an OpenAI chat fine-tuning record ``{"messages": [...]}``.
Files are written as the paper's released files are: one JSON object per line
(``json.dumps`` defaults), lines joined by newlines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..agents import utility
from ..design import Context
from ..errors import InputError, require
from .prompts import PromptTemplate, weights_json

__all__ = ["preference_examples", "introspection_examples", "deterministic_choice", "dumps_jsonl",
           "write_jsonl", "validate_examples", "count_chat_tokens", "encoding_for", "two_fold",
           "split_pairs", "TokenReport"]

MIN_EXAMPLES = 10
# OpenAI's per-example limit for the gpt-4.1 family (tokens, prompt and answer together)
MAX_EXAMPLE_TOKENS = 65_536
_ROLES = {"system", "user", "assistant"}


def deterministic_choice(context: Context, weights, a, b) -> np.ndarray:
    """True where option A has strictly higher utility (ties go to B, as in the paper); shape (n_pairs,)."""
    return utility(a, weights, context.lo, context.hi) > utility(b, weights, context.lo, context.hi)


def preference_examples(template: PromptTemplate, context: Context, weights, a, b) -> list[dict]:
    """One example per pair: the decision prompt, the assistant answering the preferred label.

    ``weights`` (K,) target weights; ``a``, ``b`` (n_pairs, K) raw option values.
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    choose_a = deterministic_choice(context, weights, a, b)
    return [{"messages": template.decision_messages(context, ai, bi)
             + [{"role": "assistant", "content": template.label_a if ca else template.label_b}]}
            for ai, bi, ca in zip(a, b, choose_a)]


def introspection_examples(template: PromptTemplate, context: Context, weights, a, b) -> list[dict]:
    """One example per pair: the introspection prompt, the assistant answering the JSON weights."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    answer = weights_json(context, weights)
    return [{"messages": template.introspection_messages(context, ai, bi)
             + [{"role": "assistant", "content": answer}]} for ai, bi in zip(a, b)]


def dumps_jsonl(records: Sequence[dict]) -> str:
    """Records as JSON lines, byte for byte as the paper's released files."""
    return "\n".join(json.dumps(r) for r in records)


def write_jsonl(records: Sequence[dict], path) -> Path:
    """Write ``records`` atomically (a partial file never replaces a complete one)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(dumps_jsonl(records), encoding="utf-8")
    tmp.replace(path)
    return path


def encoding_for(model: str) -> str:
    """The tokenizer encoding used to count tokens for ``model`` (o200k for current OpenAI models)."""
    m = model.removeprefix("ft:")
    if m.startswith(("gpt-4-", "gpt-3.5", "gpt-4:")) or m == "gpt-4":
        return "cl100k_base"
    return "o200k_base"


def count_chat_tokens(messages: Sequence[dict], encoder) -> int:
    """Tokens of a chat example: content tokens plus the chat format's overhead.

    The overhead (3 tokens per message, 1 per role, 3 priming the reply) is the
    count OpenAI documents for its chat models.
    """
    total = 3
    for m in messages:
        total += 3 + len(encoder.encode_ordinary(m["role"])) + len(encoder.encode_ordinary(m["content"]))
    return total


@dataclass(frozen=True)
class TokenReport:
    """Token counts of a checked fine-tuning file."""

    n_examples: int
    tokens: tuple[int, ...]
    encoding: str

    @property
    def total(self) -> int:
        return int(sum(self.tokens))

    def as_dict(self) -> dict:
        return {"n_examples": self.n_examples, "total_tokens": self.total, "max_tokens": max(self.tokens),
                "encoding": self.encoding}


def validate_examples(records: Sequence[dict], *, model: str, where: str = "fine-tuning data",
                      min_examples: int = MIN_EXAMPLES, max_tokens: int = MAX_EXAMPLE_TOKENS) -> TokenReport:
    """Check chat fine-tuning records before any upload; return their token counts.

    Raises :class:`InputError` naming the example (1-based line) for: fewer than
    ``min_examples`` examples, a record that is not ``{"messages": [...]}``, a
    message without a known role or string content, no user message, a last
    message that is not the assistant's, an empty answer, or an example longer
    than ``max_tokens``.
    """
    if len(records) < min_examples:
        raise InputError(f"{where}: {len(records)} examples, fine-tuning needs at least {min_examples}")
    quicktok = require("quicktok", "tokens")
    enc_name = encoding_for(model)
    enc = quicktok.get_encoding(enc_name)
    counts = []
    for i, rec in enumerate(records, start=1):
        w = f"{where}, line {i}"
        if not isinstance(rec, dict) or set(rec) != {"messages"} or not isinstance(rec["messages"], list):
            raise InputError(f"{w}: expected an object with exactly one key 'messages' holding a list")
        msgs = rec["messages"]
        for j, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
                raise InputError(f"{w}, message {j}: needs a role in {sorted(_ROLES)} and string content")
        if not any(m["role"] == "user" for m in msgs):
            raise InputError(f"{w}: no user message")
        if not msgs or msgs[-1]["role"] != "assistant" or not msgs[-1]["content"].strip():
            raise InputError(f"{w}: the last message must be a non-empty assistant answer")
        n = count_chat_tokens(msgs, enc)
        if n > max_tokens:
            raise InputError(f"{w}: {n} tokens, over the limit of {max_tokens}")
        counts.append(n)
    return TokenReport(len(records), tuple(counts), enc_name)


def two_fold(n_contexts: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's two folds: the first half of the contexts and the second half (indices)."""
    if n_contexts < 2:
        raise InputError(f"a two-fold split needs at least 2 contexts, got {n_contexts}")
    half = n_contexts // 2
    return np.arange(half), np.arange(half, n_contexts)


def split_pairs(n_pairs: int, n_validation: int) -> tuple[slice, slice]:
    """Within a context: the first pairs train, the last ``n_validation`` validate."""
    if not 0 <= n_validation < n_pairs:
        raise InputError(f"validation pairs ({n_validation}) must be fewer than all pairs ({n_pairs})")
    return slice(0, n_pairs - n_validation), slice(n_pairs - n_validation, n_pairs)
