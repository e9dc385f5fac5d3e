"""Scoring self-reports against learned (or target) weights.

The paper's accuracy measure is the Pearson correlation between reported and
learned weights pooled over all (context, attribute) pairs.  The pairs are
not independent: the K weights of a context share one report call and one
fitted regression.  The honest interval therefore resamples *contexts*
(:func:`cluster_bootstrap`); the Fisher-z interval (:func:`fisher_ci`) and
the paper's own interval (:func:`regression_ci`: the slope of standardised
learned on standardised reported weights, as the authors' brms model
estimates it) treat the C * K pairs as independent and are given for
comparison.

Array functions take ``reported`` and ``learned`` of shape (C, K), finite;
the Dataset wrappers (:func:`mean_reports_dataset`, :func:`score_reports`)
align by the ``context`` coordinate and drop contexts without a valid report,
counting them.

Bootstraps are vectorised: one (B, C) matrix of resampled context indices
becomes a (B, C) matrix of counts, and the B correlations come from the
counts times per-context sufficient statistics (sums of x, y, x^2, y^2, xy),
a single matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from .errors import InputError

__all__ = [
    "pooled_r", "per_context_r", "sign_agreement", "fisher_ci", "regression_ci",
    "cluster_bootstrap", "paired_difference", "shuffled_null", "constant_baseline",
    "mean_reports", "CorrelationScore", "DifferenceScore", "NullDistribution", "score",
    "mean_reports_dataset", "score_reports",
]


# ---------------------------------------------------------------------------------------------
# checks and the correlation kernel


def _pair(reported, learned, name_a="reported", name_b="learned"):
    a = np.asarray(reported, dtype=np.float64)
    b = np.asarray(learned, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"{name_a} must have shape (contexts, attributes), got {a.shape}")
    if a.shape != b.shape:
        raise InputError(f"{name_a} {a.shape} and {name_b} {b.shape} must have the same shape")
    if a.shape[0] < 2 or a.shape[1] < 1:
        raise InputError(f"need at least 2 contexts and 1 attribute, got shape {a.shape}")
    for name, arr in ((name_a, a), (name_b, b)):
        bad = ~np.isfinite(arr)
        if bad.any():
            c, k = np.argwhere(bad)[0]
            raise InputError(f"{name} has a non-finite value ({arr[c, k]!r}) at context {c}, attribute {k}")
    return a, b


def _stats(a, b):
    """Per-context sufficient statistics (C, 6): n, sum x, sum y, sum xx, sum yy, sum xy.

    Centred on the pooled means first: r does not change and the sums stay
    small, so the differences of products below lose no precision.
    """
    a = a - a.mean()
    b = b - b.mean()
    K = a.shape[1]
    return np.stack([np.full(a.shape[0], float(K)), a.sum(1), b.sum(1), (a * a).sum(1),
                     (b * b).sum(1), (a * b).sum(1)], axis=1)


def _r_from_totals(T):
    n, sx, sy, sxx, syy, sxy = np.moveaxis(np.asarray(T), -1, 0)
    vx = n * sxx - sx * sx
    vy = n * syy - sy * sy
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (n * sxy - sx * sy) / np.sqrt(vx * vy)
    return np.clip(r, -1.0, 1.0), (vx > 0) & (vy > 0)


def _counts(rng, n_boot: int, C: int) -> np.ndarray:
    """(B, C) counts of each context in B resamples of C contexts with replacement."""
    if int(n_boot) < 1:
        raise InputError(f"n_boot must be at least 1, got {n_boot}")
    idx = rng.integers(0, C, size=(int(n_boot), C))
    flat = (np.arange(int(n_boot))[:, None] * C + idx).ravel()
    return np.bincount(flat, minlength=int(n_boot) * C).reshape(int(n_boot), C).astype(np.float64)


def _quantiles(draws, level):
    _check_level(level)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _check_level(level):
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level!r}")


# ---------------------------------------------------------------------------------------------
# point estimates and analytic intervals


def pooled_r(reported, learned) -> float:
    """Pearson r pooled over all (context, attribute) pairs of two (C, K) arrays.

    Raises InputError when either array is constant (r undefined).
    """
    a, b = _pair(reported, learned)
    r, ok = _r_from_totals(_stats(a, b).sum(0))
    if not ok:
        raise InputError("pooled r is undefined: the reported or the learned weights are all equal")
    return float(r)


def per_context_r(reported, learned) -> np.ndarray:
    """Pearson r within each context over its K attributes: (C,).

    A context whose reported or learned vector is constant has no r: its entry
    is NaN (the only NaN this module returns; count them with ``np.isnan``).
    """
    a, b = _pair(reported, learned)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    out = np.full(a.shape[0], np.nan)
    np.divide((a * b).sum(1), den, out=out, where=den > 0)
    return np.clip(out, -1.0, 1.0)


def sign_agreement(reported, learned) -> float:
    """Fraction of (context, attribute) pairs whose reported and learned weights share a sign.

    ``np.sign`` is compared, so a zero agrees only with a zero.
    """
    a, b = _pair(reported, learned)
    return float(np.mean(np.sign(a) == np.sign(b)))


def fisher_ci(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval for a correlation ``r`` from ``n`` independent pairs."""
    _check_level(level)
    if n <= 3:
        raise InputError(f"the Fisher interval needs n > 3 pairs, got {n}")
    if not -1 <= r <= 1:
        raise InputError(f"r must lie in [-1, 1], got {r!r}")
    if abs(r) == 1:
        return float(r), float(r)  # a perfect correlation has a degenerate interval
    z = np.arctanh(r)
    h = special.ndtri((1 + level) / 2) / np.sqrt(n - 3)
    # tanh rounding could leave r a hair outside its interval
    return min(float(np.tanh(z - h)), r), max(float(np.tanh(z + h)), r)


