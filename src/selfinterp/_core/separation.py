"""Exact separation check by linear programming (Konis 2007).

A context's data are separated, so that the maximum-likelihood estimate does
not exist, when some direction ``theta`` classifies every row with the right
sign: ``z_i . theta >= 0`` where A was always chosen, ``<= 0`` where B was
always chosen and ``= 0`` for rows with a fractional outcome, and strictly for
at least one row.  Maximising the summed signed margins over the box
[-1, 1]^P finds such a direction exactly when one exists.  Used only for the
few contexts the Newton-based check leaves undecided.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog


def separated_lp(Z: np.ndarray, f: np.ndarray, w: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Boolean per context: do the rows of ``Z`` (A, T, P) admit a separating direction?"""
    out = np.zeros(len(Z), dtype=bool)
    for a in range(len(Z)):
        used = w[a] > 0
        z, fa = Z[a][used], f[a][used]
        sign = np.where(fa == 1.0, 1.0, np.where(fa == 0.0, -1.0, 0.0))
        strict = sign != 0
        A_ub = -(sign[strict, None] * z[strict])
        eq = ~strict
        res = linprog(
            c=A_ub.sum(axis=0),
            A_ub=A_ub if strict.any() else None,
            b_ub=np.zeros(strict.sum()) if strict.any() else None,
            A_eq=z[eq] if eq.any() else None,
            b_eq=np.zeros(eq.sum()) if eq.any() else None,
            bounds=[(-1.0, 1.0)] * Z.shape[2],
            method="highs",
        )
        out[a] = bool(res.status == 0 and -res.fun > tol * max(1.0, np.abs(z).max()))
    return out
