"""Coverage of `replicate`'s 95% intervals across simulated studies.

The check: simulate many studies from the generative model, compute for each
the intervals that :func:`selfinterp.replicate.replicate` reports (the
studentised bootstrap resampling whole contexts, :func:`selfinterp.score.cluster_bootstrap`,
and for the training effect the paired one, :func:`selfinterp.score.paired_difference`),
and count how often they contain the true value.

The true value of a correlation metric is the population pooled correlation of
the generative model at the design's choices and reports per context: the
pooled r of one huge simulated study (``truth_contexts`` contexts; its own
standard error is about 1 / sqrt(5 x truth_contexts), 0.001 at 100,000 contexts).
The true training effect is the difference of the two true correlations.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..score import cluster_bootstrap, paired_difference
from .model import (context_bias, draw_targets, effective_weights, mean_reports,
                    simulate_learned_weights, simulate_reports)
from .params import StudyDesign, StudyModel
from .stats import pooled_r

__all__ = ["simulate_arrays", "true_values", "coverage", "COVERAGE_METRICS"]

COVERAGE_METRICS = ("learned_vs_target", "base_reports_vs_learned", "reports_vs_learned",
                    "reports_vs_target", "itrained_reports_vs_learned", "training_effect")


def simulate_arrays(model: StudyModel, design: StudyDesign, n_studies: int, seq: np.random.SeedSequence):
    """The scored arrays of ``n_studies`` studies, each (n_studies, C, K).

    Returns a dict with ``target``, ``learned`` and the mean reports ``base``,
    ``instilled``, ``itrained`` (every context keeps at least one valid report:
    the calibrated models' invalid rates are 0 for these conditions).
    """
    C, K, R = design.contexts, design.attributes, design.reports
    n = n_studies * C
    s = seq.spawn(3)
    gen = np.random.default_rng(s[0])
    target = draw_targets(n, K, gen)
    w = effective_weights(target, model.instilled, gen)
    bias = context_bias(n, model.instilled, gen)
    out = {"target": target,
           "learned": simulate_learned_weights(w, bias, design.choices, model.instilled, key=s[1])}
    gr = np.random.default_rng(s[2])
    for cond in ("base", "instilled", "itrained"):
        mean, n_valid = mean_reports(*simulate_reports(w, model.reports[cond], R, gr))
        if np.any(n_valid == 0):
            raise ValueError(f"{cond}: a context without a valid report; the coverage check "
                             f"assumes none")
        out[cond] = mean
    return {k: v.reshape(n_studies, C, K) for k, v in out.items()}


def true_values(model: StudyModel, design: StudyDesign, *, truth_contexts: int = 100_000,
                seed: int = 12345) -> dict:
    """Population values of the metrics, from one huge simulated study."""
    big = StudyDesign(contexts=truth_contexts, choices=design.choices, reports=design.reports,
                      attributes=design.attributes)
    a = simulate_arrays(model, big, 1, np.random.SeedSequence(seed))
    r = {
        "learned_vs_target": pooled_r(a["learned"], a["target"])[0],
        "base_reports_vs_learned": pooled_r(a["base"], a["learned"])[0],
        "reports_vs_learned": pooled_r(a["instilled"], a["learned"])[0],
        "reports_vs_target": pooled_r(a["instilled"], a["target"])[0],
        "itrained_reports_vs_learned": pooled_r(a["itrained"], a["learned"])[0],
    }
    r["training_effect"] = r["itrained_reports_vs_learned"] - r["reports_vs_learned"]
    return {k: float(v) for k, v in r.items()}


def coverage(model: StudyModel, design: StudyDesign, *, n_studies: int = 1000, n_boot: int = 2000,
             seed: int = 0, truth: dict | None = None, method: str = "studentized",
             metrics=COVERAGE_METRICS) -> dict:
    """Share of ``n_studies`` simulated studies whose 95% interval contains the true value.

    ``method``: the bootstrap interval of the correlations (:func:`selfinterp.score.cluster_bootstrap`)
    and of the training effect (:func:`selfinterp.score.paired_difference`), by default replicate's
    (studentised).

    Returns
    -------
    dict
        ``{metric: {"coverage", "mcse", "truth", "mean_estimate", "below", "above"}}``
        where ``below``/``above`` count intervals entirely below/above the truth,
        plus ``"n_studies"`` and ``"n_boot"``.
    """
    unknown = [k for k in metrics if k not in COVERAGE_METRICS]
    if unknown or not metrics:
        raise InputError(f"metrics must be some of {', '.join(COVERAGE_METRICS)}, got {list(metrics)!r}")
    truth = true_values(model, design) if truth is None else truth
    a = simulate_arrays(model, design, n_studies, np.random.SeedSequence(seed))
    boot = np.random.SeedSequence(seed).spawn(n_studies + 1)[1:]
    pairs = {"learned_vs_target": ("learned", "target"), "base_reports_vs_learned": ("base", "learned"),
             "reports_vs_learned": ("instilled", "learned"), "reports_vs_target": ("instilled", "target"),
             "itrained_reports_vs_learned": ("itrained", "learned")}
    hits = {k: [] for k in metrics}
    est = {k: [] for k in metrics}
    for i in range(n_studies):
        gens = boot[i].spawn(len(COVERAGE_METRICS))
        for j, (k, (x, y)) in enumerate(pairs.items()):
            if k not in metrics:
                continue
            (lo, hi), _ = cluster_bootstrap(a[x][i], a[y][i], n_boot=n_boot, rng=gens[j], method=method)
            hits[k].append((lo, hi))
            est[k].append(float(pooled_r(a[x][i][None], a[y][i][None])[0]))
        if "training_effect" not in metrics:
            continue
        d, (lo, hi), _ = paired_difference(a["instilled"][i], a["learned"][i], a["itrained"][i],
                                           a["learned"][i], n_boot=n_boot, rng=gens[-1], method=method)
        hits["training_effect"].append((lo, hi))
        est["training_effect"].append(d)
    out = {"n_studies": n_studies, "n_boot": n_boot}
    for k in metrics:
        ci = np.array(hits[k])
        t = truth[k]
        inside = (ci[:, 0] <= t) & (t <= ci[:, 1])
        p = float(inside.mean())
        out[k] = {"coverage": p, "mcse": float(np.sqrt(p * (1 - p) / n_studies)), "truth": t,
                  "mean_estimate": float(np.mean(est[k])), "below": int((ci[:, 1] < t).sum()),
                  "above": int((ci[:, 0] > t).sum())}
    return out
