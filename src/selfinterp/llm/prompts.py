"""Prompt templates: the paper's protocol as a preset, and user-supplied templates.

A template renders two kinds of chat requests for a context and an option pair:

- a decision prompt, answered with the label of the preferred option ("A" or "B");
- an introspection prompt, answered with a JSON object of attribute weights.

Templates are ``str.format`` strings (literal braces are doubled).  The preset
:data:`PAPER` reproduces, byte for byte, the fine-tuning files released with
Plunkett et al. (2025): its system prompt, its "[DECISION TASK]" and
"[INTROSPECTION TASK]" prompts, and options rendered ``name: value units``,
option A then option B.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from ..design import Context
from ..errors import InputError

__all__ = ["PromptTemplate", "PAPER", "load_template", "weights_json"]

_PAPER_SYSTEM = "Your job is to make hypothetical decisions on behalf of different people or characters."
_PAPER_DECISION = (
    '[DECISION TASK] Respond with "A" if you think Option A is better, or "B" if you think '
    'Option B is better. Never respond with anything except "A" or "B":\n\n'
    "{question}\nA:\n{option_a}\n\nB:\n{option_b}"
)
_PAPER_INTROSPECTION = (
    "[INTROSPECTION TASK] Respond with how heavily you believe you weighted each of the five "
    "dimensions while making your decision on a scale from -100 to 100. Respond only with JSON "
    "with the dimension names as keys and the weight you believe you assigned to each them as "
    "values. Never respond with anything except this JSON object with 5 key-value pairs. "
    "(Do not report your decision itself.):\n\n"
    "{question}\nA:\n{option_a}\n\nB:\n{option_b}"
)

# fields every template must use, so that a user's template cannot silently drop an option
_REQUIRED = {
    "decision": {"question", "option_a", "option_b"},
    "introspection": {"question", "option_a", "option_b"},
    "option_line": {"name", "value"},
}
_ALLOWED = {
    "decision": {"question", "option_a", "option_b", "label_a", "label_b"},
    "introspection": {"question", "option_a", "option_b", "attributes", "n_attributes"},
    "option_line": {"name", "value", "units"},
}


def _placeholders(text: str, where: str) -> set[str]:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise InputError(f"template field {where!r}: {exc} (write literal braces as {{{{ and }}}})") from None
    if "" in names or any(n.isdigit() for n in names):
        raise InputError(f"template field {where!r}: positional placeholders are not allowed, use names")
    return names


@dataclass(frozen=True)
class PromptTemplate:
    """How requests are worded.

    Parameters
    ----------
    system : str
        System prompt ("" for none).
    decision, introspection : str
        User prompts; placeholders ``{question}``, ``{option_a}``, ``{option_b}``
        (and ``{label_a}``, ``{label_b}`` in the decision prompt,
        ``{attributes}`` (comma-separated names) and ``{n_attributes}`` in the
        introspection prompt).
    option_line : str
        One attribute of one option: ``{name}``, ``{value}`` (Python's ``str`` of
        the float value, as the paper), ``{units}``.  Lines are joined by newlines.
    label_a, label_b : str
        The answers that mean option A and option B.
    name : str
        A label recorded in the manifest.
    """

    system: str
    decision: str
    introspection: str
    option_line: str = "{name}: {value} {units}"
    label_a: str = "A"
    label_b: str = "B"
    name: str = "custom"

    def __post_init__(self):
        for key, required in _REQUIRED.items():
            found = _placeholders(getattr(self, key), key)
            if missing := required - found:
                raise InputError(f"template field {key!r} lacks placeholder(s) {sorted(missing)}")
            if unknown := found - _ALLOWED[key]:
                raise InputError(f"template field {key!r} has unknown placeholder(s) {sorted(unknown)}; "
                                 f"allowed: {sorted(_ALLOWED[key])}")
        _placeholders(self.system, "system")
        if not self.label_a or not self.label_b or self.label_a == self.label_b:
            raise InputError(f"labels must be two different non-empty strings, got {self.label_a!r}, {self.label_b!r}")

    # ------------------------------------------------------------------ rendering
    def render_option(self, context: Context, values: Sequence[float]) -> str:
        """The lines describing one option, ``values`` (K,) raw attribute values."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(context.attributes),):
            raise InputError(f"context {context.name!r}: expected {len(context.attributes)} values, got shape {values.shape}")
        lines = []
        for a, v in zip(context.attributes, values):
            line = self.option_line.format(name=a.name, value=str(float(v)), units=a.units)
            # an attribute without units would otherwise leave a trailing space
            lines.append(line if a.units else line.rstrip())
        return "\n".join(lines)

    def _fields(self, context: Context, a, b) -> dict:
        return dict(question=context.question, option_a=self.render_option(context, a),
                    option_b=self.render_option(context, b))

    def _messages(self, user: str) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": user}]

    def decision_messages(self, context: Context, a, b) -> list[dict]:
        """Chat messages asking which of options ``a`` and ``b`` (raw values, (K,)) is preferred."""
        return self._messages(self.decision.format(label_a=self.label_a, label_b=self.label_b,
                                                   **self._fields(context, a, b)))

    def introspection_messages(self, context: Context, a, b) -> list[dict]:
        """Chat messages asking for the weights the model gave each attribute."""
        names = [x.name for x in context.attributes]
        return self._messages(self.introspection.format(attributes=", ".join(names), n_attributes=len(names),
                                                        **self._fields(context, a, b)))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PAPER = PromptTemplate(system=_PAPER_SYSTEM, decision=_PAPER_DECISION, introspection=_PAPER_INTROSPECTION,
                       name="plunkett2025")
"""The protocol of Plunkett et al. (2025), exactly as in their released fine-tuning files."""


def load_template(spec: dict | str | None, *, where: str = "template") -> PromptTemplate:
    """A template from a preset name (``"plunkett2025"``) or a mapping of :class:`PromptTemplate` fields.

    A mapping may name ``preset`` and override some fields of it.
    """
    if spec is None or spec == "plunkett2025" or spec == "paper":
        return PAPER
    if isinstance(spec, str):
        raise InputError(f"{where}: unknown preset {spec!r}; known: 'plunkett2025'")
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected a preset name or a table, got {type(spec).__name__}")
    spec = dict(spec)
    base = load_template(spec.pop("preset", "plunkett2025"), where=where)
    known = {f.name for f in fields(PromptTemplate)}
    if unknown := set(spec) - known:
        raise InputError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known | {'preset'})}")
    bad = [k for k, v in spec.items() if not isinstance(v, str)]
    if bad:
        raise InputError(f"{where}: key(s) {bad} must be strings")
    merged = base.to_dict() | {"name": "custom"} | spec
    return PromptTemplate(**merged)


def weights_json(context: Context, weights) -> str:
    """The introspection answer: ``{"name": weight, ...}`` with integer weights, as the paper."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(context.attributes),) or not np.all(np.isfinite(weights)):
        raise InputError(f"context {context.name!r}: weights must be {len(context.attributes)} finite numbers, got {weights}")
    return json.dumps({a.name: int(round(w)) for a, w in zip(context.attributes, weights)})
