"""Array-level pieces of the generative model (no xarray, no I/O).

Every function takes its randomness as an argument (a NumPy Generator) and
works on whole batches: rows are (replicate x context) stacked on one axis, so
that many simulated studies go through one call.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..logit import fit_logit, normalize_weights, simulate_and_fit, simulate_and_fit_jax
from ..simulate import simulate_choices
from .params import ChoiceModel, ReportModel

__all__ = ["draw_targets", "effective_weights", "context_bias", "simulate_model_choices",
           "learned_weights", "simulate_learned_weights", "simulate_reports", "mean_reports", "weight_sd"]


def draw_targets(n: int, k: int, gen: np.random.Generator) -> np.ndarray:
    """Target weights (n, k): U(-100, 100) rescaled to max |w| = 100, rounded to integers.

    The distribution of :func:`selfinterp.design.draw_target_weights`, drawn in
    one vectorised call from ``gen`` (the power engine draws millions).
    """
    u = gen.uniform(-100.0, 100.0, size=(n, k))
    return np.round(u * (100.0 / np.max(np.abs(u), axis=1, keepdims=True)))


def effective_weights(targets: np.ndarray, model: ChoiceModel, gen: np.random.Generator) -> np.ndarray:
    """Weights the fine-tuned model actually uses (n, k): targets plus normal(0, instill_sd)."""
    if model.instill_sd == 0:
        return np.array(targets, dtype=np.float64)
    return targets + model.instill_sd * gen.standard_normal(targets.shape)


def context_bias(n: int, model: ChoiceModel, gen: np.random.Generator) -> np.ndarray:
    """Position bias of each context (n,), in logits."""
    return model.bias + model.bias_sd * gen.standard_normal(n)


def simulate_model_choices(w_eff, bias_logit, n_choices: int, model: ChoiceModel, *, key,
                           first_context: int = 0):
    """Choices of the modelled LLM: :func:`selfinterp.simulate_choices` on its effective weights.

    Parameters
    ----------
    w_eff : array (n, k)
    bias_logit : array (n,)
        Position bias in logits (converted to the weight scale the simulator adds it on).
    n_choices : int
    model : ChoiceModel
    key : int, SeedSequence or Generator
        Stream key; row i uses the counter-based stream of global context
        ``first_context + i``, so results do not depend on batching.

    Returns
    -------
    X : ndarray (n, n_choices, k), y : ndarray (n, n_choices)
    """
    return simulate_choices(w_eff, n_choices, scale=model.scale, intercept=bias_logit / model.scale,
                            rng=key, first_context=first_context)


def learned_weights(X, y, backend: str = "auto") -> np.ndarray:
    """The paper's learned weights (n, k): logit with intercept, normal(0, 1) slopes, max |w| = 100.

    The separation check is skipped: under the prior the posterior mode exists
    whatever the data, and only the mode is used here.  ``backend`` is
    :func:`selfinterp.fit_logit`'s.
    """
    return normalize_weights(fit_logit(X, y, prior_sd=1.0, intercept=True, backend=backend,
                                       check_separation=False).coef)


def simulate_learned_weights(w_eff, bias_logit, n_choices: int, model: ChoiceModel, *, key,
                             first_context: int = 0, backend: str = "auto") -> np.ndarray:
    """:func:`learned_weights` of :func:`simulate_model_choices`, fused (the choices are not kept).

    The same numbers as the two calls one after the other
    (:func:`selfinterp.simulate_and_fit`), without holding the (n, n_choices,
    k) design in memory: the power engine's inner loop.  With
    ``backend="jax"`` the choices are simulated and fitted on the JAX device
    (:func:`selfinterp.logit.simulate_and_fit_jax`, float64) and only the
    weights cross to and from it; JAX's generator then gives other (equally
    distributed) choices.
    """
    options = dict(scale=model.scale, agent_intercept=bias_logit / model.scale, first_context=first_context,
                   prior_sd=1.0, intercept=True, check_separation=False)
    if backend == "jax":
        # simulated and fitted on the JAX device (a GPU when present), with JAX's generator
        fit = simulate_and_fit_jax(w_eff, n_choices, key=jax_key(key), dtype=np.float64, **options)
    else:
        fit = simulate_and_fit(w_eff, n_choices, rng=key, backend=backend, **options)
    return normalize_weights(fit.coef)


def jax_key(key):
    """A ``jax.random`` key from a 64-bit key (or anything ``np.random.default_rng`` takes)."""
    import jax

    from .._core.rng import key_from_rng

    k = int(key if isinstance(key, np.uint64) else key_from_rng(key))
    return jax.random.fold_in(jax.random.key(k & 0xFFFFFFFF), k >> 32)


def check_backend(backend: str) -> None:
    """Fail now, not mid-sweep, when ``backend`` is unknown or not installed."""
    from ..errors import InputError, MissingExtraError

    X = np.array([[[1.0, -0.5], [-1.0, 0.5]]])
    try:
        fit_logit(X, np.array([[1.0, 0.0]]), backend=backend, check_separation=False)
    except ImportError as exc:
        if isinstance(exc, MissingExtraError):
            raise
        raise InputError(f"fit_logit backend {backend!r} is not available here: {exc}") from None


def simulate_reports(w_eff: np.ndarray, model: ReportModel, n_reports: int,
                     gen: np.random.Generator):
    """Self-reports of ``n_reports`` calls per context.

    Parameters
    ----------
    w_eff : array (n, k)
        Effective weights (rescaled to max |w| = 100 inside).
    model : ReportModel
    n_reports : int
    gen : Generator

    Returns
    -------
    reports : ndarray (n, n_reports, k) float32
        Rounded to multiples of ``model.grid`` and clipped to [-100, 100].
    valid : ndarray (n, n_reports) bool
        False for invalid replies (their ``reports`` row is meaningless).
    """
    n, k = w_eff.shape
    # float32 draws and in-place arithmetic: reports are coarse integers-on-a-grid in
    # [-100, 100], far inside float32's exact range, and this is the engine's hot loop
    centre = model.offset + model.slope * normalize_weights(w_eff)
    centre = (centre[:, None, :] + model.sd_context * gen.standard_normal((n, 1, k))).astype(np.float32)
    reports = gen.standard_normal((n, n_reports, k), dtype=np.float32)
    reports *= np.float32(model.sd_report)
    reports += centre
    reports *= np.float32(1.0 / model.grid)
    np.round(reports, out=reports)
    reports *= np.float32(model.grid)
    np.clip(reports, -100.0, 100.0, out=reports)
    valid = gen.random((n, n_reports)) >= model.invalid_rate
    return reports, valid


def mean_reports(reports: np.ndarray, valid: np.ndarray):
    """Mean of the valid reports per context: (mean (n, k), n_valid (n,)).

    Contexts without a valid report get a mean of 0 and ``n_valid == 0``:
    scorers must leave them out (they carry no report).
    """
    n_valid = valid.sum(axis=1)
    total = np.einsum("nrk,nr->nk", reports, valid.astype(reports.dtype)).astype(np.float64)
    mean = np.divide(total, n_valid[:, None], out=np.zeros_like(total), where=n_valid[:, None] > 0)
    return mean, n_valid


@lru_cache(maxsize=64)
def weight_sd(instill_sd: float, k: int = 5, n: int = 200_000) -> float:
    """Sd of the rescaled effective weights (max |w| = 100) under the model.

    A fixed-seed Monte-Carlo estimate (n contexts; its own standard error is
    below 0.1 weight units), used to express report accuracy as a correlation.
    """
    gen = np.random.default_rng(20251125)
    t = draw_targets(n, k, gen)
    w = t + instill_sd * gen.standard_normal(t.shape) if instill_sd else t
    return float(normalize_weights(w).std())
