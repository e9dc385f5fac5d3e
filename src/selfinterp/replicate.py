"""The paper's whole results table from one model's files in the released layout.

:func:`replicate` reads the files (:func:`selfinterp.io.read_released`),
learns each context's weights from the model's choices, averages each
context's valid reports and scores them, returning one JSON-ready dict::

    {"model": NAME, "metrics": {...}, "notes": [...], "details": {...}}

``metrics`` is keyed exactly:

| key | what |
| --- | --- |
| ``learned_vs_target`` | learned (instilled contexts) vs target weights |
| ``choice_agreement`` | share of choices that the target rule makes too |
| ``base_reports_vs_learned`` | untrained model's reports vs learned (the control) |
| ``reports_vs_learned`` | weight-trained model's reports vs learned |
| ``reports_vs_target`` | the same reports vs target weights |
| ``itrained_reports_vs_learned`` | after introspection training, held-out halves pooled |
| ``native_reports_vs_learned`` | native contexts, before introspection training |
| ``native_itrained_reports_vs_learned`` | native contexts, after introspection training |
| ``training_effect`` | itrained minus reports_vs_learned (paired by context) |
| ``native_training_effect`` | native after minus before (paired by context) |
| ``invalid_report_rate`` | invalid replies / calls over every report file |

Correlations are ``{"r", "ci", "n", ...}`` with ``n`` the (context,
attribute) pairs; effects ``{"diff", "ci", ...}``; rates ``{"value", "n"}``.
**The "ci" is the 95% studentised interval of a bootstrap that resamples
whole contexts** (``n_boot`` resamples; Fisher's z of each resample divided
by its cluster-robust standard error), the honest interval when the K
weights of a context share one report and one fit; the training effects'
"ci" is the paired studentised interval (each resample's difference divided
by its cluster-robust standard error).  Each correlation also
carries ``ci_fisher`` (Fisher z) and ``ci_regression`` (the paper's own
interval: the brms slope of standardised learned on standardised reported
weights, about r +- 1.97 sqrt((1 - r^2)/(n - 2)), which gives the published
0.47-0.62 for 0.54, cut at [-1, 1]); both treat the pairs as independent.  A metric whose
files are absent is ``None`` and a note says why.

Learned weights follow the paper: one logit per context on range-normalised
A-minus-B differences, with an intercept (normal(0, 2.5) prior), slopes under
a normal(0, 1) prior (the MAP fit of :func:`selfinterp.fit_logit`), scaled to
max |w| = 100.

Which report files feed which metric (``<m>`` is the model name):
``<m>_weight_reports.csv`` -> base; ``<m>_instilled_weight_reports.csv`` ->
reports; ``<m>_itrained_first_*`` and ``<m>_itrained_last_*`` (not ending in
``_latent``) -> the pooled held-out halves; ``<m>_instilled_latent_*`` ->
native before; ``<m>_itrained_*_latent_*`` (``itrained_all_*`` preferred) ->
native after.  Conditions whose name contains ``latent`` are scored against
the native contexts' learned weights, the others against the instilled ones.

Invalid replies: each context got ``calls_per_context`` report calls (10);
the released files kept only valid replies, so the invalid count of a group
of report files is calls x expected contexts - rows, the expected contexts
being those of the choices it is scored against (plus any other context the
files hold).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from . import score as sc
from ._core.rng import seed_sequence as _seed_sequence
from .errors import InputError
from .io.released import ReleasedData, read_released, report_file
from .labelled import fit_dataset

__all__ = ["METRICS", "replicate", "compute", "Replication", "Panel", "learned_weights",
           "format_table", "plot_replication", "to_dataframe"]

METRICS = ("learned_vs_target", "choice_agreement", "base_reports_vs_learned", "reports_vs_learned",
           "reports_vs_target", "itrained_reports_vs_learned", "native_reports_vs_learned",
           "native_itrained_reports_vs_learned", "training_effect", "native_training_effect",
           "invalid_report_rate")

LABELS = {
    "learned_vs_target": "learned vs target weights",
    "choice_agreement": "choices agreeing with the target rule",
    "base_reports_vs_learned": "base-model reports vs learned (control)",
    "reports_vs_learned": "reports vs learned",
    "reports_vs_target": "reports vs target",
    "itrained_reports_vs_learned": "after introspection training (held-out halves)",
    "native_reports_vs_learned": "native: reports vs learned, before",
    "native_itrained_reports_vs_learned": "native: reports vs learned, after",
    "training_effect": "introspection-training effect on r",
    "native_training_effect": "native introspection-training effect on r",
    "invalid_report_rate": "invalid report replies",
}


@dataclass
class Panel:
    """One condition's scored pairs: ``x`` (C, K) against ``y`` (C, K)."""

    key: str
    x: np.ndarray
    y: np.ndarray
    contexts: list
    xlabel: str
    ylabel: str


