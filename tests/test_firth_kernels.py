"""Internals of the Firth kernel: the unrolled sweeps (tools/gen_firth.py) equal
the generic loops, the Hessian is the derivative of the modified score, and
weight-0 padding trials change nothing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import REPO
from selfinterp._core.logit_numba import p_tag
from selfinterp.estimators import _firth_numba as fn


def _problem(P, T, seed, unit=False):
    """``unit``: weights 0 or 1 only (a mask), which the sweeps take a faster path for."""
    rng = np.random.default_rng(seed)
    Zt = rng.uniform(-1, 1, (P, T))
    Zt[-1] = 1.0  # an intercept column
    f = (rng.uniform(size=T) < 0.5).astype(float)
    f[::5] = 0.3  # soft labels
    w = rng.integers(0, 2 if unit else 3, T).astype(float)  # including weight-0 (masked) trials
    w[:P + 2] = 1.0  # enough trials for a positive definite information
    b = rng.normal(0, 0.5, P)
    return Zt, f, w, b


def _evaluate(Zt, f, w, b):
    P, T = Zt.shape
    ws = fn._workspace(p_tag(P), P, T, w)
    U, Inf = np.empty(P), np.empty((P, P))
    obj = fn._evaluate(Zt, f, w, b, ws, U, Inf)
    fn._neg_hessian(Zt, w, Inf, ws)
    return obj, U, Inf, ws


def test_generated_module_is_up_to_date():
    spec = importlib.util.spec_from_file_location("gen_firth", REPO / "tools" / "gen_firth.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.OUT.read_text() == gen.render(), "run python tools/gen_firth.py"


# the unrolled sweeps (P = 5 and 6; the others run the generic loops), with weights 0, 1 or 2 and
# with weights 0 or 1 (the log-likelihood as a product's log, up to 1000 trials; beyond, per trial)
@pytest.mark.parametrize("P, T, unit", [(P, 37, False) for P in (1, 3, 5, 6, 9)]
                         + [(P, 37, True) for P in (1, 5, 6)] + [(6, 1000, True), (6, 1001, True)])
def test_unrolled_sweeps_equal_generic_loops(P, T, unit):
    # T = 37: not a multiple of the vector width, so the loops' remainders are exercised too
    Zt, f, w, b = _problem(P, T, 10 + P, unit)
    obj, U, Inf, ws = _evaluate(Zt, f, w, b)
    assert ws[fn.UNIT_][0] == (1.0 if unit else 0.0)
    ws2 = fn._workspace(p_tag(P), P, T, w)
    p2, v2, Inf2, U2, L2, Li2 = (ws2[fn.P_], ws2[fn.V_], np.empty((P, P)), np.empty(P),
                                 np.zeros((P, P)), np.zeros((P, P)))
    ll = fn._info_generic(Zt, b, f, w, p2, v2, Inf2, ws2[fn.ETA_], ws2[fn.ROW_])
    logdet = fn._chol_inv_generic(Inf2, L2, Li2)
    fn._score_generic(Zt, Li2, f, w, p2, v2, ws2[fn.Y_], ws2[fn.M_], U2, ws2[fn.S_])
    fn._neg_hessian_generic(Zt, Inf2, p2, v2, ws2[fn.M_], ws2[fn.Y_], ws2[fn.HN_], ws2[fn.G_], ws2[fn.AZ_],
                            ws2[fn.A2_], ws2[fn.ROW_])
    # sums in another order: equal to rounding
    assert obj == pytest.approx(ll + 0.5 * logdet, rel=1e-13, abs=1e-13)
    for a, b_ in ((U, U2), (Inf, Inf2), (ws[fn.LI_], Li2), (ws[fn.L_], L2), (ws[fn.M_], ws2[fn.M_]),
                  (ws[fn.HN_], ws2[fn.HN_])):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("P", [2, 6, 9])
def test_score_and_hessian_are_derivatives_of_the_objective(P):
    """U = grad l*, Hn = -d U / d b, by central differences (error O(h^2) ~ 1e-8)."""
    Zt, f, w, b = _problem(P, 41, 30 + P)
    _, U, _, ws = _evaluate(Zt, f, w, b)
    Hn = ws[fn.HN_].copy()
    h = 1e-4
    for j in range(P):
        e = np.zeros(P)
        e[j] = h
        op, Up, _, _ = _evaluate(Zt, f, w, b + e)
        om, Um, _, _ = _evaluate(Zt, f, w, b - e)
        assert (op - om) / (2 * h) == pytest.approx(U[j], abs=1e-6)
        np.testing.assert_allclose(-(Up - Um) / (2 * h), Hn[:, j], atol=1e-6)


def test_weight_zero_padding_changes_nothing():
    P, T = 6, 50
    Zt, f, w, b = _problem(P, T, 7)
    obj, U, Inf, ws = _evaluate(Zt, f, w, b)
    Zp = np.zeros((P, 56))
    Zp[:, :T] = Zt
    fp, wp = np.zeros(56), np.zeros(56)
    fp[:T], wp[:T] = f, w
    obj_p, U_p, Inf_p, ws_p = _evaluate(Zp, fp, wp, b)
    assert obj_p == pytest.approx(obj, rel=1e-14)
    np.testing.assert_allclose(U_p, U, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(Inf_p, Inf, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(ws_p[fn.HN_], ws[fn.HN_], rtol=1e-13, atol=1e-13)


def test_joint_newton_bounds_are_the_profile_bounds():
    """The joint Newton fast path (fn._bound_joint) converges on regular data and
    finds the same bounds as fit_firth reports (which the reference tests check
    against scipy and logistf to 1e-6)."""
    from selfinterp import simulate_choices
    from selfinterp.design import draw_target_weights
    from selfinterp.estimators import fit_firth

    w = draw_target_weights(20, 3, np.random.SeedSequence([5, 1]))
    X, y = simulate_choices(w, 60, scale=0.02, rng=np.random.SeedSequence([5, 2]))
    fit = fit_firth(X, y, check_separation=False)
    q = 3.841458820694124
    n_ok = 0
    for a in range(len(X)):
        Zt = np.ascontiguousarray(np.column_stack([X[a], np.ones(60)]).T)
        f, wt = y[a].astype(float), np.ones(60)
        b_hat = np.append(fit.coef[a], fit.intercept[a])
        obj_hat, _, Inf, ws = _evaluate(Zt, f, wt, b_hat)
        cov = np.linalg.inv(Inf)
        hinv, terms = _start_terms(Zt, ws, 3)
        no_hinv = -np.eye(4)  # H not positive definite: the Wald start of cov
        for j in range(3):
            for direction, ref in ((-1.0, fit.lower[a, j]), (1.0, fit.upper[a, j])):
                for h in (hinv, no_hinv):
                    c, ok = fn._bound_joint(Zt, f, wt, b_hat, cov, h, terms[j], j, direction, q,
                                            obj_hat - q / 2, 1e-10, ws, np.empty(4), np.empty(4),
                                            np.empty(4))
                    if ok:
                        n_ok += 1
                        assert abs(c - ref) < 1e-8 * max(1.0, abs(ref))
    assert n_ok >= 0.9 * len(X) * 12


def _start_terms(Zt, ws, K):
    P = Zt.shape[0]
    hinv, terms = np.empty((P, P)), np.zeros((K, 2 * P + 2))
    fn._start_terms(Zt, ws, hinv, terms, np.empty(P), np.empty(P))
    return hinv, terms


@pytest.mark.parametrize("K", [4, 9])  # 9: 10 parameters, the generic (not unrolled) sweeps
def test_fourth_order_start(K):
    """The start of a profile bound (fn._bound_start, fn._start_terms).

    H^{-1} is the inverse of minus the Hessian.  The derivatives of the
    profile (kappa, lambda) and of its path (e, g) are those of the
    log-likelihood, here by central differences of minus the Fisher
    information I (whose derivatives are the likelihood's third and fourth):
    with d the profile tangent, M = H^{-1} - H^{-1}_kk d d' and
    r = D^3 l[., d, d], kappa = d' r, e = M r, lambda = D^4 l[d, d, d, d] + 3
    e' r, g = M (D^4 l[., d, d, d] + 3 D^3 l[., e, d]).  And the start lies
    much closer to the bound and the other parameters' maximum there than
    the Wald start does (in standard errors, the largest coordinate: a
    median of about a tenth of its distance here), so that the joint Newton
    iteration mostly stops after its second evaluation."""
    from selfinterp import simulate_choices
    from selfinterp.design import draw_target_weights
    from selfinterp.estimators import fit_firth

    T = 80
    P = K + 1
    w = draw_target_weights(30, K, np.random.SeedSequence([8, 1]))
    X, y = simulate_choices(w, T, scale=0.02, rng=np.random.SeedSequence([8, 2]))
    fit = fit_firth(X, y, check_separation=False)
    q = 3.841458820694124
    ratios = []
    for a in range(len(X)):
        Zt = np.ascontiguousarray(np.column_stack([X[a], np.ones(T)]).T)
        f, wt = y[a].astype(float), np.ones(T)
        b_hat = np.append(fit.coef[a], fit.intercept[a])
        obj_hat, _, Inf, ws = _evaluate(Zt, f, wt, b_hat)
        hinv, terms = _start_terms(Zt, ws, K)
        np.testing.assert_allclose(hinv @ ws[fn.HN_], np.eye(P), atol=1e-10)

        def info(b):
            return _evaluate(Zt, f, wt, b)[2]

        cov = np.linalg.inv(Inf)
        se = np.sqrt(np.diag(cov))
        for k in range(K):
            d = hinv[:, k] / hinv[k, k]
            M = hinv - np.outer(hinv[:, k], hinv[k, :]) / hinv[k, k]
            h = 1e-3
            r = -(info(b_hat + h * d) - info(b_hat - h * d)) @ d / (2 * h)
            d2I = (info(b_hat + h * d) - 2 * Inf + info(b_hat - h * d)) / h**2
            e = M @ r
            lam = -d @ d2I @ d + 3 * e @ r
            R = -d2I @ d - 3 * (info(b_hat + h * e) - info(b_hat - h * e)) @ d / (2 * h)
            kappa, lam_k, e_k, g_k = terms[k, 0], terms[k, 1], terms[k, 2:2 + P], terms[k, 2 + P:]
            assert kappa == pytest.approx(d @ r, rel=1e-5, abs=1e-8)
            assert lam_k == pytest.approx(lam, rel=1e-4, abs=1e-6)
            np.testing.assert_allclose(e_k, e, rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(g_k, M @ R, rtol=1e-4, atol=1e-6)
            for direction, ref in ((-1.0, fit.lower[a, k]), (1.0, fit.upper[a, k])):
                start, wald, bound = np.empty(P), np.empty(P), np.empty(P)
                fn._bound_start(b_hat, cov, hinv, terms[k], k, direction, q, start)
                fn._bound_start(b_hat, cov, -np.eye(P), terms[k], k, direction, q, wald)
                assert wald[k] == pytest.approx(b_hat[k] + direction * np.sqrt(q * cov[k, k]))
                # the bound and the other parameters there (the joint Newton's last point)
                c, ok = fn._bound_joint(Zt, f, wt, b_hat, cov, hinv, terms[k], k, direction, q,
                                        obj_hat - q / 2, 1e-10, ws, bound, np.empty(P), np.empty(P))
                assert ok and c == pytest.approx(ref, abs=1e-8)
                ratios.append(np.max(np.abs(start - bound) / se) / np.max(np.abs(wald - bound) / se))
    assert np.median(ratios) < 0.2, np.median(ratios)


@pytest.mark.parametrize("K, T, scale, seed", [(2, 50, np.inf, 3), (5, 20, 0.1, 4)])
def test_restarted_bounds_are_crossings_of_a_branch(K, T, scale, seed):
    """A bound that the restarts moved (fn._bound) is where a branch of the
    other parameters' maxima crosses the target: scipy's BFGS (the reference
    of tests/results/firth_reference.py), started at the kernel's other
    parameters there, stays at that maximum, whose value is the target to
    1e-7; the same branch is above the target a thousandth of a standard
    error inside and below it as far outside.  (That no restart finds a
    higher branch there is checked in test_estimators_firth.py.)"""
    import importlib.util

    from selfinterp import simulate_choices
    from selfinterp._core.logit_numba import padded
    from selfinterp.design import draw_target_weights
    from selfinterp.estimators import fit_firth

    spec = importlib.util.spec_from_file_location("firth_reference", REPO / "tests" / "results"
                                                  / "firth_reference.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    w = draw_target_weights(40, K, np.random.SeedSequence([seed, 1]))
    X, y = simulate_choices(w, T, scale=scale, rng=np.random.SeedSequence([seed, 2]))
    fit, plain = fit_firth(X, y), fit_firth(X, y, restarts="none")
    q = 3.841458820694124
    P, Tp = K + 1, padded(T)
    Xf, yf = X.astype(float), y.astype(float)
    checked = 0
    for a, j in np.argwhere((plain.lower - fit.lower > 1e-6) | (fit.upper - plain.upper > 1e-6))[:6]:
        Zt, fa, wa = fn._context(Xf, yf, np.ones_like(yf), a, True, Tp)
        b_hat = np.append(fit.coef[a], fit.intercept[a])
        obj_hat, _, Inf, ws = _evaluate(Zt, fa, wa, b_hat)
        cov = np.linalg.inv(Inf)
        hinv, terms = _start_terms(Zt, ws, K)
        target = obj_hat - q / 2
        se = np.sqrt(cov[j, j])
        Z = np.column_stack([Xf[a], np.ones(T)])
        free = np.arange(P) != j
        for direction, before, after in ((-1.0, plain.lower, fit.lower), (1.0, plain.upper, fit.upper)):
            if abs(after[a, j] - before[a, j]) <= 1e-6:
                continue
            nuis, alt, col, tangent, best, nuis_in, tan_in = np.empty((7, P))
            c, ok = fn._bound(Zt, fa, wa, b_hat, obj_hat, cov, hinv, terms[j], j, direction, q,
                              fn.OUTER_ITER, 1e-10, ws, nuis, alt, col, tangent, best, nuis_in, tan_in)
            assert ok and abs(c - after[a, j]) <= 1e-6 * max(1.0, abs(c))
            start = nuis.copy()
            start[j] = c
            point, value = ref._argmax(Z, yf[a], start, free)
            assert abs(value - target) <= 1e-7 * max(1.0, abs(target))
            assert np.abs(point - start).max() <= 1e-4 * max(1.0, np.abs(start).max())
            for step, sign in ((-1e-3 * se, 1.0), (1e-3 * se, -1.0)):  # inside, outside
                moved = point.copy()
                moved[j] = c + direction * step
                assert sign * (ref._argmax(Z, yf[a], moved, free)[1] - target) > 0.0
            checked += 1
    assert checked >= 6


@pytest.mark.parametrize("scale", [0.02, 0.05])
def test_bounds_are_roots_of_the_profile(scale):
    """Every bound is a root of the profile to about 1e-9 of a standard error,
    also where the joint Newton stops on its chord step (the last point's
    Hessian with this point's score, fn.CHORD_TOL: most bounds of noisy data
    stop there).

    The profile at the bound is maximised again here (fn._maximise over the
    other parameters to 1e-13, from the bound's Wald path), and its miss of
    the target divided by its slope there (U*_j at the maximum: the envelope
    theorem) is the bound's error.  Separated contexts are left out: their
    other parameters can have several maxima.  Measured on these 300 bounds
    per scale: at most 4.5e-10 of a standard error (0 above 1e-9) at scale
    0.02, 5.2e-9 (1 above 1e-9, a Newton stop, as before the chord step) at
    0.05.  With the chord step taken without its condition on the other
    parameters' gain, 30 and 18 bounds were above 1e-9."""
    from selfinterp import simulate_choices
    from selfinterp.design import draw_target_weights
    from selfinterp.estimators import fit_firth

    K, T = 5, 50
    w = draw_target_weights(30, K, np.random.SeedSequence([9, 1]))
    X, y = simulate_choices(w, T, scale=scale, rng=np.random.SeedSequence([9, 2]))
    fit = fit_firth(X, y, restarts="none")
    q = 3.841458820694124
    errors = []
    regular = np.flatnonzero(fit.converged & ~fit.separated)
    assert len(regular) == 30
    for a in regular:
        Zt = np.ascontiguousarray(np.column_stack([X[a], np.ones(T)]).T)
        f, wt = y[a].astype(float), np.ones(T)
        b_hat = np.append(fit.coef[a], fit.intercept[a])
        obj_hat, _, Inf, ws = _evaluate(Zt, f, wt, b_hat)
        cov = np.linalg.inv(Inf)
        for j in range(K):
            for c in (fit.lower[a, j], fit.upper[a, j]):
                b = b_hat + (c - b_hat[j]) * cov[:, j] / cov[j, j]
                b[j] = c
                obj, ok, _ = fn._maximise(Zt, f, wt, b, j, 100, 1e-13, ws, False)
                assert ok and b[j] == c
                errors.append(abs(obj - (obj_hat - q / 2)) / abs(ws[fn.U_][j]) / np.sqrt(cov[j, j]))
    errors = np.array(errors)
    assert errors.max() < 1e-8
    assert np.sum(errors > 1e-9) <= 3
