"""Vectorisable elementary functions for the numba kernels, and their NumPy twins.

numba has no vector math library on this machine (no SVML), so ``math.exp``
keeps a loop scalar.  These are branch-free polynomials that LLVM inlines and
vectorises: :func:`exp_nonpos` (Cody-Waite range reduction, degree-13 Taylor
polynomial, exponent bits assembled as an integer and reinterpreted; 1 ulp on
[-700, 0]), :func:`logistic` and :func:`log1p_unit` (3 ulp on [0, 1]).

:func:`exp_nonpos` and :func:`logistic` are compiled without fast-math (no
fused multiply-add, no reassociation), so that :func:`exp_nonpos_np`, which
performs the same operations in NumPy, gives bit-identical results: the
simulators rely on it.  LLVM keeps each instruction's own flags when it
inlines these into the kernels' fast-math loops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

FASTMATH = {"contract", "arcp", "nsz", "reassoc"}
# Without reassociation: a series must not be regrouped.
SCALAR_FASTMATH = {"contract", "arcp", "nsz"}

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # ln 2 split in two (Cody & Waite) so n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10


@intrinsic
def _bits_as_float(typingctx, bits):
    """Reinterpret the 64 bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


# 1/k! for k = 13 down to 2, the Taylor coefficients of exp used by both twins
_EXP_COEF = (1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
             1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0,
             1.0 / 6.0, 0.5)


def exp_nonpos_np(x):
    """NumPy twin of :func:`exp_nonpos`, bit-identical to it."""
    x = np.maximum(x, -700.0)
    n = np.floor(x * _LOG2E + 0.5)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    p = np.full_like(r, _EXP_COEF[0])
    for c in _EXP_COEF[1:]:
        p = p * r + c
    p = p * r + 1.0
    p = p * r + 1.0
    return p * ((n.astype(np.int64) + 1023) << 52).view(np.float64)


# fastmath=False explicitly: numba lets a callee without its own setting inherit the
# caller's fast-math flags, and the kernels' "contract" would fuse multiply-adds here,
# breaking the bit-identity with exp_nonpos_np depending on what was compiled first.
@njit(cache=True, fastmath=False, error_model="numpy")
def exp_nonpos(x):
    """exp(x) for x <= 0, vectorisable; arguments below -700 are clamped there."""
    x = max(x, -700.0)
    n = math.floor(x * _LOG2E + 0.5)
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO  # |r| <= ln(2) / 2, so 14 Taylor terms reach 1e-17
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _bits_as_float((np.int64(n) + 1023) << 52)


@njit(cache=True, fastmath=False, error_model="numpy")
def logistic(x):
    """(e, p, p (1 - p)) with e = exp(-|x|) and p = sigmoid(x), without cancellation."""
    e = exp_nonpos(-abs(x))
    inv = 1.0 / (1.0 + e)
    return e, (inv if x >= 0.0 else e * inv), e * inv * inv


@njit(cache=True, fastmath=SCALAR_FASTMATH, error_model="numpy")
def log1p_unit(e):
    """log(1 + e) for e in [0, 1], vectorisable: 2 atanh(s) with s = e / (2 + e) <= 1/3."""
    s = e / (2.0 + e)
    s2 = s * s
    q = 1.0 / 33.0  # the series sum_k s^(2k) / (2k + 1), truncated where (1/9)^17 / 35 < 1e-17
    q = q * s2 + 1.0 / 31.0
    q = q * s2 + 1.0 / 29.0
    q = q * s2 + 1.0 / 27.0
    q = q * s2 + 1.0 / 25.0
    q = q * s2 + 1.0 / 23.0
    q = q * s2 + 1.0 / 21.0
    q = q * s2 + 1.0 / 19.0
    q = q * s2 + 1.0 / 17.0
    q = q * s2 + 1.0 / 15.0
    q = q * s2 + 1.0 / 13.0
    q = q * s2 + 1.0 / 11.0
    q = q * s2 + 1.0 / 9.0
    q = q * s2 + 1.0 / 7.0
    q = q * s2 + 1.0 / 5.0
    q = q * s2 + 1.0 / 3.0
    q = q * s2 + 1.0
    return 2.0 * s * q
