"""QONNX quantization operators -> exact values (on weights) and fixed-point types.

The operators live in the ``qonnx.custom_op.general`` domain (older exports:
``finn.custom_op.general``, ``onnx.brevitas``). Their definitions, from the QONNX
operator documents, with ``b`` the bit width, ``s`` the scale and ``z`` the zero point:

- ``Quant`` / ``IntQuant(x, s, z, b; signed=1, narrow=0, rounding_mode="ROUND")``:
  ``q = rnd(clamp(x / s + z, lo, hi))``, ``y = (q - z) * s``, where ``lo`` is
  ``-2**(b-1)`` (``+1`` when narrow) or 0 when unsigned, and ``hi`` is ``2**(b-1) - 1``
  when signed, ``2**b - 1`` when unsigned (``2**b - 2`` when also narrow). Rounding
  modes: ``ROUND`` (= ``HALF_EVEN``), ``CEIL``, ``FLOOR``, ``UP`` (away from zero),
  ``DOWN`` (toward zero), ``HALF_UP`` (ties away from zero), ``HALF_DOWN`` (ties toward
  zero). qonnx's executor treats a 1-bit signed Quant as bipolar.
- ``BipolarQuant(x, s)``: ``y = s`` where ``x >= 0``, else ``-s``.
- ``Trunc`` version 2 ``(x, s, z, in_bits, out_s, out_bits; rounding_mode="FLOOR",
  signed=1, narrow=0)``: ``q = round(x / s + z)``, ``t = out_s / s`` (a power of two),
  ``y = (rnd(clamp(q / t, lo, hi)) - z / t) * out_s`` with ``lo``/``hi`` of ``out_bits``.
  Version 1 (five inputs) keeps the result in units of the input scale: not a cast,
  and not supported.

Clamping to integer bounds before a monotone rounding equals rounding first and then
saturating, so with ``s = 2**e`` and ``z = 0`` an activation ``Quant`` is exactly the cast
to ``fixed<b, b + e, signed, Q, SAT>`` (``SAT_SYM`` when signed and narrow), with ``Q``
from ``ROUNDING``. ``Trunc`` is the cast to the output grid when its input lies on the
input scale's grid (true for sums of quantized values).

Scales that are not powers of two (Brevitas' default ``*Float`` quantizers) are carried
as real factors beside exact integer tensors: a Quant of a constant becomes the integers
``q`` with its scale (``Const.scale``), and ``nnfab.frontends.onnx_scales`` moves the
factors forward to the next Quant, bias or graph output (docs/semantics.md,
"Requantization"). Zero points other than 0 raise an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnfab.errors import UnsupportedLayerError
from nnfab.frontends.onnx_layers import Const, NodeCall, Output, Value
from nnfab.ir.graph import Node
from nnfab.ir.types import FixedType, Overflow, Rounding

log = logging.getLogger(__name__)

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
"""Domains whose Quant / BipolarQuant / Trunc nodes nnfab reads."""

ROUNDING: dict[str, Rounding | None] = {
    "ROUND": Rounding.RND_CONV,
    "HALF_EVEN": Rounding.RND_CONV,
    "FLOOR": Rounding.TRN,
    "DOWN": Rounding.TRN_ZERO,
    "HALF_UP": Rounding.RND_INF,
    "HALF_DOWN": Rounding.RND_ZERO,
    "CEIL": None,  # no ap_fixed quantization mode rounds toward plus infinity
    "UP": None,  # nor away from zero
}
"""QONNX rounding mode -> ap_fixed quantization mode (``None``: none matches)."""

POW2_HINT = (
    "nnfab needs power-of-two scales (and zero point 0) so that quantized values are "
    "fixed-point numbers; in Brevitas use the *FixedPoint quantizers (e.g. "
    "Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint)"
)

_ROUND_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ROUND": np.rint,
    "HALF_EVEN": np.rint,
    "FLOOR": np.floor,
    "CEIL": np.ceil,
    "DOWN": np.trunc,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)),
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5),
    "HALF_DOWN": lambda v: np.sign(v) * np.ceil(np.abs(v) - 0.5),
}


@dataclass(frozen=True)
class QuantParams:
    """The parameters of one Quant node, checked."""

    where: str
    scale: np.ndarray
    zeropt: np.ndarray
    bits: int
    signed: bool
    narrow: bool
    rounding_mode: str

    @property
    def bounds(self) -> tuple[int, int]:
        return int_bounds(self.bits, self.signed, self.narrow)


def int_bounds(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """The integer range ``[lo, hi]`` of a ``bits``-bit Quant."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(narrow)


def _flag(where: str, name: str, value: object) -> bool:
    if value in (0, 1):
        return bool(value)
    raise UnsupportedLayerError(f"{where}: attribute {name}={value!r} must be 0 or 1")


