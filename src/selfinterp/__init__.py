"""selfinterp: a simulation-first statistical toolkit for self-interpretability studies.

Array API (stable): :func:`simulate_choices`, :func:`fit_logit` (returns
:class:`LogitFit`), :func:`normalize_weights`; :func:`simulate_and_fit` runs the
first two fused.  Labelled API: xarray Datasets
with dims ``context``, ``trial``, ``attribute`` (:mod:`selfinterp.labelled`).

The names below are loaded on first use (module ``__getattr__``), so that
``import selfinterp`` and the command line start without numba or xarray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import InputError, MissingExtraError

# public name -> the submodule that defines it (imported on first access)
_LAZY = {
    "LogitFit": "logit",
    "fit_logit": "logit",
    "simulate_and_fit": "logit",
    "normalize_weights": "logit",
    "simulate_choices": "simulate",
    "simulate_choices_jax": "simulate",
    "choices_dataset": "labelled",
    "simulate_dataset": "labelled",
    "fit_dataset": "labelled",
    "to_netcdf": "labelled",
    "open_dataset": "labelled",
}
_SUBMODULES = ("agents", "design")

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from . import agents, design
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


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        # a submodule (``selfinterp.design``, ``selfinterp.logit``, ...), as when this
        # package imported them all
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))
