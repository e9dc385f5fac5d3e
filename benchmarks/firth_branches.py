"""How often a Firth profile bound lies on a lower branch of the other
parameters' maxima (docs/estimators.md, "Caveat: the bounds follow one branch").

Under separation, l* can have several local maxima in the other parameters at a
fixed value of one.  For every bound that ``fit_firth`` reports, this
maximises the other parameters again, with the bound's coordinate held at the
bound, from two starts: the estimate with only that coordinate moved, and the
estimate scaled so that the coordinate is at the bound.  A maximum more than
1e-4 above the interval's target (l*(estimate) - chi2_1(0.95) / 2) means the
bound is inside the interval that the global maximum defines.

Run: PYTHONPATH=src python benchmarks/firth_branches.py   (about 40 s here)
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit
from scipy.stats import chi2

from selfinterp import simulate_choices
from selfinterp._core.logit_numba import padded
from selfinterp.design import draw_target_weights
from selfinterp.estimators import _firth_numba as fn
from selfinterp.estimators import fit_firth


@njit(cache=True)
def profile_gaps(X, y, coef, intercept, lower, upper, q):
    """(A, K, 2): the best of the two restarts' maxima minus the target, at
    each lower and upper bound."""
    A, T, K = X.shape
    P = K + 1
    Tp = padded(T)
    out = np.full((A, K, 2), -np.inf)
    for a in range(A):
        Zt, fa, wa = fn._context(X, y, np.ones_like(y), a, True, Tp)
        ws = fn._workspace(P, Tp)
        b_hat = np.empty(P)
        b_hat[:K] = coef[a]
        b_hat[K] = intercept[a]
        target = fn._evaluate(Zt, fa, wa, b_hat, ws, ws[fn.U_], ws[fn.INF_]) - 0.5 * q
        for j in range(K):
            for side in range(2):
                c = lower[a, j] if side == 0 else upper[a, j]
                for scaled in (False, True):
                    b = b_hat.copy()
                    if scaled and b_hat[j] != 0.0:
                        b *= c / b_hat[j]
                    b[j] = c
                    obj, _, _ = fn._maximise(Zt, fa, wa, b, j, 200, 1e-10, ws)
                    out[a, j, side] = max(out[a, j, side], obj - target)
    return out


def main(n_contexts: int = 300):
    q = chi2.ppf(0.95, 1)
    t0 = time.perf_counter()
    total = higher = 0
    print("attributes trials scale separated | bounds on a lower branch | contexts | max gap")
    for K in (2, 5, 8):
        for T in (10, 25, 50, 200, 500):
            for scale in (0.02, 0.1, np.inf):
                w = draw_target_weights(n_contexts, K, np.random.SeedSequence([7, K, T]))
                X, y = simulate_choices(w, T, scale=scale, rng=np.random.SeedSequence([8, K, T]))
                fit = fit_firth(X, y)
                gap = profile_gaps(X.astype(float), y.astype(float), fit.coef, fit.intercept,
                                   fit.lower, fit.upper, q)
                bad = gap > 1e-4
                total += gap.size
                higher += bad.sum()
                print(f"{K:2d} {T:4d} {scale:5} {fit.separated.mean():5.2f} | {bad.sum():4d} / {gap.size} | "
                      f"{bad.any(axis=(1, 2)).sum():3d} | {gap.max():.3f}", flush=True)
    print(f"in all: {higher} of {total} bounds ({higher / total:.1%}) lie on a lower branch; "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
