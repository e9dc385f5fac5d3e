"""Posterior mean under the paper's prior, by importance sampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core.rng import key_from_rng
from ..errors import InputError
from ..logit import INTERCEPT_PRIOR_SD, fit_logit, prepare_outcomes, prior_precision
from ._result import EstimateResult

__all__ = ["PosteriorMean", "importance_posterior"]


def importance_posterior(X, y, *, mask=None, prior_sd=1.0, intercept_prior_sd=INTERCEPT_PRIOR_SD,
                         n_draws=2000, df=5, inflate=1.2, rng=None, first_context=0):
    """Self-normalised importance sampling of each context's logit posterior.

    Proposal: a multivariate Student-t with ``df`` degrees of freedom centred
    at the posterior mode (:func:`selfinterp.fit_logit`) with scale matrix
    ``inflate**2`` times the Laplace covariance (inverse Hessian of the log
    posterior at the mode).

    Why this method: the paper reported posterior means (brms), and the
    posterior of a logit with normal priors is log-concave, unimodal and has
    Gaussian tails, so a t proposal around the mode has heavier tails than the
    target and the importance weights have finite variance (Geweke 1989); the
    skewness that separation causes (a long flank in the separating
    direction, cut off by the prior) is what the Laplace approximation, and
    hence the mode, misses and what the weights correct.  The quality of each
    context's estimate is measured by the effective sample size
    ``(sum w)^2 / sum w^2`` of its weights.

    Parameters
    ----------
    X : array (A, T, K); y : array (A, T); mask : bool array (A, T), optional
    prior_sd, intercept_prior_sd : float
        Normal prior standard deviations (1 and 2.5: the paper's).
    n_draws : int
        Draws per context.
    df : int
        Degrees of freedom of the proposal.
    inflate : float
        Scale factor of the proposal relative to the Laplace approximation.
    rng : seed or Generator
        One 64-bit key is drawn from it; context ``first_context + a`` then has
        its own counter-based stream (batch-invariant results).
    first_context : int

    Returns
    -------
    draws : ndarray (A, n_draws, K + 1)
        Slopes then intercept.
    weights : ndarray (A, n_draws)
        Normalised importance weights (each row sums to 1).
    ess : ndarray (A,)
        Effective sample size of the weights.
    """
    from ._importance_numba import importance_draws

    if int(n_draws) != n_draws or n_draws < 10:
        raise InputError(f"n_draws must be an integer >= 10, got {n_draws!r}")
    if int(df) != df or df < 1:
        raise InputError(f"df must be a positive integer, got {df!r}")
    if not inflate > 0:
        raise InputError(f"inflate must be positive, got {inflate!r}")
    Xc, f, w = prepare_outcomes(X, y, mask)
    A, T, K = Xc.shape
    prec = prior_precision(K, True, prior_sd, intercept_prior_sd)
    fit = fit_logit(Xc, f, mask=w > 0, prior_sd=prior_sd, intercept_prior_sd=intercept_prior_sd)
    mode = np.concatenate([fit.coef, fit.intercept[:, None]], axis=1)
    Z = np.concatenate([Xc, np.ones((A, T, 1))], axis=2)
    eta = np.einsum("atp,ap->at", Z, mode)
    v = w * np.exp(-np.logaddexp(0.0, eta) - np.logaddexp(0.0, -eta))  # w p (1 - p)
    H = np.einsum("at,atp,atq->apq", v, Z, Z) + np.diag(prec)
    # the prior makes H positive definite; the Cholesky of H^{-1} via that of H
    Lh = np.linalg.cholesky(H)
    inv_Lh = np.linalg.inv(Lh)  # H^{-1} = inv_Lh' inv_Lh
    cov = np.einsum("aqp,aqr->apr", inv_Lh, inv_Lh)
    chol = np.linalg.cholesky(cov) * inflate
    key = key_from_rng(rng)
    draws, logw = importance_draws(Xc, f, w, True, mode, np.ascontiguousarray(chol), prec,
                                   int(df), int(n_draws), key, int(first_context))
    logw -= logw.max(axis=1, keepdims=True)
    wts = np.exp(logw)
    wts /= wts.sum(axis=1, keepdims=True)
    ess = 1.0 / np.sum(wts**2, axis=1)
    return draws, wts, ess


def weighted_quantiles(draws, weights, probs):
    """Quantiles ``probs`` of weighted draws (A, S, P) -> (len(probs), A, P).

    The inverse of the weighted empirical distribution function (the smallest
    draw whose cumulative weight reaches the probability).
    """
    order = np.argsort(draws, axis=1)
    sorted_draws = np.take_along_axis(draws, order, axis=1)
    cw = np.cumsum(np.take_along_axis(np.broadcast_to(weights[..., None], draws.shape), order,
                                      axis=1), axis=1)
    out = []
    for p in probs:
        idx = np.minimum(np.sum(cw < p, axis=1), draws.shape[1] - 1)  # (A, P)
        out.append(np.take_along_axis(sorted_draws, idx[:, None, :], axis=1)[:, 0, :])
    return np.stack(out)


@dataclass(frozen=True)
class PosteriorMean:
    """Posterior mean of the slopes under normal(0, 1) slopes and a normal(0, 2.5) intercept.

    By :func:`importance_posterior`.  The interval is the equal-tailed 95%
    posterior credible interval from the weighted draws.  ``converged`` is
    False where the effective sample size is below ``min_ess_share`` of the
    draws (the proposal then misses the posterior's shape).

    Parameters
    ----------
    prior_sd : float
    n_draws : int
    df : int
    min_ess_share : float
    first_context : int
    """

    prior_sd: float = 1.0
    n_draws: int = 1000
    df: int = 5
    min_ess_share: float = 0.1
    first_context: int = 0

    def __call__(self, X, y, *, mask=None, rng=None) -> EstimateResult:
        """Fit X (A, T, K), y (A, T); ``rng`` drives the importance draws."""
        draws, wts, ess = importance_posterior(X, y, mask=mask, prior_sd=self.prior_sd,
                                               n_draws=self.n_draws, df=self.df, rng=rng,
                                               first_context=self.first_context)
        K = draws.shape[2] - 1
        mean = np.einsum("as,asp->ap", wts, draws)
        lo, hi = weighted_quantiles(draws[:, :, :K], wts, (0.025, 0.975))
        return EstimateResult(coef=mean[:, :K], converged=ess >= self.min_ess_share * self.n_draws,
                              lower=lo, upper=hi, intercept=mean[:, K].copy())