def _mode(where: str, value: object, default: str) -> str:
    mode = (value.decode() if isinstance(value, bytes) else str(value or default)).upper()
    if mode not in ROUNDING:
        raise UnsupportedLayerError(
            f"{where}: rounding_mode={mode!r} is unknown; QONNX defines {', '.join(ROUNDING)}"
        )
    return mode


def _bits(where: str, name: str, value: np.ndarray) -> int:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise UnsupportedLayerError(
            f"{where}: {name} has shape {arr.shape}; nnfab needs one bit width per tensor"
        )
    bits = float(arr.reshape(()))
    if not bits.is_integer() or not 1 <= bits <= 53:
        raise UnsupportedLayerError(f"{where}: {name}={bits!r} must be an integer 1..53")
    return int(bits)


def read_quant(where: str, attrs: dict[str, object], scale: np.ndarray, zeropt: np.ndarray,
               bitwidth: np.ndarray) -> QuantParams:
    """Check and collect a Quant node's inputs and attributes."""
    scale = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
        raise UnsupportedLayerError(f"{where}: scale {_show(scale)} must be positive and finite")
    return QuantParams(
        where=where,
        scale=scale,
        zeropt=np.asarray(zeropt, dtype=np.float64),
        bits=_bits(where, "bitwidth", bitwidth),
        signed=_flag(where, "signed", attrs.get("signed", 1)),
        narrow=_flag(where, "narrow", attrs.get("narrow", 0)),
        rounding_mode=_mode(where, attrs.get("rounding_mode"), "ROUND"),
    )


def _show(values: np.ndarray) -> str:
    flat = np.asarray(values).ravel()
    if flat.size == 1:
        return repr(float(flat[0]))
    head = ", ".join(repr(float(v)) for v in flat[:4])
    return f"[{head}{', ...' if flat.size > 4 else ''}] (shape {np.shape(values)})"


def pow2_exponents(where: str, what: str, scale: np.ndarray) -> np.ndarray:
    """``log2`` of every element of a power-of-two scale; a clear error otherwise."""
    mantissa, exponent = np.frexp(np.asarray(scale, dtype=np.float64))
    if not np.all(mantissa == 0.5):
        bad = np.asarray(scale).ravel()[np.asarray(mantissa).ravel() != 0.5][0]
        raise UnsupportedLayerError(
            f"{where}: {what} {_show(scale)} is not a power of two (e.g. {float(bad)!r}); "
            f"{POW2_HINT}"
        )
    return (exponent - 1).astype(np.int64)


def is_pow2(scale: np.ndarray) -> bool:
    """True when every element of ``scale`` is a power of two."""
    mantissa, _ = np.frexp(np.asarray(scale, dtype=np.float64))
    return bool(np.all(mantissa == 0.5))


def _check_zero_point(where: str, zeropt: np.ndarray) -> None:
    if np.any(np.asarray(zeropt) != 0):
        raise UnsupportedLayerError(
            f"{where}: zero point {_show(zeropt)} is not 0; nnfab supports symmetric "
            "quantization only (zero point 0): in Brevitas use the Int*/Uint* quantizers "
            "(e.g. Int8ActPerTensorFloat, Uint8ActPerTensorFloat), not the Shifted*/Asym ones"
        )


def integer_constant(p: QuantParams, x: np.ndarray) -> Const:
    """``Quant(x)`` of a constant whose scale is not a power of two: the integers ``q`` and
    the scale (real value ``q * scale``), ``q`` computed as qonnx's executor does (the
    division in the inputs' precision, float32 for float32 initializers)."""
    _check_zero_point(p.where, p.zeropt)
    raw = np.asarray(x)
    dtype = np.float32 if raw.dtype == np.float32 else np.float64
    v = (raw.astype(dtype) / p.scale.astype(dtype)).astype(np.float64)
    if p.bits == 1 and p.signed:
        q, type_ = np.where(v >= 0, 1.0, -1.0), FixedType(2, 2, True)
    else:
        lo, hi = p.bounds
        q = _ROUND_FUNCTIONS[p.rounding_mode](np.clip(v, lo, hi))
        type_ = FixedType(p.bits, p.bits, p.signed)
    log.debug("%s: scale %s is not a power of two: integer weights, scale carried", p.where,
              _show(p.scale))
    return Const(q + 0.0, type_, p.scale)


