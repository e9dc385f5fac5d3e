"""Labelled layer: xarray Datasets with dims ``context``, ``trial``, ``attribute``.

A *choices* Dataset holds

- ``X`` (context, trial, attribute): range-normalised differences, A minus B;
- ``y`` (context, trial): outcome, 1 = A chosen (or P(A), or a count with ``n``);
- ``mask`` (context, trial): True for trials that exist (ragged designs);
- optionally ``n`` (context, trial), ``target_weight`` (context, attribute),
  ``attribute_name`` (context, attribute) and anything else a reader adds.

Simulated agents and real transcripts load into the same layout, so one
estimator (:func:`fit_dataset`) and one scorer serve both.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .logit import fit_logit
from .simulate import simulate_choices

__all__ = ["choices_dataset", "simulate_dataset", "fit_dataset", "to_netcdf", "open_dataset"]


def _coords(A, K, context, attribute):
    context = np.arange(A) if context is None else np.asarray(context)
    attribute = [f"attr{k + 1}" for k in range(K)] if attribute is None else list(attribute)
    return {"context": context, "attribute": attribute}


def choices_dataset(X, y, *, mask=None, n=None, context=None, attribute=None,
                    target_weight=None, attrs=None) -> xr.Dataset:
    """Wrap arrays (A, T, K) and (A, T) into a choices Dataset."""
    X = np.asarray(X, dtype=np.float64)
    A, T, K = X.shape
    coords = _coords(A, K, context, attribute)
    data = {
        "X": (("context", "trial", "attribute"), X),
        "y": (("context", "trial"), np.asarray(y, dtype=np.float64)),
        "mask": (("context", "trial"), np.ones((A, T), bool) if mask is None else np.asarray(mask, bool)),
    }
    if n is not None:
        data["n"] = (("context", "trial"), np.asarray(n, dtype=np.float64))
    if target_weight is not None:
        data["target_weight"] = (("context", "attribute"), np.asarray(target_weight, dtype=np.float64))
    return xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))


def simulate_dataset(weights, n_trials: int, *, scale=1.0, intercept=0.0, rng=None,
                     context=None, attribute=None) -> xr.Dataset:
    """:func:`~selfinterp.simulate_choices` returning a choices Dataset with ``target_weight``."""
    X, y = simulate_choices(weights, n_trials, scale=scale, intercept=intercept, rng=rng)
    return choices_dataset(X, y, context=context, attribute=attribute, target_weight=weights,
                           attrs={"source": "simulate_choices", "n_trials": int(n_trials)})


def fit_dataset(ds: xr.Dataset, *, max_abs: float = 100.0, **kwargs) -> xr.Dataset:
    """Fit :func:`~selfinterp.fit_logit` to every context of a choices Dataset.

    Returns a Dataset over (context, attribute) with variables ``coef``,
    ``stderr``, ``weight`` (coef normalised to max |w| = ``max_abs``),
    ``intercept``, ``intercept_stderr``, ``converged``, ``separated`` and
    ``n_iter``.  Keyword arguments go to :func:`~selfinterp.fit_logit`.
    """
    ds = ds.transpose("context", "trial", "attribute", ...)
    fit = fit_logit(ds["X"].values, ds["y"].values,
                    mask=ds["mask"].values if "mask" in ds else None,
                    n=ds["n"].values if "n" in ds else None, **kwargs)
    out = fit.to_xarray(context=ds["context"].values, attribute=ds["attribute"].values, max_abs=max_abs)
    out.attrs = {"estimator": "fit_logit", **{k: str(v) for k, v in kwargs.items()}}
    return out


def to_netcdf(ds: xr.Dataset, path) -> None:
    """Write a Dataset to netCDF-4 (h5netcdf engine)."""
    ds.to_netcdf(path, engine="h5netcdf")


def open_dataset(path) -> xr.Dataset:
    """Read a Dataset written by :func:`to_netcdf`, fully loaded."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
