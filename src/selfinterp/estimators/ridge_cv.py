"""Ridge logit whose penalty is chosen per context by cross-validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core.rng import context_seed_np, key_from_rng, uniform_np
from ..errors import InputError
from ..logit import INTERCEPT_PRIOR_SD, fit_logit, prepare_outcomes
from ._result import EstimateResult, wald_interval

__all__ = ["RidgeCV", "fold_assignment"]

DEFAULT_PRIOR_SDS = (0.3, 1.0, 3.0, 10.0, 30.0)


def fold_assignment(used, n_folds: int, rng, first_context: int = 0) -> np.ndarray:
    """Fold of every trial (A, T): a random balanced split of each context's used trials.

    Context ``first_context + a`` draws from its own counter-based stream of
    ``rng``'s key, so the folds of a context do not depend on how contexts are
    batched.  Unused (masked) trials get fold -1.
    """
    used = np.asarray(used, dtype=bool)
    A, T = used.shape
    key = key_from_rng(rng)
    ctx = np.arange(first_context, first_context + A, dtype=np.uint64)
    u = uniform_np(context_seed_np(key, ctx)[:, None], np.arange(T, dtype=np.uint64)[None, :])
    u = np.where(used, u, 2.0)  # unused trials sort last
    rank = np.argsort(np.argsort(u, axis=1, kind="stable"), axis=1, kind="stable")
    return np.where(used, rank % n_folds, -1)


@dataclass(frozen=True)
class RidgeCV:
    """Ridge (normal-prior) logit with the slope prior sd chosen per context by K-fold CV.

    For every candidate ``prior_sd`` and fold, :func:`selfinterp.fit_logit`
    fits all contexts at once on the other folds (a mask); the candidate with
    the largest held-out log-likelihood, summed over folds, is refitted on all
    trials.  The intercept keeps the weak normal(0, 2.5) prior of the paper's
    MAP, so ridge with ``prior_sd=1`` is that MAP.  The interval is the Wald
    interval from the penalised Hessian (a Laplace credible interval for the
    chosen prior, not a confidence interval).

    Parameters
    ----------
    prior_sds : tuple of float
        Candidate slope prior standard deviations (penalty 1 / sd^2).
    n_folds : int
        Folds per context (at most the number of trials of every context).
    first_context : int
        Global index of the first context, for batch-invariant folds.
    """

    prior_sds: tuple = DEFAULT_PRIOR_SDS
    n_folds: int = 3
    first_context: int = 0

    def __call__(self, X, y, *, mask=None, rng=None) -> EstimateResult:
        """Fit X (A, T, K), y (A, T); ``rng`` draws the folds."""
        Xc, f, w = prepare_outcomes(X, y, mask)
        used = w > 0
        n_used = used.sum(axis=1)
        if self.n_folds < 2:
            raise InputError(f"n_folds must be at least 2, got {self.n_folds}")
        if n_used.min() < self.n_folds:
            a = int(np.argmin(n_used))
            raise InputError(f"context {a} has {int(n_used[a])} trials, fewer than "
                             f"n_folds={self.n_folds}")
        folds = fold_assignment(used, self.n_folds, rng, self.first_context)
        A = Xc.shape[0]
        F = self.n_folds
        # all folds of all contexts in one batched fit per candidate: row
        # k * A + a is context a trained without fold k
        Xs = np.concatenate([Xc] * F)
        fs = np.concatenate([f] * F)
        train = np.concatenate([used & (folds != k) for k in range(F)])
        held = np.concatenate([used & (folds == k) for k in range(F)])
        score = np.zeros((len(self.prior_sds), A))
        for i, sd in enumerate(self.prior_sds):
            fit = fit_logit(Xs, fs, mask=train, prior_sd=sd, intercept_prior_sd=INTERCEPT_PRIOR_SD,
                            check_separation=False)
            eta = np.einsum("atk,ak->at", Xs, fit.coef) + fit.intercept[:, None]
            # held-out log-likelihood, with log-sigmoid to stay finite at large |eta|
            ll = fs * -np.logaddexp(0.0, -eta) + (1.0 - fs) * -np.logaddexp(0.0, eta)
            score[i] = np.sum(np.where(held, ll, 0.0), axis=1).reshape(F, A).sum(axis=0)
        best = np.asarray(self.prior_sds)[np.argmax(score, axis=0)]
        coef = np.empty((A, Xc.shape[2]))
        stderr = np.empty_like(coef)
        conv = np.empty(A, dtype=bool)
        sep = np.empty(A, dtype=bool)
        icpt = np.empty(A)
        for sd in np.unique(best):
            rows = best == sd
            fit = fit_logit(Xc[rows], f[rows], mask=used[rows], prior_sd=float(sd),
                            intercept_prior_sd=INTERCEPT_PRIOR_SD)
            coef[rows], stderr[rows] = fit.coef, fit.stderr
            conv[rows], sep[rows], icpt[rows] = fit.converged, fit.separated, fit.intercept
        lower, upper = wald_interval(coef, stderr)
        return EstimateResult(coef=coef, converged=conv, lower=lower, upper=upper,
                              separated=sep, intercept=icpt)
