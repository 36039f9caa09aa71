"""QKeras quantizers -> exact fixed-point types, without importing QKeras.

A quantizer arrives as QKeras writes it into a model file: a string such as
``"quantized_bits(6,0,alpha=1)"`` or a dict ``{"class_name": "quantized_bits",
"config": {...}}``. ``parse_quantizer`` reads either form (with ``ast``, never
``eval``) into a ``Quantizer``; then

- ``quantize_weights`` applies the quantizer to weights in NumPy, giving exactly the
  values QKeras multiplies with, and ``weight_type`` the ``FixedType`` that holds
  them exactly;
- ``activation_mapping`` turns an activation quantizer into an IR activation plus
  the result type that reproduces it as one fixed-point cast.

Numeric definitions, as QKeras 0.9 implements them (``round`` is round-half-to-even
on float32 values; ``clip(v, lo, hi)`` clamps):

- ``quantized_bits(bits, integer, symmetric, keep_negative, alpha)``: with
  ``u = bits - keep_negative`` and ``step = 2**(integer - u)``, the value is
  ``alpha * step * clip(round(x / step), lo, 2**u - 1)`` with
  ``lo = -2**u + symmetric`` (or 0 without ``keep_negative``); one signed bit
  (``u == 0``) gives ``alpha * (x >= 0 ? 1 : -1)``. As a type:
  ``fixed<bits, integer + 1, RND_CONV, SAT>`` (``SAT_SYM`` when symmetric), or
  ``ufixed<bits, integer, RND_CONV, SAT>`` without ``keep_negative``.
- ``quantized_relu(bits, integer)``: ``step = 2**(integer - bits)``,
  ``step * clip(round(x / step), 0, 2**bits - 1)``: ``ufixed<bits, integer, RND_CONV, SAT>``
  after a relu. With a power-of-two ``negative_slope`` one bit holds the sign.
- ``quantized_tanh(bits)``: ``clip(round(p * 2**(bits-1)) / 2**(bits-1), -1, 1 - 2**(1-bits))``
  where ``p = 2 * hard_sigmoid(x) - 1 = clip(x, -1, 1)``: ``fixed<bits, 1, RND_CONV, SAT>``.
- ``quantized_sigmoid(bits)``: ``p = clip(x / 2 + 1/2, 0, 1)`` (QKeras' hard sigmoid),
  then ``ufixed<bits, 0, RND_CONV, SAT>``.
- ``binary``: ``alpha * (x >= 0 ? 1 : -1)`` (``{0, alpha}`` with ``use_01``);
  ``ternary``: ``alpha * sign(x)`` where ``|x| >= threshold`` (default 0.33), else 0.
- ``quantized_po2`` / ``quantized_relu_po2``: ``sign * 2**clip(round(log2 |x|), ...)``.

Where the activation output of QKeras is a float32 value, nnfab's exact value is the
same whenever the QKeras input is representable in float32 (QKeras casts its input
to float32 first); inputs needing more than 24 significant bits can differ.
"""

from __future__ import annotations

import ast
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.ir.types import FixedType, Overflow, Rounding

log = logging.getLogger(__name__)

