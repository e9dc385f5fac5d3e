"""Benchmark of weight-recovery estimators over a grid of simulated regimes.

A regime fixes the trials per context, the choice noise (logit inverse
temperature ``scale`` on the utility scale; ``inf`` is the paper's
deterministic rule), the number of attributes, a position bias and a lapse
rate.  Every replicate of a regime draws ``n_contexts`` agents with the
paper's target weights (:func:`selfinterp.design.draw_target_weights`),
simulates their choices (:func:`selfinterp.simulate_choices`; lapses through
:class:`selfinterp.agents.ChoiceRule`), runs every estimator on the same data
and scores it.

Seeds: replicate ``i`` of a regime uses ``SeedSequence([seed, T, K,
scale code, bias code, lapse code, i])``, from which four streams are spawned
(weights, simulation, lapses, estimators): a regime's data do not depend on
which other regimes are in the grid or in what order they run.

Estimand of the intervals: the slopes on the logit likelihood's scale.  For a
logit agent without lapses these are ``scale * w`` (w the target weights);
with lapses the logit model is misspecified and the estimand is the
pseudo-true (Kullback-Leibler-closest) logit slope, computed per context by
fitting the exact choice probabilities on ``pseudo_true_trials`` fresh option
pairs; for the deterministic rule without lapses it does not exist (the
likelihood-scale slopes are infinite), so coverage is not defined there
(``estimand_defined`` is False and coverage and width are NaN).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..agents import ChoiceRule
from ..design import draw_target_weights
from ..errors import InputError
from ..logit import fit_logit, normalize_weights
from ..simulate import simulate_choices
from ._result import as_result

__all__ = ["Regime", "default_grid", "run_benchmark", "summarise", "markdown_table",
           "plot_benchmark", "METRICS"]

METRICS = {
    "r_pooled": "Pearson r of normalised estimated vs true weights, pooled over contexts and attributes",
    "r_context": ("mean over contexts of the per-context Pearson r (contexts with a constant "
                  "estimate left out)"),
    "nrmse": "root mean squared error of the weights normalised to max |w| = 100",
    "sign_accuracy": "share of weights (true w != 0) whose estimated sign is right",
    "coverage": "share of 95% intervals covering the likelihood-scale estimand",
    "width": "median interval width on the likelihood scale",
    "converged_share": "share of contexts the estimator flags converged",
    "time_s": "wall-clock seconds of the estimator call",
}

NOISE_LABELS = {0.005: "near-random", 0.02: "noisy", 0.1: "sharp", math.inf: "deterministic"}


@dataclass(frozen=True)
class Regime:
    """One cell of the benchmark grid.

    Attributes
    ----------
    n_trials : int
        Choices per context.
    scale : float
        Inverse temperature: P(A) = sigmoid(scale * (x . w + bias)) with w on
        the paper's -100..100 scale; ``inf`` is the deterministic rule.
    n_attributes : int
    bias : float
        Position bias towards A, in utility units (the scale of w).
    lapse : float
        Probability of a random choice.
    """

    n_trials: int
    scale: float
    n_attributes: int = 5
    bias: float = 0.0
    lapse: float = 0.0

    def __post_init__(self):
        if int(self.n_trials) != self.n_trials or self.n_trials < 2:
            raise InputError(f"n_trials must be an integer >= 2, got {self.n_trials!r}")
        if not self.scale > 0:
            raise InputError(f"scale must be positive (inf: deterministic), got {self.scale!r}")
        if int(self.n_attributes) != self.n_attributes or self.n_attributes < 1:
            raise InputError(f"n_attributes must be a positive integer, got {self.n_attributes!r}")
        if not math.isfinite(self.bias):
            raise InputError(f"bias must be finite, got {self.bias!r}")
        if not 0.0 <= self.lapse < 1.0:
            raise InputError(f"lapse must lie in [0, 1), got {self.lapse!r}")

    @property
    def label(self) -> str:
        noise = "det" if math.isinf(self.scale) else f"s={self.scale:g}"
        extra = ((f" bias={self.bias:g}" if self.bias else "")
                 + (f" lapse={self.lapse:g}" if self.lapse else ""))
        return f"T={self.n_trials} K={self.n_attributes} {noise}{extra}"

    @property
    def estimand_defined(self) -> bool:
        return math.isfinite(self.scale) or self.lapse > 0

    def seed_sequence(self, seed: int, replicate: int) -> np.random.SeedSequence:
        def code(x):
            return 2**62 if math.isinf(x) else int(round(x * 1e6)) % 2**62
        return np.random.SeedSequence([int(seed), int(self.n_trials), int(self.n_attributes),
                                       code(self.scale), code(abs(self.bias)), int(self.bias < 0),
                                       code(self.lapse), int(replicate)])


def default_grid() -> list[Regime]:
    """The default grid (31 regimes), built around the paper's regime (T=50, K=5, deterministic).

    - trials 10, 20, 50, 100, 200, 500 x noise near-random (0.005), noisy
      (0.02), sharp (0.1), deterministic (up to 200 trials: at 500
      deterministic choices every estimator recovers the weights, r = 1.00,
      and Firth's profile search in the flat, completely separated
      likelihood dominates the run time), at K = 5;
    - K = 2 and 10 at T = 50, noisy and deterministic;
    - a position bias of 20 utility units, and lapses of 10%, at T = 50,
      K = 5, noisy and deterministic.
    """
    grid = [Regime(T, s) for s in (0.005, 0.02, 0.1, math.inf) for T in (10, 20, 50, 100, 200, 500)
            if not (math.isinf(s) and T == 500)]
    grid += [Regime(50, s, n_attributes=K) for K in (2, 10) for s in (0.02, math.inf)]
    grid += [Regime(50, s, bias=20.0) for s in (0.02, math.inf)]
    grid += [Regime(50, s, lapse=0.1) for s in (0.02, math.inf)]
    return grid


def _rule(regime: Regime) -> ChoiceRule:
    if math.isinf(regime.scale):
        return ChoiceRule("deterministic", lapse=regime.lapse, bias=regime.bias)
    return ChoiceRule("logit", scale=regime.scale, lapse=regime.lapse, bias=regime.bias)


def simulate_regime(regime: Regime, n_contexts: int, seed: int, replicate: int,
                    pseudo_true_trials: int = 20_000):
    """Data of one replicate of a regime.

    Returns
    -------
    dict with ``w`` (A, K) target weights, ``X`` (A, T, K), ``y`` (A, T),
    ``estimand`` (A, K) likelihood-scale slopes (None where undefined) and
    ``rng`` (the estimators' Generator).
    """
    s_w, s_sim, s_lapse, s_est = regime.seed_sequence(seed, replicate).spawn(4)
    w = draw_target_weights(n_contexts, regime.n_attributes, s_w)
    rule = _rule(regime)
    if regime.lapse == 0.0:
        X, y = simulate_choices(w, regime.n_trials, scale=regime.scale, intercept=regime.bias,
                                rng=s_sim)
    else:
        X, _ = simulate_choices(w, regime.n_trials, rng=s_sim)
        y = rule.choose(np.einsum("atk,ak->at", X, w), s_lapse)
    estimand = None
    if regime.lapse == 0.0 and math.isfinite(regime.scale):
        estimand = regime.scale * w
    elif regime.lapse > 0.0:
        # pseudo-true slopes: the logit fitted to the exact choice
        # probabilities of many fresh option pairs (soft labels)
        Xb, _ = simulate_choices(w, pseudo_true_trials, rng=s_lapse.spawn(1)[0])
        p = rule.p_choose_a(np.einsum("atk,ak->at", Xb, w))
        estimand = fit_logit(Xb, p, prior_sd=None, check_separation=False).coef
    return {"w": w, "X": X, "y": y, "estimand": estimand, "rng": np.random.default_rng(s_est)}


def score(result, w, estimand) -> dict:
    """Metrics of one estimator's result against the true weights (see :data:`METRICS`)."""
    nw = normalize_weights(result.coef)
    nt = normalize_weights(w)
    out = {}
    out["r_pooled"] = _corr(nw.ravel(), nt.ravel())
    rs = [_corr(a, b) for a, b in zip(nw, nt)]
    rs = [r for r in rs if np.isfinite(r)]
    out["r_context"] = float(np.mean(rs)) if rs else math.nan
    out["nrmse"] = float(np.sqrt(np.mean((nw - nt) ** 2)))
    nz = w != 0
    out["sign_accuracy"] = float(np.mean(np.sign(result.coef[nz]) == np.sign(w[nz])))
    if result.has_interval and result.scale == "logit" and estimand is not None:
        out["coverage"] = float(np.mean((result.lower <= estimand) & (estimand <= result.upper)))
        out["width"] = float(np.median(result.upper - result.lower))
    else:
        out["coverage"] = out["width"] = math.nan
    out["converged_share"] = float(np.mean(result.converged))
    return out


def _corr(a, b) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def run_benchmark(estimators: dict, regimes=None, *, n_contexts: int = 30, n_replicates: int = 2,
                  seed: int = 0, pseudo_true_trials: int = 20_000, progress=None):
    """Run every estimator on every replicate of every regime.

    Parameters
    ----------
    estimators : dict name -> callable
        ``(X, y, *, mask=None, rng=None) -> EstimateResult`` (or LogitFit).
    regimes : list of Regime, optional
        :func:`default_grid` when None.
    n_contexts : int
        Agents (contexts) per replicate.
    n_replicates : int
    seed : int
    pseudo_true_trials : int
        Option pairs per context used for the pseudo-true slopes under lapses.
    progress : callable(str), optional
        Called with a line per regime.

    Returns
    -------
    xarray.Dataset
        dims ``estimator``, ``regime``, ``replicate``.  Variables: the
        :data:`METRICS` (estimator, regime, replicate), float, NaN where not
        applicable (no interval, undefined estimand) or where the estimator
        failed; ``error`` (estimator, regime, replicate) str, empty when the
        estimator ran and returned a valid result, else the reason (it raised,
        wrong shape, NaN...); ``separated_share`` (regime, replicate): share
        of contexts whose data are separated (fit_logit's check);
        ``estimand_defined`` (regime).  Regime coordinates: ``label``,
        ``n_trials``, ``scale``, ``n_attributes``, ``bias``, ``lapse``.
    """
    import xarray as xr

    if not estimators:
        raise InputError("no estimators to benchmark")
    for name, est in estimators.items():
        if not callable(est):
            raise InputError(f"estimator {name!r} is not callable")
    regimes = default_grid() if regimes is None else list(regimes)
    if not regimes:
        raise InputError("the grid has no regimes")
    if n_contexts < 2 or n_replicates < 1:
        raise InputError(f"need n_contexts >= 2 and n_replicates >= 1, got {n_contexts}, {n_replicates}")
    names = list(estimators)
    E, R, N = len(names), len(regimes), n_replicates
    vals = {m: np.full((E, R, N), np.nan) for m in METRICS}
    errors = np.full((E, R, N), "", dtype=object)
    sep = np.zeros((R, N))
    for r, regime in enumerate(regimes):
        t_reg = time.perf_counter()
        for i in range(N):
            data = simulate_regime(regime, n_contexts, seed, i, pseudo_true_trials)
            X, y, w = data["X"], data["y"], data["w"]
            sep[r, i] = np.mean(fit_logit(X, y, prior_sd=None).separated)
            est_seed = data["rng"].integers(0, 2**63)
            for e, name in enumerate(names):
                t0 = time.perf_counter()
                try:
                    out = estimators[name](X, y, mask=None, rng=np.random.default_rng(est_seed))
                    res = as_result(out, *w.shape, name=name)
                except Exception as exc:  # a failing estimator is a result, not a crash
                    vals["time_s"][e, r, i] = time.perf_counter() - t0
                    errors[e, r, i] = f"{type(exc).__name__}: {exc}"
                    continue
                vals["time_s"][e, r, i] = time.perf_counter() - t0
                for m, v in score(res, w, data["estimand"]).items():
                    vals[m][e, r, i] = v
        if progress is not None:
            progress(f"{regime.label}: {time.perf_counter() - t_reg:.1f} s")
    dims = ("estimator", "regime", "replicate")
    ds = xr.Dataset(
        {m: (dims, vals[m], {"description": METRICS[m]}) for m in METRICS}
        | {
            "error": (dims, errors.astype(str), {"description": "empty, or why the estimator failed"}),
            "separated_share": (("regime", "replicate"), sep,
                                {"description": "share of contexts with separated data"}),
            "estimand_defined": (("regime",), np.array([g.estimand_defined for g in regimes]),
                                 {"description": "likelihood-scale slopes exist (coverage defined)"}),
        },
        coords={
            "estimator": names,
            "regime": np.arange(R),
            "replicate": np.arange(N),
            "label": ("regime", [g.label for g in regimes]),
            "n_trials": ("regime", [g.n_trials for g in regimes]),
            "scale": ("regime", [float(g.scale) for g in regimes]),
            "n_attributes": ("regime", [g.n_attributes for g in regimes]),
            "bias": ("regime", [float(g.bias) for g in regimes]),
            "lapse": ("regime", [float(g.lapse) for g in regimes]),
        },
        attrs={"seed": int(seed), "n_contexts": int(n_contexts),
               "pseudo_true_trials": int(pseudo_true_trials),
               "seeding": "replicate i of a regime: SeedSequence([seed, T, K, scale*1e6 "
                          "(2**62 if inf), |bias|*1e6, bias<0, lapse*1e6, i]).spawn(4)"},
    )
    return ds


def summarise(ds) -> list[dict]:
    """One record per estimator and regime: metrics averaged over replicates.

    A metric is averaged over the replicates where it is defined; ``errors``
    lists the distinct failure messages (empty when none).
    """
    out = []
    for e in ds.estimator.values:
        for r in ds.regime.values:
            cell = ds.sel(estimator=e, regime=r)
            rec = {"estimator": str(e), "regime": str(cell.label.values)}
            for k in ("n_trials", "scale", "n_attributes", "bias", "lapse"):
                v = cell[k].item()
                rec[k] = None if isinstance(v, float) and math.isinf(v) else v
            for m in METRICS:
                v = cell[m].values
                rec[m] = float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else None
            rec["separated_share"] = float(cell.separated_share.mean())
            rec["errors"] = sorted({str(x) for x in cell.error.values if str(x)})
            out.append(rec)
    return out


def markdown_table(ds, metric: str = "r_pooled", digits: int = 2) -> str:
    """Markdown table of one metric (mean over replicates): a row per regime, a column per estimator.

    Failed cells read ``fail``; not applicable cells ``-``.
    """
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; choose from {sorted(METRICS)}")
    names = [str(e) for e in ds.estimator.values]
    lines = [f"| regime | sep. | {' | '.join(names)} |",
             "|---|---:|" + "---:|" * len(names)]
    for r in ds.regime.values:
        cell = ds.sel(regime=r)
        row = [str(cell.label.values), f"{float(cell.separated_share.mean()):.2f}"]
        for e in names:
            c = cell.sel(estimator=e)
            v = c[metric].values
            if any(str(x) for x in c.error.values):
                row.append("fail")
            elif np.isfinite(v).any():
                row.append(f"{np.mean(v[np.isfinite(v)]):.{digits}f}")
            else:
                row.append("-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_benchmark(ds, path) -> None:
    """Recovery (pooled r) and coverage against trials, one line per estimator.

    Uses the regimes with K = 5, no bias and no lapses; one column per noise level.
    """
    from ..errors import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = (ds.n_attributes == 5) & (ds.bias == 0) & (ds.lapse == 0)
    sub = ds.isel(regime=np.flatnonzero(base.values))
    scales = sorted(set(sub.scale.values.tolist()))
    if not scales:
        raise InputError("the grid has no regime with K=5, no bias and no lapse to plot")
    fig, axes = plt.subplots(2, len(scales), figsize=(3.2 * len(scales), 6), squeeze=False,
                             sharex=True, sharey="row")
    for j, s in enumerate(scales):
        cols = np.flatnonzero(sub.scale.values == s)
        cell = sub.isel(regime=cols)
        order = np.argsort(cell.n_trials.values)
        T = cell.n_trials.values[order]
        for n, e in enumerate(ds.estimator.values):
            for i, m in enumerate(("r_pooled", "coverage")):
                v = cell.sel(estimator=e)[m].mean("replicate").values[order]
                if np.isfinite(v).any():
                    # one colour per estimator in every panel
                    axes[i, j].plot(T, v, marker="o", ms=3, label=str(e), color=f"C{n % 10}")
        axes[0, j].set_title("deterministic" if math.isinf(s) else f"scale {s:g}")
        axes[1, j].axhline(0.95, color="grey", lw=0.8, ls="--")
        if not np.isfinite(cell["coverage"].values).any():
            why = ("coverage undefined:\nwith deterministic choices\nthe likelihood-scale\nslopes are infinite"
                   if math.isinf(s) else "no estimator here\ngives an interval")
            axes[1, j].text(0.5, 0.5, why, transform=axes[1, j].transAxes, ha="center", va="center",
                            fontsize=8, color="0.35")
        axes[1, j].set_xlabel("trials per context")
        axes[1, j].set_xscale("log")
    axes[0, 0].set_ylabel("pooled r (normalised weights)")
    axes[1, 0].set_ylabel("95% interval coverage")
    axes[1, 0].set_ylim(0, 1.02)  # one scale for every coverage panel: 0.9 and 0.3 look different
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
