"""selfinterp: a simulation-first statistical toolkit for self-interpretability studies.

Array API (stable): :func:`simulate_choices`, :func:`fit_logit` (returns
:class:`LogitFit`), :func:`normalize_weights`; :func:`simulate_and_fit` runs the
first two fused.  Labelled API: xarray Datasets
with dims ``context``, ``trial``, ``attribute`` (:mod:`selfinterp.labelled`).
"""

from . import agents, design
from ._version import __version__
from .errors import InputError, MissingExtraError
from .labelled import choices_dataset, fit_dataset, open_dataset, simulate_dataset, to_netcdf
from .logit import LogitFit, fit_logit, normalize_weights, simulate_and_fit
from .simulate import simulate_choices, simulate_choices_jax

__all__ = [
    "__version__",
    "InputError",
    "MissingExtraError",
    "LogitFit",
    "fit_logit",
    "simulate_and_fit",
    "normalize_weights",
    "simulate_choices",
    "simulate_choices_jax",
    "choices_dataset",
    "simulate_dataset",
    "fit_dataset",
    "to_netcdf",
    "open_dataset",
]
