"""Calibrate the generative model on real transcripts in the released layout.

Method of simulated moments with common random numbers: summary statistics
("moments") of the real files are matched by the same statistics of a large
simulation of the model (``tiles`` copies of the real contexts, with the real
target weights), whose random draws are held fixed while a least-squares
solver moves the parameters.

- Instilled choices (scale, instill_sd, bias, bias_sd) from: the share of
  choices that agree with the target rule, the pooled r(learned, target), the
  mean largest |slope| of the per-context fits, and the mean and sd of the
  fitted intercepts.
- Native choices (scale, bias, bias_sd; instill_sd = 0 since the "targets"
  are the model's own weights, drawn like target weights) from the last three.
- Reports, per condition (offset, slope, sd_context, sd_report) from: the mean
  report, the sd of reports within a (context, attribute), the sd of the
  per-(context, attribute) means, their pooled r with the learned weights, and
  the share of reports at +-100.  The base model's slope is 0 by definition.
  The grid is the coarsest of 100, 50, 25, 20, 10, 5, 2, 1 on which at least
  90% of the reports lie; the invalid rate is the share of the calls made
  (``calls_per_context`` per context) that have no row in the file.

Conditions whose files are absent keep the built-in (GPT-4o) values, and the
provenance says so.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from ..errors import InputError
from ..logit import fit_logit, normalize_weights
from .model import draw_targets, simulate_model_choices
from .params import ChoiceModel, ReportModel, StudyDesign, StudyModel
from .stats import pooled_r

__all__ = ["calibrate", "choice_moments", "report_moments", "GRIDS"]

GRIDS = (100.0, 50.0, 25.0, 20.0, 10.0, 5.0, 2.0, 1.0)
GRID_SHARE = 0.9
# rough sampling sds of the moments for 100 contexts: they weight the residuals
CHOICE_SD = np.array([0.005, 0.01, 0.05, 0.03, 0.03])
REPORT_SD = np.array([1.0, 1.0, 1.0, 0.01, 0.01])
CONDITION_FILES = {  # condition -> report-file conditions of the released layout
    "base": ("base",),
    "instilled": ("instilled",),
    "itrained": ("itrained_first_50_of_100_50ex", "itrained_last_50_of_100_50ex"),
    "native": ("instilled_latent",),
    "native_itrained": ("itrained_all_100_50ex_latent",),
}


# ------------------------------------------------------------------ moments

CHOICE_MOMENTS = ("agreement", "r_learned_target", "mean_max_abs_slope", "mean_intercept",
                  "sd_intercept")
REPORT_MOMENTS = ("mean", "sd_within", "sd_of_means", "r_means_learned", "share_at_100")


def _moment_table(names, real, sim) -> dict:
    """{name: [real, simulated]} for the provenance of a calibration file."""
    return {n: [round(float(a), 4), round(float(b), 4)] for n, a, b in zip(names, real, sim)}

def choice_moments(X, y, mask, targets=None, C: int | None = None) -> np.ndarray:
    """Moments of choices: [agreement, r(learned, target), mean max|slope|, mean and sd of intercept].

    ``X`` (A, T, K), ``y`` and ``mask`` (A, T); ``targets`` (A, K) or None
    (then the first two moments are NaN).  With ``C``, r is pooled within
    consecutive blocks of C contexts and averaged (the expectation for studies
    of C contexts).
    """
    fit = fit_logit(X, y, mask=mask, check_separation=False)
    L = normalize_weights(fit.coef)
    agree = r = np.nan
    if targets is not None:
        u = np.einsum("atk,ak->at", X, targets)
        agree = float(np.sum(((u > 0) == (y == 1)) & mask) / mask.sum())
        C = len(targets) if C is None else C
        K = targets.shape[1]
        r = float(np.mean(pooled_r(L.reshape(-1, C, K), targets.reshape(-1, C, K))))
    return np.array([agree, r, np.abs(fit.coef).max(axis=1).mean(), fit.intercept.mean(),
                     fit.intercept.std()]), L


def report_moments(reports, valid, learned, C: int | None = None) -> np.ndarray:
    """Moments of reports (A, R, K) with ``valid`` (A, R) against ``learned`` (A, K).

    [mean, within-(context, attribute) sd, sd of the means, r(means, learned), share at +-100].
    """
    v = valid[..., None].astype(np.float64)
    n = valid.sum(axis=1)
    if np.sum(n) == 0:
        raise InputError("no valid report to calibrate on")
    has = n > 0
    rep = np.where(valid[..., None], reports, 0.0)
    mean = rep.sum(axis=1) / np.maximum(n, 1)[:, None]
    dev2 = (np.where(valid[..., None], reports - mean[:, None, :], 0.0) ** 2).sum(axis=1)
    dof = np.maximum(n - 1, 0)
    within = np.sqrt(dev2[dof > 0].sum() / (dof.sum() * reports.shape[2])) if dof.sum() else 0.0
    C = len(reports) if C is None else C
    K = reports.shape[2]
    r = float(np.nanmean(pooled_r(mean.reshape(-1, C, K), learned.reshape(-1, C, K),
                                  has.reshape(-1, C))))
    return np.array([float(rep.sum() / (v.sum() * K)), within, float(mean[has].std()), r,
                     float(np.sum((np.abs(reports) >= 100) * v) / (v.sum() * K))])


def report_grid(reports, valid) -> float:
    vals = reports[valid]
    for g in GRIDS:
        if np.mean(np.isclose(np.mod(vals + 1e-9, g), 0, atol=1e-6)) >= GRID_SHARE:
            return g
    return 1.0


# ------------------------------------------------------------------ fitting

def _fit(residual, x0, lo, hi):
    res = least_squares(residual, x0=np.asarray(x0, float), bounds=(lo, hi), diff_step=0.05,
                        xtol=1e-4, ftol=1e-4, max_nfev=200)
    return res.x


def _calibrate_choices(real, targets, T, tiles, seed, *, native=False):
    """Fit a ChoiceModel whose simulated moments match ``real``.

    ``seed`` is a SeedSequence: the caller gives every fit its own stream, so
    the noise of one part of the model is never reused by another.
    """
    C, K = targets.shape
    noise_seq, key = seed.spawn(2)
    gen = np.random.default_rng(noise_seq)
    tt = np.tile(targets, (tiles, 1))
    zw = gen.standard_normal(tt.shape)
    zb = gen.standard_normal(len(tt))
    mask = np.ones((len(tt), T), bool)

    def model(p):
        s, sig, b, bsd = (p[0], 0.0, p[1], p[2]) if native else p
        return ChoiceModel(scale=float(np.exp(s)), instill_sd=float(sig), bias=float(b),
                           bias_sd=float(bsd))

    def simulate(cm):
        w = tt + cm.instill_sd * zw
        X, y = simulate_model_choices(w, cm.bias + cm.bias_sd * zb, T, cm, key=key)
        return X, y, w

    use = slice(2, 5) if native else slice(0, 5)

    def residual(p):
        X, y, _ = simulate(model(p))
        m, _ = choice_moments(X, y, mask, None if native else tt, C)
        return ((m - real) / CHOICE_SD)[use]

    # start the position bias at the mean fitted intercept (its moment)
    x0 = [np.log(0.1), real[3], 1.0] if native else [np.log(0.1), 20.0, real[3], 1.0]
    lo = [np.log(1e-4), -5, 0] if native else [np.log(1e-4), 0, -5, 0]
    hi = [np.log(10), 5, 10] if native else [np.log(10), 300, 5, 10]
    cm = model(_fit(residual, x0, lo, hi))
    X, y, w = simulate(cm)
    sim, L = choice_moments(X, y, mask, None if native else tt, C)
    return cm, w, L, sim


def _calibrate_reports(real, w, L, R, C, grid, invalid, seed, *, slope_free=True):
    """Fit a ReportModel whose simulated moments (R calls per context) match ``real``."""
    gen = np.random.default_rng(seed)  # a SeedSequence of its own (see _calibrate_choices)
    wn = normalize_weights(w)
    zc = gen.standard_normal((len(w), 1, w.shape[1]))
    zr = gen.standard_normal((len(w), R, w.shape[1]))
    valid = gen.random((len(w), R)) >= invalid

    def model(p):
        off, sl, sc, sr = p if slope_free else (p[0], 0.0, p[1], p[2])
        return ReportModel(slope=float(sl), offset=float(off), sd_context=float(sc),
                           sd_report=float(sr), grid=grid, invalid_rate=invalid)

    use = [0, 1, 2, 3, 4] if slope_free else [0, 1, 2]

    def residual(p):
        rm = model(p)
        lat = rm.offset + rm.slope * wn[:, None, :] + rm.sd_context * zc + rm.sd_report * zr
        rep = np.clip(np.round(lat / grid) * grid, -100, 100)
        return ((report_moments(rep, valid, L, C) - real) / REPORT_SD)[use]

    x0 = [real[0], 0.5, real[2] / 2, real[1]] if slope_free else [real[0], real[2], real[1]]
    lo = [-100, -5, 0, 0] if slope_free else [-100, 0, 0]
    hi = [100, 5, 300, 300] if slope_free else [100, 300, 300]
    p = _fit(residual, x0, lo, hi)
    return model(p), residual(p) * REPORT_SD[use] + real[use]


# ------------------------------------------------------------------ the directory

def _concat_reports(datasets, contexts):
    """Pool report Datasets (e.g. the two held-out halves) over the expected contexts.

    Returns reports (C, R, K) and valid (C, R); an expected context absent from
    every file had no valid reply (all slots invalid); a report of an
    unexpected context, or one context in two files, is an error.
    """
    pos = {c: i for i, c in enumerate(contexts)}
    R = datasets[0].sizes["report"]
    K = datasets[0].sizes["attribute"]
    rep = np.zeros((len(contexts), R, K))
    valid = np.zeros((len(contexts), R), bool)
    seen = set()
    for ds in datasets:
        r = ds["report"].transpose("context", "report", "attribute").values
        v = ds["report_valid"].transpose("context", "report").values
        for j, c in enumerate(map(str, ds["context"].values)):
            if c not in pos:
                raise InputError(f"{ds.attrs.get('source', 'reports')}: reports on context {c!r}, "
                                 f"which is not among the contexts of its choices")
            if c in seen:
                raise InputError(f"context {c!r} has reports in two files of one condition")
            seen.add(c)
            rep[pos[c]] = np.where(v[j][:, None], r[j], 0.0)
            valid[pos[c]] = v[j]
    return rep, valid


def calibrate(directory, model: str | None = None, *, tiles: int = 20, seed: int = 0,
              calls_per_context: int = 10, train_examples: int = 50,
              command: str | None = None, check=None) -> StudyModel:
    """Estimate the generative model's parameters from one model's released files.

    Parameters
    ----------
    directory : path or ReleasedData
        A directory in the released layout (see :mod:`selfinterp.io`), or
        data already in memory (e.g. from :func:`selfinterp.io.read_study_tables`).
    model : str
        The model name in the file names (optional with data in memory).
    tiles : int
        Copies of the real contexts in the calibration simulation (more: less
        simulation noise, slower).
    seed : int
        Seed of the calibration simulation.
    calls_per_context : int
        Report calls made per context (10 in the paper); missing rows are invalid replies.
    train_examples : int
        Instillation examples per context (cost model only; not in the files).
    command : str, optional
        The command line, recorded in the provenance.
    check : callable, optional
        Called as ``check(tiles, parts, attributes, calls_per_context)`` once the
        files are read and before the simulation starts, ``parts`` the
        (contexts, choices) of each simulated set of choices (instilled, and
        native where present): it may refuse sizes whose cost is absurd
        (the command line does).

    Returns
    -------
    StudyModel
    """
    from ..replicate import released_source
    from .defaults import DEFAULT_MODEL
    from .params import _check

    _check("tiles", tiles, lo=1, integer=True)
    _check("seed", seed, lo=0, integer=True)
    _check("train_examples", train_examples, lo=1, integer=True)

    data, where = released_source(directory, model, calls_per_context)
    model = data.model
    if where is None:
        calls_per_context = data.calls_per_context
    label = directory if where is not None else f"the data of {model!r}"
    if "instilled" not in data.choices:
        raise InputError(f"{label}: calibration needs {model}_instilled_selections.csv")
    ch = data.choices["instilled"]
    if "target_weight" not in ch:
        raise InputError(f"{label}: calibration needs the target weights (instilled_weights.csv) "
                         f"of every instilled context")
    X, y, mask = ch["X"].values, ch["y"].values, ch["mask"].values
    targets = ch["target_weight"].values
    C, T, K = X.shape
    if check is not None:
        parts = [(C, T)]
        if "latent" in data.choices:
            parts.append((data.choices["latent"].sizes["context"], data.choices["latent"].sizes["trial"]))
        check(tiles, parts, K, int(calls_per_context))
    real, L_real = choice_moments(X, y, mask, targets)
    streams = dict(zip(("instilled", "native", "native_targets") + tuple(CONDITION_FILES),
                       np.random.SeedSequence(int(seed)).spawn(3 + len(CONDITION_FILES))))
    instilled, w_sim, L_sim, sim = _calibrate_choices(real, targets, T, tiles, streams["instilled"])
    provenance_notes = []
    moments = {"instilled_choices": _moment_table(CHOICE_MOMENTS, real, sim)}
    native = DEFAULT_MODEL.native
    nat = None
    if "latent" in data.choices:
        lt = data.choices["latent"]
        real_n, L_real_n = choice_moments(lt["X"].values, lt["y"].values, lt["mask"].values)
        Cn, Tn = lt.sizes["context"], lt.sizes["trial"]
        nat_targets = draw_targets(Cn, K, np.random.default_rng(streams["native_targets"]))
        native, wn_sim, Ln_sim, sim_n = _calibrate_choices(real_n, nat_targets, Tn, tiles, streams["native"],
                                                    native=True)
        nat = (lt, L_real_n, wn_sim, Ln_sim, Cn, Tn)
        moments["native_choices"] = _moment_table(CHOICE_MOMENTS[2:], real_n[2:], sim_n[2:])
    else:
        provenance_notes.append("native choices: default (no latent selections file)")
    reports = {}
    R = int(calls_per_context)
    for cond, files in CONDITION_FILES.items():
        present = [data.reports[f] for f in files if f in data.reports]
        is_native = cond.startswith("native")
        if len(present) != len(files) or (is_native and nat is None):
            reports[cond] = DEFAULT_MODEL.reports[cond]
            provenance_notes.append(f"reports {cond}: default (file(s) absent)")
            continue
        if is_native:
            lt, Lr, ws, Ls, Cc, _ = nat
            ctx = [str(c) for c in lt["context"].values]
        else:
            Lr, ws, Ls, Cc = L_real, w_sim, L_sim, C
            ctx = [str(c) for c in ch["context"].values]
        rep, valid = _concat_reports(present, ctx)
        real_r = report_moments(rep, valid, Lr)
        grid = report_grid(rep, valid)
        invalid = float(1.0 - valid.sum() / valid.size)
        reports[cond], sim_r = _calibrate_reports(real_r, ws, Ls, R, Cc, grid, invalid,
                                                  streams[cond], slope_free=(cond != "base"))
        names = REPORT_MOMENTS if cond != "base" else REPORT_MOMENTS[:3]
        moments[f"reports_{cond}"] = _moment_table(names, real_r[:len(names)], sim_r)
    nat_ctx = data.choices["latent"].sizes["context"] if nat else DEFAULT_MODEL.design.native_contexts
    nat_t = nat[5] if nat else DEFAULT_MODEL.design.native_choices
    design = StudyDesign(contexts=C, choices=T, reports=R, attributes=K, native_contexts=nat_ctx,
                         native_choices=nat_t, train_examples=train_examples)
    if where is None:
        files, where = [], "(data in memory)"
        command = command or f"calibrate(<ReleasedData {model!r}>)"
    else:
        files = sorted(p.name for p in Path(directory).iterdir()
                       if p.name == "scenarios.csv" or p.name == "instilled_weights.csv"
                       or p.name.startswith(model + "_"))
        where = str(Path(directory).resolve())
    provenance = {
        "model": model,
        "directory": where,
        "files": files,
        "date": _dt.date.today().isoformat(),
        "command": command or f"selfinterp calibrate {directory} --model {model}",
        "seed": int(seed), "tiles": int(tiles),
        "notes": provenance_notes,
        "moments": moments,
    }
    return replace(DEFAULT_MODEL, instilled=instilled, native=native, reports=reports, design=design,
                   provenance=provenance)
