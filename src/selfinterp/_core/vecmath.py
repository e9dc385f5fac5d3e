"""Vectorisable elementary functions for the numba kernels, and their NumPy twins.

numba has no vector math library on this machine (no SVML), so ``math.exp``
keeps a loop scalar.  These are branch-free polynomials that LLVM inlines and
vectorises: :func:`exp_nonpos` (Cody-Waite range reduction, degree-13 Taylor
polynomial, exponent bits assembled as an integer and reinterpreted; 1 ulp on
[-700, 0]) and :func:`logistic` for the simulators; :func:`exp_nonpos_fast`
(2 ulp), :func:`logistic_fast` and :func:`log1p_unit` (5 ulp on [0, 1]) for
the estimators, whose polynomials are evaluated by Estrin's scheme for speed.

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

from . import _notice  # noqa: F401  (the first-run compile notice)

FASTMATH = {"contract", "arcp", "nsz", "reassoc"}
# Without reassociation: a series must not be regrouped.
SCALAR_FASTMATH = {"contract", "arcp", "nsz"}

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # ln 2 split in two (Cody & Waite) so n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2^52


def _bitcast(src, dst):
    """A numba intrinsic reinterpreting the 64 bits of a ``src`` as a ``dst`` (no conversion)."""

    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(dst))

        return dst(src), codegen

    return cast


# the 64 bits of an int64 as a float64: the exponent field of 2^n
bits_as_float = _bitcast(types.int64, types.float64)
# the 64 bits of a float64 as an int64: for x >= 0 the order of the bits is the order of the
# values, and a maximum of the bits vectorises where a floating-point maximum does not (LLVM
# wants function-level no-NaN attributes for that, which numba does not set)
float_bits = _bitcast(types.float64, types.int64)


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
    return p * bits_as_float((np.int64(n) + 1023) << 52)


@njit(cache=True, fastmath=False, error_model="numpy")
def logistic(x):
    """(e, p, p (1 - p)) with e = exp(-|x|) and p = sigmoid(x), without cancellation."""
    e = exp_nonpos(-abs(x))
    inv = 1.0 / (1.0 + e)
    return e, (inv if x >= 0.0 else e * inv), e * inv * inv


@njit(cache=True, fastmath=SCALAR_FASTMATH, error_model="numpy")
def exp_nonpos_fast(x):
    """exp(x) for x <= 0 like :func:`exp_nonpos`, for the estimators: not bit-identical to a twin.

    The same range reduction (n taken by a shifter, below, which vectorises)
    and degree-13 polynomial, evaluated by Estrin's
    scheme with fused multiply-adds: a dependency chain of 5 operations
    instead of Horner's 26 (13 multiplies, 13 adds), which is what bounded
    the estimator's vectorised loops (each iteration waited on its own
    chain).  Within 2 ulp of the correctly rounded value on [-700, 0].
    """
    x = max(x, -700.0)
    # n = round(x / ln 2) by the shifter: kd = x log2(e) + 1.5 2^52 lies in
    # [2^52, 2^53), where the doubles are the integers, so kd's low bits are
    # n's (two's complement) and kd - shifter is n exactly.  AVX2 has no
    # vector double -> int64 conversion: math.floor and np.int64 took four
    # scalar round trips per vector (a fifth of the logistic's instructions)
    kd = x * _LOG2E + _SHIFTER
    n = kd - _SHIFTER
    r = x - n * _LN2_HI
    r = r - n * _LN2_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    a0 = 1.0 + r
    a1 = 0.5 + r * (1.0 / 6.0)
    a2 = 1.0 / 24.0 + r * (1.0 / 120.0)
    a3 = 1.0 / 720.0 + r * (1.0 / 5040.0)
    a4 = 1.0 / 40320.0 + r * (1.0 / 362880.0)
    a5 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0)
    a6 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0)
    b0 = a0 + r2 * a1
    b1 = a2 + r2 * a3
    b2 = a4 + r2 * a5
    c0 = b0 + r4 * b1
    c1 = b2 + r4 * a6
    # 2^n: n + 1023 in the exponent field; the shifter's own bits leave by the shift
    return (c0 + r8 * c1) * bits_as_float((float_bits(kd) + 1023) << 52)


@njit(cache=True, fastmath=SCALAR_FASTMATH, error_model="numpy")
def logistic_fast(x):
    """:func:`logistic` with :func:`exp_nonpos_fast`: for the estimators, which need no twin."""
    e = exp_nonpos_fast(-abs(x))
    inv = 1.0 / (1.0 + e)
    return e, (inv if x >= 0.0 else e * inv), e * inv * inv


@njit(cache=True, fastmath=SCALAR_FASTMATH, error_model="numpy")
def log1p_unit(e):
    """log(1 + e) for e in [0, 1], vectorisable: 2 atanh(s) with s = e / (2 + e) <= 1/3."""
    s = e / (2.0 + e)
    s2 = s * s
    # the series sum_k s^(2k) / (2k + 1), k = 0..16, truncated where (1/9)^17 / 35 < 1e-17;
    # Estrin's scheme in u = s^2 (a chain of 6 operations instead of Horner's 32)
    u = s2
    u2 = u * u
    u4 = u2 * u2
    u8 = u4 * u4
    u16 = u8 * u8
    a0 = 1.0 + u * (1.0 / 3.0)
    a1 = 1.0 / 5.0 + u * (1.0 / 7.0)
    a2 = 1.0 / 9.0 + u * (1.0 / 11.0)
    a3 = 1.0 / 13.0 + u * (1.0 / 15.0)
    a4 = 1.0 / 17.0 + u * (1.0 / 19.0)
    a5 = 1.0 / 21.0 + u * (1.0 / 23.0)
    a6 = 1.0 / 25.0 + u * (1.0 / 27.0)
    a7 = 1.0 / 29.0 + u * (1.0 / 31.0)
    b0 = a0 + u2 * a1
    b1 = a2 + u2 * a3
    b2 = a4 + u2 * a5
    b3 = a6 + u2 * a7
    c0 = b0 + u4 * b1
    c1 = b2 + u4 * b3
    q = c0 + u8 * c1 + u16 * (1.0 / 33.0)
    return 2.0 * s * q
