"""A parallel first pass over a fit's inputs: are they all valid?

:func:`selfinterp.logit.prepare_outcomes` must reject NaN or inf in X and
outcomes outside [0, 1] before any fitting; on large inputs NumPy's checks
(a sum over X, then the minimum, maximum and sum of y) were a tenth of a
whole fit at T = 50, on one thread.  This pass reads each array once, on
every core; only when it finds a bad value do the NumPy checks run, to name
the first one.  The numba backend of :func:`selfinterp.fit_logit` does
without it: its kernel checks each context as it copies it
(:func:`.logit_numba._inputs_ok`), which saves this memory-bound pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import _notice  # noqa: F401  (the first-run compile notice)

ROWS = 256  # contexts per work item

# x * 0 is 0 for a finite x and NaN for inf or NaN; reassociation lets the sum vectorise.
# No "nnan" or "ninf": with them LLVM may fold x * 0 to 0.
_SUM_FLAGS = {"reassoc", "nsz", "contract"}


@njit(cache=True, parallel=True, fastmath=_SUM_FLAGS, error_model="numpy")
def _screen(X, y):
    """(X (A, n) finite everywhere, y (A, T) finite and in [0, 1] everywhere)."""
    A = X.shape[0]
    n_items = (A + ROWS - 1) // ROWS
    x_bad = np.zeros(n_items)
    y_bad = np.zeros(n_items)
    for b in prange(n_items):
        s = 0.0
        c = 0.0
        for a in range(b * ROWS, min(A, (b + 1) * ROWS)):
            for i in range(X.shape[1]):
                s += X[a, i] * 0.0
            for t in range(y.shape[1]):
                yt = y[a, t]
                c += 0.0 if (yt >= 0.0 and yt <= 1.0) else 1.0  # NaN fails both comparisons
        x_bad[b] = s
        y_bad[b] = c
    return x_bad.sum() == 0.0, y_bad.sum() == 0.0


def screen(X: np.ndarray, y: np.ndarray) -> tuple[bool, bool]:
    """(every X finite, every y finite and in [0, 1]) for X (A, T, K) and y (A, T), C-contiguous."""
    return _screen(X.reshape(X.shape[0], -1), y)