@dataclass
class Replication:
    """:func:`compute`'s result: the JSON-ready ``result`` and the scored ``panels``.

    ``to_dataframe()`` gives the tidy table (one row per metric); in a
    notebook the object shows as that table.
    """

    result: dict
    panels: dict = field(default_factory=dict)
    data: ReleasedData | None = field(default=None, repr=False)

    def to_dataframe(self):
        """The metrics as a tidy pandas DataFrame (see :func:`to_dataframe`)."""
        return to_dataframe(self.result)

    def __repr__(self) -> str:
        m = self.result["metrics"]
        r = m.get("reports_vs_learned")
        main = "absent" if r is None else f"{r['r']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
        present = sum(v is not None for v in m.values())
        return (f"<Replication model={self.result['model']!r}: {present} of {len(m)} metrics; "
                f"reports vs learned r = {main}; .to_dataframe() for the table>")

    def _repr_html_(self) -> str:
        return (f"<p>Replication of <code>{self.result['model']}</code></p>"
                + self.to_dataframe().to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep=""))


def to_dataframe(result: dict):
    """:func:`replicate`'s result as a tidy pandas DataFrame, one row per metric.

    Columns: ``metric`` (the key), ``label``, ``statistic`` (``"r"`` for a
    correlation, ``"diff"`` for a training effect, ``"rate"``), ``value``,
    ``ci_low`` and ``ci_high`` (the 95% context-bootstrap interval; empty for
    rates) and ``n`` ((context, attribute) pairs for correlations, contexts
    for effects, calls or choices for rates).  Absent metrics are left out.
    """
    import pandas as pd

    rows = []
    for key in METRICS:
        v = result["metrics"].get(key)
        if v is None:
            continue
        if "r" in v:
            row = ("r", v["r"], *v["ci"], v["n"])
        elif "diff" in v:
            row = ("diff", v["diff"], *v["ci"], v["n_contexts"])
        else:
            row = ("rate", v["value"], np.nan, np.nan, v["n"])
        rows.append((key, LABELS[key], *row))
    return pd.DataFrame(rows, columns=["metric", "label", "statistic", "value", "ci_low", "ci_high", "n"])


def learned_weights(choices: xr.Dataset, max_abs: float = 100.0) -> xr.Dataset:
    """The paper's learned weights of every context of a choices Dataset.

    MAP logit with intercept, slopes ~ normal(0, 1), then max |w| = ``max_abs``.
    Returns :func:`selfinterp.fit_dataset`'s Dataset (``weight`` is the
    normalised one).
    """
    return fit_dataset(choices[["X", "y", "mask"]], max_abs=max_abs, intercept=True, prior_sd=1.0)


def _stream(seq: np.random.SeedSequence, name: str) -> np.random.Generator:
    """The metric's own RNG stream: independent of which other metrics are computed."""
    i = METRICS.index(name)
    child = np.random.SeedSequence(entropy=seq.entropy, spawn_key=tuple(seq.spawn_key) + (i,),
                                   pool_size=seq.pool_size)
    return np.random.default_rng(child)


def _corr(a, b, n_boot, gen) -> dict:
    s = sc.score(a, b, n_boot=n_boot, rng=gen)
    return s.as_dict()


