"""Simulate one whole study as transcripts in the paper's released layout.

:func:`simulate_study` draws every part of the paper's three experiments from
the generative model (:mod:`selfinterp.study.params`) and returns a
:class:`selfinterp.io.ReleasedData`, the same object the reader makes of real
files: :func:`selfinterp.io.write_released` writes it, and
:func:`selfinterp.replicate.replicate` scores it exactly as it scores a real
model's transcripts.

Contexts are synthetic (``context_001``..., ``native_001``...), each with K
attributes named ``attribute_1``... on the range [0, 100]; option values are
written so that (A - B) / range reproduces the simulated differences.
"""

from __future__ import annotations

import numpy as np

from .._core.rng import seed_sequence
from ..design import round_values
from ..io.released import ReleasedData, reports_dataset, scenarios_dataset
from ..labelled import choices_dataset
from .model import (context_bias, draw_targets, effective_weights, simulate_model_choices,
                    simulate_reports)
from .params import StudyDesign, StudyModel

__all__ = ["simulate_study", "report_condition_names"]


def report_condition_names(design: StudyDesign) -> dict[str, str]:
    """Report-file condition of each model condition, named as the paper's files are."""
    C, h = design.contexts, design.contexts // 2
    return {
        "base": "base",
        "instilled": "instilled",
        "itrained_first": f"itrained_first_{h}_of_{C}_{h}ex",
        "itrained_last": f"itrained_last_{C - h}_of_{C}_{C - h}ex",
        "native": "instilled_latent",
        "native_itrained": f"itrained_all_{C}_{C}ex_latent",
    }


def _valid_first(reports, valid):
    """Reorder each context's reports so that the valid ones come first (the file layout
    records an invalid reply only by its absence)."""
    order = np.argsort(~valid, axis=1, kind="stable")
    return np.take_along_axis(reports, order[..., None], axis=1), np.take_along_axis(valid, order, axis=1)


def _as_written(X: np.ndarray) -> np.ndarray:
    """``X`` as the released layout records it (options A and B on 0..100, read back
    as (A - B) / 100): the study scored in memory then equals its transcripts read
    back, to the last bit."""
    return (np.maximum(X, 0.0) * 100.0 - np.maximum(-X, 0.0) * 100.0) / 100.0


def simulate_study(model: StudyModel, design: StudyDesign | None = None, *, rng=0,
                   name: str = "simulated") -> tuple[ReleasedData, dict]:
    """Simulate the paper's three experiments once.

    Parameters
    ----------
    model : StudyModel
    design : StudyDesign, optional
        Defaults to ``model.design`` (the calibrated study's sizes).
    rng : None, int, SeedSequence or Generator
        Seed (default 0, so that a reported study regenerates); None draws
        fresh entropy.  Every part of the study draws from its own spawned
        stream.
    name : str
        Model name written in the transcripts.

    Returns
    -------
    data : ReleasedData
        Scenarios, target weights, instilled and native ("latent") choices, and
        the reports of the base, weight-trained, introspection-trained (the two
        held-out halves), native and native-after-training conditions.
    truth : dict of ndarray
        The simulated ground truth: ``target`` and ``effective`` (C, K) for the
        instilled contexts, ``native`` (Cn, K).
    """
    design = model.design if design is None else design
    seq = seed_sequence(rng)
    s = dict(zip(("targets", "instill", "native", "native_targets", "choices", "native_choices",
                  "reports", "report_options"), seq.spawn(8)))
    C, Cn, K = design.contexts, design.native_contexts, design.attributes
    R = design.reports
    targets = draw_targets(C, K, np.random.default_rng(s["targets"]))
    gi = np.random.default_rng(s["instill"])
    w_eff = effective_weights(targets, model.instilled, gi)
    bias = context_bias(C, model.instilled, gi)
    gn = np.random.default_rng(s["native"])
    w_nat = draw_targets(Cn, K, gn)  # the model's own weights, distributed as targets
    bias_n = context_bias(Cn, model.native, gn)
    never_trained = draw_targets(Cn, K, np.random.default_rng(s["native_targets"]))
    X, y = simulate_model_choices(w_eff, bias, design.choices, model.instilled, key=s["choices"])
    Xn, yn = simulate_model_choices(w_nat, bias_n, design.native_choices, model.native,
                                    key=s["native_choices"])
    X, Xn = _as_written(X), _as_written(Xn)

    names = [f"context_{i + 1:03d}" for i in range(C)]
    nat_names = [f"native_{i + 1:03d}" for i in range(Cn)]
    every = names + nat_names
    attr_names = np.array([[f"attribute_{k + 1}" for k in range(K)]] * len(every))
    scenarios = scenarios_dataset(every, attr_names, np.zeros((len(every), K)),
                                  np.full((len(every), K), 100.0),
                                  question=[f"Which option would you prefer? (simulated context {c})"
                                            for c in every])
    import xarray as xr

    target_da = xr.DataArray(np.concatenate([targets, never_trained]),
                             dims=("context", "attribute"),
                             coords={"context": np.array(every), "attribute": [f"attr{k + 1}" for k in range(K)]})
    choices = {
        "instilled": choices_dataset(X, y, context=names, target_weight=targets),
        "latent": choices_dataset(Xn, yn, context=nat_names),
    }
    cond = report_condition_names(design)
    gr = dict(zip(("base", "instilled", "itrained", "native", "native_itrained"), s["reports"].spawn(5)))
    h = C // 2
    reports = {}
    gopt = np.random.default_rng(s["report_options"])

    def options(n):
        """The option pair shown in each report prompt (as in the paper, a fresh random pair per
        call; it also keeps two equal reports of one context from being equal lines)."""
        lo, hi = np.zeros(K), np.full(K, 100.0)
        return tuple(round_values(gopt.uniform(0.0, 100.0, (n, R, K)), lo, hi) for _ in range(2))

    def dataset(rep, valid, ctx, version):
        a, b = options(len(ctx))
        return reports_dataset(rep, valid, context=ctx, scenarios=scenarios, A=a, B=b,
                               explaining_model=name, version=version)

    def add(key, w, rm, ctx, version):
        rep, valid = _valid_first(*simulate_reports(w, rm, R, np.random.default_rng(gr[key])))
        reports[version] = dataset(rep, valid, ctx, version)

    add("base", w_eff, model.reports["base"], names, cond["base"])
    add("instilled", w_eff, model.reports["instilled"], names, cond["instilled"])
    # introspection training on one half, reports on the other (held-out) half
    rep, valid = _valid_first(*simulate_reports(w_eff, model.reports["itrained"], R,
                                                np.random.default_rng(gr["itrained"])))
    reports[cond["itrained_first"]] = dataset(rep[h:], valid[h:], names[h:], cond["itrained_first"])
    reports[cond["itrained_last"]] = dataset(rep[:h], valid[:h], names[:h], cond["itrained_last"])
    add("native", w_nat, model.reports["native"], nat_names, cond["native"])
    add("native_itrained", w_nat, model.reports["native_itrained"], nat_names, cond["native_itrained"])
    # a context whose every reply was invalid has no row in a released file
    for k, ds in reports.items():
        keep = ds["report_valid"].values.any(axis=1)
        if not keep.all():
            reports[k] = ds.isel(context=np.flatnonzero(keep))
    data = ReleasedData(model=name, scenarios=scenarios, target_weight=target_da, choices=choices,
                        reports=reports, calls_per_context=R)
    return data, {"target": targets, "effective": w_eff, "native": w_nat}
