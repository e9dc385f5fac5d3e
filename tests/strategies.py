"""Reusable hypothesis strategies for designs and outcomes."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import selfinterp as si


@st.composite
def logit_problems(draw, max_contexts=4, min_trials=20, max_trials=80, max_k=5, max_weight=3.0):
    """(X, y, w) from the simulator, with weights, sizes and seed drawn by hypothesis."""
    A = draw(st.integers(1, max_contexts))
    T = draw(st.integers(min_trials, max_trials))
    K = draw(st.integers(1, max_k))
    w = np.array(draw(st.lists(st.floats(-max_weight, max_weight), min_size=A * K, max_size=A * K)))
    w = w.reshape(A, K)
    seed = draw(st.integers(0, 2**32 - 1))
    X, y = si.simulate_choices(w, T, rng=seed)
    return X, y, w


@st.composite
def arbitrary_designs(draw, max_contexts=3, max_trials=30, max_k=4):
    """Arbitrary X in [-1, 1] and outcomes that may be binary or fractional."""
    A = draw(st.integers(1, max_contexts))
    T = draw(st.integers(2, max_trials))
    K = draw(st.integers(1, max_k))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (A, T, K))
    if draw(st.booleans()):
        X = np.round(X, 1)  # ties and zeros, as rounded real designs have
    soft = draw(st.booleans())
    y = rng.uniform(0, 1, (A, T)) if soft else (rng.uniform(size=(A, T)) < 0.5).astype(float)
    return X, y
