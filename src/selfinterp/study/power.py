"""Monte-Carlo power analysis over a grid of study designs.

For every design (C contexts, T choices, R reports per context, a training
effect) the engine simulates N whole studies of the paper's experiments 1 and
2 (instilled preferences with the base-model control; introspection training
tested on held-out contexts) and summarises, across the N studies:

- r(learned, target) and r(reports, learned): mean and 2.5 / 97.5 percentiles;
- the expected half-width of the 95% interval of r(reports, learned);
- the power to find the weight-trained model's reports more accurate than the
  base model's (``power_vs_control``), and the introspection-trained model's
  more accurate than the weight-trained model's (``power_training_effect``):
  the share of studies whose 95% interval of the paired difference in pooled r
  (delete-one-context jackknife, see :mod:`selfinterp.study.stats`) lies above 0.

Replicates are not a Python loop: the N x C contexts of a block of replicates
are stacked on one axis and go through one :func:`selfinterp.simulate_and_fit`
call, which simulates and fits them fused in the numba kernel (the choices
themselves are never held in memory).  Randomness is a pure function of
the seed, the design, the replicate group (10 studies) and the global context
index, never of the order in which designs or blocks are computed: the
simulated studies (targets, effective weights, choices, learned weights) come
from ``SeedSequence(seed, spawn_key=(contexts, choices, ...))``, the
weight-trained and base reports from ``(contexts, choices, reports, ...)`` and
the introspection-trained reports from ``(contexts, choices, reports, effect,
...)``.  Designs that differ only in reports or training effect thus share
their simulated choices (common random numbers, which also sharpens their
comparison), and a sweep simulates and fits them once; designs that differ
only in the training effect also share their weight-trained and base reports.
A sweep gives identical numbers on one process or on a dask cluster of any size.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .._core.rng import key_from_rng
from ..errors import InputError
from .model import (check_backend, context_bias, draw_targets, effective_weights, mean_reports,
                    simulate_learned_weights, simulate_reports, weight_sd)
from .params import StudyModel, _check
from .stats import context_sums, fisher_ci, jackknife, paired_test, pooled_r

__all__ = ["Design", "design_grid", "itrained_report_model", "run_design", "run_designs", "sweep",
           "cheapest", "GROUP"]

GROUP = 10          # replicates per random-number group (a fixed part of the algorithm)
BLOCK_TRIALS = 2_000_000  # simulated choices per block (their weights and reports are held at once)
LEVEL = 0.95


@dataclass(frozen=True)
class Design:
    """One design of the sweep.

    ``training_effect`` is the gain in accuracy from introspection training,
    as the increase of the population correlation between one report and the
    model's (rescaled) effective weights; None uses the calibrated
    introspection-trained report model (the paper's effect).
    """

    contexts: int
    choices: int
    reports: int
    training_effect: float | None = None

    def __post_init__(self):
        for name in ("contexts", "choices", "reports"):
            _check(name, getattr(self, name), lo=1, integer=True)
        if self.contexts < 4:
            raise InputError(f"a design needs at least 4 contexts (two halves for introspection "
                             f"training and a jackknife over contexts), got {self.contexts}")
        if self.training_effect is not None:
            _check("training_effect", self.training_effect)

    @property
    def label(self) -> str:
        e = "calibrated" if self.training_effect is None else f"{self.training_effect:g}"
        return f"c{self.contexts}_t{self.choices}_r{self.reports}_e{e}"

    def spawn_key(self) -> tuple[int, ...]:
        e = 0 if self.training_effect is None else 1 + int(round((self.training_effect + 2) * 1e6))
        return (self.contexts, self.choices, self.reports, e)


def design_grid(contexts, choices, reports, effects=(None,)) -> list[Design]:
    """All combinations (repeats dropped, order kept), validated before any simulation."""
    grid = [Design(int(c), int(t), int(r), e) for c in contexts for t in choices
            for r in reports for e in effects]
    return list(dict.fromkeys(grid))


def itrained_report_model(model: StudyModel, effect: float | None):
    """The introspection-trained report model for a training effect (None: calibrated)."""
    if effect is None:
        return model.reports["itrained"]
    base = model.reports["instilled"]
    wsd = weight_sd(model.instilled.instill_sd, model.design.attributes)
    r0 = base.single_report_r(wsd)
    r1 = r0 + effect
    if not 0 < r1 < 1:
        raise InputError(f"training effect {effect:g} takes the single-report correlation from "
                         f"{r0:.3f} to {r1:.3f}, outside (0, 1)")
    return base.with_single_report_r(r1, wsd)


def _study_draws(C: int, model: StudyModel, seq: np.random.SeedSequence):
    """Targets, effective weights and position biases of one group of GROUP studies."""
    gen = np.random.default_rng(seq)
    n, K = GROUP * C, model.design.attributes
    targets = draw_targets(n, K, gen)
    w_eff = effective_weights(targets, model.instilled, gen)
    return {"targets": targets, "w_eff": w_eff, "bias": context_bias(n, model.instilled, gen)}


def _report_draws(w_eff, R: int, conditions, seq: np.random.SeedSequence):
    """Mean reports and valid flags of ``conditions`` ((name, ReportModel) pairs), one group."""
    gen = np.random.default_rng(seq)
    out = {}
    for name, rm in conditions:
        mean, n_valid = mean_reports(*simulate_reports(w_eff, rm, R, gen))
        out[name] = mean
        out[name + "_valid"] = n_valid > 0
    return out


def _group_reports(d, gs, C, R, conditions, spawn_key, seed):
    """:func:`_report_draws` for the groups ``gs`` of a block, concatenated.

    The groups run on a pool of threads: each has its own generator, whose
    normal draws (most of the time here) release the GIL, so the cores share
    them, and the result does not depend on which thread drew which group.
    """
    n = GROUP * C

    def one(j):
        return _report_draws(d["w_eff"][j * n:(j + 1) * n], R, conditions,
                             np.random.SeedSequence(seed, spawn_key=spawn_key + (gs[j],)))

    parts = list(_threads().map(one, range(len(gs))))
    return {k: np.concatenate([x[k] for x in parts]) for k in parts[0]}


@lru_cache(maxsize=1)
def _threads():
    """The pool :func:`_group_reports` draws on (one thread per core, made once)."""
    from concurrent.futures import ThreadPoolExecutor

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ThreadPoolExecutor(max_workers=cores or 1, thread_name_prefix="selfinterp-reports")


def _summary(design: Design, replicates: int, res: dict) -> dict:
    undefined = int(np.sum(~np.isfinite(res["r_lt"]) | ~np.isfinite(res["r_rl"])
                           | ~np.isfinite(res["r_itr"]) | ~np.isfinite(res["r_base"])))

    def dist(x):
        x = x[np.isfinite(x)]
        if len(x) == 0:
            raise InputError(f"design {design.label}: the correlation is undefined in every "
                             f"simulated study (constant reports or weights)")
        lo_, hi_ = np.percentile(x, [2.5, 97.5])
        return {"mean": float(x.mean()), "lo": float(lo_), "hi": float(hi_)}

    def power(x):
        p = float(np.mean(x))
        return p, float(math.sqrt(p * (1 - p) / len(x)))

    pc, pc_se = power(res["ctrl"])
    pt, pt_se = power(res["train"])
    half = res["half"][np.isfinite(res["half"])]
    return {
        "contexts": design.contexts, "choices": design.choices, "reports": design.reports,
        "training_effect": design.training_effect, "replicates": int(replicates),
        "learned_vs_target": dist(res["r_lt"]),
        "reports_vs_learned": dist(res["r_rl"]),
        "base_reports_vs_learned": dist(res["r_base"]),
        "itrained_reports_vs_learned": dist(res["r_itr"]),
        "ci_halfwidth": float(half.mean()) if len(half) else float("nan"),
        "ci_halfwidth_mcse": float(half.std(ddof=1) / math.sqrt(len(half))) if len(half) > 1 else float("nan"),
        "power_vs_control": pc, "power_vs_control_mcse": pc_se,
        "power_training_effect": pt, "power_training_effect_mcse": pt_se,
        "undefined": undefined,
    }


def run_designs(designs, model: StudyModel, replicates: int, seed: int = 0,
                backend: str = "auto") -> list[dict]:
    """:func:`run_design` for designs of equal contexts and choices, sharing their simulation.

    The simulated studies' targets, effective weights, choices and learned
    weights depend only on (seed, contexts, choices): designs that differ only
    in reports or training effect share them (common random numbers), and
    the choices are simulated and fitted once for all of them.  A design's
    result is the same whether it is run alone or with others.
    """
    designs = list(designs)
    _check("replicates", replicates, lo=1, integer=True)
    _check("seed", seed, lo=0, integer=True)
    C, T, K = designs[0].contexts, designs[0].choices, model.design.attributes
    if any((d.contexts, d.choices) != (C, T) for d in designs):
        raise InputError("run_designs needs designs of equal contexts and choices")
    itrained = [itrained_report_model(model, d.training_effect) for d in designs]
    seed = int(seed)
    key = key_from_rng(np.random.SeedSequence(seed, spawn_key=(C, T, 0)))
    n_groups = math.ceil(replicates / GROUP)
    groups_per_block = max(1, BLOCK_TRIALS // (GROUP * C * T))
    names = ("r_lt", "r_rl", "r_base", "r_itr", "half", "ctrl", "train")
    keep = [{k: [] for k in names} for _ in designs]
    shape = (-1, C, K)
    for g0 in range(0, n_groups, groups_per_block):
        gs = range(g0, min(n_groups, g0 + groups_per_block))
        parts = [_study_draws(C, model, np.random.SeedSequence(seed, spawn_key=(C, T, 1, g))) for g in gs]
        d = {k: np.concatenate([x[k] for x in parts]) for k in parts[0]}
        L = simulate_learned_weights(d["w_eff"], d["bias"], T, model.instilled, key=key,
                                     first_context=g0 * GROUP * C, backend=backend).reshape(shape)
        r_lt = pooled_r(L, d["targets"].reshape(shape))
        # the weight-trained and base reports depend on the number of reports only: designs
        # that differ in the training effect share them (and so their control test)
        shared = {}
        for R in sorted({dd.reports for dd in designs}):
            rd = _group_reports(d, gs, C, R, (("instilled", model.reports["instilled"]),
                                              ("base", model.reports["base"])), (C, T, R, 3), seed)
            sums = {name: context_sums(rd[name].reshape(shape), L, rd[name + "_valid"].reshape(-1, C))
                    for name in ("instilled", "base")}
            r_rl, loo = jackknife(sums["instilled"])
            lo, hi = fisher_ci(r_rl, loo, LEVEL)
            shared[R] = {"sums": sums["instilled"], "r_rl": r_rl, "half": (hi - lo) / 2,
                         "r_base": jackknife(sums["base"])[0],
                         "ctrl": paired_test(sums["instilled"], sums["base"], LEVEL)[2]}
        for i, design in enumerate(designs):
            rd = _group_reports(d, gs, C, design.reports, (("itrained", itrained[i]),),
                                design.spawn_key() + (2,), seed)
            sh = shared[design.reports]
            s_itr = context_sums(rd["itrained"].reshape(shape), L, rd["itrained_valid"].reshape(-1, C))
            kp = keep[i]
            kp["r_lt"].append(r_lt)
            for k in ("r_rl", "half", "r_base", "ctrl"):
                kp[k].append(sh[k])
            kp["r_itr"].append(jackknife(s_itr)[0])
            kp["train"].append(paired_test(s_itr, sh["sums"], LEVEL)[2])
    return [_summary(design, replicates, {k: np.concatenate(v)[:replicates] for k, v in kp.items()})
            for design, kp in zip(designs, keep)]


def run_design(design: Design, model: StudyModel, replicates: int, seed: int = 0,
               backend: str = "auto") -> dict:
    """Simulate ``replicates`` studies of ``design`` and summarise them (see the module docstring).

    Returns
    -------
    dict
        ``contexts``, ``choices``, ``reports``, ``training_effect``,
        ``replicates``; ``learned_vs_target``, ``reports_vs_learned``,
        ``base_reports_vs_learned``, ``itrained_reports_vs_learned`` each
        ``{"mean", "lo", "hi"}`` (2.5 and 97.5 percentiles across studies);
        ``ci_halfwidth`` (mean half-width of the 95% interval of
        r(reports, learned)); ``power_vs_control``, ``power_training_effect``
        and their Monte-Carlo standard errors ``*_mcse``; ``undefined`` (studies
        whose r could not be computed, counted as failures).
    """
    return run_designs([design], model, replicates, seed, backend)[0]


def _config(design: Design, model: StudyModel, replicates: int, seed: int) -> dict:
    from .._version import __version__

    return {"design": asdict(design), "replicates": int(replicates), "seed": int(seed),
            "model": model.to_dict() | {"provenance": {}}, "selfinterp": __version__}


def _load_done(path: Path, config: dict):
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # a file cut short by an interruption: compute the design again
    if data.get("config") != config:
        raise InputError(f"{path} holds a design computed with other settings (seed, replicates, "
                         f"calibration or version); use another --out directory or remove it")
    return data["result"]


def _save(path: Path, config: dict, result: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"config": config, "result": result}, indent=1), "utf-8")
    tmp.replace(path)  # atomic: an interruption never leaves half a file under the final name


def local_cluster(n_workers: int, *, processes: bool = True):
    """A dask ``LocalCluster`` of ``n_workers`` single-thread workers on loopback TCP, for :func:`sweep`.

    No dashboard, and the scheduler's HTTP endpoint on a free port: dask's
    default (port 8787) warns, or fails under strict warnings, whenever
    another cluster on the machine already holds that port.
    """
    from distributed import LocalCluster

    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes, protocol="tcp://",
                        host="127.0.0.1", dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


def _run_packed(args):
    designs, model, replicates, seed, backend = args
    return run_designs(designs, model, replicates, seed, backend)


def sweep(designs, model: StudyModel, *, replicates: int, seed: int = 0, out=None, client=None,
          progress: bool | None = None, backend: str = "auto") -> list[dict]:
    """Run :func:`run_design` for every design; results in the order of ``designs``.

    Parameters
    ----------
    designs : list of Design
    model : StudyModel
    replicates : int
        Simulated studies per design.
    seed : int
    out : path, optional
        Directory with one JSON file per finished design: a sweep that is
        interrupted keeps them, and a sweep run again with the same ``out``
        reuses them (a file computed with other settings is an error).
    client : dask.distributed.Client, optional
        Run the designs as tasks on this cluster (identical results).
    progress : bool or None
        Show a tqdm bar (None: only on a terminal).
    backend : str
        :func:`selfinterp.fit_logit`'s backend; checked before the sweep.
    """
    from tqdm.auto import tqdm

    designs = list(designs)
    if not designs:
        raise InputError("the design grid is empty")
    _check("replicates", replicates, lo=1, integer=True)
    _check("seed", seed, lo=0, integer=True)
    for d in designs:  # every bad effect size is reported before any simulation
        itrained_report_model(model, d.training_effect)
    check_backend(backend)
    results: list[dict | None] = [None] * len(designs)
    paths = configs = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"design_{d.label}.json" for d in designs]
        configs = [_config(d, model, replicates, seed) for d in designs]
        for i in range(len(designs)):
            results[i] = _load_done(paths[i], configs[i])
    todo = [i for i, r in enumerate(results) if r is None]
    bar = tqdm(total=len(designs), initial=len(designs) - len(todo), unit="design",
               disable=(not progress) if progress is not None else None, desc="power")

    def finish(i, res):
        results[i] = res
        if paths is not None:
            _save(paths[i], configs[i], res)
        bar.update(1)

    # designs of equal contexts and choices share their simulated choices and fits: one task each
    groups: dict = {}
    for i in todo:
        groups.setdefault((designs[i].contexts, designs[i].choices), []).append(i)
    try:
        if client is None:
            for idx in groups.values():
                for i, res in zip(idx, run_designs([designs[i] for i in idx], model, replicates, seed,
                                                 backend)):
                    finish(i, res)
        else:
            from distributed import as_completed

            futures = {client.submit(_run_packed, ([designs[i] for i in idx], model, replicates, seed, backend),
                                     pure=False): idx for idx in groups.values()}
            for fut in as_completed(futures):
                for i, res in zip(futures[fut], fut.result()):
                    finish(i, res)
    finally:
        bar.close()
    return results


def cheapest(results: list[dict], target_power: float, test: str = "training") -> dict | None:
    """The design of lowest ``cost_usd`` whose power (``test``: "training" or "control") reaches
    ``target_power``; None when no design does."""
    key = {"training": "power_training_effect", "control": "power_vs_control"}.get(test)
    if key is None:
        raise InputError(f"test must be 'training' or 'control', got {test!r}")
    ok = [r for r in results if r[key] >= target_power]
    return min(ok, key=lambda r: (r["cost_usd"], r["contexts"] * r["choices"])) if ok else None
