"""Parsing model replies: A/B choices, logprobs and JSON weight reports.

Parsers never guess: a reply is either read unambiguously or marked invalid
with the reason; the raw reply is always kept by the caller.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["ReportParse", "parse_report", "parse_choice", "choice_probabilities", "normalise_key"]

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(?P<body>.*?)\n?```$", re.DOTALL)
_SEP = re.compile(r"[\s_\-]+")


def normalise_key(key: str) -> str:
    """Key as compared with attribute names: case folded, spaces/underscores/hyphens removed."""
    return _SEP.sub("", key).casefold()


@dataclass(frozen=True)
class ReportParse:
    """A parsed report: ``weights`` (K,) in attribute order, or None with ``error`` saying why."""

    weights: np.ndarray | None
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.weights is not None


def _strip_fence(text: str) -> str:
    text = text.strip()
    m = _FENCE.match(text)
    return m["body"].strip() if m else text


class _Pairs(list):
    """A JSON object as its (key, value) pairs: a key given twice is seen, not overwritten."""


def _reject_constant(name):
    raise ValueError(f"{name} is not a number")


def parse_report(text: str | None, names: Sequence[str], *, bounds=(-100.0, 100.0)) -> ReportParse:
    """Read a JSON weight report for attributes ``names``.

    Accepts surrounding whitespace and one Markdown code fence; keys match the
    names up to case, spaces, underscores and hyphens.  Invalid (with a reason):
    no reply, not JSON, not an object, a missing, extra or ambiguous key, a value
    that is not a finite number (numeric strings are read), or one outside ``bounds``.
    """
    if text is None or not text.strip():
        return ReportParse(None, "empty reply")
    body = _strip_fence(text)
    try:
        obj = json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_Pairs)
    except (json.JSONDecodeError, ValueError) as exc:
        return ReportParse(None, f"not JSON ({exc})")
    except RecursionError:
        return ReportParse(None, "not JSON (nested too deeply)")
    if not isinstance(obj, _Pairs):
        return ReportParse(None, f"JSON {type(obj).__name__}, not an object")
    wanted = {normalise_key(n): i for i, n in enumerate(names)}
    if len(wanted) != len(names):
        raise ValueError(f"attribute names {list(names)} are not distinct once normalised")
    out = np.full(len(names), np.nan)
    for key, value in obj:
        i = wanted.get(normalise_key(str(key)))
        if i is None:
            return ReportParse(None, f"unexpected key {key!r}")
        if not math.isnan(out[i]):
            return ReportParse(None, f"key {key!r} given twice")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            shown = dict(value) if isinstance(value, _Pairs) else value
            return ReportParse(None, f"value of {key!r} is not a number: {shown!r}"[:200])
        try:
            v = float(value.strip()) if isinstance(value, str) else float(value)
        except ValueError:
            return ReportParse(None, f"value of {key!r} is not a number: {value!r}")
        if not math.isfinite(v):
            return ReportParse(None, f"value of {key!r} is not finite")
        if not bounds[0] <= v <= bounds[1]:
            return ReportParse(None, f"value of {key!r} ({v}) outside [{bounds[0]}, {bounds[1]}]")
        out[i] = v
    if missing := [n for n, i in wanted.items() if math.isnan(out[i])]:
        return ReportParse(None, f"missing key(s) {[names[wanted[m]] for m in missing]}")
    return ReportParse(out)


def _is_label(token: str, label: str) -> bool:
    return token.strip().rstrip(".").casefold() == label.casefold()


def parse_choice(text: str | None, label_a: str = "A", label_b: str = "B") -> int | None:
    """1 for option A, 0 for option B, None if the reply is neither (whitespace, case and a final period tolerated)."""
    if text is None:
        return None
    if _is_label(text, label_a):
        return 1
    if _is_label(text, label_b):
        return 0
    return None


def choice_probabilities(top_logprobs: Sequence[dict], label_a: str = "A", label_b: str = "B"):
    """(P(A), P(B), leftover) from the first token's ``top_logprobs``.

    Every variant of a label (leading space, case, final period) counts towards
    it; the leftover is the mass of all other tokens, those beyond the top-k included.
    """
    pa = pb = 0.0
    for item in top_logprobs:
        p = math.exp(float(item["logprob"]))
        if _is_label(item["token"], label_a):
            pa += p
        elif _is_label(item["token"], label_b):
            pb += p
    leftover = max(0.0, 1.0 - pa - pb)
    return pa, pb, leftover