class _Builder:
    def __init__(self, data: ReleasedData, n_boot: int, rng):
        self.data = data
        self.n_boot = int(n_boot)
        if self.n_boot < 2000:
            # fewer resamples make the 2.5% tails of a 95% interval too noisy
            self.notes = [f"n_boot = {self.n_boot} < 2000: the bootstrap intervals are rough"]
        else:
            self.notes = []
        self.seq = _seed_sequence(rng)
        self.metrics: dict = {k: None for k in METRICS}
        self.details: dict = {"ci": "95% studentised bootstrap interval resampling contexts (Fisher z, "
                                    f"cluster-robust standard errors; {self.n_boot} resamples; effects: "
                                    "paired, studentised the same way); ci_fisher: Fisher z; ci_regression: the paper's slope "
                                    "interval cut at [-1, 1] (both treat pairs as independent)",
                              "controls": {}, "invalid_reports": {}, "learned_vs_authors": {},
                              "fit": {}, "absent_files": list(data.absent)}
        self.panels: dict = {}
        self.learned: dict = {}

    def note(self, text):
        self.notes.append(text)

    # -- learned weights --------------------------------------------------------------------
    def fit(self):
        for key, ds in self.data.choices.items():
            fit = learned_weights(ds)
            self.learned[key] = fit["weight"]
            nc = int((~fit["converged"].values).sum())
            ns = int(fit["separated"].values.sum())
            self.details["fit"][key] = {"contexts": int(fit.sizes["context"]),
                                        "not_converged": nc, "separated": ns}
            if nc:
                self.note(f"{key} choices: {nc} context(s) did not converge")
            auth = self.data.regression.get(key)
            if auth is not None:
                self._compare_authors(key, fit["weight"], auth)

    def _compare_authors(self, key, ours, auth):
        theirs = set(auth["context"].values)
        ctx = [c for c in ours["context"].values if c in theirs]
        if len(ctx) == 0:
            self.note(f"authors' {key} regression results share no context with the choices")
            return
        a = ours.sel(context=ctx).values
        b = auth.sel(context=ctx).values
        per = sc.per_context_r(a, b)
        self.details["learned_vs_authors"][key] = {
            "n_contexts": len(ctx), "mean_context_r": float(np.nanmean(per)),
            "min_context_r": float(np.nanmin(per)), "max_abs_diff": float(np.max(np.abs(a - b)))}

    # -- helpers ----------------------------------------------------------------------------
    def _pair_reports(self, key, reports: xr.Dataset, learned: xr.DataArray):
        """Mean reports and learned weights on the contexts having both."""
        mean, n_valid = sc.mean_reports_dataset(reports)
        have = set(learned["context"].values)
        ctx = [c for c in mean["context"].values if c in have]
        orphan = [c for c in mean["context"].values if c not in have]
        if orphan:
            self.note(f"{key}: {len(orphan)} context(s) with reports have no learned weights "
                      f"(e.g. {orphan[0]!r}); not scored")
        return ctx, mean.sel(context=ctx).values, learned.sel(context=ctx).values

    def _score(self, key, x, y, ctx, xlabel, ylabel):
        if len(ctx) < 2:
            self.note(f"{key}: fewer than 2 contexts to score")
            return None
        m = _corr(x, y, self.n_boot, _stream(self.seq, key))
        self.metrics[key] = m
        self.panels[key] = Panel(key, x, y, list(ctx), xlabel, ylabel)
        return m

    def _controls(self, key, x, y):
        gen = _stream(self.seq, key)
        gen = np.random.default_rng(gen.bit_generator.seed_seq.spawn(1)[0])
        null = sc.shuffled_null(x, y, n_perm=self.n_boot, rng=gen)
        self.details["controls"][key] = {
            "shuffled_null": {"mean": null.mean, "interval": list(null.interval), "p_value": null.p_value},
            "constant_baseline": sc.constant_baseline(x, y)}

    # -- metrics ----------------------------------------------------------------------------
    def target_metrics(self):
        tw = self.data.target_weight
        ch = self.data.choices.get("instilled")
        if ch is None or tw is None:
            why = "instilled selections" if ch is None else "instilled_weights.csv"
            self.note(f"learned_vs_target, choice_agreement: {why} absent")
            return
        if "target_weight" not in ch:
            self.note("learned_vs_target, choice_agreement: instilled_weights.csv lacks some "
                      "contexts of the instilled selections")
            return
        L = self.learned["instilled"]
        self._score("learned_vs_target", L.values, ch["target_weight"].values,
                    list(ch["context"].values), "learned weight", "target weight")
        X = ch["X"].transpose("context", "trial", "attribute").values
        u = np.einsum("ctk,ck->ct", X, ch["target_weight"].values)
        mask = ch["mask"].values
        # the target rule chooses A when A's utility is higher, B on a tie (as simulate_choices)
        agree = (u > 0) == (ch["y"].values == 1)
        n = int(mask.sum())
        self.metrics["choice_agreement"] = {"value": float(agree[mask].mean()), "n": n}
        ties = int((mask & (u == 0)).sum())
        if ties:
            self.note(f"choice_agreement: {ties} tie(s) in target utility counted as the rule choosing B")

    def report_metrics(self):
        reps = self.data.reports
        L_i = self.learned.get("instilled")
        L_l = self.learned.get("latent")
        tw = self.data.target_weight
        simple = [("base_reports_vs_learned", "base", L_i, "instilled"),
                  ("reports_vs_learned", "instilled", L_i, "instilled"),
                  ("native_reports_vs_learned", "instilled_latent", L_l, "latent")]
        for key, cond, L, which in simple:
            if not self._have(key, cond, L, which):
                continue
            ctx, x, y = self._pair_reports(key, reps[cond], L)
            if self._score(key, x, y, ctx, "mean reported weight", "learned weight"):
                self._controls(key, x, y)
        # reports vs target
        if "instilled" in reps and tw is not None:
            mean, _ = sc.mean_reports_dataset(reps["instilled"])
            have = set(tw["context"].values)
            ctx = [c for c in mean["context"].values if c in have]
            self._score("reports_vs_target", mean.sel(context=ctx).values, tw.sel(context=ctx).values,
                        ctx, "mean reported weight", "target weight")
        else:
            self.note("reports_vs_target: "
                      + ("instilled_weights.csv absent" if tw is None else
                         f"{report_file(self.data.model, 'instilled')} absent"))
        # held-out halves pooled
        halves = [c for c in reps if re.fullmatch(r"itrained_(first|last)_.*", c) and "latent" not in c]
        if halves and L_i is not None:
            pooled = self._pool(halves)
            if pooled is not None:
                ctx, x, y = self._pair_reports("itrained_reports_vs_learned", pooled, L_i)
                if self._score("itrained_reports_vs_learned", x, y, ctx, "mean reported weight",
                               "learned weight"):
                    self._controls("itrained_reports_vs_learned", x, y)
        else:
            self.note("itrained_reports_vs_learned: "
                      + ("no itrained_first_*/itrained_last_* report files" if not halves
                         else "instilled selections absent"))
        # native after
        after = [c for c in reps if re.fullmatch(r"itrained_.*latent", c)]
        pick = [c for c in after if c.startswith("itrained_all_")] or after
        if len(pick) == 1 and L_l is not None:
            ctx, x, y = self._pair_reports("native_itrained_reports_vs_learned", reps[pick[0]], L_l)
            if self._score("native_itrained_reports_vs_learned", x, y, ctx, "mean reported weight",
                           "learned weight"):
                self._controls("native_itrained_reports_vs_learned", x, y)
        elif len(pick) > 1:
            self.note(f"native_itrained_reports_vs_learned: several candidate files {pick}; none chosen")
        else:
            self.note("native_itrained_reports_vs_learned: "
                      + ("no itrained_*_latent report file" if not pick else "latent selections absent"))

    def _have(self, key, cond, L, which) -> bool:
        if cond not in self.data.reports:
            self.note(f"{key}: {report_file(self.data.model, cond)} absent")
            return False
        if L is None:
            self.note(f"{key}: {which} selections absent")
            return False
        return True

    def _pool(self, conds):
        parts = [self.data.reports[c] for c in conds]
        seen: dict = {}
        for c, ds in zip(conds, parts):
            for ctx in ds["context"].values:
                if ctx in seen:
                    raise InputError(f"context {str(ctx)!r} has reports in both {report_file(self.data.model, seen[ctx])} "
                                     f"and {report_file(self.data.model, c)}: the held-out halves must not overlap")
                seen[ctx] = c
        keep = ["report", "report_valid"]
        return xr.concat([p[keep] for p in parts], dim="context")

    def effects(self):
        pairs = [("training_effect", "reports_vs_learned", "itrained_reports_vs_learned"),
                 ("native_training_effect", "native_reports_vs_learned",
                  "native_itrained_reports_vs_learned")]
        for key, before, after in pairs:
            pb, pa = self.panels.get(before), self.panels.get(after)
            if pb is None or pa is None:
                self.note(f"{key}: needs both {before} and {after}")
                continue
            in_after = set(pa.contexts)
            shared = [c for c in pb.contexts if c in in_after]
            if len(shared) < 2:
                self.note(f"{key}: fewer than 2 contexts shared by {before} and {after}")
                continue
            ib = [pb.contexts.index(c) for c in shared]
            ia = [pa.contexts.index(c) for c in shared]
            diff, ci, _ = sc.paired_difference(pb.x[ib], pb.y[ib], pa.x[ia], pa.y[ia],
                                               n_boot=self.n_boot, rng=_stream(self.seq, key))
            self.metrics[key] = {"diff": diff, "ci": list(ci), "n_contexts": len(shared)}

    def invalid_rate(self):
        reps = self.data.reports
        if not reps:
            self.note("invalid_report_rate: no report files")
            return
        R = self.data.calls_per_context
        groups: dict[str, list[str]] = {}
        for cond in reps:
            g = "itrained_halves" if (re.fullmatch(r"itrained_(first|last)_.*", cond)
                                      and "latent" not in cond) else cond
            groups.setdefault(g, []).append(cond)
        calls = invalid = 0
        for g, conds in groups.items():
            which = "latent" if "latent" in g else "instilled"
            expected = set()
            if which in self.data.choices:
                expected |= set(self.data.choices[which]["context"].values)
            valid = 0
            for c in conds:
                expected |= set(reps[c]["context"].values)
                valid += int(reps[c]["report_valid"].values.sum())
            n = R * len(expected)
            self.details["invalid_reports"][g] = {"files": [report_file(self.data.model, c) for c in conds],
                                                  "calls": n, "invalid": n - valid}
            calls += n
            invalid += n - valid
        self.metrics["invalid_report_rate"] = {"value": invalid / calls, "n": calls}