def regression_ci(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The paper's interval: slope of standardised y on standardised x, r +- t * sqrt((1 - r^2) / (n - 2)).

    With flat priors this is the central posterior interval of the brms
    slope the authors report (for GPT-4o, 0.54 [0.47, 0.62]).  It treats the
    n pairs as independent.  The slope's interval can leave [-1, 1] (r = 0.95
    from 10 pairs: up to 1.035); as an interval for a correlation it is cut
    at the bounds, so it always lies within [-1, 1].
    """
    _check_level(level)
    if n <= 2:
        raise InputError(f"the regression interval needs n > 2 pairs, got {n}")
    if not -1 <= r <= 1:
        raise InputError(f"r must lie in [-1, 1], got {r!r}")
    h = stats.t.ppf((1 + level) / 2, n - 2) * np.sqrt(max(1 - r * r, 0.0) / (n - 2))
    return max(float(r - h), -1.0), min(float(r + h), 1.0)


# ---------------------------------------------------------------------------------------------
# resampling


def _jackknife_r(S: np.ndarray) -> np.ndarray:
    """Pooled r with each context left out in turn, from per-context statistics S (C, 6)."""
    r, ok = _r_from_totals(S.sum(0)[None, :] - S)
    return r[ok]


def _bca(draws: np.ndarray, estimate: float, jack: np.ndarray, level: float) -> tuple[float, float]:
    """Bias-corrected and accelerated percentile interval (Efron 1987) from bootstrap ``draws``,
    the ``estimate`` and its leave-one-cluster-out ``jack`` values."""
    _check_level(level)
    below = np.mean(draws < estimate) + 0.5 * np.mean(draws == estimate)
    z0 = special.ndtri(np.clip(below, 1.0 / (len(draws) + 1), len(draws) / (len(draws) + 1)))
    d = jack.mean() - jack if len(jack) > 1 else np.zeros(1)
    ss = float((d * d).sum())
    a = float((d ** 3).sum()) / (6.0 * ss ** 1.5) if ss > 0 else 0.0
    z = special.ndtri(np.array([(1 - level) / 2, (1 + level) / 2]))
    q = special.ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
    lo, hi = np.quantile(draws, np.clip(q, 0.0, 1.0))
    return float(lo), float(hi)


def _r_gradient(T: np.ndarray) -> np.ndarray:
    """d r / d totals (..., 6) of the pooled r as a function of the summed statistics (see :func:`_stats`)."""
    n, sx, sy, sxx, syy, sxy = np.moveaxis(T, -1, 0)
    vx, vy = n * sxx - sx * sx, n * syy - sy * sy
    N = n * sxy - sx * sy
    with np.errstate(invalid="ignore", divide="ignore"):
        D = np.sqrt(vx * vy)
        D3 = D ** 3
        return np.stack([sxy / D - N * (sxx * vy + vx * syy) / (2 * D3), -sy / D + N * sx * vy / D3,
                         -sx / D + N * sy * vx / D3, -N * n * vy / (2 * D3), -N * n * vx / (2 * D3), n / D], -1)


def _influence(S: np.ndarray, counts: np.ndarray | None):
    """Pooled r, whether it is defined, and each context's linear (influence) term (C, B) of r, for the
    data (``counts`` None) or for each resample (rows of ``counts`` (B, C))."""
    w = np.ones((1, S.shape[0])) if counts is None else counts
    T = w @ S                                    # (B, 6)
    r, ok = _r_from_totals(T)
    g = np.where(ok[:, None], _r_gradient(T), 0.0)  # (B, 6); undefined r: no gradient
    return r, ok, S @ g.T


def _robust_se(infl: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    """Cluster-robust (delta-method) standard error (B,) from the contexts' influence terms (C, B)."""
    w = np.ones((1, infl.shape[0])) if counts is None else counts
    mean = (w.T * infl).sum(0) / w.sum(1)        # (B,)
    return np.sqrt((w.T * (infl - mean) ** 2).sum(0))  # sum over the resample's contexts


