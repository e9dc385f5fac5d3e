"""Elicitation: choices (sampled at temperature 0, or logprobs) and self-reports.

Request bodies are built first from pre-drawn option pairs, so that what is
asked never depends on the order in which replies come back; replies are then
read into arrays for the estimator, the raw reply always kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..design import Context
from ..errors import InputError
from .parse import choice_probabilities, parse_choice, parse_report
from .prompts import PromptTemplate

__all__ = ["ChoiceSpec", "choice_bodies", "read_choices", "report_bodies", "read_reports", "first_text"]


@dataclass(frozen=True)
class ChoiceSpec:
    """How choices are asked.

    method : "sample" (temperature 0, the answer read) or "logprobs"
        (``max_tokens=1``, ``top_logprobs``, P(A) from the label variants).
    both_orders : ask each pair as (A, B) and as (B, A), averaging out position bias.
    """

    method: str = "logprobs"
    both_orders: bool = True
    top_logprobs: int = 10
    max_tokens: int = 1
    seed: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.method not in ("sample", "logprobs"):
            raise InputError(f"choices.method must be 'sample' or 'logprobs', got {self.method!r}")
        if not 1 <= self.top_logprobs <= 20:
            raise InputError(f"choices.top_logprobs must lie in 1..20, got {self.top_logprobs}")
        if self.max_tokens < 1:
            raise InputError(f"choices.max_tokens must be at least 1, got {self.max_tokens}")


def choice_bodies(template: PromptTemplate, model: str, context: Context, a, b, spec: ChoiceSpec) -> list[dict]:
    """Request bodies for the pairs ``a``, ``b`` (T, K): T bodies, or 2T (all (A,B) then all (B,A))."""
    base = {"model": model, "temperature": 0, "max_tokens": spec.max_tokens, **spec.extra}
    if spec.seed is not None:
        base["seed"] = spec.seed
    if spec.method == "logprobs":
        base |= {"max_tokens": 1, "logprobs": True, "top_logprobs": spec.top_logprobs}
    orders = [(a, b), (b, a)] if spec.both_orders else [(a, b)]
    return [base | {"messages": template.decision_messages(context, x, y)}
            for first, second in orders for x, y in zip(first, second)]


def first_text(response: dict) -> str | None:
    """The reply text of a chat completion (None if absent)."""
    try:
        return response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None


def _p_first(response: dict, template: PromptTemplate, spec: ChoiceSpec):
    """(P(first-listed option), leftover mass, error) of one reply."""
    if spec.method == "sample":
        c = parse_choice(first_text(response), template.label_a, template.label_b)
        return (None, None, "not a label") if c is None else (float(c), 0.0, None)
    try:
        top = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        return None, None, "no logprobs in reply"
    pa, pb, left = choice_probabilities(top, template.label_a, template.label_b)
    if pa + pb <= 0:
        return None, left, "no label among the top logprobs"
    return pa / (pa + pb), left, None


def read_choices(responses: Sequence[dict], n_pairs: int, template: PromptTemplate, spec: ChoiceSpec):
    """Soft labels from the replies to :func:`choice_bodies`.

    Returns
    -------
    y : (T,) P(option A) in [0, 1], averaged over the valid orders (NaN where none is valid)
    detail : dict of (n_orders, T) arrays: ``p_first`` (P of the option listed first),
        ``leftover`` (probability mass on neither label), ``error`` (reason or "")
    """
    n_orders = 2 if spec.both_orders else 1
    if len(responses) != n_orders * n_pairs:
        raise InputError(f"expected {n_orders * n_pairs} replies, got {len(responses)}")
    p_first = np.full((n_orders, n_pairs), np.nan)
    leftover = np.full((n_orders, n_pairs), np.nan)
    error = np.full((n_orders, n_pairs), "", dtype=object)
    for j, r in enumerate(responses):
        o, t = divmod(j, n_pairs)
        p, left, err = _p_first(r, template, spec)
        p_first[o, t] = np.nan if p is None else p
        leftover[o, t] = np.nan if left is None else left
        error[o, t] = err or ""
    # in the swapped order the first-listed option is B, so it votes 1 - p for A
    p_a = p_first.copy()
    if n_orders == 2:
        p_a[1] = 1.0 - p_first[1]
    valid = ~np.isnan(p_a)
    n_valid = valid.sum(axis=0)
    y = np.where(n_valid > 0, np.nansum(np.where(valid, p_a, 0.0), axis=0) / np.maximum(n_valid, 1), np.nan)
    return y, {"p_first": p_first, "leftover": leftover, "error": error}


def report_bodies(template: PromptTemplate, model: str, context: Context, a, b, *, temperature: float = 0.0,
                  max_tokens: int = 200, seed: int | None = None) -> list[dict]:
    """One introspection request per pair (``a``, ``b`` (R, K))."""
    base = {"model": model, "temperature": temperature, "max_tokens": max_tokens}
    if seed is not None:
        base["seed"] = seed
    return [base | {"messages": template.introspection_messages(context, x, y)} for x, y in zip(a, b)]


def read_reports(responses: Sequence[dict], context: Context):
    """(reports (R, K) with NaN rows where invalid, raw replies (R,), errors (R,) "" where valid)."""
    names = [a.name for a in context.attributes]
    reports = np.full((len(responses), len(names)), np.nan)
    raw, errors = [], []
    for i, r in enumerate(responses):
        text = first_text(r)
        parsed = parse_report(text, names)
        raw.append(text)
        errors.append(parsed.error or "")
        if parsed.valid:
            reports[i] = parsed.weights
    return reports, raw, errors
