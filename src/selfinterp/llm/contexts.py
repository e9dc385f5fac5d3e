"""Decision contexts for LLM experiments: a catalog of choice types, roles, random draws.

The catalog has the layout of the paper's ``candidate_scenarios.json``: a list
of ``{"short_name", "question", "attributes": [{"name", "units", "range": [min, max]}]}``.
A context is a choice type asked on behalf of a role: its question reads
"Imagine you are ROLE. QUESTION", as in the paper.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..design import Attribute, Context
from ..errors import InputError

__all__ = ["load_catalog", "load_roles", "draw_contexts", "context_from_entry"]


def context_from_entry(entry: dict, *, where: str, role: str | None = None) -> Context:
    """A :class:`~selfinterp.design.Context` from one catalog entry (checked)."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in ("short_name", "question", "attributes"):
        if key not in entry:
            raise InputError(f"{where}: missing key {key!r}")
    attrs = []
    names = set()
    for j, a in enumerate(entry["attributes"]):
        w = f"{where}, attribute {j}"
        try:
            lo, hi = (float(x) for x in a["range"])
            attr = Attribute(str(a["name"]), str(a.get("units", "")), lo, hi)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{w}: needs name, units and range [min, max] ({exc})") from None
        if attr.name in names:
            raise InputError(f"{w}: duplicate attribute name {attr.name!r}")
        names.add(attr.name)
        attrs.append(attr)
    if len(attrs) < 1:
        raise InputError(f"{where}: no attributes")
    question = str(entry["question"])
    if role is not None:
        question = f"Imagine you are {role}. {question}"
    return Context(str(entry["short_name"]), tuple(attrs), question, meta={"role": role} if role else {})


def load_catalog(path) -> list[dict]:
    """Read and check a catalog of choice types (JSON list, the paper's layout)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty JSON list of choice types")
    seen = set()
    for i, entry in enumerate(data):
        context_from_entry(entry, where=f"{path}, entry {i}")
        if entry["short_name"] in seen:
            raise InputError(f"{path}, entry {i}: duplicate short_name {entry['short_name']!r}")
        seen.add(entry["short_name"])
    return data


def load_roles(path) -> list[str]:
    """Role names: a CSV with a ``role`` header (the paper's roles.csv) or one name per line."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].strip() == "role":
        rows = list(csv.reader(lines[1:]))
        roles = [r[0].strip() for r in rows if r and r[0].strip()]
    else:
        roles = [s.strip() for s in lines if s.strip()]
    if not roles:
        raise InputError(f"{path}: no roles")
    return roles


def draw_contexts(catalog: list[dict], roles: list[str] | None, n: int, rng) -> list[Context]:
    """``n`` contexts: distinct choice types, each with a distinct role, drawn with ``rng``."""
    if n > len(catalog):
        raise InputError(f"asked for {n} contexts but the catalog has {len(catalog)} choice types")
    if roles is not None and n > len(roles):
        raise InputError(f"asked for {n} contexts but only {len(roles)} roles are given")
    gen = np.random.default_rng(rng)
    picks = gen.permutation(len(catalog))[:n]
    who = gen.permutation(len(roles))[:n] if roles is not None else [None] * n
    return [context_from_entry(catalog[i], where=f"catalog entry {i}",
                               role=None if r is None else roles[r]) for i, r in zip(picks, who)]