def released_source(source, model, calls_per_context=10) -> tuple[ReleasedData, str | None]:
    """(data, directory or None) from a directory in the released layout or
    :class:`ReleasedData` already in memory (``model``, if given, must be its model)."""
    if isinstance(source, ReleasedData):
        if model is not None and model != source.model:
            raise InputError(f"model {model!r} given, but the data are {source.model!r}'s")
        return source, None
    if model is None:
        raise InputError("a model name is needed to find its files in a directory")
    return read_released(source, model, calls_per_context=calls_per_context), str(Path(source))


def compute(source, model: str | None = None, *, n_boot: int = 2000, rng=0,
            calls_per_context: int = 10, check=None) -> Replication:
    """:func:`replicate` returning also the scored pairs of every condition (for plots).

    ``source`` is a directory in the released layout or data already in
    memory (a :class:`~selfinterp.io.ReleasedData`, e.g. from
    :func:`~selfinterp.io.read_table` or a simulated study);
    ``calls_per_context`` applies to a directory (data in memory carry it).
    ``check(data)``, if given, is called once the data are read and before any
    work (the command line refuses there a ``n_boot`` that would not fit in memory).
    """
    data, directory = released_source(source, model, calls_per_context)
    if check is not None:
        check(data)
    model = data.model
    b = _Builder(data, n_boot, rng)
    b.fit()
    b.target_metrics()
    b.report_metrics()
    b.effects()
    b.invalid_rate()
    result = {"model": model, "directory": directory, "metrics": b.metrics,
              "notes": b.notes, "details": b.details}
    return Replication(result, b.panels, data)


