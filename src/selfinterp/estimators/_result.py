"""The one result type every estimator returns, and its check.

An estimator is any callable ``(X (A, T, K), y (A, T), *, mask=None, rng=None)``
returning an :class:`EstimateResult` (or a :class:`selfinterp.LogitFit`, which
is converted), so that a user's own callable can join the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import InputError

__all__ = ["EstimateResult", "Estimator", "as_result", "wald_interval", "Z95"]

Z95 = 1.959963984540054  # Phi^{-1}(0.975): two-sided 95% normal quantile


class Estimator(Protocol):
    """Call signature shared by every estimator (see :class:`EstimateResult`)."""

    def __call__(self, X, y, *, mask=None, rng=None) -> EstimateResult: ...


@dataclass(frozen=True)
class EstimateResult:
    """Weights estimated for A contexts and K attributes.

    Attributes
    ----------
    coef : ndarray (A, K)
        Estimated attribute weights.  Estimators on the logit likelihood's
        scale (``scale="logit"``) estimate ``scale * w`` of an agent with
        P(A) = sigmoid(scale * (x . w + bias)); the others (linear
        probability, counting) are on their own scale and are compared after
        normalisation (max |w| = 100) only.
    converged : ndarray of bool (A,)
        The estimate is the one the method defines (optimiser converged,
        enough effective draws...).
    lower, upper : ndarray (A, K) or None
        Two-sided 95% interval for each weight, on the scale of ``coef``;
        None when the estimator gives no interval.
    separated : ndarray of bool (A,) or None
        The context's data are (quasi-)completely separated (the maximum
        likelihood estimate does not exist); None when not checked.
    intercept : ndarray (A,) or None
        Fitted position bias towards A, when the method fits one.
    scale : {"logit", "other"}
        Whether ``coef`` (and the interval) are on the logit likelihood's scale.
    """

    coef: np.ndarray
    converged: np.ndarray
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    separated: np.ndarray | None = None
    intercept: np.ndarray | None = None
    scale: str = "logit"

    @property
    def has_interval(self) -> bool:
        return self.lower is not None and self.upper is not None


def wald_interval(coef, stderr, z: float = Z95):
    """(lower, upper) = coef -/+ z * stderr."""
    return coef - z * stderr, coef + z * stderr


def as_result(out, A: int, K: int, name: str = "estimator") -> EstimateResult:
    """Check what an estimator returned and convert it to :class:`EstimateResult`.

    Accepts an :class:`EstimateResult`, a :class:`selfinterp.LogitFit` or any
    object with ``coef`` and ``converged`` attributes (and optionally
    ``lower``/``upper``/``separated``/``intercept``).  Standard errors alone
    (a ``stderr`` attribute, as a LogitFit has) give the Wald interval
    ``coef -/+ 1.96 stderr``, so that such an estimator's coverage is measured.

    Raises
    ------
    InputError
        Naming the estimator, the field and the first bad context: a missing
        field, a wrong shape, a NaN (or an infinite estimate; an infinite
        interval bound is allowed) or an interval with lower > upper.
    """
    if not hasattr(out, "coef") or not hasattr(out, "converged"):
        raise InputError(f"{name} returned {type(out).__name__}, which has no coef/converged: "
                         "return an EstimateResult or a LogitFit")
    coef = _field(name, "coef", out.coef, (A, K), float)
    converged = _field(name, "converged", out.converged, (A,), bool)
    lower = getattr(out, "lower", None)
    upper = getattr(out, "upper", None)
    if (lower is None) != (upper is None):
        raise InputError(f"{name} returned only one side of its interval")
    stderr = getattr(out, "stderr", None)
    if lower is None and stderr is not None:  # standard errors only (e.g. a LogitFit): Wald interval
        se = _field(name, "stderr", stderr, (A, K), float)
        if (se < 0).any():
            a, k = np.argwhere(se < 0)[0]
            raise InputError(f"{name}: negative standard error {se[a, k]!r} at context {a}, attribute {k}")
        lower, upper = wald_interval(coef, se)
    if lower is not None:
        lower = _field(name, "lower", lower, (A, K), float)
        upper = _field(name, "upper", upper, (A, K), float)
        bad = lower > upper
        if bad.any():
            a, k = np.argwhere(bad)[0]
            raise InputError(f"{name}: interval [{lower[a, k]!r}, {upper[a, k]!r}] has "
                             f"lower > upper at context {a}, attribute {k}")
    separated = getattr(out, "separated", None)
    if separated is not None:
        separated = _field(name, "separated", separated, (A,), bool)
    intercept = getattr(out, "intercept", None)
    if intercept is not None:
        intercept = _field(name, "intercept", intercept, (A,), float)
    scale = getattr(out, "scale", "logit")
    if scale not in ("logit", "other"):
        raise InputError(f"{name}: scale must be 'logit' or 'other', got {scale!r}")
    return EstimateResult(coef=coef, converged=converged, lower=lower, upper=upper,
                          separated=separated, intercept=intercept, scale=scale)


def _field(name, field, value, shape, kind):
    try:
        arr = np.asarray(value)
    except Exception as exc:  # an object numpy cannot read at all
        raise InputError(f"{name}: {field} cannot be read as an array ({exc})") from exc
    if arr.shape != shape:
        raise InputError(f"{name}: {field} has shape {arr.shape}, expected {shape}")
    if kind is bool:
        if arr.dtype != bool:
            raise InputError(f"{name}: {field} must be boolean, got dtype {arr.dtype}")
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name}: {field} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if field in ("lower", "upper"):
        # an unbounded side is a legitimate interval (e.g. a Wald interval
        # cannot be formed), NaN is not
        bad = np.isnan(arr)
    if bad.any():
        where = np.argwhere(bad)
        ctx = sorted({int(i[0]) for i in where})
        raise InputError(f"{name}: {field} has {len(where)} non-finite value(s) "
                         f"({arr[tuple(where[0])]!r} first) in context(s) {ctx[:10]}"
                         f"{'...' if len(ctx) > 10 else ''}")
    return arr
