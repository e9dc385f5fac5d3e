"""The labelled layer: Datasets, fitting by name, netCDF round trip."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

import selfinterp as si


def test_fit_dataset_matches_the_array_api():
    w = np.array([[2.0, -1.0, 0.0], [0.5, 0.5, -3.0]])
    ds = si.simulate_dataset(w, 100, rng=4, context=["tea", "loan"], attribute=["a", "b", "c"])
    assert ds["X"].dims == ("context", "trial", "attribute")
    res = si.fit_dataset(ds)
    fit = si.fit_logit(ds["X"].values, ds["y"].values)
    np.testing.assert_array_equal(res["coef"].values, fit.coef)
    np.testing.assert_allclose(res["weight"].sel(context="tea").values, si.normalize_weights(fit.coef)[0])
    assert list(res["attribute"].values) == ["a", "b", "c"]
    # transposed input is handled by name
    res2 = si.fit_dataset(ds.transpose("attribute", "trial", "context"))
    xr.testing.assert_equal(res, res2)


@given(st.integers(1, 4), st.integers(1, 12), st.integers(1, 4), st.integers(0, 2**31))
def test_netcdf_round_trip(tmp_path_factory, A, T, K, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(A, K))
    mask = rng.uniform(size=(A, T)) < 0.8
    mask[:, 0] = True
    X, y = si.simulate_choices(w, T, rng=seed)
    ds = si.choices_dataset(X, y, mask=mask, context=[f"c{i}" for i in range(A)], target_weight=w)
    fit = si.fit_dataset(ds)
    path = tmp_path_factory.mktemp("nc") / "d.nc"
    for d in (ds, fit):
        si.to_netcdf(d, path)
        back = si.open_dataset(path)
        xr.testing.assert_identical(back, d)


def test_logit_fit_converts_to_labelled_tables():
    w = np.array([[2.0, -1.0, 0.0], [0.5, 0.5, -3.0]])
    X, y = si.simulate_choices(w, 60, rng=2)
    fit = si.fit_logit(X, y)
    ds = fit.to_xarray(context=["tea", "loan"], attribute=["a", "b", "c"])
    assert ds["coef"].dims == ("context", "attribute") and ds["converged"].dims == ("context",)
    assert float(ds["coef"].sel(context="loan", attribute="c")) == fit.coef[1, 2]
    assert float(ds["stderr"].sel(context="tea", attribute="b")) == fit.stderr[0, 1]
    np.testing.assert_array_equal(ds["separated"].values, fit.separated)
    df = fit.to_dataframe(context=["tea", "loan"], attribute=["a", "b", "c"])
    assert len(df) == 6 and df.loc[("loan", "a"), "coef"] == fit.coef[1, 0]
    assert df.loc[("tea", "c"), "converged"] == fit.converged[0]
    # fit_dataset is the same table, with the estimator's options recorded
    xr.testing.assert_equal(si.fit_dataset(si.choices_dataset(X, y)).drop_attrs(), fit.to_xarray())
    assert "2 contexts x 3 attributes" in repr(fit) and len(repr(fit)) < 200
    with pytest.raises(si.InputError, match="labels for 3 contexts"):
        fit.to_xarray(context=[1, 2, 3])
