"""Designs (rounding, target weights, streams) and agents (choice rules)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfinterp import InputError
from selfinterp.agents import ChoiceRule, utility
from selfinterp.design import (Attribute, Context, decimals_for_range, draw_option_pairs,
                               draw_target_weights, normalise_values)


@pytest.mark.parametrize("span, dec", [(100, 0), (5, 0), (4.9, 1), (1, 1), (0.9, 1),
                                       (0.5, 1), (0.1, 2), (0.05, 2), (0.01, 3)])
def test_rounding_rule_of_the_paper(span, dec):
    assert decimals_for_range(span) == dec


def test_option_values_are_rounded_per_attribute():
    ctx = Context("tea", (Attribute("caffeine", "mg", 0, 70), Attribute("leaf", "mm", 0.1, 10),
                          Attribute("size", "mm", 1.0, 3.0), Attribute("acid", "pH", 0.0, 0.5)))
    a, b = draw_option_pairs(ctx, 200, rng=1)
    assert a.shape == b.shape == (200, 4)
    for vals in (a, b):
        np.testing.assert_array_equal(vals[:, 0], np.round(vals[:, 0]))
        np.testing.assert_array_equal(vals[:, 2], np.round(vals[:, 2], 1))
        np.testing.assert_array_equal(vals[:, 3], np.round(vals[:, 3], 1))
        assert np.all(vals >= ctx.lo - 0.5) and np.all(vals <= ctx.hi + 0.5)


@given(st.integers(1, 30), st.integers(1, 10), st.integers(0, 2**32 - 1))
def test_target_weights_have_max_abs_100_and_are_integers(n, k, seed):
    w = draw_target_weights(n, k, rng=seed)
    assert w.shape == (n, k)
    np.testing.assert_array_equal(np.max(np.abs(w), axis=1), 100.0)
    np.testing.assert_array_equal(w, np.round(w))


def test_target_weights_do_not_depend_on_how_many_are_drawn():
    np.testing.assert_array_equal(draw_target_weights(5, 5, rng=3), draw_target_weights(50, 5, rng=3)[:5])


def test_bad_ranges_are_named():
    with pytest.raises(InputError, match="'leaf'"):
        Attribute("leaf", "mm", 3.0, 3.0)
    with pytest.raises(InputError, match="attribute 1"):
        normalise_values(np.ones((2, 2)), [0.0, 1.0], [1.0, 1.0])


def test_utility_and_rules():
    lo, hi = np.array([0.0, 10.0]), np.array([10.0, 20.0])
    u = utility(np.array([[5.0, 20.0], [10.0, 10.0]]), np.array([100.0, -50.0]), lo, hi)
    np.testing.assert_allclose(u, [0.5 * 100 - 50, 100.0])
    du = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(ChoiceRule("deterministic").p_choose_a(du), [0, 0, 1])  # ties -> B
    np.testing.assert_allclose(ChoiceRule("logit", scale=2.0).p_choose_a(du)[1], 0.5)
    np.testing.assert_allclose(ChoiceRule("probit", scale=1.0).p_choose_a(np.array([1.0])), 0.8413447, atol=1e-7)
    np.testing.assert_allclose(ChoiceRule("deterministic", lapse=0.2).p_choose_a(du), [0.1, 0.1, 0.9])
    np.testing.assert_allclose(ChoiceRule("deterministic", bias=0.5).p_choose_a(np.array([-0.4])), [1.0])
    with pytest.raises(InputError):
        ChoiceRule("softmax")
    with pytest.raises(InputError):
        ChoiceRule("logit", lapse=1.5)


def test_sampled_choices_follow_p():
    # 1e5 Bernoulli(0.9): 5.5 standard errors is a false-alarm rate < 1e-7
    c = ChoiceRule("deterministic", lapse=0.2).choose(np.ones(100_000), rng=0)
    assert abs(c.mean() - 0.9) < 5.5 * np.sqrt(0.09 / 1e5)
