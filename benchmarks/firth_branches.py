"""How often a Firth profile bound lies on a lower branch of the other
parameters' maxima, with and without ``fit_firth``'s restarts
(docs/estimators.md, "Caveat: the bounds follow branches").

Under separation, l* can have several local maxima in the other parameters at
a fixed value of one.  ``fit_firth(restarts="none")`` gives the crossing of the
profile followed outward from the estimate; the default (``"separated"``)
also maximises the other parameters again at each bound of a separated
context from two restarts, and follows a higher branch outward.

The check here is broader than the kernel's restarts, so that it measures
what they miss: at every bound it maximises the other parameters again from
eight starts (the kernel's two, the same two with the fit's growing step cap,
zero, and three random rescalings of the estimate, seeded), and a maximum
more than 1e-4 above the interval's target (l*(estimate) - chi2_1(0.95) / 2)
means that the bound is inside the interval the global maximum defines.  Also
printed: the time of the default fit against ``restarts="none"``.

Run: PYTHONPATH=src python benchmarks/firth_branches.py   (about 3 minutes here)
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit
from scipy.stats import chi2

from selfinterp import simulate_choices
from selfinterp._core.logit_numba import p_tag, padded
from selfinterp.design import draw_target_weights
from selfinterp.estimators import _firth_numba as fn
from selfinterp.estimators import fit_firth

N_STARTS = 8


@njit(cache=True)
def profile_gaps(X, y, coef, intercept, lower, upper, q, seed):
    """(A, K, 2): the best of the restarts' maxima minus the target, at each
    lower and upper bound."""
    np.random.seed(seed)
    A, T, K = X.shape
    P = K + 1
    Tp = padded(T)
    out = np.full((A, K, 2), -np.inf)
    for a in range(A):
        Zt, fa, wa = fn._context(X, y, np.ones_like(y), a, True, Tp)
        ws = fn._workspace(p_tag(P), P, Tp, wa)
        b_hat = np.empty(P)
        b_hat[:K] = coef[a]
        b_hat[K] = intercept[a]
        target = fn._evaluate(Zt, fa, wa, b_hat, ws, ws[fn.U_], ws[fn.INF_]) - 0.5 * q
        for j in range(K):
            for side in range(2):
                c = lower[a, j] if side == 0 else upper[a, j]
                for s in range(N_STARTS):
                    b = b_hat.copy()
                    if (s == 1 or s == 3) and b_hat[j] != 0.0:  # scaled so that b_j = c
                        b *= c / b_hat[j]
                    elif s == 4:
                        b[:] = 0.0
                    elif s >= 5:
                        for p in range(P):
                            b[p] = b_hat[p] * np.exp(np.random.normal()) + np.random.normal()
                    b[j] = c
                    grow = s == 2 or s == 3 or s >= 6
                    obj, _, _ = fn._maximise(Zt, fa, wa, b, j, 300, 1e-10, ws, grow)
                    out[a, j, side] = max(out[a, j, side], obj - target)
    return out


def main(n_contexts: int = 300):
    q = chi2.ppf(0.95, 1)
    for mode in ("none", "separated"):  # compile (or load) before timing
        fit_firth(*simulate_choices(np.ones((2, 2)), 10, scale=np.inf, rng=np.random.SeedSequence(0)),
                  restarts=mode)
    t0 = time.perf_counter()
    totals = {"none": [0, 0], "separated": [0, 0]}
    n_bounds = 0
    print("attributes trials scale separated | lower-branch bounds (contexts): restarts none -> default"
          " | max gap | time default / none")
    for K in (2, 5, 8):
        for T in (10, 25, 50, 200, 500):
            for scale in (0.02, 0.1, np.inf):
                w = draw_target_weights(n_contexts, K, np.random.SeedSequence([7, K, T]))
                X, y = simulate_choices(w, T, scale=scale, rng=np.random.SeedSequence([8, K, T]))
                Xf, yf = X.astype(float), y.astype(float)
                row, times = [], {}
                for mode in ("none", "separated"):
                    t = time.perf_counter()
                    fit = fit_firth(X, y, restarts=mode)
                    times[mode] = time.perf_counter() - t
                    gap = profile_gaps(Xf, yf, fit.coef, fit.intercept, fit.lower, fit.upper, q, 1)
                    bad = gap > 1e-4
                    totals[mode][0] += bad.sum()
                    totals[mode][1] += bad.any(axis=(1, 2)).sum()
                    row.append((bad.sum(), bad.any(axis=(1, 2)).sum(), gap.max()))
                n_bounds += gap.size
                print(f"{K:2d} {T:4d} {scale:5} {fit.separated.mean():5.2f} | {row[0][0]:4d} ({row[0][1]:3d})"
                      f" -> {row[1][0]:4d} ({row[1][1]:3d}) of {gap.size} | {row[0][2]:.3f} -> {row[1][2]:.3f}"
                      f" | {times['separated'] / times['none']:.2f}", flush=True)
    for mode, (b, c) in totals.items():
        print(f"restarts={mode!r}: {b} of {n_bounds} bounds ({b / n_bounds:.1%}), in {c} contexts, "
              f"lie on a lower branch")
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
