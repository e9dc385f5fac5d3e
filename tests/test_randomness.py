"""One convention for randomness, NumPy's (and scikit-learn's ``random_state``):
every function that draws takes ``rng``, anything ``np.random.default_rng``
accepts.  None draws fresh entropy (a different result each call); an int,
a SeedSequence or a Generator seeded alike give the same result.

The 'different each call' checks compare two unseeded draws of hundreds of
continuous values (or of 100 x 5 integers in [-100, 100]): they coincide with
probability far below 1e-100, so the false-alarm rate is nil in practice."""

from __future__ import annotations

import numpy as np
import pytest

import selfinterp as si
from selfinterp.design import Attribute, Context, draw_option_pairs, draw_target_weights
from selfinterp.score import score
from selfinterp.study import DEFAULT_MODEL, StudyDesign, simulate_study

W = np.array([[1.0, -2.0, 0.5]] * 40)
CTX = Context(name="c", attributes=(Attribute("a", "kg", 0.0, 10.0), Attribute("b", "m", 0.0, 10.0)))


def _draws():
    """name -> f(rng) -> array: every public entry point that draws."""
    rep = np.linspace(-50, 50, 200).reshape(40, 5)
    learned = rep + np.sin(np.arange(200)).reshape(40, 5) * 30
    return {
        "simulate_choices": lambda rng: si.simulate_choices(W, 20, rng=rng)[0],
        "simulate_and_fit": lambda rng: si.simulate_and_fit(W, 20, rng=rng).coef,
        "simulate_dataset": lambda rng: si.simulate_dataset(W, 20, rng=rng)["y"].values,
        "draw_target_weights": lambda rng: draw_target_weights(100, 5, rng=rng),
        "draw_option_pairs": lambda rng: draw_option_pairs(CTX, 200, rng=rng)[0],
        "score (bootstrap)": lambda rng: np.asarray(score(rep, learned, n_boot=50, rng=rng).ci),
    }


@pytest.mark.parametrize("name", sorted(_draws()))
def test_rng_follows_numpys_convention(name):
    f = _draws()[name]
    a = f(7)
    assert np.array_equal(a, f(7)), "an int seed regenerates"
    assert np.array_equal(a, f(np.random.SeedSequence(7))), "a SeedSequence is the same seed"
    assert np.array_equal(f(np.random.default_rng(3)), f(np.random.default_rng(3))), "a Generator seeded alike"
    assert not np.array_equal(f(None), f(None)), "None is fresh entropy"


def test_rng_defaults_to_none_where_nothing_is_reported():
    """Drawing functions default to None (unseeded); simulate_study, which
    prints a study's results, defaults to seed 0 and takes the same kinds."""
    assert not np.array_equal(draw_target_weights(50, 5), draw_target_weights(50, 5))
    small = StudyDesign(contexts=10, choices=10, reports=2, native_contexts=4, native_choices=10)
    (a, _), (b, _) = simulate_study(DEFAULT_MODEL, small), simulate_study(DEFAULT_MODEL, small, rng=0)
    assert np.array_equal(a.target_weight.values, b.target_weight.values)
    g = simulate_study(DEFAULT_MODEL, small, rng=np.random.default_rng(1))[1]["target"]
    assert g.shape == (10, 5)
