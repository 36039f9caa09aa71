"""Exact fixed-point sums of products at BLAS speed.

Values are float64 reals on known binary grids. A sum of products whose integer
mantissas stay below 2**53 in magnitude is computed exactly by float64 matmul,
whatever the summation order. Below 2**63, int64 matmul of the mantissas is
exact. Beyond that, Python integers are used (slow, rare).
"""

from __future__ import annotations

import numpy as np

from nnfab.ir import FixedType, Overflow

FLOAT_EXACT_BOUND = 2.0**53
INT64_EXACT_BOUND = 2.0**62


def exact_matmul(
    x: np.ndarray,
    x_type: FixedType,
    w: np.ndarray,
    w_type: FixedType,
    accum: FixedType,
    bias: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``accum(x @ w + bias)`` with every product exact; returns (values, overflow flags).

    ``x`` (batch, n_in) and ``w`` (n_in, n_out) hold values of their types; ``bias``
    holds values of ``accum``. Requires ``accum.frac >= x_type.frac + w_type.frac``
    (no product is rounded) and a wrap-around accumulator, so the result does not
    depend on summation order.
    """
    frac_prod = x_type.frac + w_type.frac
    if accum.frac < frac_prod:
        raise ValueError("exact_matmul needs an accumulator at least as fine as the products")
    if accum.overflow is not Overflow.WRAP:
        raise ValueError("exact_matmul needs a wrap-around (AP_WRAP) accumulator")
    bound = mantissa_bound(x_type, w, accum, bias)
    if bound < FLOAT_EXACT_BOUND:
        out = _float_matmul(x, w)
        if bias is not None:
            out += bias
        return finish_float_sum(out, accum, bound)
    shift = accum.frac - frac_prod
    if bound < INT64_EXACT_BOUND:
        xi = np.ldexp(x, x_type.frac).astype(np.int64)
        wi = np.ldexp(w, w_type.frac).astype(np.int64) << np.int64(shift)
        acc = xi @ wi
        if bias is not None:
            acc = acc + np.ldexp(bias, accum.frac).astype(np.int64)
    else:
        xi = np.ldexp(x, x_type.frac).astype(np.int64).astype(object)
        wi = np.ldexp(w, w_type.frac).astype(np.int64).astype(object) * (1 << shift)
        acc = xi @ wi
        if bias is not None:
            acc = acc + np.array(
                [int(v) for v in np.ldexp(bias, accum.frac).ravel()], dtype=object
            ).reshape(bias.shape)
    return wrap_mantissas(acc, accum)


def mantissa_bound(
    x_type: FixedType, w: np.ndarray, accum: FixedType, bias: np.ndarray | None = None
) -> float:
    """Largest |sum of products + bias| over the outputs, in units of ``accum``'s step.

    ``w`` is (n_in, n_out); every partial sum of one output is bounded by it too, so
    below ``FLOAT_EXACT_BOUND`` a float64 sum in any order is exact.
    """
    max_x = max(abs(x_type.min), abs(x_type.max))
    column = np.abs(w).sum(axis=0) * max_x  # largest |sum of products| per output
    if bias is not None:
        column = column + np.abs(bias)
    return (float(column.max()) if column.size else 0.0) * 2.0**accum.frac


def finish_float_sum(
    out: np.ndarray, accum: FixedType, bound: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 sums (on ``accum``'s grid) -> accumulator values and overflow flags."""
    if accum.signed and bound < 2.0 ** (accum.width - 1):
        return out, np.zeros((), dtype=bool)  # on accum's grid and in range: cast is exact
    return accum.quantize_and_flag(out)


def _float_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x @ w; tall-skinny products run several times faster through einsum's BLAS path.

    Exact either way: every partial sum is an integer multiple of the product grid
    below 2**53, so the summation order does not matter.
    """
    if w.shape[1] >= 8 and x.shape[0] >= 4 * w.shape[0]:
        return np.einsum("ij,jk->ik", x, w, optimize=True)
    return x @ w


def wrap_mantissas(acc: np.ndarray, t: FixedType) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer mantissas (int64 or Python ints) -> wrapped real values and flags."""
    lo, hi = t.min_mantissa, t.max_mantissa
    if acc.dtype != object and t.width <= 62:
        flags = (acc < lo) | (acc > hi)
        modulus = np.int64(1 << t.width)
        wrapped = np.mod(acc, modulus)
        if t.signed:
            wrapped = np.where(wrapped > hi, wrapped - modulus, wrapped)
        return np.ldexp(wrapped.astype(np.float64), -t.frac), flags
    modulus = 1 << t.width
    flat_v, flat_f = [], []
    for v in acc.ravel():
        v = int(v)
        flat_f.append(v < lo or v > hi)
        v %= modulus
        if t.signed and v > hi:
            v -= modulus
        flat_v.append(float(np.ldexp(float(v), -t.frac)))
    return (
        np.array(flat_v, dtype=np.float64).reshape(acc.shape),
        np.array(flat_f, dtype=bool).reshape(acc.shape),
    )
