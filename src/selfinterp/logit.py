"""Batched binary logit: the array-level estimator API.

One call fits every decision context of an array of shape
(contexts, trials, attributes).  Backends share one signature and give the
same results: ``"numpy"`` (the reference), ``"numba"`` (parallel over
contexts, the CPU default) and ``"jax"`` (jit + vmap; runs on a GPU when JAX
sees one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import as_float_array, check_finite, check_range
from .errors import InputError

__all__ = ["LogitFit", "fit_logit", "simulate_and_fit", "simulate_and_fit_jax", "normalize_weights", "BACKENDS"]

BACKENDS = ("auto", "numpy", "numba", "jax", "cuda")
INTERCEPT_PRIOR_SD = 2.5


@dataclass(frozen=True)
class LogitFit:
    """Result of :func:`fit_logit` for A contexts and K attributes.

    Attributes
    ----------
    coef : ndarray (A, K)
        Slopes on the likelihood's own scale (not normalised).
    intercept : ndarray (A,)
        Intercepts (position bias towards A); zeros when not fitted.
    stderr : ndarray (A, K)
        Standard errors of the slopes from the inverse (penalised) Hessian at
        the estimate.  Meaningless for contexts flagged ``separated`` when
        ``prior_sd`` is None: the MLE does not exist there.
    intercept_stderr : ndarray (A,)
        Standard error of the intercept (zeros when not fitted).
    converged : ndarray of bool (A,)
        Newton reached its tolerance at a finite estimate.  Always False for a
        separated context under plain maximum likelihood.
    separated : ndarray of bool (A,)
        The data of the context are (quasi-)completely separated: the maximum
        likelihood estimate does not exist, whatever the prior used for
        ``coef``.  False everywhere when ``check_separation=False``.
    n_iter : ndarray of int (A,)
        Newton iterations used.
    """

    coef: np.ndarray
    intercept: np.ndarray
    stderr: np.ndarray
    intercept_stderr: np.ndarray
    converged: np.ndarray
    separated: np.ndarray
    n_iter: np.ndarray

    def normalized(self, max_abs: float = 100.0) -> np.ndarray:
        """Slopes rescaled per context so the largest |w| is ``max_abs``."""
        return normalize_weights(self.coef, max_abs)

    def to_xarray(self, *, context=None, attribute=None, max_abs: float = 100.0):
        """The fit as an xarray Dataset over (context, attribute).

        Variables: ``coef``, ``stderr`` and ``weight`` (``coef`` normalised to
        max |w| = ``max_abs``) over (context, attribute); ``intercept``,
        ``intercept_stderr``, ``converged``, ``separated`` and ``n_iter`` over
        context.  ``context`` and ``attribute`` label the coordinates
        (default 0..A-1 and ``attr1``..``attrK``).
        """
        import xarray as xr

        A, K = self.coef.shape
        context = np.arange(A) if context is None else np.asarray(context)
        attribute = [f"attr{k + 1}" for k in range(K)] if attribute is None else list(attribute)
        if len(context) != A or len(attribute) != K:
            raise InputError(f"labels for {len(context)} contexts x {len(attribute)} attributes "
                             f"given to a fit of {A} x {K}")
        ca = ("context", "attribute")
        return xr.Dataset(
            {"coef": (ca, self.coef), "stderr": (ca, self.stderr),
             "weight": (ca, normalize_weights(self.coef, max_abs)),
             "intercept": ("context", self.intercept), "intercept_stderr": ("context", self.intercept_stderr),
             "converged": ("context", self.converged), "separated": ("context", self.separated),
             "n_iter": ("context", self.n_iter)},
            coords={"context": context, "attribute": attribute})

    def to_dataframe(self, **labels):
        """A tidy pandas DataFrame, one row per (context, attribute), with the
        per-context columns (intercept, flags) repeated on each of its rows;
        keyword arguments as for :meth:`to_xarray`."""
        return self.to_xarray(**labels).to_dataframe()

    def __repr__(self) -> str:
        A, K = self.coef.shape
        return (f"<LogitFit {A} contexts x {K} attributes: {int(self.converged.sum())} converged, "
                f"{int(self.separated.sum())} separated; .to_xarray() / .to_dataframe() for labelled tables>")


def normalize_weights(coef, max_abs: float = 100.0) -> np.ndarray:
    """Rescale each row so that its largest absolute value is ``max_abs``.

    This is the paper's normalisation of learned weights (max |w| = 100).
    A row of zeros stays zeros: it has no direction to rescale.
    """
    coef = np.asarray(coef, dtype=np.float64)
    top = np.max(np.abs(coef), axis=-1, keepdims=True)
    out = np.zeros_like(coef)
    np.divide(coef * max_abs, top, out=out, where=top > 0)
    return out


def prepare_outcomes(X, y, mask=None, n=None, *, screen=True):
    """Validate (X, y, mask, n) and return X, the fraction f and the weight w.

    Raises :class:`~selfinterp.errors.InputError` naming the context and trial
    of the first bad value, before any fitting.  ``screen=False`` leaves out
    the values' check in the common case (no mask, no n) for a caller whose
    kernel checks each context as it reads it (the numba backend of
    :func:`fit_logit`), and then calls :func:`name_invalid_value`.
    """
    X = as_float_array("X", X, 3)
    y = as_float_array("y", y, 2)
    A, T, K = X.shape
    if A == 0:
        raise InputError("X has no contexts")
    if K == 0:
        raise InputError("X has no attributes")
    if y.shape != (A, T):
        raise InputError(f"y has shape {y.shape}, expected {(A, T)} to match X {X.shape}")
    dims = ("context", "trial", "attribute")
    if mask is not None:
        used = np.asarray(mask)
        if used.shape != (A, T):
            raise InputError(f"mask has shape {used.shape}, expected {(A, T)}")
        if used.dtype != bool:
            raise InputError(f"mask must be boolean, got dtype {used.dtype}")
    if mask is None and n is None:
        # the common case, without (A, T) temporaries (1e6 x 50 fits in 4 GB), screened by one
        # parallel pass; the NumPy checks only run to name a bad value
        if T == 0:
            raise InputError("context 0 has no trials to fit (X has 0 trials)")
        from ._core.screen import screen as screen_values

        X = np.ascontiguousarray(X)
        y = np.ascontiguousarray(y)
        if screen:
            x_ok, y_ok = screen_values(X, y)
            if not (x_ok and y_ok):
                name_invalid_value(X, y)
        return X, y, np.broadcast_to(1.0, (A, T))
    if mask is None:
        # a finite sum proves every term finite, without a temporary the size of X
        if not np.isfinite(np.sum(X)):
            check_finite("X", X, dims)
    else:
        check_finite("X", np.where(used[..., None], X, 0.0), dims)
    if mask is None:
        used = np.ones((A, T), dtype=bool)
    check_finite("y", np.where(used, y, 0.0), dims[:2])
    if n is None:
        w = used.astype(np.float64)
        check_range("y", np.where(used, y, 0.0), 0.0, 1.0, dims[:2])
        f = np.where(used, y, 0.0)
    else:
        n = as_float_array("n", n, 2)
        if n.shape != (A, T):
            raise InputError(f"n has shape {n.shape}, expected {(A, T)}")
        check_finite("n", np.where(used, n, 1.0), dims[:2])
        check_range("n", np.where(used, n, 1.0), 0.0, np.inf, dims[:2])
        yy = np.where(used, y, 0.0)
        nn = np.where(used, n, 1.0)
        bad = (yy < 0) | (yy > nn)
        if bad.any():
            a, t = np.argwhere(bad)[0]
            raise InputError(f"y must be a count in [0, n]: got y={yy[a, t]!r} with "
                             f"n={nn[a, t]!r} at context {a}, trial {t}")
        w = np.where(used, n, 0.0)
        f = np.divide(yy, nn, out=np.zeros_like(yy), where=nn > 0)
    empty = ~np.any(w > 0, axis=1)
    if empty.any():
        raise InputError(f"context {int(np.flatnonzero(empty)[0])} has no trials to fit "
                         f"({int(empty.sum())} empty context(s) in all)")
    if mask is not None:  # masked entries may hold anything: the kernels must read zeros
        X = np.where(used[..., None], X, 0.0)
    return np.ascontiguousarray(X), f, w


def name_invalid_value(X, y, contexts=()):
    """Raise the :class:`~selfinterp.errors.InputError` that names the first non-finite X or
    y, or y outside [0, 1] (X (A, T, K), y (A, T)); ``contexts``: those a kernel found bad."""
    dims = ("context", "trial", "attribute")
    check_finite("X", X, dims)
    check_finite("y", y, dims[:2])
    check_range("y", y, 0.0, 1.0, dims[:2])
    where = f"context {int(contexts[0])}" if len(contexts) else "an input"
    raise InputError(f"{where} has a non-finite attribute value or an outcome outside [0, 1]")


def prior_precision(K: int, intercept: bool, prior_sd, intercept_prior_sd=INTERCEPT_PRIOR_SD):
    """Prior precision per parameter (slopes first, then the intercept)."""
    if prior_sd is None:
        prec = np.zeros(K + int(intercept))
    else:
        if not (np.isfinite(prior_sd) and prior_sd > 0):
            raise InputError(f"prior_sd must be a positive number or None, got {prior_sd!r}")
        prec = np.full(K + int(intercept), 1.0 / prior_sd**2)
        if intercept:
            prec[-1] = 0.0 if intercept_prior_sd is None else 1.0 / intercept_prior_sd**2
    return prec


def fit_logit(X, y, *, mask=None, n=None, intercept: bool = True, prior_sd=1.0,
              intercept_prior_sd=INTERCEPT_PRIOR_SD, backend: str = "auto",
              max_iter: int = 100, tol: float = 1e-8,
              check_separation: bool = True, dtype=np.float64) -> LogitFit:
    """Fit one binary logit per context, all contexts in one call.

    P(choose A) = sigmoid(X @ coef + intercept), by Newton's method with step
    halving on the (penalised) log-likelihood.

    Parameters
    ----------
    X : array (A, T, K)
        Attribute differences, option A minus option B (range-normalised in
        the paper's design, so each lies in [-1, 1]).
    y : array (A, T)
        Outcomes: 1 when A was chosen, 0 for B; or the probability of A in
        [0, 1] (soft labels, e.g. from logprobs); or, with ``n``, the number
        of times A was chosen out of ``n``.
    mask : bool array (A, T), optional
        True for the trials to use (ragged trial counts); masked entries are
        ignored whatever their value.
    n : array (A, T), optional
        Binomial trial counts behind each row of ``y``.
    intercept : bool
        Fit an intercept (a bias towards option A).
    prior_sd : float or None
        Standard deviation of the normal(0, prior_sd) prior on every slope: the
        fit is then the posterior mode (MAP).  1.0 is the paper's prior.
        None gives plain maximum likelihood (no prior on the intercept either).
    intercept_prior_sd : float or None
        Standard deviation of the normal prior on the intercept when
        ``prior_sd`` is not None (weakly informative 2.5 by default).
    backend : {"auto", "numpy", "numba", "jax", "cuda"}
        "auto" is numba.  "cuda" fits on an NVIDIA GPU, one thread per
        context (needs numba-cuda: the ``gpu`` extra).
    max_iter, tol : int, float
        Newton stops when the applied step is at most ``tol * (1 + max|theta|)``,
        or when, in the quadratic regime, the next step is predicted to be
        (from the last two steps, with a safety factor of 10): this saves the
        final evaluation of a step that would be ~1e-14.
    check_separation : bool
        Decide for every context whether its data are separated (costs a short
        unpenalised Newton run, and a linear program for the rare undecided
        context).
    dtype : np.float64 or np.float32
        Working precision of the JAX and CUDA backends (the others use float64).

    Returns
    -------
    LogitFit
    """
    _check_options(backend, max_iter)
    numba = backend in ("auto", "numba")
    # the numba kernel checks the values of each context as it copies it: no separate pass
    X, f, w = prepare_outcomes(X, y, mask, n, screen=not numba)
    A, T, K = X.shape
    prec = prior_precision(K, intercept, prior_sd, intercept_prior_sd)
    if numba:
        from ._core.logit_numba import INVALID, fit_numba

        out = fit_numba(X, f, w, intercept, prec, max_iter, tol, check_separation)
        invalid = np.flatnonzero(out[6] == INVALID)
        if len(invalid):
            name_invalid_value(X, f, invalid)
    elif backend == "numpy":
        from ._core.logit_numpy import fit_numpy

        Z = _design(X, intercept)
        out = _parts(*fit_numpy(Z, f, w, np.broadcast_to(prec, (A, len(prec))), max_iter, tol,
                                check_separation), K, intercept)
    elif backend == "cuda":
        fit_cuda = _cuda_kernels().fit_cuda
        out = _parts(*fit_cuda(X, f, w, intercept, prec, max_iter, tol, check_separation, dtype),
                     K, intercept)
    else:
        from ._core.logit_jax import fit_jax

        out = _parts(*fit_jax(X, f, w, intercept, prec, max_iter, tol, check_separation, dtype), K,
                     intercept)
    return _finish(*out, intercept, prior_sd, lambda idx: (X[idx], f[idx], w[idx]),
                   certify=backend in ("jax", "cuda"))


def _parts(theta, cov, conv, n_iter, status, K, intercept):
    """The NumPy, JAX and CUDA backends' (theta (A, P), covariance (A, P, P) or variances
    (A, P), ...) in the numba backend's layout: (coef, intercept, stderr, intercept stderr,
    converged, n_iter, status)."""
    A = theta.shape[0]
    var = cov if cov.ndim == 2 else np.diagonal(cov, axis1=1, axis2=2)
    se = np.sqrt(np.clip(var, 0.0, None))
    zeros = np.zeros(A)
    return (np.ascontiguousarray(theta[:, :K]), theta[:, K].copy() if intercept else zeros,
            np.ascontiguousarray(se[:, :K]), se[:, K].copy() if intercept else zeros.copy(),
            conv, n_iter, status)


def _finish(coef, icpt, se, ise, conv, n_iter, status, intercept, prior_sd, data_of,
            certify=False) -> LogitFit:
    """A backend's outputs (:func:`_parts`) as a :class:`LogitFit`.

    Contexts the backend left undecided (status 2) are settled on their data,
    ``data_of(indices) -> (X, f, w)``: with ``certify`` (the JAX and CUDA
    kernels, whose check is the short one) first by the NumPy reference's
    residual certificates, which settle nearly all of them at a fraction of a
    millisecond each; what is left by the exact linear program (milliseconds
    each).  Whether the MLE exists does not depend on the prior, so the
    certificates start from the paper's normal(0, 1) fit whatever ``prior_sd``.
    """
    separated = status == 1
    undecided = np.flatnonzero(status == 2)
    if len(undecided):
        from ._core.separation import separated_lp

        Xu, fu, wu = data_of(undecided)
        Zu = _design(Xu, intercept)
        if certify:
            from ._core.logit_numpy import fit_numpy

            prec = prior_precision(Xu.shape[2], intercept, 1.0)
            st = fit_numpy(Zu, fu, wu, np.broadcast_to(prec, (len(Zu), len(prec))), 100, 1e-8,
                           True)[4]
            separated[undecided] = st == 1
            rest = st == 2
            undecided, Zu, fu, wu = undecided[rest], Zu[rest], fu[rest], wu[rest]
        if len(undecided):
            separated[undecided] = separated_lp(Zu, fu, wu)
    if prior_sd is None:
        conv = conv & ~separated
    return LogitFit(
        coef=coef,
        intercept=icpt,
        stderr=se,
        intercept_stderr=ise,
        converged=np.asarray(conv, dtype=bool),
        separated=np.asarray(separated, dtype=bool),
        n_iter=np.asarray(n_iter, dtype=np.int64),
    )


def simulate_and_fit(weights, n_trials: int, *, scale=1.0, agent_intercept=0.0, rng=None,
                     first_context: int = 0, intercept: bool = True, prior_sd=1.0,
                     intercept_prior_sd=INTERCEPT_PRIOR_SD, backend: str = "auto",
                     max_iter: int = 100, tol: float = 1e-8,
                     check_separation: bool = True) -> LogitFit:
    """:func:`~selfinterp.simulate_choices` then :func:`fit_logit`, without keeping the choices.

    The result is identical to ``fit_logit(*simulate_choices(weights, n_trials,
    scale=scale, intercept=agent_intercept, rng=rng, first_context=first_context),
    ...)``; with the numba backend the two run fused, context by context, and
    the (A, n_trials, K) design is never held in memory: what a Monte-Carlo
    power analysis needs, which only keeps the fitted weights.

    Parameters
    ----------
    weights, n_trials, scale, rng, first_context
        As in :func:`~selfinterp.simulate_choices`.
    agent_intercept : float or array (A,)
        The simulated agents' position bias (``intercept`` of
        :func:`~selfinterp.simulate_choices`).
    intercept, prior_sd, intercept_prior_sd, backend, max_iter, tol, check_separation
        As in :func:`fit_logit`; every backend gives the fit of the same
        simulated choices (numba fused, the others one after the other).

    Returns
    -------
    LogitFit
    """
    from .simulate import _check_arguments, _key, simulate_choices

    _check_options(backend, max_iter)
    weights, scale, agent_intercept = _check_arguments(weights, n_trials, scale, agent_intercept)
    key = _key(rng)
    options = dict(intercept=intercept, prior_sd=prior_sd, intercept_prior_sd=intercept_prior_sd,
                   max_iter=max_iter, tol=tol, check_separation=check_separation)
    if backend not in ("auto", "numba"):
        X, y = simulate_choices(weights, n_trials, scale=scale, intercept=agent_intercept, rng=key,
                                first_context=first_context)
        return fit_logit(X, y, backend=backend, **options)
    from ._core.logit_numba import simulate_fit_numba

    K = weights.shape[1]
    prec = prior_precision(K, intercept, prior_sd, intercept_prior_sd)
    out = simulate_fit_numba(weights, n_trials, scale, agent_intercept, key, first_context, intercept,
                             prec, max_iter, tol, check_separation)

    def one(i):  # context i alone, from its own stream
        return simulate_choices(weights[i:i + 1], n_trials, scale=scale[i:i + 1],
                                intercept=agent_intercept[i:i + 1], rng=key, first_context=first_context + i)

    return _finish(*out, intercept, prior_sd, lambda idx: _simulated_again(one, idx))


def simulate_and_fit_jax(weights, n_trials: int, *, key, scale=1.0, agent_intercept=0.0,
                         first_context: int = 0, intercept: bool = True, prior_sd=1.0,
                         intercept_prior_sd=INTERCEPT_PRIOR_SD, max_iter: int = 100,
                         tol: float = 1e-8, check_separation: bool = True,
                         dtype=np.float32, fit_backend: str = "auto") -> LogitFit:
    """Simulate and fit on the JAX default device (a GPU when present): the choices never leave it.

    :func:`~selfinterp.simulate.simulate_choices_jax` then the JAX estimator,
    with only the weights in and the fits out crossing to the host (tested
    under ``jax.transfer_guard("disallow")``).  Like
    :func:`~selfinterp.simulate.simulate_choices_jax`, it draws with JAX's
    generator (``fold_in(key, context)``): its numbers do not depend on
    batching but differ from those of :func:`simulate_and_fit`.

    Parameters
    ----------
    weights, n_trials, scale, agent_intercept, first_context
        As in :func:`simulate_and_fit`.
    key : jax.random key
    intercept, prior_sd, intercept_prior_sd, max_iter, tol, check_separation
        As in :func:`fit_logit`.
    dtype : np.float32 or np.float64
        Working precision of simulation and fit (float32 is the GPUs' fast one).
    fit_backend : {"auto", "jax", "cuda"}
        Who fits the simulated choices: the JAX estimator, or the CUDA kernel
        (one GPU thread per context, numba-cuda; 5x to 14x faster than the
        JAX estimator on an H200, ``benchmarks/README.md``), reading JAX's
        arrays in place.
        The two agree to rounding.  "auto" is "cuda" where JAX computes on a
        GPU and numba-cuda can use it, else "jax".

    Returns
    -------
    LogitFit
    """
    from .errors import require
    from .simulate import _check_arguments

    jax = require("jax", "jax")
    _check_options("jax", max_iter)
    weights, scale, agent_intercept = _check_arguments(weights, n_trials, scale, agent_intercept)
    K = weights.shape[1]
    prec = prior_precision(K, intercept, prior_sd, intercept_prior_sd)
    from ._core.simulate_jax import simulate_jax

    if fit_backend not in ("auto", "jax", "cuda"):
        raise InputError(f"fit_backend must be 'auto', 'jax' or 'cuda', got {fit_backend!r}")
    if fit_backend == "auto":
        fit_backend = "cuda" if jax.default_backend() == "gpu" and _cuda_usable() else "jax"
    if fit_backend == "cuda":
        simulate_fit = _cuda_kernels().simulate_fit_cuda
    else:
        from ._core.logit_jax import simulate_fit_jax as simulate_fit
    out = _parts(*simulate_fit(weights, int(n_trials), scale, agent_intercept, key,
                               int(first_context), intercept, prec, max_iter, tol,
                               check_separation, dtype), K, intercept)

    def again(idx):
        """The contexts idx, each from its own stream, in one call; padded to a power of two
        (repeating the last), so that a few compiled sizes serve every count."""
        m = len(idx)
        pad = np.concatenate([idx, np.full(max(16, 1 << (m - 1).bit_length()) - m, idx[-1])])
        with jax.enable_x64(np.dtype(dtype) == np.float64):
            X, y = simulate_jax(weights[pad], n_trials, scale[pad], agent_intercept[pad], key,
                                contexts=first_context + pad, dtype=dtype)
            X, y = jax.device_get((X, y))
        y = np.asarray(y[:m], dtype=np.float64)
        return np.asarray(X[:m], dtype=np.float64), y, np.ones_like(y)

    return _finish(*out, intercept, prior_sd, again, certify=True)


def _cuda_usable():
    try:
        return _cuda_kernels() is not None
    except ImportError:
        return False


def _cuda_kernels():
    """The CUDA backend's module, or a clear error where it cannot run."""
    from .errors import MissingExtraError, require

    require("numba.cuda", "gpu")
    from ._core import logit_cuda

    if not logit_cuda.available():
        raise MissingExtraError("backend='cuda' needs an NVIDIA GPU and its driver, which numba "
                                "cannot find here (numba.cuda.is_available() is False)")
    return logit_cuda


def _check_options(backend, max_iter):
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if max_iter < 1:
        raise InputError(f"max_iter must be at least 1, got {max_iter}")


def _simulated_again(one, idx):
    """(X, f, w) of the contexts ``idx``, each simulated again by ``one(i)``.

    The fused kernels keep no choices; the rare contexts that the Newton check
    leaves undecided need theirs for the exact linear program.
    """
    parts = [one(int(i)) for i in idx]
    X = np.concatenate([np.asarray(p[0], dtype=np.float64) for p in parts])
    y = np.concatenate([np.asarray(p[1], dtype=np.float64) for p in parts])
    return X, y, np.ones_like(y)


def _design(X, intercept):
    if not intercept:
        return X
    return np.concatenate([X, np.ones(X.shape[:2] + (1,))], axis=2)