# ----------------------------------------------------------------- weights
def quantize_constant(p: QuantParams, x: np.ndarray) -> np.ndarray:
    """The values ``Quant(x)`` exactly as QONNX defines them (float64; weights, biases)."""
    exps = pow2_exponents(p.where, "scale", p.scale)
    _check_zero_point(p.where, p.zeropt)
    scale = np.ldexp(1.0, exps)
    v = np.asarray(x, dtype=np.float64) / scale  # exact: a power-of-two division
    if p.bits == 1 and p.signed:
        q = np.where(v >= 0, 1.0, -1.0)  # bipolar, as qonnx executes a 1-bit signed Quant
    else:
        lo, hi = p.bounds
        q = _ROUND_FUNCTIONS[p.rounding_mode](np.clip(v, lo, hi))
    return q * scale + 0.0  # + 0.0: no negative zeros


def constant_type(p: QuantParams) -> FixedType:
    """A type holding every value the Quant can produce (per-channel scales: their union)."""
    exps = pow2_exponents(p.where, "scale", p.scale)
    e_min, e_max = int(exps.min()), int(exps.max())
    bits = 2 if p.bits == 1 and p.signed else p.bits  # bipolar +-s needs a sign bit and one
    width = bits + e_max - e_min
    return FixedType(width, bits + e_max, p.signed)


def bipolar_constant(where: str, x: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, FixedType]:
    """``BipolarQuant`` of a constant: values and the type holding them."""
    exps = pow2_exponents(where, "scale", scale)
    values = np.where(np.asarray(x, dtype=np.float64) >= 0, 1.0, -1.0) * np.ldexp(1.0, exps)
    e_min, e_max = int(exps.min()), int(exps.max())
    return values + 0.0, FixedType(2 + e_max - e_min, 2 + e_max, True)


# ------------------------------------------------------------- activations
def activation_type(p: QuantParams) -> FixedType:
    """The type whose cast computes ``Quant(x)`` on a data tensor."""
    if p.scale.size != 1:
        raise UnsupportedLayerError(
            f"{p.where}: scale {_show(p.scale)} has one value per channel; nnfab needs one "
            "power-of-two scale per activation tensor"
        )
    (exp,) = pow2_exponents(p.where, "scale", p.scale).ravel()
    return activation_cast(p, int(exp))


def activation_cast(p: QuantParams, exp: int) -> FixedType:
    """The cast computing ``Quant`` with its scale replaced by ``2**exp`` on a data tensor."""
    _check_zero_point(p.where, p.zeropt)
    if p.bits == 1 and p.signed:
        raise UnsupportedLayerError(
            f"{p.where}: a 1-bit signed Quant computes the sign of x (bipolar), which is not "
            "a fixed-point cast; nnfab supports bipolar quantization of weights only"
        )
    if p.narrow and not p.signed:
        raise UnsupportedLayerError(
            f"{p.where}: narrow=1 with signed=0 saturates at 2**b - 2, which no fixed-point "
            "overflow mode does; use narrow=0 for unsigned activations"
        )
    return _cast_type(p.where, p.bits, exp, p.signed, p.narrow, p.rounding_mode)


def _cast_type(where: str, bits: int, exp: int, signed: bool, narrow: bool,
               mode: str) -> FixedType:
    rounding = ROUNDING[mode]
    if rounding is None:
        allowed = ", ".join(k for k, v in ROUNDING.items() if v is not None)
        raise UnsupportedLayerError(
            f"{where}: rounding_mode={mode!r} has no ap_fixed quantization mode; allowed on "
            f"activations: {allowed}"
        )
    overflow = Overflow.SAT_SYM if signed and narrow else Overflow.SAT
    return FixedType(bits, bits + exp, signed, rounding, overflow)


def trunc_type(where: str, attrs: dict[str, object], consts: list[np.ndarray]) -> FixedType:
    """The type whose cast computes a ``Trunc`` (version 2) on a data tensor.

    ``consts`` are inputs 1.. (scale, zero point, input bits, output scale, output bits).
    """
    if len(consts) != 5:
        raise UnsupportedLayerError(
            f"{where}: Trunc with {len(consts) + 1} inputs is QONNX Trunc version 1, whose "
            "output stays in units of the input scale (not a fixed-point cast); re-export "
            "with a current Brevitas/qonnx (Trunc version 2, six inputs)"
        )
    scale, zeropt, in_bits, out_scale, out_bits = consts
    for name, value in (("scale", scale), ("out_scale", out_scale)):
        if np.asarray(value).size != 1:
            raise UnsupportedLayerError(f"{where}: {name} {_show(value)} must be one value")
    pow2_exponents(where, "scale", scale)
    (exp,) = pow2_exponents(where, "out_scale", out_scale).ravel()
    _check_zero_point(where, zeropt)
    _bits(where, "in_bitwidth", in_bits)
    bits = _bits(where, "out_bitwidth", out_bits)
    signed = _flag(where, "signed", attrs.get("signed", 1))
    narrow = _flag(where, "narrow", attrs.get("narrow", 0))
    if narrow and not signed:
        raise UnsupportedLayerError(
            f"{where}: narrow=1 with signed=0 saturates at 2**b - 2, which no fixed-point "
            "overflow mode does"
        )
    mode = _mode(where, attrs.get("rounding_mode"), "FLOOR")
    log.debug("%s: Trunc is a cast, assuming its input lies on the grid of its input scale",
              where)
    return _cast_type(where, bits, int(exp), signed, narrow, mode)