QUANTIZER_PARAMS: dict[str, tuple[tuple[str, Any], ...]] = {
    "quantized_bits": (
        ("bits", 8), ("integer", 0), ("symmetric", 0), ("keep_negative", True),
        ("alpha", None), ("use_stochastic_rounding", False), ("scale_axis", None),
        ("qnoise_factor", 1.0), ("var_name", None), ("use_ste", True), ("use_variables", False),
    ),
    "quantized_relu": (
        ("bits", 8), ("integer", 0), ("use_sigmoid", 0), ("negative_slope", 0.0),
        ("use_stochastic_rounding", False), ("relu_upper_bound", None),
        ("is_quantized_clip", True), ("qnoise_factor", 1.0), ("var_name", None),
        ("use_ste", True), ("use_variables", False),
    ),
    "quantized_tanh": (
        ("bits", 8), ("use_stochastic_rounding", False), ("symmetric", False),
        ("use_real_tanh", False),
    ),
    "quantized_sigmoid": (
        ("bits", 8), ("symmetric", False), ("use_real_sigmoid", False),
        ("use_stochastic_rounding", False),
    ),
    "binary": (("use_01", False), ("alpha", None), ("use_stochastic_rounding", False)),
    "ternary": (
        ("alpha", None), ("threshold", None), ("use_stochastic_rounding", False),
        ("number_of_unrolls", 5),
    ),
    "quantized_po2": (
        ("bits", 8), ("max_value", None), ("use_stochastic_rounding", False),
        ("quadratic_approximation", False), ("log2_rounding", "rnd"), ("qnoise_factor", 1.0),
        ("var_name", None), ("use_ste", True), ("use_variables", False),
    ),
    "quantized_relu_po2": (
        ("bits", 8), ("max_value", None), ("negative_slope", 0),
        ("use_stochastic_rounding", False), ("quadratic_approximation", False),
        ("log2_rounding", "rnd"), ("qnoise_factor", 1.0), ("var_name", None),
        ("use_ste", True), ("use_variables", False),
    ),
}
"""Supported quantizer classes -> their parameters in QKeras' positional order, with defaults."""

UNSUPPORTED_QUANTIZERS = frozenset(
    {"stochastic_binary", "stochastic_ternary", "bernoulli", "quantized_ulaw",
     "quantized_hswish", "quantized_linear"}
)
QKERAS_FUNCTIONS = {
    # QKeras resolves these names in its own module before Keras': its hard_sigmoid
    # is clip(x / 2 + 1/2, 0, 1), not Keras' function of the same name.
    "hard_sigmoid": ("Activation", {"function": "hard_sigmoid", "slope": 0.5, "offset": 0.5}),
}
UNSUPPORTED_QKERAS_FUNCTIONS = frozenset(
    {"binary_sigmoid", "binary_tanh", "hard_tanh", "smooth_sigmoid", "smooth_tanh"}
)
ACTIVATION_QUANTIZERS = ("quantized_bits", "quantized_relu", "quantized_tanh", "quantized_sigmoid")
KERAS_EPSILON = 1e-7
"""``keras.backend.epsilon()``: the po2 quantizers treat magnitudes below it as zero."""
TERNARY_DEFAULT_THRESHOLD = 0.33


@dataclass(frozen=True)
class Quantizer:
    """One parsed QKeras quantizer: its class name, every parameter, and the source text."""

    name: str
    params: dict[str, Any] = field(compare=False)
    text: str

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def __str__(self) -> str:
        return self.text


@dataclass
class ActivationMapping:
    """How an activation quantizer becomes an IR node: op, attrs and the fixed types."""

    op: str
    attrs: dict[str, Any]
    result: FixedType | None
    precision: dict[str, FixedType] = field(default_factory=dict)
    exact: bool = True


# ---------------------------------------------------------------- parsing
def is_quantizer(spec: Any) -> bool:
    """True when ``spec`` names a QKeras quantizer class (supported or not)."""
    name = _class_name(spec)
    return name in QUANTIZER_PARAMS or name in UNSUPPORTED_QUANTIZERS


def _class_name(spec: Any) -> str | None:
    if isinstance(spec, dict):
        name = spec.get("class_name")
        return name if isinstance(name, str) else None
    if isinstance(spec, str):
        return spec.split("(", 1)[0].strip()
    return None


