"""Read the paper's released contexts and fine-tuning files for the template tests."""

from __future__ import annotations

import csv
import json
import re

import numpy as np

from selfinterp.design import Attribute, Context

_LINE = re.compile(r"^(?P<name>[^:\n]+): (?P<value>\S+)(?: .*)?$")


def paper_contexts(shared):
    """Contexts (question, attributes with units) and target weights of scenarios.csv rows."""
    units = {c["short_name"]: {a["name"]: a["units"] for a in c["attributes"]}
             for c in json.loads((shared / "candidate_scenarios.json").read_text(encoding="utf-8"))}
    with open(shared / "scenarios.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(shared / "instilled_weights.csv", encoding="utf-8", newline="") as f:
        weights = [[float(r[f"attr{k}"]) for k in range(1, 6)] for r in csv.DictReader(f)]
    out = {}
    for row, w in zip(rows, weights):
        attrs = tuple(Attribute(row[f"attr{k}"], units[row["scenario"]][row[f"attr{k}"]],
                                float(row[f"attr{k}_min"]), float(row[f"attr{k}_max"])) for k in range(1, 6))
        out[row["question"]] = (Context(row["scenario"], attrs, row["question"]), np.array(w))
    return out


def parse_pair(user_content: str):
    """(question, option A values, option B values) from a rendered paper prompt."""
    body = user_content.split(":\n\n", 1)[1]
    question, rest = body.split("\nA:\n", 1)
    a_text, b_text = rest.split("\n\nB:\n", 1)
    vals = [[float(_LINE.match(s)["value"]) for s in t.split("\n")] for t in (a_text, b_text)]
    return question, np.array(vals[0]), np.array(vals[1])
