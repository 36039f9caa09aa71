"""Rules of the smooth and piecewise-linear activations added to ``Activation``.

Shared by ``nnfab.ir.tables`` (the table entries), the precision pass (defaults), the
emulator and both backends, so that every one uses the same numbers
(``docs/semantics.md``, Activation).

Table functions come in two kinds:

- full tables (``sigmoid``, ``tanh``, ``softplus``, ``softsign``, ``gaussian`` =
  ``exp(-x**2)``, ``normal_cdf`` = ``(1 + erf(x / sqrt 2)) / 2`` and its tanh
  approximation ``normal_cdf_tanh``, the gates of gelu): ``N`` bins over
  ``[-R, R)`` (``base = N/2``, ``step = 2R/N``); the output is the entry;
- negative-half tables (``elu``, ``celu``, ``selu``): ``N`` bins over ``[-R, 0)``
  (``base = N``, ``step = R/N``) for ``x < 0``; for ``x >= 0`` the function is linear
  and computed exactly: ``result(x)``, for ``selu`` ``result(scale_q * x)`` with
  ``scale_q = param(SELU_SCALE)``.

Piecewise-linear functions without a table: ``prelu`` (weight ``alpha``, broadcast over
the input shape, cast to ``param``), ``thresholded_relu`` (attr ``theta``) and
``hard_tanh`` (attrs ``min_val``, ``max_val``), exact up to the one result cast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from nnfab.errors import ConfigError
from nnfab.ir.types import FixedType

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
"""The SELU constants (Klambauer et al.), as Keras, PyTorch and ONNX use them."""
GELU_TANH_CUBIC = 0.044715
"""The cubic coefficient of gelu's tanh approximation (Hendrycks and Gimpel)."""


def _erf(u: np.ndarray) -> np.ndarray:
    """``erf`` elementwise in float64 (``math.erf``: the C library's)."""
    return np.vectorize(math.erf, otypes=[np.float64])(u)

FULL_TABLE_FUNCTIONS = ("sigmoid", "tanh", "softplus", "softsign", "gaussian", "normal_cdf",
                        "normal_cdf_tanh")
NEGATIVE_TABLE_FUNCTIONS = ("elu", "celu", "selu")
PIECEWISE_FUNCTIONS = ("prelu", "thresholded_relu", "hard_tanh")

TABLE_DEFAULTS_EXTRA: dict[str, dict[str, int | float]] = {
    "softplus": {"table_size": 1024, "table_range": 8.0},
    "softsign": {"table_size": 1024, "table_range": 16.0},
    "gaussian": {"table_size": 1024, "table_range": 4.0},
    "normal_cdf": {"table_size": 1024, "table_range": 4.0},
    "normal_cdf_tanh": {"table_size": 1024, "table_range": 4.0},
    "elu": {"table_size": 1024, "table_range": 8.0},
    "celu": {"table_size": 1024, "table_range": 8.0},
    "selu": {"table_size": 1024, "table_range": 8.0},
}
"""Table size and range defaults of the new table functions (``R``: see the module doc)."""

TABLE_TYPE_EXTRA: dict[str, str] = {
    "softplus": "ap_ufixed<18,4,AP_RND_CONV,AP_SAT>",
    "softsign": "ap_fixed<18,1,AP_RND_CONV,AP_SAT>",
    "gaussian": "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>",
    "normal_cdf": "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>",
    "normal_cdf_tanh": "ap_ufixed<18,1,AP_RND_CONV,AP_SAT>",
}
"""Default ``table`` types; elu/celu/selu get ``negative_table_type`` (from alpha)."""

UNBOUNDED = ("softplus",)
"""Full-table functions that keep growing beyond the table: inputs >= R read entry N-1."""


def _where(layer: str) -> str:
    return f"layer {layer!r}: " if layer else ""


def number(attrs: Mapping[str, Any], key: str, default: float | None, layer: str = "") -> float:
    """``attrs[key]`` (or ``default``) as a finite float; ConfigError otherwise."""
    value = attrs.get(key, default)
    if value is None:
        raise ConfigError(f"{_where(layer)}activation attribute {key!r} is missing")
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if isinstance(value, bool) or not math.isfinite(out):
        raise ConfigError(f"{_where(layer)}attribute {key!r} must be a finite number, "
                          f"got {value!r}")
    return out


def table_base(function: str, size: int) -> int:
    """Index offset of the table: ``N`` for negative-half tables, ``N/2`` otherwise."""
    return size if function in NEGATIVE_TABLE_FUNCTIONS else size // 2


def table_span(function: str, table_range: float) -> float:
    """Width of the interval the table covers: ``R`` (negative half) or ``2R``."""
    return table_range if function in NEGATIVE_TABLE_FUNCTIONS else 2 * table_range