def parse_quantizer(spec: Any, where: str) -> Quantizer | None:
    """A quantizer from its string or dict form; ``None`` for ``None`` (no quantizer).

    ``where`` names the layer and field for error messages, e.g.
    ``"layer 'fc1' (QDense) kernel_quantizer"``.
    """
    if spec is None:
        return None
    if isinstance(spec, dict):
        name = spec.get("class_name")
        config = spec.get("config", {})
        if not isinstance(name, str) or not isinstance(config, dict):
            raise UnsupportedLayerError(
                f"{where}: {spec!r} is not a quantizer (expected a string or "
                "{'class_name': ..., 'config': {...}})"
            )
        _check_name(name, where, spec)
        params = _bind(name, [], dict(config), where, spec)
        return Quantizer(name, params, _canonical(name, params))
    if isinstance(spec, str):
        name, args, kwargs = _parse_call(spec, where)
        _check_name(name, where, spec)
        params = _bind(name, args, kwargs, where, spec)
        return Quantizer(name, params, spec.strip())
    raise UnsupportedLayerError(
        f"{where}: {spec!r} is not a quantizer (expected a string like "
        "'quantized_bits(6,0,alpha=1)' or a dict with 'class_name' and 'config')"
    )


def _check_name(name: str, where: str, spec: Any) -> None:
    if name in QUANTIZER_PARAMS:
        return
    raise UnsupportedLayerError(
        f"{where}: quantizer {spec!r} ({name}) is not supported; supported quantizers: "
        f"{', '.join(QUANTIZER_PARAMS)}"
    )


def _parse_call(text: str, where: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``name`` or ``name(literal, ..., key=literal)`` -> (name, args, kwargs)."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise UnsupportedLayerError(
            f"{where}: cannot parse quantizer {text!r} ({e.msg}); expected e.g. "
            "'quantized_bits(6,0,alpha=1)'"
        ) from None
    if isinstance(tree, ast.Name):
        return tree.id, [], {}
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise UnsupportedLayerError(
            f"{where}: cannot parse quantizer {text!r}; expected name(arguments), e.g. "
            "'quantized_bits(6,0,alpha=1)'"
        )
    try:
        args = [ast.literal_eval(a) for a in tree.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in tree.keywords if k.arg}
    except ValueError:
        raise UnsupportedLayerError(
            f"{where}: quantizer {text!r}: arguments must be literals (numbers, strings, "
            "True/False/None)"
        ) from None
    return tree.func.id, args, kwargs