def replicate(source, model: str | None = None, *, n_boot: int = 2000, rng=0) -> dict:
    """Compute the paper's whole results table for ``model``'s files in ``directory``.

    Parameters
    ----------
    source : path or ReleasedData
        A directory in the released layout (see :mod:`selfinterp.io.released`),
        or data already in memory.
    model : str
        The model name of the file names, e.g. ``"gpt-4o-2024-08-06"``
        (optional with data in memory).
    n_boot : int
        Bootstrap resamples for every interval (>= 2000 recommended).
    rng : None, int, SeedSequence or Generator
        Seed of all resampling (default 0); each metric draws from its own stream.

    Returns
    -------
    dict
        ``{"model", "directory", "metrics", "notes", "details"}`` (``directory``
        None for data in memory); see the module docstring for the metrics
        and their intervals, and :func:`to_dataframe` for a table.
    """
    return compute(source, model, n_boot=n_boot, rng=rng).result


# ---------------------------------------------------------------------------------------------
# presentation


def _f(x, fmt="{:.3f}"):
    return "-" if x is None else fmt.format(x)


def format_table(result: dict) -> str:
    """A readable text table of :func:`replicate`'s result."""
    m = result["metrics"]
    lines = [f"selfinterp replicate: model {result['model']}", ""]

    def iv(ci, sign=""):
        return f"[{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]"

    w = 48
    head = f"{'metric':<{w}} {'value':>7}  {'95% CI':<16}  {'Fisher z':<16}  {'paper-style':<16}  {'n':>5}"
    lines += [head, "-" * len(head)]
    for key in METRICS:
        v = m.get(key)
        label = LABELS[key]
        if v is None:
            row = f"{label:<{w}} {'absent':>7}"
        elif "r" in v:
            row = (f"{label:<{w}} {v['r']:>7.3f}  {iv(v['ci']):<16}  {iv(v['ci_fisher']):<16}  "
                   f"{iv(v['ci_regression']):<16}  {v['n']:>5}")
        elif "diff" in v:
            row = f"{label:<{w}} {v['diff']:>+7.3f}  {iv(v['ci'], '+'):<16}  {'':<16}  {'':<16}  {v['n_contexts']:>5}"
        else:
            row = f"{label:<{w}} {100 * v['value']:>6.1f}%  {'':<16}  {'':<16}  {'':<16}  {v['n']:>5}"
        lines.append(row.rstrip())
    d = result.get("details", {})
    if d.get("learned_vs_authors"):
        lines += ["", "learned weights vs the authors' regression results:"]
        for k, v in d["learned_vs_authors"].items():
            lines.append(f"  {k:<10} mean per-context r {v['mean_context_r']:.4f} (min {v['min_context_r']:.4f}), "
                         f"max |difference| {v['max_abs_diff']:.1f}, {v['n_contexts']} contexts")
    if d.get("controls"):
        lines += ["", "controls (r): shuffled-context null mean [95% range], constant-report baseline:"]
        for k, v in d["controls"].items():
            nl, cb = v["shuffled_null"], v["constant_baseline"]
            lines.append(f"  {LABELS[k]:<46} {nl['mean']:+.3f} [{nl['interval'][0]:+.3f}, "
                         f"{nl['interval'][1]:+.3f}], p {nl['p_value']:.4f};  constant {_f(cb['r'], '{:+.3f}')}")
    if d.get("invalid_reports"):
        lines += ["", "invalid report replies (calls made - valid rows):"]
        for g, v in d["invalid_reports"].items():
            lines.append(f"  {g:<40} {v['invalid']:>5} of {v['calls']}")
    lines += ["", "95% CI: studentised bootstrap resampling whole contexts (effects: paired, studentised); "
                  "Fisher z and paper-style", "(brms slope) intervals treat the (context, attribute) pairs as "
                  "independent.  "
                  "n: (context, attribute) pairs; contexts for effects; calls or choices for rates."]
    if result.get("notes"):
        lines += ["", "notes:"] + [f"  - {n}" for n in result["notes"]]
    return "\n".join(lines)


