"""Internals of the numba kernel: the unrolled evaluation equals the generic one."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import selfinterp as si
from conftest import REPO
from selfinterp._core import logit_numba as ln
from selfinterp._core.logit_numpy import residual_certificate_numpy
from selfinterp._core.separation import separated_lp
from strategies import arbitrary_designs


@pytest.mark.parametrize("P", [1, 3, 5, 6, 9])  # 5 and 6 unrolled (_gram), the others the generic passes
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
    ln._evaluate(ln.p_tag(P), Zt, eta, f, w, r, v, np.empty(T), theta, prec, g, H)
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
    assert gen.OUT.read_text() == gen.render(), "run python tools/gen_gram.py"


@pytest.mark.parametrize("P", [1, 3, 5, 6, 9])  # 5 and 6 straight-line (_gram), the others the loops
def test_factor_solve_equals_the_loops(P):
    rng = np.random.default_rng(100 + P)
    M = rng.normal(size=(P, P))
    H = M @ M.T + 0.1 * np.eye(P)
    g = rng.normal(size=P)
    L, d = np.zeros((P, P)), np.empty(P)
    assert ln._factor_solve(ln.p_tag(P), H, g, L, d)
    # the factor is LDL^T: unit lower factor below the diagonal, 1 / D on it
    U = np.tril(L, -1) + np.eye(P)
    np.testing.assert_allclose(U @ np.diag(1.0 / np.diag(L)) @ U.T, H, rtol=1e-12, atol=1e-12)
    L2, d2 = np.zeros((P, P)), np.empty(P)
    assert ln._ldl(H, L2)
    ln._ldl_solve(L2, g, d2)
    np.testing.assert_allclose(L, L2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(d, d2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(d, np.linalg.solve(H, g), rtol=1e-9, atol=1e-12)
    # the variances, straight-line and by the loops, are the diagonal of the inverse
    var, var2 = np.empty(P), np.empty(P)
    ln._variances(ln.p_tag(P), L, var, np.empty((P, P)))
    ln._variances_loops(L, var2, np.empty((P, P)))
    np.testing.assert_allclose(var, np.diag(np.linalg.inv(H)), rtol=1e-9)
    np.testing.assert_allclose(var, var2, rtol=1e-12)
    # not positive definite: refused, as the loops refuse it
    H[P - 1, P - 1] = -1.0
    assert not ln._factor_solve(ln.p_tag(P), H, g, L, d)
    assert not ln._ldl(H, L2)


def test_fast_elementary_functions_are_accurate():
    from numba import njit

    from selfinterp._core.vecmath import exp_nonpos_fast, log1p_unit, logistic_fast

    @njit
    def apply(x, e):
        a, b, c = np.empty_like(x), np.empty_like(x), np.empty_like(e)
        for i in range(x.size):
            a[i] = exp_nonpos_fast(x[i])
            b[i] = logistic_fast(-x[i])[1]
        for i in range(e.size):
            c[i] = log1p_unit(e[i])
        return a, b, c

    rng = np.random.default_rng(7)
    # with the halves of ln 2, where rounding x / ln 2 to n (the shifter) meets its ties
    x = np.concatenate([-rng.uniform(0, 700, 100_000), -rng.uniform(0, 2, 100_000), [0.0, -700.0],
                        -np.arange(2000) * np.log(2) / 2])
    e = np.concatenate([rng.uniform(0, 1, 100_000), [0.0, 1.0, 1e-300]])
    a, b, c = apply(x, e)
    ulp = lambda got, ref: np.max(np.abs(got - ref) / np.spacing(np.abs(ref)))  # noqa: E731
    assert ulp(a, np.exp(x)) <= 2
    assert ulp(b, 1 / (1 + np.exp(x))) <= 4
    assert ulp(c[e > 0], np.log1p(e[e > 0])) <= 5 and c[e == 0] == 0


def test_fast_math_callers_do_not_leak_into_the_exact_exp(tmp_path):
    # numba lets a callee without its own fast-math setting inherit its caller's:
    # compiling a fast-math kernel first once gave exp_nonpos fused multiply-adds,
    # and the simulators' bit-identity with their NumPy twins then depended on
    # what had been compiled before.  A fresh process with an empty cache, the
    # estimator compiled first, then the exact functions checked against NumPy.
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, selfinterp as si\n"
        "from selfinterp._core import logit_numba as ln\n"
        "e = np.linspace(-5, 5, 7); ln._residuals(e, e * 0, e * 0 + 1, e * 0, e * 0)\n"
        "from selfinterp._core.vecmath import exp_nonpos, exp_nonpos_np\n"
        "x = -np.linspace(0, 700, 20001)\n"
        "ours = np.array([exp_nonpos(v) for v in x])\n"
        "assert np.array_equal(ours, exp_nonpos_np(x)), 'exp_nonpos differs from its twin'\n"
        "W = np.random.default_rng(1).normal(size=(64, 5)) * 3\n"
        "a = si.simulate_choices(W, 50, rng=2); b = si.simulate_choices(W, 50, rng=2, backend='numpy')\n"
        "assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@settings(max_examples=60, deadline=None)
@given(arbitrary_designs(max_contexts=4, max_trials=25, max_k=4), st.integers(0, 2**32 - 1))
def test_residual_certificate_is_sound(design, seed):
    # the residual certificate may only say "not separated" or "separated" when the
    # exact linear program agrees, from any point theta (not only from a fit)
    X, y = design
    A, T, K = X.shape
    Z = np.concatenate([X, np.ones((A, T, 1))], axis=2)
    w = np.ones((A, T))
    theta = np.random.default_rng(seed).normal(0, 2, (A, K + 1))
    status = residual_certificate_numpy(Z, y, w, theta)
    lp = separated_lp(Z, y, w)
    assert not np.any((status == 0) & lp)
    assert not np.any((status == 1) & ~lp)


def test_residual_certificate_finds_the_separating_direction_of_deterministic_agents():
    # the paper's deterministic rule: every context separated; the certificate's
    # rounds give a separating direction for all of them (4 rounds sufficed on the
    # benchmark data, 8 are allowed) and every flag agrees with the linear program
    X, y = si.simulate_choices(np.random.default_rng(2).uniform(-2.5, 2.5, (40, 5)), 50, scale=np.inf,
                               rng=3)
    fit = si.fit_logit(X, y)
    Z = np.concatenate([X, np.ones((40, 50, 1))], axis=2)
    status = residual_certificate_numpy(Z, y, np.ones((40, 50)),
                                        np.column_stack([fit.coef, fit.intercept]))
    assert np.all(status == 1)
    assert fit.separated.all() and separated_lp(Z, y, np.ones((40, 50))).all()


def test_residual_certificate_numba_matches_numpy():
    # the numba kernel's certificate follows the NumPy reference's rounds
    rng = np.random.default_rng(5)
    A, T, K = 300, 30, 4
    X, y = si.simulate_choices(rng.normal(0, 1.5, (A, K)), T, rng=6)
    Z = np.concatenate([X, np.ones((A, T, 1))], axis=2)
    w = np.ones((A, T))
    theta = 0.3 * rng.normal(0, 1.5, (A, K + 1))  # shrunk, as a penalised fit is
    ref = residual_certificate_numpy(Z, y, w, theta)
    P, ours = K + 1, []
    for a in range(A):
        Zt = np.ascontiguousarray(Z[a].T)
        r = y[a] - 1 / (1 + np.exp(-Z[a] @ theta[a]))
        ours.append(ln._residual_certificate(ln.p_tag(P), Zt, y[a], w[a], r, *(np.empty(T) for _ in range(3)),
                                             np.zeros(P), np.empty(P), np.empty((P, P)),
                                             np.zeros((P, P)), np.empty(P), np.empty(T)))
    np.testing.assert_array_equal(ours, ref)
    assert 0.5 < np.mean(ref == 0) < 1.0  # both outcomes occur: the test can fail


def _first_step(design, counts, prior):
    """The full Newton step d = H(0)^-1 g(0) of every context with a non-singular H(0):
    (d, its contexts' y, w and Z, prec, g, the penalised log-likelihood of theta (A', P))."""
    X, y = design
    A, T, K = X.shape
    w = np.random.default_rng(T).integers(1, 4, (A, T)).astype(float) if counts else np.ones((A, T))
    Z = np.concatenate([X, np.ones((A, T, 1))], axis=2)
    prec = np.zeros(K + 1) if prior is None else np.r_[np.full(K, 1 / prior**2), 1 / 2.5**2]
    H = 0.25 * np.einsum("atp,at,atq->apq", Z, w, Z) + np.diag(prec)
    g = np.einsum("atp,at->ap", Z, w * (y - 0.5))
    ok = np.linalg.eigvalsh(H)[:, 0] > 1e-9  # plain ML on a degenerate design: no Newton step
    d = np.linalg.solve(H[ok], g[ok][..., None])[..., 0]
    y, w, Z = y[ok], w[ok], Z[ok]

    def objective(theta):
        eta = np.einsum("atp,ap->at", Z, theta)
        return (w * (y * eta - np.logaddexp(0.0, eta))).sum(1) - 0.5 * (prec * theta**2).sum(1)

    return d, y, w, Z, prec, g[ok], objective


@settings(max_examples=60, deadline=None)
@given(design=arbitrary_designs(), counts=st.booleans(), prior=st.sampled_from([None, 0.5, 1.0]))
def test_the_full_step_from_zero_raises_the_objective(design, counts, prior):
    # the kernels accept the first Newton step from theta = 0 without evaluating the
    # log-likelihood: H(0) (weights w / 4) bounds the curvature everywhere, so
    # l(d) >= l(0) + g.d / 2 (Boehning & Lindsay 1988) for soft labels and counts too
    d, _, _, _, _, g, objective = _first_step(design, counts, prior)
    gain = objective(d) - objective(np.zeros_like(d))
    bound = 0.5 * np.einsum("ap,ap->a", g, d)
    assert np.all(gain >= bound - 1e-9 * (1 + np.abs(objective(d))))


@settings(max_examples=60, deadline=None)
@given(design=arbitrary_designs(), where=st.integers(0, 10**6),
       bad=st.sampled_from(["X nan", "X inf", "X -inf", "y nan", "y -0.5", "y 1.5", "y inf", None]))
def test_the_input_screen_finds_every_bad_value(design, where, bad):
    from selfinterp._core.screen import screen

    X, y = (np.ascontiguousarray(a) for a in design)
    if bad is not None:
        name, value = bad.split()
        target = X if name == "X" else y
        target.flat[where % target.size] = float(value)
    x_ok, y_ok = screen(X, y)
    assert x_ok == (bad is None or not bad.startswith("X"))
    assert y_ok == (bad is None or not bad.startswith("y"))


@settings(max_examples=60, deadline=None)
@given(design=arbitrary_designs(), counts=st.booleans(), prior=st.sampled_from([None, 0.5, 1.0]))
def test_the_ray_search_lengthens_the_first_step_without_lowering_the_objective(design, counts,
                                                                                 prior):
    # every backend scales the first step d by s = ray_scale_numpy (one Newton step for s on
    # phi(s) = l(s d) from s = 1) and accepts it without evaluating l: phi' is convex for
    # s > 0, so s lies at or before the best s on the ray, and l(s d) >= l(d) > l(0)
    from selfinterp._core.logit_numpy import RAY_MAX, ray_scale_numpy

    d, y, w, Z, prec, _, objective = _first_step(design, counts, prior)
    eta = np.einsum("atp,ap->at", Z, d)
    s = ray_scale_numpy(eta, y, w, d, np.broadcast_to(prec, d.shape))
    assert np.all((s >= 1.0) & (s <= RAY_MAX))
    at_one = objective(d)
    assert np.all(objective(s[:, None] * d) >= at_one - 1e-9 * (1 + np.abs(at_one)))
    # the numba kernel's factor is the same (trials padded with weight 0, as it runs them)
    T = y.shape[1]
    Tp = ln.padded(T)
    for a in range(len(d)):
        e, f_, w_ = np.zeros(Tp), np.zeros(Tp), np.zeros(Tp)
        e[:T], f_[:T], w_[:T] = eta[a], y[a], w[a]
        assert ln._ray_scale(e, f_, w_, d[a], prec) == pytest.approx(s[a], rel=1e-12, abs=1e-12)


def test_the_ray_search_saves_newton_iterations():
    # the reason for it: on the benchmark's logit agents (T = 50, paper-like weights on a
    # logit scale of 2.5) Newton needs 3.4 instead of 4.0 solves per context (2.4 instead of
    # 3.0 full evaluations after the first); a fixed seed, so this cannot flake
    rng = np.random.default_rng(0)
    wts = rng.uniform(-100, 100, (2000, 5))
    wts = 2.5 * wts / np.abs(wts).max(1, keepdims=True)
    X, y = si.simulate_choices(wts, 50, rng=1)
    assert si.fit_logit(X, y).n_iter.mean() < 3.6


def test_a_singular_hessian_stops_every_backend_alike():
    # more parameters than trials: H(0) = Z'Z / 4 is exactly singular and its last pivot is
    # rounding noise (8e-13 of its diagonal here, of either sign), on which the backends
    # used to decide differently whether to go on; PIVOT_MIN makes all of them stop
    X = np.array([[[-0.13900744, 0.57789344, 0.968306, -0.26054841],
                   [0.93786574, 0.85805278, -0.64461483, 0.21770323],
                   [0.40972949, 0.88560736, 0.33131483, -0.73320849]]])
    y = np.array([[0.21698003, 0.69255204, 0.77063048]])
    fits = [si.fit_logit(X, y, prior_sd=None, intercept=False, backend=b)
            for b in ("numpy", "numba", "jax")]
    for fit in fits:
        assert not fit.converged[0] and fit.n_iter[0] == 0
        assert np.all(np.isfinite(fit.coef)) and np.all(np.isfinite(fit.stderr))


@settings(max_examples=40, deadline=None)
@given(design=arbitrary_designs(), where=st.integers(0, 10**6),
       bad=st.sampled_from(["X nan", "X inf", "X -inf", "y nan", "y -0.5", "y 1.5", "y inf"]),
       backend=st.sampled_from(["numba", "numpy"]))
def test_every_bad_value_is_named_by_every_backend(design, where, bad, backend):
    # the numba backend checks each context as it copies it (no separate pass over X);
    # either way the error names the context of the first bad value
    X, y = (np.ascontiguousarray(a) for a in design)
    name, value = bad.split()
    target = X if name == "X" else y
    target.flat[where % target.size] = float(value)
    out_of_range = ((target < 0) | (target > 1)) if name == "y" else False
    first = np.argwhere(~np.isfinite(target) | out_of_range)[0]
    with pytest.raises(si.InputError, match=f"{name} .*context {first[0]}, trial {first[1]}"):
        si.fit_logit(X, y, backend=backend)
