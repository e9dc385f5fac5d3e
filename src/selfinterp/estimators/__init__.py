"""Estimators of attribute weights from A/B choices, batched over contexts.

Every estimator is a callable ``(X (A, T, K), y (A, T), *, mask=None,
rng=None) -> EstimateResult``; a user's own callable returning an
:class:`EstimateResult` or a :class:`selfinterp.LogitFit` joins the benchmark
(:func:`selfinterp.estimators.benchmark.run_benchmark`) the same way.

=====================  =====================================================
``ml``                 :class:`MaximumLikelihood` (fit_logit, no prior)
``map``                :class:`PaperMAP` (the paper's normal(0, 1) mode)
``firth``              :class:`Firth` (Jeffreys-penalised, profile intervals)
``ridge_cv``           :class:`RidgeCV` (prior sd chosen by cross-validation)
``lpm``                :class:`LinearProbability` (least squares)
``sign``               :class:`SignAgreement` (counting heuristic)
``posterior_mean``     :class:`PosteriorMean` (importance sampling)
=====================  =====================================================
"""

from ._result import EstimateResult, Estimator, as_result
from .firth import Firth, FirthFit, fit_firth
from .linear_probability import LinearProbability
from .maximum_likelihood import MaximumLikelihood
from .paper_map import PaperMAP
from .posterior_mean import PosteriorMean, importance_posterior
from .ridge_cv import RidgeCV
from .sign_agreement import SignAgreement

__all__ = [
    "EstimateResult",
    "Estimator",
    "as_result",
    "default_estimators",
    "Firth",
    "FirthFit",
    "fit_firth",
    "LinearProbability",
    "MaximumLikelihood",
    "PaperMAP",
    "PosteriorMean",
    "importance_posterior",
    "RidgeCV",
    "SignAgreement",
]


def default_estimators() -> dict:
    """The built-in estimators under their benchmark names (a new dict each call)."""
    return {
        "ml": MaximumLikelihood(),
        "map": PaperMAP(),
        "firth": Firth(),
        "ridge_cv": RidgeCV(),
        "lpm": LinearProbability(),
        "sign": SignAgreement(),
        "posterior_mean": PosteriorMean(),
    }