PANEL_ORDER = ("learned_vs_target", "base_reports_vs_learned", "reports_vs_learned", "reports_vs_target",
               "itrained_reports_vs_learned", "native_reports_vs_learned",
               "native_itrained_reports_vs_learned")


def plot_replication(rep: Replication, path) -> Path:
    """Scatter of reported (x) against learned (y) weights, one panel per condition.

    Needs matplotlib (extra ``plot``); writes ``path`` (format from its suffix).
    """
    from .errors import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in PANEL_ORDER if k in rep.panels]
    if not keys:
        raise InputError("nothing to plot: no condition could be scored")
    ncol = min(4, len(keys))
    nrow = -(-len(keys) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax in axes.ravel()[len(keys):]:
        ax.set_visible(False)
    for ax, k in zip(axes.ravel(), keys):
        p = rep.panels[k]
        r = rep.result["metrics"][k]["r"]
        ax.scatter(p.x.ravel(), p.y.ravel(), s=6, alpha=0.4, lw=0)
        ax.axhline(0, color="0.8", lw=0.5)
        ax.axvline(0, color="0.8", lw=0.5)
        ax.set(xlim=(-105, 105), ylim=(-105, 105), xlabel=p.xlabel, ylabel=p.ylabel)
        ax.set_title(f"{LABELS[k]}\nr = {r:.2f}", fontsize=8)
    fig.suptitle(rep.result["model"], fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