def table_reals(function: str, u: np.ndarray, attrs: Mapping[str, Any],
                layer: str = "") -> np.ndarray:
    """The function at the (exactly representable) bin centres ``u``, in float64."""
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-u))
    if function == "tanh":
        return np.tanh(u)
    if function == "softplus":
        return np.logaddexp(0.0, u)  # log(1 + exp(u)) without overflow
    if function == "softsign":
        return u / (1.0 + np.abs(u))
    if function == "gaussian":
        return np.exp(-u * u)
    if function == "normal_cdf":
        return 0.5 * (1.0 + _erf(u / math.sqrt(2.0)))
    if function == "normal_cdf_tanh":
        return 0.5 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + GELU_TANH_CUBIC * u ** 3)))
    if function == "elu":
        return number(attrs, "alpha", 1.0, layer) * np.expm1(u)
    if function == "celu":
        alpha = number(attrs, "alpha", 1.0, layer)
        if alpha == 0:
            raise ConfigError(f"{_where(layer)}celu alpha must not be 0")
        return alpha * np.expm1(u / alpha)
    if function == "selu":
        return SELU_SCALE * SELU_ALPHA * np.expm1(u)
    raise ConfigError(f"{_where(layer)}no lookup table for function {function!r}")


def negative_table_type(function: str, attrs: Mapping[str, Any], layer: str = "") -> FixedType:
    """Default table type of elu/celu/selu: 18 bits, enough integer bits for ``-|alpha|``.

    The entries lie in ``(-M, 0]`` with ``M = |alpha|`` (selu: ``scale * alpha``): the
    signed type with ``I = 1 + max(0, ceil(log2 M))`` integer bits holds them.
    """
    selu = function == "selu"
    m = SELU_SCALE * SELU_ALPHA if selu else abs(number(attrs, "alpha", 1.0, layer))
    integer = 1 + max(0, math.ceil(math.log2(m))) if m > 0 else 1
    return FixedType.parse(f"ap_fixed<18,{integer},AP_RND_CONV,AP_SAT>")


def default_table_type(function: str, attrs: Mapping[str, Any], layer: str = "") -> FixedType:
    """The documented default ``table`` type of a new table function."""
    if function in NEGATIVE_TABLE_FUNCTIONS:
        return negative_table_type(function, attrs, layer)
    return FixedType.parse(TABLE_TYPE_EXTRA[function])


def linear_scale(function: str) -> float | None:
    """The slope of the ``x >= 0`` part of a negative-half function (None: exactly 1)."""
    return SELU_SCALE if function == "selu" else None


# ------------------------------------------------------------ piecewise-linear
def threshold_mantissa(theta: float, frac: int) -> int:
    """``floor(theta * 2**frac)``: for a mantissa ``m``, ``m * 2**-frac > theta`` iff ``m > it``."""
    return math.floor(Fraction(theta) * (Fraction(2) ** frac))


def clip_bounds(attrs: Mapping[str, Any], layer: str = "") -> tuple[float, float]:
    """``(min_val, max_val)`` of hard_tanh, checked ``min_val <= max_val``."""
    lo = number(attrs, "min_val", -1.0, layer)
    hi = number(attrs, "max_val", 1.0, layer)
    if lo > hi:
        raise ConfigError(f"{_where(layer)}hard_tanh min_val {lo!r} exceeds max_val {hi!r}")
    return lo, hi


def compact_alpha(alpha: np.ndarray) -> np.ndarray:
    """A per-element PReLU slope (IR shape) reduced to shape ``(1,)`` or ``(C,)`` when it is
    constant over every axis but the last (any broadcastable array is a valid weight)."""
    a = np.asarray(alpha, dtype=np.float64)
    flat = a.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return flat[:1].copy()
    if a.ndim >= 1:
        rows = a.reshape(-1, a.shape[-1])
        if np.all(rows == rows[:1]):
            return rows[0].copy()
    return a.copy()


def broadcast_alpha(alpha: np.ndarray, shape: Sequence[int], layer: str = "") -> np.ndarray:
    """The PReLU slope of every element of a tensor of ``shape`` (flattened, row-major)."""
    a = np.asarray(alpha, dtype=np.float64)
    try:
        return np.broadcast_to(a, tuple(shape)).reshape(-1)
    except ValueError:
        raise ConfigError(
            f"{_where(layer)}prelu weight 'alpha' of shape {a.shape} does not broadcast to the "
            f"input shape {tuple(shape)} (allowed: (1,), (C,) of the last axis, or a shape "
            "broadcastable to the input; a pixel-stream design needs one of the first two)"
        ) from None


def common_type(types: Sequence[FixedType]) -> FixedType:
    """The narrowest wrap/truncate type holding every value of every one of ``types``."""
    signed = any(t.signed for t in types)
    integer = max(t.integer + (1 if signed and not t.signed else 0) for t in types)
    frac = max(t.frac for t in types)
    return FixedType(max(integer + frac, 1), integer, signed)
