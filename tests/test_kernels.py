"""Internals of the numba kernel: the unrolled evaluation equals the generic one."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import REPO
from selfinterp._core import logit_numba as ln


@pytest.mark.parametrize("P", range(1, 10))  # 1..8 unrolled (_gram), 9 the generic passes
def test_unrolled_evaluation_equals_generic_passes(P):
    rng = np.random.default_rng(P)
    T = 37  # not a multiple of the vector width: the loop's remainder is exercised too
    Zt = rng.uniform(-1, 1, (P, T))
    eta = rng.normal(0, 3, T)
    f = (rng.uniform(size=T) < 0.5).astype(float)
    w = rng.integers(0, 3, T).astype(float)
    theta = rng.normal(size=P)
    prec = rng.uniform(0, 1, P)
    r, v, g, H = np.empty(T), np.empty(T), np.empty(P), np.empty((P, P))
    ln._evaluate(Zt, eta, f, w, r, v, np.empty(T), theta, prec, g, H)
    r2, v2, g2, H2 = np.empty(T), np.empty(T), np.empty(P), np.empty((P, P))
    ln._residuals(eta, f, w, r2, v2)
    ln._grad_hess(Zt, r2, v2, np.empty(T), theta, prec, g2, H2)
    np.testing.assert_array_equal(r, r2)
    np.testing.assert_array_equal(v, v2)
    # sums in another order: equal to rounding
    np.testing.assert_allclose(g, g2, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(H, H2, rtol=1e-13, atol=1e-13)
    assert np.array_equal(H, H.T)


def test_generated_module_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_gram", REPO / "tools" / "gen_gram.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    expected = gen.HEADER.format(pmax=gen.P_MAX) + "".join(gen.gen(P) for P in range(1, gen.P_MAX + 1))
    assert gen.OUT.read_text() == expected, "run python tools/gen_gram.py"
