"""The whole experiment against an OpenAI-compatible server, each stage resumable.

Stages (as Plunkett et al. 2025):

1. ``instill``: fine-tune the base model to choose by random target weights;
2. ``choices``: the instilled model's choices on new pairs, in the instilled
   and in the native (never-trained) contexts -> learned weights (``fit_logit``);
3. reports of the base model (control) and of the instilled model;
4. ``itrain_first``, ``itrain_last``: introspection training on one half of
   the instilled contexts, reports on the other half; ``itrain_all``: on all
   of them, reports on the native contexts;
5. scores, transcripts (JSON lines and the released layout), costs.

Every request goes through the request cache and every job id into the
manifest the moment it exists, so a killed run started again asks nothing
twice and starts no job twice.  Every draw comes from a named stream of the
experiment's seed, so what is asked never depends on timing or concurrency.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..design import Context
from ..errors import InputError
from ..logit import fit_logit, normalize_weights
from . import released
from .batch import run_batch
from .cache import RequestCache, request_key
from .client import CHAT, Requester, make_client
from .config import Experiment
from .client import LLMError
from .elicit import _p_first, first_text, read_choices, read_reports
from .parse import parse_choice, parse_report
from .finetune_data import deterministic_choice, two_fold, validate_examples, write_jsonl
from .jobs import Backoff, start_finetune, wait_finetune
from .manifest import Manifest
from .plan import Design, stream

__all__ = ["ExperimentRun", "design", "pearson", "stream"]


def design(exp: Experiment) -> tuple[list[Context], np.ndarray]:
    """The experiment's contexts (instilled first, then native) and target weights (n_contexts, K).

    Drawn from the named streams "contexts" and "targets" of the experiment's seed.
    """
    d = Design(exp)
    return d.contexts, d.targets


def pearson(x, y) -> float:
    """Pooled Pearson r over the entries finite in both (NaN if fewer than 3 or no spread)."""
    x, y = np.ravel(x), np.ravel(y)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


class ExperimentRun(Design):
    """One experiment's run in its output directory (see the module docstring).

    Parameters
    ----------
    exp : Experiment
    echo : callable
        Where progress lines go (``tqdm.write`` by default, so bars stay intact).
    sleep : callable
        Waits between polls (tests pass a short one).
    """

    def __init__(self, exp: Experiment, *, echo=None, sleep=None, retry_failed: bool = False,
                 reask_invalid: bool = False):
        from tqdm.auto import tqdm

        self.exp = exp
        self.echo = echo or tqdm.write
        self.sleep = sleep
        self.retry_failed = retry_failed
        self.reask_invalid = reask_invalid
        self.out = exp.out
        super().__init__(exp)
        for sub in ("data", "transcripts", "released", "logs"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.out / "manifest.json", exp.fingerprint(), name=exp.name)
        self.manifest.data["settings"] = {
            "model": exp.model, "base_url": exp.base_url, "seed": exp.seed, "template": exp.template.to_dict(),
            "price_table": exp.prices.version, "experiment_file": str(exp.source),
            "n_instilled": exp.n_instilled, "n_native": exp.n_native}
        self.manifest.record_file(exp.catalog, exp.catalog.parent)
        self.manifest.save()
        self.cache = RequestCache(self.out / "requests.sqlite")
        self.sync = self._client()
        if exp.backend == "local":
            self.manifest.data["settings"]["local"] = self.sync.describe()
            self.manifest.save()
        self.summary: dict = {}

    def _backoff(self) -> Backoff:
        return Backoff(first=self.exp.poll_first, maximum=self.exp.poll_max)

    # ------------------------------------------------------------------ requests
    def elicit(self, stage: str, bodies: list[dict], valid=None, keys: list[str] | None = None) -> list[dict]:
        """Responses for ``bodies``: through one batch first if so configured, then directly.

        ``keys``: the bodies' request keys, if the caller has them (each is computed once, and
        the cache is looked up once per body).  With ``reask_invalid``, stored replies that
        ``valid(body, response)`` rejects are forgotten first, so that only they are asked again.
        """
        with self._timed(stage):
            return self._elicit(stage, bodies, valid, keys)

    @contextmanager
    def _timed(self, stage: str):
        """Wall seconds of ``stage``, summed over every run into this output directory (the manifest's
        ``seconds``: a stage resumed after an error adds its new seconds; answers from the cache take none),
        into the summary."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            seconds = self.manifest.data.setdefault("seconds", {})
            seconds[stage] = round(seconds.get(stage, 0.0) + time.perf_counter() - t0, 3)
            self.summary.setdefault("seconds", {})[stage] = seconds[stage]
            self.manifest.save()

    def _elicit(self, stage: str, bodies: list[dict], valid, keys) -> list[dict]:
        keys = keys if keys is not None else [request_key(CHAT, b) for b in bodies]
        found = self.cache.get_many(keys)
        if self.reask_invalid and valid is not None:
            bad = [i for i, (b, r) in enumerate(zip(bodies, found)) if r is not None and not valid(b, r)]
            if bad:
                self.cache.delete([keys[i] for i in bad])
                for i in bad:
                    found[i] = None
                self.echo(f"[{stage}] {len(bad)} stored invalid replies are asked again (--reask-invalid)")
        self._within_budget(stage, [b for b, r in zip(bodies, found) if r is None])
        if self.exp.batch:
            counts = run_batch(self.sync, self.cache, self.manifest, stage, bodies, workdir=self.out / "logs",
                               backoff=self._backoff(), echo=self.echo, sleep=self.sleep,
                               attempts=self.exp.max_retries + 1, keys=keys, cached=[r is not None for r in found])
            if counts["stored"]:  # only what the batch answered is read from the cache again
                miss = [i for i, r in enumerate(found) if r is None]
                for i, r in zip(miss, self.cache.get_many([keys[i] for i in miss])):
                    found[i] = r
            if counts["asked"]:
                self.echo(f"[{stage}] batch answered {counts['stored']} of {counts['asked']}"
                          f" ({counts['errors']} in its error file); the rest are asked directly")
        return asyncio.run(self._chat_many(bodies, stage, keys, found))

    async def _chat_many(self, bodies: list[dict], stage: str, keys: list[str], found: list) -> list[dict]:
        exp = self.exp
        async with self._client(asynchronous=True) as client:
            return await Requester(client, self.cache, concurrency=exp.concurrency).chat_many(
                bodies, desc=stage, keys=keys, known=found)

    def _client(self, asynchronous: bool = False):
        """The OpenAI client of the server path, or the in-process local backend's (``backend = "local"``)."""
        exp = self.exp
        if exp.backend == "local":
            if asynchronous:
                return self.sync.asynchronous()
            from .local import make_local_client

            return make_local_client(exp, echo=self.echo)
        return make_client(exp.base_url, max_retries=exp.max_retries, timeout=exp.timeout, asynchronous=asynchronous)

    def close(self) -> None:
        self.sync.close()
        self.cache.close()

    # ------------------------------------------------------------------ fine-tuning
    def _finetune_file(self, name: str, records: list[dict], model: str) -> Path:
        report = validate_examples(records, model=model, where=name)
        path = write_jsonl(records, self.out / "data" / name)
        self.manifest.record_file(path, self.out)
        self.manifest.data.setdefault("tokens", {})[name] = report.as_dict()
        self.manifest.save()
        return path

    def instill_files(self) -> tuple[Path, Path | None]:
        train, val = self.instill_records()
        t = self._finetune_file("instill_train.jsonl", train, self.exp.model)
        v = self._finetune_file("instill_validation.jsonl", val, self.exp.model) if val else None
        return t, v

    def introspection_file(self, name: str, idx, model: str) -> Path:
        return self._finetune_file(name, self.introspection_records(idx), model)

    def job(self, stage: str, model: str, train: Path, val: Path | None, suffix: str, hyper: dict) -> None:
        if "job_id" not in self.manifest.stage(stage) or self.retry_failed:
            self._within_budget(stage, None)
        start_finetune(self.sync, self.manifest, stage, model=model, train=train, validation=val, suffix=suffix,
                       seed=self.exp.seed % (2**31), hyperparameters=hyper, echo=self.echo,
                       attempts=self.exp.max_retries + 1, backoff=self._backoff(), sleep=self.sleep or time.sleep,
                       retry_failed=self.retry_failed)

    def wait(self, stage: str) -> str:
        kw = {} if self.sleep is None else {"sleep": self.sleep}
        with self._timed(stage):  # the local backend trains here; a server's job is waited for
            return wait_finetune(self.sync, self.manifest, stage,
                                 events_log=self.out / "logs" / "finetune_events.jsonl", backoff=self._backoff(),
                                 echo=self.echo, **kw)

    # ------------------------------------------------------------------ elicitation stages
    def choices(self, model: str, idx: np.ndarray, n_pairs: int, stage: str, pairs_stream: str | None = None):
        """The model's choices in contexts ``idx``; writes the stage's transcript.

        The pairs come from the named stream ``pairs_stream`` (default: the stage's name).

        Returns
        -------
        learned : (len(idx), K) normalised learned weights (NaN rows where no reply was valid)
        y : (len(idx), n_pairs) soft labels P(A)
        shown : dict for :func:`released.write_layout` (one trial per order and pair)
        """
        exp, spec = self.exp, self.exp.choices
        bodies, spans, pairs = self.choice_requests(model, idx, n_pairs, stage, pairs_stream)
        keys = [request_key(CHAT, b) for b in bodies]
        responses = self.elicit(stage, bodies, lambda b, r: _p_first(r, exp.template, spec)[0] is not None, keys)
        n_orders = 2 if spec.both_orders else 1
        C, T = len(idx), n_orders * n_pairs
        X = np.zeros((C, n_pairs, self.K))
        y = np.full((C, n_pairs), np.nan)
        shown = {"idx": np.asarray(idx), "A": np.zeros((C, T, self.K)), "B": np.zeros((C, T, self.K)),
                 "y": np.zeros((C, T)), "mask": np.zeros((C, T), bool), "model": model}
        records, leftovers, invalid = [], [], 0
        for j, (i, (s, e)) in enumerate(zip(idx, spans)):
            ctx, (a, b) = self.contexts[i], pairs[i]
            X[j] = (a - b) / (ctx.hi - ctx.lo)
            y[j], det = read_choices(responses[s:e], n_pairs, exp.template, spec)
            invalid += int((det["error"] != "").sum())
            leftovers.append(det["leftover"])
            for o in range(n_orders):
                for t in range(n_pairs):
                    first, second = (a[t], b[t]) if o == 0 else (b[t], a[t])
                    k = s + o * n_pairs + t
                    pf, left = det["p_first"][o, t], det["leftover"][o, t]
                    text = first_text(responses[k])
                    label = parse_choice(text, exp.template.label_a, exp.template.label_b)
                    records.append({
                        "kind": "choice", "model": model, "request_id": keys[k],
                        "context": ctx.name, "A": first.tolist(), "B": second.tolist(), "reply": text or "",
                        "choice": None if label is None else "AB"[1 - label],
                        "p_a": None if np.isnan(pf) or spec.method == "sample" else float(pf),
                        "metadata": {"stage": stage, "context_index": int(i), "trial": t,
                                     "order": "AB" if o == 0 else "BA", "method": spec.method,
                                     "leftover": None if np.isnan(left) else float(left),
                                     "error": det["error"][o, t], "reply_missing": text is None,
                                     "usage": responses[k].get("usage")}})
                    tt = o * n_pairs + t
                    shown["A"][j, tt], shown["B"][j, tt] = first, second
                    if not np.isnan(pf):
                        shown["y"][j, tt], shown["mask"][j, tt] = float(pf > 0.5), True
        self._transcript(stage, records)
        self._all_invalid(stage, invalid, len(bodies), records)
        mask = np.isfinite(y)
        fitted = mask.any(axis=1)
        learned = np.full((C, self.K), np.nan)
        if fitted.any():
            fit = fit_logit(X[fitted], np.where(mask, y, 0.5)[fitted], mask=mask[fitted])
            learned[fitted] = normalize_weights(fit.coef)
        # agreement with the target rule, on the soft labels: mean P(the option the targets prefer)
        agree = []
        for j, i in enumerate(idx):
            a, b = pairs[i]
            want = deterministic_choice(self.contexts[i], self.targets[i], a, b)
            agree.append(np.where(want, y[j], 1 - y[j]))
        lo = np.concatenate([x.ravel() for x in leftovers])
        self.summary[stage] = {"model": model, "n_requests": len(bodies), "invalid_replies": invalid,
                               "contexts_without_valid_choice": int((~fitted).sum()),
                               "mean_leftover_mass": float(np.nanmean(lo)) if np.isfinite(lo).any() else None,
                               "agreement_with_target": float(np.nanmean(np.concatenate(agree)))}
        return learned, y, shown

    def reports(self, stage: str, model: str, idx: np.ndarray):
        """Mean valid report per context (len(idx), K) (NaN where none is valid), and the reports
        for :func:`released.write_layout`; writes the stage's transcript."""
        exp = self.exp
        bodies, spans, pairs = self.report_requests(model, idx)
        names = {id(b): [a.name for a in self.contexts[i].attributes] for i, (s, e) in zip(idx, spans)
                 for b in bodies[s:e]}
        keys = [request_key(CHAT, b) for b in bodies]
        responses = self.elicit(stage, bodies, lambda b, r: parse_report(first_text(r), names[id(b)]).valid, keys)
        C, R = len(idx), exp.n_reports
        means = np.full((C, self.K), np.nan)
        out = {"idx": np.asarray(idx), "report": np.full((C, R, self.K), np.nan), "valid": np.zeros((C, R), bool),
               "A": np.stack([pairs[i][0] for i in idx]), "B": np.stack([pairs[i][1] for i in idx]), "model": model}
        records, invalid = [], 0
        for j, (i, (s, e)) in enumerate(zip(idx, spans)):
            ctx, (a, b) = self.contexts[i], pairs[i]
            rep, raw, errors = read_reports(responses[s:e], ctx)
            ok = np.all(np.isfinite(rep), axis=1)
            invalid += int((~ok).sum())
            out["report"][j], out["valid"][j] = rep, ok
            if ok.any():
                means[j] = rep[ok].mean(axis=0)
            for t in range(len(raw)):
                records.append({
                    "kind": "report", "model": model, "request_id": keys[s + t],
                    "context": ctx.name, "A": a[t].tolist(), "B": b[t].tolist(), "reply": raw[t] or "",
                    "report": rep[t].tolist() if ok[t] else None,
                    "metadata": {"stage": stage, "context_index": int(i), "trial": t, "error": errors[t],
                                 "reply_missing": raw[t] is None, "usage": responses[s + t].get("usage")}})
        self._transcript(stage, records)
        self._all_invalid(stage, invalid, len(bodies), records)
        self.summary[stage] = {"model": model, "n_requests": len(bodies), "invalid_replies": invalid,
                               "contexts_without_valid_report": int((~np.isfinite(means).all(axis=1)).sum())}
        return means, out

    def _all_invalid(self, stage: str, invalid: int, n: int, records: list[dict]) -> None:
        """A stage none of whose replies is valid stops the run (its transcript is written first), unless
        ``[requests] stop_if_all_invalid = false`` (a plumbing check on a model too small to answer)."""
        if n and invalid == n:
            r = records[0]
            if not self.exp.stop_if_all_invalid:
                self.echo(f"[{stage}] none of the {n} replies is valid (stop_if_all_invalid = false: going on); "
                          f"see {self.out / 'transcripts' / (stage + '.jsonl')}")
                return
            raise LLMError(f"stage {stage}: none of the {n} replies is valid (the first, to request "
                           f"{r['request_id'][:12]}: {r['reply'][:80]!r}: {r['metadata']['error'] or 'invalid'}); "
                           f"see {self.out / 'transcripts' / (stage + '.jsonl')}. The replies are kept: fix the "
                           "server or the template, then run again with --reask-invalid (only invalid replies "
                           "are asked again)")

    def _transcript(self, stage: str, records: list[dict]) -> None:
        """One JSON-lines file per stage, in the toolkit's transcript format (:mod:`selfinterp.io.transcript`)."""
        path = self.out / "transcripts" / f"{stage}.jsonl"
        tmp = path.with_name(path.name + ".part")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records),
                       encoding="utf-8")
        tmp.replace(path)

    # ------------------------------------------------------------------ the whole run
    def run(self) -> dict:
        """Every stage (or, with ``finetune = false``, the base model's choices and reports only).

        The plan (:meth:`check`) is made first: nothing is asked of a design that cannot run to the end.
        """
        self.check()
        return self._run_full() if self.exp.finetune else self._run_untrained()

    def check(self) -> list:
        """Every stage's plan (see :mod:`selfinterp.llm.plan`), recorded in the manifest; raises
        :class:`InputError` for a design too small to train or a budget with unpriced models."""
        self._plan = {p.stage: p for p in self.plan()}
        if self.exp.max_usd is not None and (unpriced := [p.stage for p in self._plan.values() if p.usd is None]):
            raise InputError(f"{self.exp.source}: max_usd is set but {self.exp.model!r} has no price "
                             f"(stages {', '.join(unpriced)}); add it under [prices]")
        self.manifest.data["plan"] = [p.as_dict() for p in self._plan.values()]
        self.manifest.save()
        return list(self._plan.values())

    def _within_budget(self, stage: str, todo: list[dict] | None) -> None:
        """Stop before ``stage`` where what is spent plus the stage's bound would pass ``max_usd``.

        ``todo``: the stage's bodies not yet answered (None: a training stage).
        """
        cap = self.exp.max_usd
        plan = getattr(self, "_plan", {}).get(stage)
        if cap is None or plan is None or plan.usd is None or todo == []:
            return
        share = 1.0 if todo is None else len(todo) / max(plan.requests, 1)
        spent = self.costs()["total_usd"] or 0.0
        if spent + plan.usd * share > cap:
            raise LLMError(f"stage {stage}: spent ${spent:.2f} so far and this stage may cost up to "
                           f"${plan.usd * share:.2f}, over max_usd = {cap:.2f} in {self.exp.source}; nothing of "
                           "this stage was asked (raise max_usd to go on; --dry-run shows every stage)")

    def _run_untrained(self) -> dict:
        """Native preferences and self-reports of the base model in every context, no fine-tuning.

        For servers that cannot fine-tune (a local llama.cpp or vLLM): learned
        weights from the model's choices, its reports, and their agreement.
        """
        exp, base = self.exp, self.exp.model
        idx = np.arange(len(self.contexts))
        learned, _, shown = self.choices(base, idx, exp.n_pairs, "choices")
        rep, rows = self.reports("reports_base", base, idx)
        self.summary["scores"] = {"reports_vs_learned": pearson(rep, learned)}
        # the released layout's names: the model's own choices are "latent" (never trained)
        released.write_layout(self.out / "released", base, self.contexts, None, choices={"latent": shown},
                              reports={"base": rows}, regression={"latent": _finite(idx, learned)})
        return self._finish({"learned": learned, "reports_base": rep})

    def _finish(self, arrays: dict) -> dict:
        self.summary["cost"] = self.costs()
        scores = self.summary.get("scores", {})
        undefined = {k: "fewer than 3 finite pairs or no spread (see each stage's invalid_replies)"
                     for k, v in scores.items() if v is None or not np.isfinite(v)}
        self.summary["scores"] = {k: None if k in undefined else v for k, v in scores.items()}
        if undefined:
            self.summary["scores_undefined"] = undefined
        if self.exp.backend == "local":  # for planning in GPU-hours (selfinterp power --gpu-throughput)
            self.summary["local_throughput"] = self.sync.throughput()
        self.manifest.data["summary"] = self.summary
        self.manifest.save()
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2, allow_nan=False), encoding="utf-8")
        np.savez(self.out / "weights.npz", target=self.targets, **arrays)
        return self.summary

    def _run_full(self) -> dict:
        exp = self.exp
        base = exp.model
        first, last = two_fold(exp.n_instilled)

        train, val = self.instill_files()
        self.job("instill", base, train, val, exp.instill_suffix, exp.instill_hyperparameters)
        m1 = self.wait("instill")

        learned, _, shown = self.choices(m1, self.instilled, exp.n_pairs, "choices")
        native_learned, shown_native = None, None
        if exp.n_native:
            native_learned, _, shown_native = self.choices(m1, self.native, exp.n_pairs_native, "choices_native")

        rep_base, rows_base = self.reports("reports_base", base, self.instilled)
        rep_m1, rows_m1 = self.reports("reports_instilled", m1, self.instilled)
        rep_m1_native, rows_m1_native = (self.reports("reports_instilled_native", m1, self.native)
                                         if exp.n_native else (None, []))

        h, n = len(first), exp.n_instilled
        files = {"itrain_first": self.introspection_file("itrain_first.jsonl", first, m1),
                 "itrain_last": self.introspection_file("itrain_last.jsonl", last, m1)}
        if exp.n_native:
            files["itrain_all"] = self.introspection_file("itrain_all.jsonl", self.instilled, m1)
        for stage, path in files.items():  # all jobs start before any is waited for: they train side by side
            self.job(stage, m1, path, None, f"{exp.itrain_suffix}-{stage.split('_')[1]}", exp.itrain_hyperparameters)
        m2a, m2b = self.wait("itrain_first"), self.wait("itrain_last")
        rep_a, rows_a = self.reports("reports_itrained_first", m2a, last)
        rep_b, rows_b = self.reports("reports_itrained_last", m2b, first)
        heldout = np.full_like(rep_m1, np.nan)
        heldout[last], heldout[first] = rep_a, rep_b
        rep_m3, rows_m3 = None, []
        if exp.n_native:
            m3 = self.wait("itrain_all")
            rep_m3, rows_m3 = self.reports("reports_itrained_all_native", m3, self.native)

        tgt = self.targets[self.instilled]
        scores = {
            "learned_vs_target": pearson(learned, tgt),
            "base_reports_vs_learned": pearson(rep_base, learned),
            "instilled_reports_vs_learned": pearson(rep_m1, learned),
            "instilled_reports_vs_target": pearson(rep_m1, tgt),
            "itrained_heldout_reports_vs_learned": pearson(heldout, learned),
        }
        if exp.n_native:
            scores["native_reports_vs_learned_before"] = pearson(rep_m1_native, native_learned)
            scores["native_reports_vs_learned_after"] = pearson(rep_m3, native_learned)
        self.summary["scores"] = scores

        # the released layout, report conditions named as the paper's (sizes from this experiment)
        e = exp.itrain_examples
        reports = {"base": rows_base, "instilled": rows_m1,
                   f"itrained_first_{h}_of_{n}_{h * e}ex": rows_a,
                   f"itrained_last_{n - h}_of_{n}_{(n - h) * e}ex": rows_b}
        choices = {"instilled": shown}
        regression = {"instilled": _finite(self.instilled, learned)}
        if exp.n_native:
            reports["instilled_latent"] = rows_m1_native
            reports[f"itrained_all_{n}_{n * e}ex_latent"] = rows_m3
            choices["latent"] = shown_native
            regression["latent"] = _finite(self.native, native_learned)
        released.write_layout(self.out / "released", base, self.contexts, self.targets, choices=choices,
                              reports=reports, regression=regression)
        return self._finish({"learned": learned, "reports_base": rep_base, "reports_instilled": rep_m1,
                             "reports_heldout": heldout,
                             "native_learned": native_learned if native_learned is not None else np.zeros((0, self.K))})

    def costs(self) -> dict:
        """Tokens and dollars from the usage of every stored response and job (unknown models: cost None)."""
        out = {"price_table": self.exp.prices.version, "inference": [], "training": []}
        total, known = 0.0, True
        for model, source, p, c in self.cache.usage():
            cost = self.exp.prices.inference_cost(model, p, c, batch=source == "batch")
            known &= cost is not None
            total += cost or 0.0
            out["inference"].append({"model": model, "source": source, "prompt_tokens": p,
                                     "completion_tokens": c, "usd": cost})
        for stage, rec in self.manifest.stages.items():
            if rec.get("trained_tokens") is not None:
                cost = self.exp.prices.training_cost(rec.get("base_model", ""), rec["trained_tokens"])
                known &= cost is not None
                total += cost or 0.0
                out["training"].append({"stage": stage, "model": rec.get("base_model"),
                                        "trained_tokens": rec["trained_tokens"], "usd": cost})
        out["total_usd"] = total if known else None
        return out


def _finite(idx, weights):
    """(contexts, weights) of the rows that were fitted (a context without a valid choice has none)."""
    ok = np.all(np.isfinite(weights), axis=1)
    return np.asarray(idx)[ok], weights[ok]