def _bind(
    name: str, args: list[Any], kwargs: dict[str, Any], where: str, spec: Any
) -> dict[str, Any]:
    signature = QUANTIZER_PARAMS[name]
    names = [p for p, _ in signature]
    if len(args) > len(names):
        raise UnsupportedLayerError(
            f"{where}: quantizer {spec!r} has {len(args)} positional arguments; {name} takes "
            f"at most {len(names)} ({', '.join(names)})"
        )
    params = dict(signature)
    params.update(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in params:
            raise UnsupportedLayerError(
                f"{where}: quantizer {spec!r}: unknown parameter {key!r}; {name} takes "
                f"{', '.join(names)}"
            )
        params[key] = value
    return params


def _canonical(name: str, params: dict[str, Any]) -> str:
    """A readable call text for a dict-form quantizer (non-default parameters only)."""
    defaults = dict(QUANTIZER_PARAMS[name])
    leading = [k for k in ("bits", "integer") if k in params]
    parts = [repr(params[k]) for k in leading]
    parts += [f"{k}={v!r}" for k, v in params.items() if k not in leading and v != defaults[k]]
    return f"{name}({', '.join(parts)})"


# ------------------------------------------------------------ validation
def _unsupported(where: str, q: Quantizer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"{where}: quantizer {q.text!r}: {why}")


def _int_param(where: str, q: Quantizer, key: str, minimum: int | None = None) -> int:
    value = q[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _unsupported(where, q, f"{key}={value!r} must be an integer")
    if minimum is not None and value < minimum:
        raise _unsupported(where, q, f"{key}={value!r} must be >= {minimum}")
    return int(value)


def _flag(where: str, q: Quantizer, key: str) -> bool:
    value = q[key]
    if value in (0, 1, True, False):
        return bool(value)
    raise _unsupported(where, q, f"{key}={value!r} must be 0/1 or True/False")


def _check_common(where: str, q: Quantizer) -> None:
    if "qnoise_factor" in q.params:
        qnoise = q["qnoise_factor"]
        if isinstance(qnoise, bool) or not isinstance(qnoise, int | float) or qnoise != 1:
            raise _unsupported(
                where, q,
                f"qnoise_factor={qnoise!r} mixes float and quantized values; only 1.0 (the "
                "fully quantized inference model) is supported",
            )


def power_of_two_exponent(value: Any, what: str, where: str, q: Quantizer) -> int:
    """log2 of a positive power of two; an error naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _unsupported(where, q, f"{what}={value!r} must be a positive power of two")
    mantissa, exponent = math.frexp(float(value))
    if mantissa != 0.5:
        raise _unsupported(
            where, q,
            f"{what}={value!r} is not a power of two, so the quantized values are not on a "
            "binary fixed-point grid; use a power of two (alpha=1 for plain fixed point)",
        )
    return exponent - 1


def _scale_exponent(where: str, q: Quantizer, role: str) -> int:
    """Exponent of the (power-of-two) scale ``alpha`` applied to a quantizer's output."""
    alpha = q["alpha"]
    if isinstance(alpha, str):
        raise _unsupported(
            where, q,
            f"alpha={alpha!r} computes a scale from the float weights during training; nnfab "
            "needs the scale in the file. Retrain or re-save with alpha=1 (or another "
            "power of two)",
        )
    if alpha is None:
        if role == "kernel" and q.name in ("quantized_bits", "binary", "ternary"):
            log.warning(
                "%s: quantizer %r has alpha=None, which this file's producer used as scale 1; "
                "note that QKeras >= 0.9 turns alpha=None on a kernel quantizer into "
                "'auto_po2' when it loads such a model. nnfab uses scale 1.",
                where, q.text,
            )
        return 0
    if isinstance(alpha, list | tuple):
        raise _unsupported(where, q, f"alpha={alpha!r}: per-channel scales are not supported")
    return power_of_two_exponent(alpha, "alpha", where, q)


# ------------------------------------------------------------- numerics
def _round_half_even(x: np.ndarray) -> np.ndarray:
    return np.rint(x)


def _as_float32_values(x: np.ndarray) -> np.ndarray:
    """QKeras casts to float32 first: the values it actually quantizes, as float64."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def _bits_grid(q: Quantizer, where: str) -> tuple[int, int, int, int]:
    """(bits, integer, lo, hi) of quantized_bits: value = k * 2**(integer - u), lo <= k <= hi."""
    bits = _int_param(where, q, "bits", 1)
    integer = _int_param(where, q, "integer")
    keep_negative = _flag(where, q, "keep_negative")
    symmetric = _flag(where, q, "symmetric")
    u = bits - int(keep_negative)
    lo = (-(2**u) + int(symmetric)) if keep_negative else 0
    return u, integer, lo, 2**u - 1


def quantize_weights(q: Quantizer, values: np.ndarray, where: str, role: str = "kernel") -> (
    np.ndarray
):
    """The values QKeras computes for ``q(values)`` (float64, exact), for weights."""
    _check_common(where, q)
    x = _as_float32_values(values)
    if not np.all(np.isfinite(x)):
        raise _unsupported(where, q, "the weights contain NaN or infinity")
    fn = _WEIGHT_QUANTIZERS.get(q.name)
    if fn is None:
        raise _unsupported(where, q, f"{q.name} cannot quantize weights in nnfab")
    return np.asarray(fn(q, x, where, role), dtype=np.float64) + 0.0  # no -0.0


def _quantize_bits(q: Quantizer, x: np.ndarray, where: str, role: str) -> np.ndarray:
    shift = _scale_exponent(where, q, role)
    u, integer, lo, hi = _bits_grid(q, where)
    if u == 0:  # one signed bit: the sign, with 0 -> +1
        return np.ldexp(np.where(x >= 0, 1.0, -1.0), shift)
    k = np.clip(_round_half_even(np.ldexp(x, u - integer)), lo, hi)
    return np.ldexp(k, integer - u + shift)


def _quantize_relu(q: Quantizer, x: np.ndarray, where: str, role: str) -> np.ndarray:
    bits = _int_param(where, q, "bits", 1)
    integer = _int_param(where, q, "integer")
    if _flag(where, q, "use_sigmoid"):
        raise _unsupported(where, q, "use_sigmoid=1 is not supported")
    slope = _negative_slope(q, where)
    nb = bits - (slope is not None)
    step_exp = integer - nb
    pos = np.clip(_round_half_even(np.ldexp(x, -step_exp)), 0, 2**nb - 1)
    out = np.ldexp(pos, step_exp)
    if slope is not None:
        neg = np.clip(_round_half_even(np.ldexp(x, slope - step_exp)), -(2.0 ** (nb + slope)), 0)
        out = out + np.ldexp(neg, step_exp)
    upper = q["relu_upper_bound"]
    if upper is not None and not _flag(where, q, "is_quantized_clip"):
        out = np.minimum(out, float(upper))
    return out


def _hard_sigmoid_float32(x: np.ndarray) -> np.ndarray:
    """QKeras' hard sigmoid ``clip(x / 2 + 1/2, 0, 1)`` with TensorFlow's float32 roundings."""
    x32 = x.astype(np.float32)
    line = x32 * np.float32(0.5) + np.float32(0.5)  # two float32 operations, as TF runs them
    return np.clip(line, np.float32(0.0), np.float32(1.0)).astype(np.float64)


def _quantize_tanh(q: Quantizer, x: np.ndarray, where: str, role: str) -> np.ndarray:
    if _flag(where, q, "use_real_tanh"):
        raise _unsupported(where, q, "use_real_tanh=True cannot quantize weights exactly")
    bits = _int_param(where, q, "bits", 1)
    m = 2 ** (bits - 1)
    p = 2.0 * _hard_sigmoid_float32(x) - 1.0  # exact in float32 too (a multiple of 2**-24)
    k = np.clip(_round_half_even(p * m), -m + int(_flag(where, q, "symmetric")), m - 1)
    return k / m


def _quantize_sigmoid(q: Quantizer, x: np.ndarray, where: str, role: str) -> np.ndarray:
    if _flag(where, q, "use_real_sigmoid"):
        raise _unsupported(where, q, "use_real_sigmoid=True cannot quantize weights exactly")
    bits = _int_param(where, q, "bits", 1)
    m = 2**bits
    p = _hard_sigmoid_float32(x)
    k = np.clip(_round_half_even(p * m), int(_flag(where, q, "symmetric")), m - 1)
    return k / m


def _quantize_binary(q: Quantizer, x: np.ndarray, where: str, role: str) -> np.ndarray:
    shift = _scale_exponent(where, q, role)
    k = np.where(x >= 0, 1.0, -1.0)
    if _flag(where, q, "use_01"):
        k = (k + 1.0) / 2.0
    return np.ldexp(k, shift)


def _quantize_ternary(q: Quantizer, x: np.ndarray, where: str, role: str) -> np.ndarray:
    shift = _scale_exponent(where, q, role)
    threshold = q["threshold"]
    if threshold is None:
        threshold = TERNARY_DEFAULT_THRESHOLD
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise _unsupported(where, q, f"threshold={threshold!r} must be a number")
    # TensorFlow compares float32 with the threshold converted to float32.
    t = float(np.float32(threshold))
    k = np.where(np.abs(x) >= t, np.sign(x), 0.0)
    return np.ldexp(k, shift)


def _po2_exponent_range(q: Quantizer, where: str, relu: bool) -> tuple[int, int]:
    bits = _int_param(where, q, "bits", 1)
    max_value = q["max_value"]
    if max_value is not None and (isinstance(max_value, bool) or not max_value >= 0):
        raise _unsupported(where, q, f"max_value={max_value!r} must be a non-negative number")
    sign_bit = 0 if max_value is not None and max_value <= 1 else 1
    effective = bits - sign_bit if relu else bits - 1 - sign_bit
    lo, hi = -(2**effective), 2**effective - 1
    if _flag(where, q, "quadratic_approximation"):
        hi = 2 * (hi // 2)
    return lo, hi


def _po2_exponents(q: Quantizer, magnitude: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rounded, clipped exponents of ``magnitude`` (float32 logarithms, as QKeras takes them)."""
    eps = np.float32(KERAS_EPSILON)
    m32 = magnitude.astype(np.float32)
    small = m32 < eps
    filtered = np.where(small, eps, m32)
    if q["max_value"] is not None:
        cap = np.float32(q["max_value"])
        filtered = np.where(filtered >= cap, cap, filtered)
    quadratic = bool(q["quadratic_approximation"])
    base = np.sqrt(filtered) if quadratic else filtered
    with np.errstate(divide="ignore"):
        log2 = np.log(base.astype(np.float32)) / np.float32(np.log(2.0))
    if q["log2_rounding"] == "floor":
        rounded = np.floor(log2)
    elif q["log2_rounding"] == "rnd":
        rounded = np.rint(log2)
    else:
        raise UnsupportedLayerError(
            f"quantizer {q.text!r}: log2_rounding={q['log2_rounding']!r}; allowed: 'rnd', 'floor'"
        )
    exps = np.clip(rounded.astype(np.float64), lo, hi) * (2.0 if quadratic else 1.0)
    return np.where(small, float(lo), exps)


def _quantize_po2(q: Quantizer, x: np.ndarray, where: str, role: str) -> np.ndarray:
    lo, hi = _po2_exponent_range(q, where, relu=False)
    sign = np.where(x >= 0, 1.0, -1.0)
    return sign * np.exp2(_po2_exponents(q, np.abs(x), lo, hi))


def _quantize_relu_po2(q: Quantizer, x: np.ndarray, where: str, role: str) -> np.ndarray:
    lo, hi = _po2_exponent_range(q, where, relu=True)
    slope = q["negative_slope"]
    pos = np.exp2(_po2_exponents(q, np.maximum(x, 0.0), lo, hi))
    if not slope:
        return pos
    neg = -np.exp2(_po2_exponents(q, np.maximum(-x, 0.0) * float(slope), lo, hi))
    return np.where(x >= 0, pos, neg)


_WEIGHT_QUANTIZERS = {
    "quantized_bits": _quantize_bits,
    "quantized_relu": _quantize_relu,
    "quantized_tanh": _quantize_tanh,
    "quantized_sigmoid": _quantize_sigmoid,
    "binary": _quantize_binary,
    "ternary": _quantize_ternary,
    "quantized_po2": _quantize_po2,
    "quantized_relu_po2": _quantize_relu_po2,
}


def _negative_slope(q: Quantizer, where: str) -> int | None:
    """log2 of quantized_relu's negative slope, or None when the slope is 0."""
    slope = q["negative_slope"]
    if slope in (0, 0.0, None):
        return None
    return power_of_two_exponent(slope, "negative_slope", where, q)


# ----------------------------------------------------------------- types
def exact_type(values: np.ndarray) -> FixedType:
    """The narrowest type (TRN, WRAP) holding every value exactly (all finite, dyadic)."""
    flat = np.unique(np.asarray(values, dtype=np.float64).ravel())
    frac = 0
    for v in flat:
        if v != 0:
            _, denominator = float(v).as_integer_ratio()
            frac = max(frac, denominator.bit_length() - 1)
    if flat.size == 0:
        return FixedType(1, 1, False)
    lo = int(np.ldexp(flat.min(), frac))
    hi = int(np.ldexp(flat.max(), frac))
    if lo < 0:
        width = max(hi.bit_length(), (-lo - 1).bit_length()) + 1
        return FixedType(width, width - frac, True)
    width = max(1, hi.bit_length())
    return FixedType(width, width - frac, False)


def weight_type(q: Quantizer, values: np.ndarray, where: str, role: str = "kernel") -> FixedType:
    """A type holding every value ``q`` can produce (``values``: the quantized weights).

    The quantizer's own grid where it has one (``quantized_bits(6,0)`` ->
    ``ap_fixed<6,1>``); power-of-two quantizers get the narrowest type holding the
    values actually present.
    """
    if q.name == "quantized_bits":
        shift = _scale_exponent(where, q, "bias")  # any alpha warning was given already
        u, integer, lo, _ = _bits_grid(q, where)
        if u == 0:
            return FixedType(2, 2 + shift, True)
        bits = _int_param(where, q, "bits", 1)
        if lo < 0:
            return FixedType(bits, integer + 1 + shift, True)
        return FixedType(bits, integer + shift, False)
    if q.name == "binary":
        shift = _scale_exponent(where, q, "bias")
        if _flag(where, q, "use_01"):
            return FixedType(1, 1 + shift, False)
        return FixedType(2, 2 + shift, True)
    if q.name == "ternary":
        return FixedType(2, 2 + _scale_exponent(where, q, "bias"), True)
    if q.name in ("quantized_relu", "quantized_tanh", "quantized_sigmoid"):
        mapped = activation_mapping(q, where, warn=False).result
        if mapped is not None:
            return mapped.replace(rounding=Rounding.TRN, overflow=Overflow.WRAP)
    return exact_type(values)


# ------------------------------------------------------------ activations
def activation_mapping(q: Quantizer, where: str, *, warn: bool = True) -> ActivationMapping:
    """The IR activation that computes ``q(x)``, with the result type doing the quantization."""
    _check_common(where, q)
    if q.name == "quantized_bits":
        return _bits_activation(q, where)
    if q.name == "quantized_relu":
        return _relu_activation(q, where, warn)
    if q.name == "quantized_tanh":
        bits = _int_param(where, q, "bits", 1)
        symmetric = _flag(where, q, "symmetric")
        result = FixedType(
            bits, 1, True, Rounding.RND_CONV, Overflow.SAT_SYM if symmetric else Overflow.SAT
        )
        if _flag(where, q, "use_real_tanh"):
            _approximate(where, q, "tanh from nnfab's lookup table, then the quantizer's cast",
                         warn)
            return ActivationMapping("Activation", {"function": "tanh"}, result, exact=False)
        # 2 * hard_sigmoid(x) - 1 = clip(x, -1, 1); the saturating cast clips the same way.
        return ActivationMapping("Activation", {"function": "linear"}, result)
    if q.name == "quantized_sigmoid":
        bits = _int_param(where, q, "bits", 1)
        if _flag(where, q, "symmetric"):
            raise _unsupported(
                where, q,
                "symmetric=True clips the output at 2**-bits, which no fixed-point cast does; "
                "use symmetric=False",
            )
        result = FixedType(bits, 0, False, Rounding.RND_CONV, Overflow.SAT)
        if _flag(where, q, "use_real_sigmoid"):
            _approximate(where, q, "sigmoid from nnfab's lookup table, then the quantizer's cast",
                         warn)
            return ActivationMapping("Activation", {"function": "sigmoid"}, result, exact=False)
        attrs = {"function": "hard_sigmoid", "slope": 0.5, "offset": 0.5}
        return ActivationMapping("Activation", attrs, result, {"param": _exact_param(0.5)})
    raise _unsupported(
        where, q,
        f"{q.name} as an activation is not a fixed-point cast and nnfab has no op for it; "
        f"activation quantizers supported: {', '.join(ACTIVATION_QUANTIZERS)}",
    )


def _approximate(where: str, q: Quantizer, how: str, warn: bool) -> None:
    if warn:
        log.warning("%s: quantizer %r is approximated (%s); not bit-exact with QKeras",
                    where, q.text, how)


def _exact_param(value: float) -> FixedType:
    """A signed two-bit type holding the power of two ``value`` exactly."""
    _, exponent = math.frexp(value)
    return FixedType(2, exponent + 1, True, Rounding.RND_CONV, Overflow.SAT)


def _bits_activation(q: Quantizer, where: str) -> ActivationMapping:
    alpha = q["alpha"]
    if alpha not in (None, 1, 1.0):
        raise _unsupported(
            where, q,
            f"alpha={alpha!r} scales an activation after quantizing it, which is not a "
            "fixed-point cast; use alpha=1 (or None) on activation quantizers",
        )
    u, integer, lo, _ = _bits_grid(q, where)
    bits = _int_param(where, q, "bits", 1)
    if u == 0:
        raise _unsupported(
            where, q,
            "one signed bit computes the sign of x, which is not a fixed-point cast; use at "
            "least 2 bits",
        )
    if lo < 0:
        overflow = Overflow.SAT_SYM if _flag(where, q, "symmetric") else Overflow.SAT
        result = FixedType(bits, integer + 1, True, Rounding.RND_CONV, overflow)
    else:
        result = FixedType(bits, integer, False, Rounding.RND_CONV, Overflow.SAT)
    return ActivationMapping("Activation", {"function": "linear"}, result)


def _relu_activation(q: Quantizer, where: str, warn: bool) -> ActivationMapping:
    bits = _int_param(where, q, "bits", 1)
    integer = _int_param(where, q, "integer")
    if _flag(where, q, "use_sigmoid"):
        raise _unsupported(
            where, q, "use_sigmoid=1 (a stochastic sigmoid-based relu) is not supported"
        )
    slope = _negative_slope(q, where)
    if slope is not None:
        if bits < 2:
            raise _unsupported(where, q, "a negative slope needs bits >= 2 (one is the sign)")
        result = FixedType(bits, integer + 1, True, Rounding.RND_CONV, Overflow.SAT)
        if warn:
            log.warning(
                "%s: quantizer %r: QKeras clips negative outputs at -negative_slope * 2**integer "
                "= %g; nnfab's leaky relu saturates at %g instead, so inputs below %g differ",
                where, q.text, -(2.0 ** (integer + slope)), result.min, -(2.0**integer),
            )
        attrs = {"function": "leaky_relu", "alpha": 2.0**slope}
        return ActivationMapping(
            "Activation", attrs, result, {"param": _exact_param(2.0**slope)}, exact=False
        )
    result = FixedType(bits, integer, False, Rounding.RND_CONV, Overflow.SAT)
    attrs: dict[str, Any] = {"function": "relu"}
    upper = q["relu_upper_bound"]
    if upper is not None and not _flag(where, q, "is_quantized_clip"):
        if isinstance(upper, bool) or not isinstance(upper, int | float) or upper <= 0:
            raise _unsupported(where, q, f"relu_upper_bound={upper!r} must be a positive number")
        on_grid = float(upper) == float(result.quantize(float(upper)))
        if not on_grid:
            raise _unsupported(
                where, q,
                f"relu_upper_bound={upper!r} is not a value of {result}, so QKeras' "
                "min(quantize(x), bound) is not a relu followed by a cast; use a bound on "
                "the quantizer's grid",
            )
        if float(upper) < result.max:
            attrs["max_value"] = float(upper)
    return ActivationMapping("Activation", attrs, result)
