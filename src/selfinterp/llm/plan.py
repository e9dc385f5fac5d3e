"""What a run will ask, before it asks anything: the design, each stage's requests, tokens and dollars.

:class:`Design` draws the experiment's contexts, targets and option pairs from
the named streams of its seed and builds every request body and fine-tuning
file exactly as the run will; :meth:`Design.plan` counts them.  The run checks
the plan before its first paid call (a fine-tuning file with too few examples
is an error there, not after the first job), ``selfinterp run --dry-run``
prints it, and ``max_usd`` is held against it stage by stage.

Tokens: prompts are counted exactly (the offline tokenizer, the chat format's
overhead); completions at their ``max_tokens`` bound; training as the file's
tokens times ``n_epochs`` (3 where the hyperparameters leave it to the server).
A stage's dollars are therefore an upper bound.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ..design import Context, context_rngs, draw_option_pairs, draw_target_weights
from ..errors import InputError
from .config import Experiment
from .contexts import draw_contexts, load_catalog, load_roles
from .elicit import choice_bodies, report_bodies
from .finetune_data import (count_chat_tokens, encoding_for, introspection_examples, preference_examples,
                            split_pairs, two_fold, validate_examples)

__all__ = ["Design", "StagePlan", "stream", "format_plan", "DEFAULT_EPOCHS"]

DEFAULT_EPOCHS = 3


def stream(seed: int, name: str) -> np.random.SeedSequence:
    """A fresh SeedSequence for the named stream of ``seed`` (the same children every time it is spawned)."""
    return np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),))


@dataclass
class StagePlan:
    """One stage: ``kind`` "requests" (``requests`` bodies) or "training" (``requests`` examples)."""

    stage: str
    kind: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    usd: float | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Design:
    """The experiment's contexts (instilled first, then native), target weights and request bodies."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        catalog = load_catalog(exp.catalog)
        roles = load_roles(exp.roles) if exp.roles else None
        n_total = exp.n_instilled + exp.n_native
        self.contexts: list[Context] = draw_contexts(catalog, roles, n_total, self.stream("contexts"))
        K = {len(c.attributes) for c in self.contexts}
        if len(K) != 1:
            raise InputError(f"{exp.catalog}: the drawn choice types have different numbers of attributes "
                             f"{sorted(K)}; one experiment needs one number")
        self.targets = draw_target_weights(n_total, K.pop(), self.stream("targets"))
        self.K = self.targets.shape[1]
        self.instilled = np.arange(exp.n_instilled)
        self.native = np.arange(exp.n_instilled, n_total)

    # ------------------------------------------------------------------ randomness
    def stream(self, name: str) -> np.random.SeedSequence:
        return stream(self.exp.seed, name)

    def pairs(self, name: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(A, B) option values (n, K) per context from the named stream, context i from its own child."""
        return [draw_option_pairs(c, n, g) for c, g in zip(self.contexts, context_rngs(self.stream(name),
                                                                                        len(self.contexts)))]

    # ------------------------------------------------------------------ what is asked
    def choice_requests(self, model: str, idx, n_pairs: int, stage: str, pairs_stream: str | None = None):
        """(bodies, spans per context, pairs) of a choice stage, the pairs from the named stream
        ``pairs_stream`` (default: the stage's name)."""
        pairs = self.pairs(pairs_stream or stage, n_pairs)
        bodies, spans = [], []
        for i in idx:
            a, b = pairs[i]
            bb = choice_bodies(self.exp.template, model, self.contexts[i], a, b, self.exp.choices)
            spans.append((len(bodies), len(bodies) + len(bb)))
            bodies += bb
        return bodies, spans, pairs

    def report_requests(self, model: str, idx):
        """(bodies, spans per context, pairs) of a report stage."""
        exp = self.exp
        pairs = self.pairs("reports", exp.n_reports)
        bodies, spans = [], []
        for i in idx:
            a, b = pairs[i]
            bb = report_bodies(exp.template, model, self.contexts[i], a, b, temperature=exp.report_temperature,
                               max_tokens=exp.report_max_tokens, seed=exp.seed % (2**31))
            spans.append((len(bodies), len(bodies) + len(bb)))
            bodies += bb
        return bodies, spans, pairs

    def instill_records(self) -> tuple[list[dict], list[dict]]:
        exp = self.exp
        tr, va = split_pairs(exp.n_train + exp.n_validation, exp.n_validation)
        train, val = [], []
        for i, (a, b) in zip(self.instilled, self.pairs("instill", exp.n_train + exp.n_validation)):
            ex = preference_examples(exp.template, self.contexts[i], self.targets[i], a, b)
            train += ex[tr]
            val += ex[va]
        return train, val

    def introspection_records(self, idx) -> list[dict]:
        pairs = self.pairs("introspection", self.exp.itrain_examples)
        records = []
        for i in idx:
            records += introspection_examples(self.exp.template, self.contexts[i], self.targets[i], *pairs[i])
        return records

    def introspection_folds(self) -> dict:
        """stage -> contexts trained on (the paper's two folds; all of them where there are native contexts)."""
        first, last = two_fold(self.exp.n_instilled)
        out = {"itrain_first": first, "itrain_last": last}
        if self.exp.n_native:
            out["itrain_all"] = self.instilled
        return out

    # ------------------------------------------------------------------ the plan
    def stages(self) -> list[tuple]:
        """(stage, kind, model role, what) in the order the run takes them.

        Model roles: "base", "instilled", "itrained".  ``what``: (idx, n_pairs) of a
        choice stage, idx of a report stage, records of a training stage.
        """
        exp = self.exp
        if not exp.finetune:
            idx = np.arange(len(self.contexts))
            return [("choices", "choices", "base", (idx, exp.n_pairs)), ("reports_base", "reports", "base", idx)]
        train, val = self.instill_records()
        out = [("instill", "training", "base", (train, val)),
               ("choices", "choices", "instilled", (self.instilled, exp.n_pairs))]
        if exp.n_native:
            out.append(("choices_native", "choices", "instilled", (self.native, exp.n_pairs_native)))
        out += [("reports_base", "reports", "base", self.instilled),
                ("reports_instilled", "reports", "instilled", self.instilled)]
        if exp.n_native:
            out.append(("reports_instilled_native", "reports", "instilled", self.native))
        folds = self.introspection_folds()
        out += [(stage, "training", "instilled", (self.introspection_records(idx), []))
                for stage, idx in folds.items()]
        first, last = folds["itrain_first"], folds["itrain_last"]
        out += [("reports_itrained_first", "reports", "itrained", last),
                ("reports_itrained_last", "reports", "itrained", first)]
        if exp.n_native:
            out.append(("reports_itrained_all_native", "reports", "itrained", self.native))
        return out

    def bodies(self, stage: str, kind: str, model: str, what) -> list[dict]:
        if kind == "choices":
            return self.choice_requests(model, what[0], what[1], stage)[0]
        return self.report_requests(model, what)[0]

    def plan(self) -> list[StagePlan]:
        """Every stage's requests, tokens and dollars (an upper bound, see the module docstring).

        Checks every fine-tuning file's examples (:func:`validate_examples`): a
        design too small for a job is an :class:`InputError` here.
        """
        from ..errors import require

        exp = self.exp
        base = exp.model
        tuned = f"ft:{base}:selfinterp-plan::0"  # priced at the fine-tuned rates
        enc = require("quicktok", "tokens").get_encoding(encoding_for(base))
        out = []
        for stage, kind, role, what in self.stages():
            model = base if role == "base" else tuned
            if kind == "training":
                train, val = what
                report = validate_examples(train, model=base, where=f"stage {stage}: its training file")
                if val:
                    validate_examples(val, model=base, where=f"stage {stage}: its validation file", min_examples=1)
                hyper = exp.instill_hyperparameters if stage == "instill" else exp.itrain_hyperparameters
                epochs = hyper.get("n_epochs", DEFAULT_EPOCHS)
                epochs = epochs if isinstance(epochs, int) and epochs > 0 else DEFAULT_EPOCHS
                tokens = report.total * epochs
                out.append(StagePlan(stage, kind, base if stage == "instill" else tuned, len(train), tokens, 0,
                                     exp.prices.training_cost(base, tokens)))
                continue
            bodies = self.bodies(stage, kind, model, what)
            p = sum(count_chat_tokens(b["messages"], enc) for b in bodies)
            c = sum(int(b.get("max_tokens", 1)) for b in bodies)
            out.append(StagePlan(stage, "requests", model, len(bodies), p, c,
                                 exp.prices.inference_cost(model, p, c, batch=exp.batch)))
        return out


def format_plan(plans: list[StagePlan], max_usd: float | None) -> str:
    """The plan as a table, with its total and the budget."""
    lines = [f"{'stage':<30} {'kind':<9} {'requests':>9} {'prompt tok':>12} {'max compl tok':>14} {'max USD':>10}"]
    total, known = 0.0, True
    for p in plans:
        usd = "unknown" if p.usd is None else f"{p.usd:.2f}"
        known &= p.usd is not None
        total += p.usd or 0.0
        lines.append(f"{p.stage:<30} {p.kind:<9} {p.requests:>9,} {p.prompt_tokens:>12,} "
                     f"{p.completion_tokens:>14,} {usd:>10}")
    lines.append(f"{'total':<30} {'':<9} {sum(p.requests for p in plans):>9,} "
                 f"{sum(p.prompt_tokens for p in plans):>12,} {sum(p.completion_tokens for p in plans):>14,} "
                 f"{(f'{total:.2f}' if known else 'unknown'):>10}")
    lines.append("(training: examples and trained tokens; completions counted at max_tokens, so dollars are "
                 "an upper bound" + (f"; budget max_usd = {max_usd:.2f})" if max_usd is not None else ")"))
    return "\n".join(lines)