def _z_se(S: np.ndarray, counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Fisher z of the pooled r and its cluster-robust (delta-method) standard error, for the data
    (``counts`` None) or for each resample (rows of ``counts`` (B, C))."""
    r, ok, infl = _influence(S, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
        se = _robust_se(infl, counts) / (1 - r * r)
    return np.where(ok, z, np.nan), np.where(ok, se, np.nan)


def _studentized(est: float, se: float, draws: np.ndarray, draws_se: np.ndarray, level: float):
    """Bootstrap-t interval ``(est - t_hi * se, est - t_lo * se)`` from the resamples' estimates and
    standard errors; None where it is undefined (no spread, no usable resample)."""
    keep = np.isfinite(draws) & np.isfinite(draws_se) & (draws_se > 0)
    if not (np.isfinite(se) and se > 0 and keep.any()):
        return None
    t_lo, t_hi = _quantiles((draws[keep] - est) / draws_se[keep], level)
    return est - t_hi * se, est - t_lo * se


_METHODS = ("percentile", "bca", "studentized")


def _check_method(method):
    if method not in _METHODS:
        raise InputError(f"method must be 'percentile', 'bca' or 'studentized', got {method!r}")


def cluster_bootstrap(reported, learned, *, n_boot: int = 2000, rng=None, level: float = 0.95,
                      method: str = "percentile"):
    """Percentile (or BCa) interval for the pooled r, resampling whole contexts.

    Parameters
    ----------
    reported, learned : array (C, K)
    n_boot : int
        Resamples (at least 2000 for a 95% interval).
    rng : anything ``np.random.default_rng`` accepts
    level : float
    method : {"percentile", "bca", "studentized"}
        ``"bca"``: Efron's bias-corrected and accelerated interval, the
        acceleration from the leave-one-context-out jackknife.
        ``"studentized"``: the bootstrap-t interval on Fisher's z, each
        resample studentised by its cluster-robust delta-method standard error.
        Where either is undefined (a perfect correlation, too few contexts
        with spread) the percentile interval is returned.

    Returns
    -------
    (lo, hi) : tuple of float
    draws : ndarray (n_boot,)
        The resampled correlations (a resample whose weights are all equal
        has no r and is dropped; their number is ``n_boot - len(draws)``).
    """
    _check_method(method)
    a, b = _pair(reported, learned)
    S = _stats(a, b)
    counts = _counts(np.random.default_rng(rng), n_boot, a.shape[0])
    r, ok = _r_from_totals(counts @ S)
    r = r[ok]
    if len(r) == 0:
        raise InputError("no bootstrap resample has a defined correlation")
    est, defined = _r_from_totals(S.sum(0))
    if method == "bca" and defined:
        return _bca(r, float(est), _jackknife_r(S), level), r
    if method == "studentized" and defined:
        (z,), (se,) = _z_se(S, None)
        iv = _studentized(float(z), float(se), *_z_se(S, counts), level)
        if iv is not None:  # on Fisher's z, mapped back: the ends lie within [-1, 1]
            return (float(np.tanh(iv[0])), float(np.tanh(iv[1]))), r
    return _quantiles(r, level), r


def paired_difference(reported_1, learned_1, reported_2, learned_2, *, n_boot: int = 2000,
                      rng=None, level: float = 0.95, method: str = "studentized"):
    """r(condition 2) - r(condition 1) on the same C contexts, with a paired cluster bootstrap.

    Each resample draws contexts once and recomputes both correlations on
    them, so the interval accounts for the pairing of the two conditions.

    ``method`` as for :func:`cluster_bootstrap`: ``"studentized"`` (the
    default) divides each resample's difference by its cluster-robust
    delta-method standard error (each context's influence on r2 minus its
    influence on r1); ``"bca"`` takes the acceleration from the
    leave-one-context-out differences; where either is undefined (no
    spread: identical conditions) the percentile interval is returned.
    The ends always lie within [-2, 2].

    Returns
    -------
    diff : float
    (lo, hi) : tuple of float
    draws : ndarray
    """
    _check_method(method)
    a1, b1 = _pair(reported_1, learned_1, "reported_1", "learned_1")
    a2, b2 = _pair(reported_2, learned_2, "reported_2", "learned_2")
    if a1.shape[0] != a2.shape[0]:
        raise InputError(f"the two conditions must share their contexts: {a1.shape[0]} vs {a2.shape[0]}")
    diff = pooled_r(a2, b2) - pooled_r(a1, b1)
    S1, S2 = _stats(a1, b1), _stats(a2, b2)
    counts = _counts(np.random.default_rng(rng), n_boot, a1.shape[0])
    r1, ok1 = _r_from_totals(counts @ S1)
    r2, ok2 = _r_from_totals(counts @ S2)
    ok = ok1 & ok2
    d = (r2 - r1)[ok]
    if len(d) == 0:
        raise InputError("no bootstrap resample has both correlations defined")
    iv = None
    if method == "bca":
        j1, jok1 = _r_from_totals(S1.sum(0)[None, :] - S1)
        j2, jok2 = _r_from_totals(S2.sum(0)[None, :] - S2)
        iv = _bca(d, diff, (j2 - j1)[jok1 & jok2], level)
    elif method == "studentized":
        se = _robust_se(_influence(S2, None)[2] - _influence(S1, None)[2], None)[0]
        seb = _robust_se(_influence(S2, counts)[2] - _influence(S1, counts)[2], counts)
        iv = _studentized(diff, float(se), d, seb[ok], level)
    if iv is None:
        iv = _quantiles(d, level)
    return float(diff), (max(float(iv[0]), -2.0), min(float(iv[1]), 2.0)), d


@dataclass(frozen=True)
class NullDistribution:
    """Shuffled-context null of the pooled r.

    Attributes
    ----------
    mean : float
        Mean r when reports are paired with other contexts' learned weights.
    interval : (float, float)
        Central 95% range of the null draws.
    p_value : float
        (1 + #{null r >= observed r}) / (1 + n_perm), one-sided.
    draws : ndarray (n_perm,)
    """

    mean: float
    interval: tuple
    p_value: float
    draws: np.ndarray


def shuffled_null(reported, learned, *, n_perm: int = 2000, rng=None, level: float = 0.95) -> NullDistribution:
    """Pooled r when each context's report is paired with a random other context's learned weights.

    The attribute order within a context is kept, so any r this null leaves
    comes from attribute positions, not from knowledge of the context.
    """
    a, b = _pair(reported, learned)
    if int(n_perm) < 1:
        raise InputError(f"n_perm must be at least 1, got {n_perm}")
    gen = np.random.default_rng(rng)
    C = a.shape[0]
    perm = np.argsort(gen.random((int(n_perm), C)), axis=1)
    a0 = a - a.mean()
    b0 = b - b.mean()
    # pooled means and sums of squares do not change under a permutation of contexts
    num = np.einsum("pck,ck->p", b0[perm], a0)
    r = np.clip(num / np.sqrt((a0 * a0).sum() * (b0 * b0).sum()), -1.0, 1.0)
    obs = pooled_r(a, b)
    return NullDistribution(float(r.mean()), _quantiles(r, level),
                            float((1 + np.sum(r >= obs)) / (1 + len(r))), r)


def constant_baseline(reported, learned, constant=None) -> dict:
    """Score of reporting the same vector in every context.

    Parameters
    ----------
    reported, learned : array (C, K)
    constant : array (K,), optional
        The vector reported everywhere; default the mean report over contexts
        (the best a context-blind reporter could do with these reports).

    Returns
    -------
    dict with ``r`` (pooled r, None when the constant has equal entries) and
    ``cosine`` (mean over contexts of the cosine between the constant and the
    learned weights; a constant can score well on cosine when weights are
    mostly positive, which is why r is the measure).
    """
    a, b = _pair(reported, learned)
    c = a.mean(0) if constant is None else np.asarray(constant, dtype=np.float64)
    if c.shape != (a.shape[1],) or not np.isfinite(c).all():
        raise InputError(f"constant must be {a.shape[1]} finite numbers, got {c!r}")
    tiled = np.broadcast_to(c, a.shape)
    r, ok = _r_from_totals(_stats(tiled, b).sum(0))
    nb = np.linalg.norm(b, axis=1)
    nc = np.linalg.norm(c)
    use = nb > 0
    cos = float(np.mean(b[use] @ c / (nb[use] * nc))) if nc > 0 and use.any() else 0.0
    return {"r": float(r) if ok else None, "cosine": cos, "constant": c.tolist()}


# ---------------------------------------------------------------------------------------------
# reports


def mean_reports(report, valid) -> tuple[np.ndarray, np.ndarray]:
    """Mean over each context's valid reports.

    Parameters
    ----------
    report : array (C, R, K)
        Invalid slots may hold anything (NaN included): they are not read.
    valid : bool array (C, R)

    Returns
    -------
    mean : ndarray (C, K)
        Rows of contexts without a valid report are 0: use ``n_valid > 0``.
    n_valid : ndarray of int (C,)
    """
    report = np.asarray(report, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if report.ndim != 3 or valid.shape != report.shape[:2]:
        raise InputError(f"report (C, R, K) and valid (C, R) disagree: {report.shape} vs {valid.shape}")
    vals = np.where(valid[..., None], report, 0.0)
    if not np.isfinite(vals).all():
        c, r, k = np.argwhere(~np.isfinite(vals))[0]
        raise InputError(f"valid report {r} of context {c} has a non-finite value at attribute {k}")
    n = valid.sum(1)
    mean = np.zeros(report.shape[::2])
    np.divide(vals.sum(1), n[:, None], out=mean, where=n[:, None] > 0)
    return mean, n


# ---------------------------------------------------------------------------------------------
# one-call summaries


@dataclass(frozen=True)
class CorrelationScore:
    """Pooled r with its intervals and companions.

    Attributes
    ----------
    r : float
    n : int
        (context, attribute) pairs.
    n_contexts : int
    ci : (float, float)
        Context-clustered bootstrap interval (studentised by default, see :func:`score`).
    ci_fisher, ci_regression : (float, float)
        Intervals that treat the pairs as independent (see module docstring).
    sign_agreement : float
    per_context_r : ndarray (C,)
    """

    r: float
    n: int
    n_contexts: int
    ci: tuple
    ci_fisher: tuple
    ci_regression: tuple
    sign_agreement: float
    per_context_r: np.ndarray

    def as_dict(self) -> dict:
        """JSON-ready ``{"r", "ci", "n", "n_contexts", "ci_fisher", "ci_regression", "sign_agreement"}``."""
        return {"r": self.r, "ci": list(self.ci), "n": self.n, "n_contexts": self.n_contexts,
                "ci_fisher": list(self.ci_fisher), "ci_regression": list(self.ci_regression),
                "sign_agreement": self.sign_agreement}


@dataclass(frozen=True)
class DifferenceScore:
    """r(after) - r(before) on shared contexts with a paired cluster-bootstrap interval
    (studentised by default, see :func:`paired_difference`)."""

    diff: float
    ci: tuple
    n_contexts: int

    def as_dict(self) -> dict:
        return {"diff": self.diff, "ci": list(self.ci), "n_contexts": self.n_contexts}


def score(reported, learned, *, n_boot: int = 2000, rng=None, level: float = 0.95,
          method: str = "studentized") -> CorrelationScore:
    """Pooled r of two (C, K) arrays with all three intervals, sign agreement and per-context r.

    ``ci`` is the cluster bootstrap's ``method`` interval (:func:`cluster_bootstrap`): by default the
    studentised one, whose coverage holds at the paper's size where the percentile interval's falls
    short (docs/replicate.md).
    """
    a, b = _pair(reported, learned)
    r = pooled_r(a, b)
    n = a.size
    ci, _ = cluster_bootstrap(a, b, n_boot=n_boot, rng=rng, level=level, method=method)
    return CorrelationScore(r, n, a.shape[0], ci, fisher_ci(r, n, level), regression_ci(r, n, level),
                            sign_agreement(a, b), per_context_r(a, b))


def mean_reports_dataset(reports):
    """Mean valid report per context of a reports Dataset.

    Returns
    -------
    mean : xr.DataArray (context, attribute)
        Only the contexts with at least one valid report.
    n_valid : xr.DataArray (context,)
        Valid reports per context, all contexts.
    """
    import xarray as xr

    rep = reports["report"].transpose("context", "report", "attribute")
    valid = reports["report_valid"].transpose("context", "report")
    mean, n = mean_reports(rep.values, valid.values)
    ctx = reports["context"].values
    n_valid = xr.DataArray(n, dims="context", coords={"context": ctx}, name="n_valid")
    keep = n > 0
    m = xr.DataArray(mean[keep], dims=("context", "attribute"),
                     coords={"context": ctx[keep], "attribute": reports["attribute"].values}, name="mean_report")
    return m, n_valid


def _aligned(reported, learned):
    """Two (context, attribute) DataArrays on their shared contexts, in ``reported``'s order."""
    have = set(learned["context"].values)
    ctx = [c for c in reported["context"].values if c in have]
    if len(ctx) < 2:
        raise InputError(f"reports and learned weights share {len(ctx)} context(s); need at least 2")
    a = reported.sel(context=ctx).transpose("context", "attribute")
    b = learned.sel(context=ctx).transpose("context", "attribute")
    if list(a["attribute"].values) != list(b["attribute"].values):
        raise InputError("reports and learned weights have different attributes")
    return a, b


def score_reports(reports, learned, *, n_boot: int = 2000, rng=None, level: float = 0.95) -> CorrelationScore:
    """Score a reports Dataset (or mean-report DataArray) against learned weights (context, attribute).

    Reports are averaged over each context's valid reports; the score uses the
    contexts that have at least one valid report and a learned weight.
    """
    mean = mean_reports_dataset(reports)[0] if hasattr(reports, "data_vars") else reports
    a, b = _aligned(mean, learned)
    return score(a.values, b.values, n_boot=n_boot, rng=rng, level=level)