# ============================================================== converters
_EXACT_RESULT_OPS = frozenset(
    {"Input", "Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D",
     "Concatenate", "Flatten", "Reshape"}
)
"""IR ops whose one result cast applies to the exact value the float model computes."""


def _takes_result_type(node: Node) -> bool:
    if node.op in _EXACT_RESULT_OPS:
        return True
    if node.op == "Activation":
        return node.attrs.get("function") in ("linear", "relu", "leaky_relu", "hard_sigmoid",
                                              "prelu", "thresholded_relu", "hard_tanh")
    if node.op == "Merge":
        return node.attrs.get("mode") in ("add", "subtract", "multiply", "maximum", "minimum")
    if node.op.startswith(("Pooling", "GlobalPooling")):
        return node.attrs.get("mode") == "max"
    return False


def cast_value(call: NodeCall, x: Value, type_: FixedType) -> Value:
    """``x`` cast to ``type_``: the producer's result type when it is exactly that, else a
    linear Activation with that result type."""
    graph = call.graph
    producer = graph.node(x.ir)
    if (
        graph.tensors[x.ir].type is None
        and call.builder.sole_reader(x)
        and _takes_result_type(producer)
    ):
        graph.tensors[x.ir].type = type_
        log.debug("%s: result type %s given to %r", call.where, type_, producer.name)
        return x
    node = call.emit("Activation", [x.ir], {"function": "linear"}, type_=type_)
    return call.same_layout(x, node)


def _consts(call: NodeCall, first: int) -> list[np.ndarray]:
    names = {1: "scale", 2: "zero point", 3: "bit width", 4: "output scale", 5: "output bits"}
    return [call.const(i, names.get(i, f"input {i}")) for i in range(first, len(call.ins))]


def convert_quant(call: NodeCall) -> list[Output]:
    x = call.value(0, "X")
    if len(call.ins) != 4:
        raise UnsupportedLayerError(f"{call.where}: Quant takes 4 inputs, got {len(call.ins)}")
    p = read_quant(call.where, call.attrs, *_consts(call, 1))
    return [cast_value(call, x, activation_type(p))]


def convert_trunc(call: NodeCall) -> list[Output]:
    x = call.value(0, "X")
    return [cast_value(call, x, trunc_type(call.where, call.attrs, _consts(call, 1)))]


def convert_bipolar(call: NodeCall) -> list[Output]:
    call.value(0, "X")
    raise UnsupportedLayerError(
        f"{call.where}: BipolarQuant of a data tensor computes its sign, which is not a "
        "fixed-point cast; nnfab supports BipolarQuant on weights (constants) only"
    )


def fold_constant(where: str, op_type: str, attrs: dict[str, object],
                  ins: list[np.ndarray]) -> Const:
    """A QONNX op whose inputs are all constants (quantized weights and biases)."""
    if op_type in ("Quant", "IntQuant"):
        if len(ins) != 4:
            raise UnsupportedLayerError(f"{where}: Quant takes 4 inputs, got {len(ins)}")
        p = read_quant(where, attrs, ins[1], ins[2], ins[3])
        if not is_pow2(p.scale):
            return integer_constant(p, ins[0])
        return Const(quantize_constant(p, ins[0]), constant_type(p))
    if op_type == "BipolarQuant":
        if not is_pow2(ins[1]):
            signs = np.where(np.asarray(ins[0], dtype=np.float64) >= 0, 1.0, -1.0)
            scale = np.asarray(ins[1], dtype=np.float64)
            if not np.all(np.isfinite(scale)) or not np.all(scale > 0):
                raise UnsupportedLayerError(f"{where}: scale {_show(scale)} must be positive")
            return Const(signs, FixedType(2, 2, True), scale)
        values, type_ = bipolar_constant(where, ins[0], ins[1])
        return Const(values, type_)
    if op_type == "Trunc":
        type_ = trunc_type(where, attrs, ins[1:])
        return Const(type_.quantize(np.asarray(ins[0], dtype=np.float64)), type_)
    raise UnsupportedLayerError(f"{where}: no constant folding for QONNX op {op_type!r}")


QUANT_CONVERTERS = {
    "Quant": convert_quant,
    "IntQuant": convert_quant,
    "Trunc": convert_trunc,
    "BipolarQuant": convert_bipolar,
}
"""QONNX op type -> converter for data inputs."""
