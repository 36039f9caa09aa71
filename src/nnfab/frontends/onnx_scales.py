"""Scales that are not powers of two: exact integer tensors with real factors carried forward.

Brevitas' default quantizers (``Int8WeightPerTensorFloat``, ``Int8ActPerTensorFloat``,
``QuantReLU(bit_width=4)``, per-channel weight scales) give QONNX ``Quant`` nodes with
real scales. A real scale is never applied where it is met; it is carried:

- A Quant of a constant (weights, biases) keeps its integers ``q`` and its scale
  (``Const.scale``, see ``onnx_quant.integer_constant``).
- Every IR tensor may have a *pending factor* (one positive real per element, in practice
  per channel): the ONNX value is ``IR value * factor``. Views (Flatten, Reshape,
  Transpose, ...) keep it, Relu and max/average pooling pass it on (they commute with a
  positive per-channel factor), Add/Sub of two tensors with the same factor and Concat
  of tensors of one type keep it, Mul/Div by a positive constant changes only it.
- Tensors in these integer units get exact types (``Model.Precision`` is meant for real
  values); a graph input read by a real-scale Quant gets a type ``multiplier_bits``
  finer than the scale (saturating), unless the configuration sets one.
- Gemm / MatMul / Conv with input factor ``f`` (one per tensor) and weight scale ``s_w``
  (per tensor or per output channel) compute the exact integer-weight products; their
  output factor is ``f * s_w`` per output channel. The bias is put in those units,
  ``b / (f s_w)``: Brevitas' Int*Bias quantizers give ``q_b`` with scale
  ``float32(f s_w)``, used as the integer ``q_b``; any other bias is rounded to
  ``2**-bias_frac_bits`` units (a warning when that changes it).
- A Quant of data with scale ``s`` and input factor ``f``: when ``m = f / s`` is one power
  of two ``2**e``, it is the exact cast to ``fixed<b, b - e>`` and the factor stays ``f``.
  Otherwise it is a *requantization*: a per-channel BatchNormalization by the fixed-point
  multiplier ``M * 2**-k ~ m`` (``multiplier_bits`` significant bits), whose result is the
  Quant's cast to integers (its rounding mode, saturation and narrow range), and the
  factor becomes ``s``. When ``M * 2**-k != m`` a warning names the layer: from there on
  an output may differ from the float-scaled QONNX by one step of that Quant, where
  ``v * m`` lies within ``|v| * |m - M 2**-k|`` of a rounding threshold.
- At a graph output a pending factor is applied by the same multiply (result type: the
  configured precision), or, with ``output_rescale=False``, left to the caller:
  ``graph.metadata["output_scales"]`` then holds the factor of each output (ONNX order).
- Any other op reading a tensor with a pending factor gets it applied first (the
  multiply above, result type: the configured precision, with a warning); any other op
  reading a scaled constant gets its real values ``q * scale`` (float weights).

``graph.metadata["rescales"]`` lists every multiplier made: layer, ideal and fixed-point
values, bits, and whether it is exact.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nnfab.errors import ConfigError, UnsupportedLayerError
from nnfab.frontends.onnx_layers import (
    VIEW_OPS,
    Builder,
    Const,
    NodeCall,
    Output,
    Value,
    broadcast_constant,
)
from nnfab.frontends.onnx_quant import (
    _show,
    _takes_result_type,
    activation_cast,
    cast_value,
    is_pow2,
    read_quant,
)
from nnfab.frontends.qkeras import exact_type
from nnfab.ir.graph import Node
from nnfab.ir.types import FixedType, Overflow, Rounding
from nnfab.passes.infer_precision import (
    PASS_THROUGH,
    WEIGHTED,
    exact_accumulator,
    type_for_range,
    weight_matrix,
)

log = logging.getLogger(__name__)

Converter = Callable[[NodeCall], list[Output]]


@dataclass(frozen=True)
class ScaleOptions:
    """How real (non-power-of-two) scales are applied.

    - ``multiplier_bits``: significant bits of a fixed-point multiplier ``M * 2**-k``
      (``2**(bits-1) <= M < 2**bits`` for the largest channel); the relative error of the
      largest channel's multiplier is at most ``2**-bits``. 8..40, default 20.
    - ``bias_frac_bits``: fractional bits (in accumulator units ``f * s_w``) of a bias
      that is not on the accumulator grid (float biases). 0..32, default 8.
    - ``output_rescale``: apply a pending factor at the graph outputs (True, default), or
      leave the outputs in integer units and report the factors in
      ``graph.metadata["output_scales"]``.
    """

    multiplier_bits: int = 20
    bias_frac_bits: int = 8
    output_rescale: bool = True

    def __post_init__(self) -> None:
        for name, lo, hi in (("multiplier_bits", 8, 40), ("bias_frac_bits", 0, 32)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(
                    f"ScaleOptions.{name}={value!r}: allowed an integer {lo}..{hi}"
                )
        if not isinstance(self.output_rescale, bool):
            raise ConfigError(
                f"ScaleOptions.output_rescale={self.output_rescale!r}: allowed True or False"
            )


@dataclass(frozen=True)
class Multiplier:
    """A fixed-point approximation ``values = M * 2**-frac`` of positive reals ``ideal``."""

    ideal: np.ndarray
    values: np.ndarray
    type: FixedType

    @property
    def exact(self) -> bool:
        return bool(np.array_equal(self.values, self.ideal))

    @property
    def max_rel_error(self) -> float:
        return float(np.max(np.abs(self.values - self.ideal) / self.ideal))


def fixed_multiplier(m: np.ndarray, bits: int, where: str) -> Multiplier:
    """``m`` (positive, one per channel) as ``M * 2**-k``, ``M`` of ``bits`` bits for the
    largest value, rounded to nearest; the type is signed (``bits + 1`` wide) and holds it."""
    m = np.asarray(m, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(m)) or not np.all(m > 0):
        raise UnsupportedLayerError(f"{where}: rescale factors {_show(m)} must be positive")
    integer = math.floor(math.log2(float(m.max()))) + 1  # max(m) < 2**integer
    frac = bits - integer
    big = np.rint(np.ldexp(m, frac))
    if big.max() >= 2.0**bits:  # rounded up to 2**integer
        integer, frac = integer + 1, frac - 1
        big = np.rint(np.ldexp(m, frac))
    if np.any(big == 0):
        raise UnsupportedLayerError(
            f"{where}: rescale factors {_show(m)} span more than {bits} bits (the smallest "
            "rounds to 0); raise ScaleOptions.multiplier_bits"
        )
    return Multiplier(m, np.ldexp(big, -frac), FixedType(bits + 1, integer + 1, True))


def _is_one_pow2(m: np.ndarray) -> int | None:
    """``e`` when every element of ``m`` equals ``2**e``, else None."""
    flat = np.asarray(m, dtype=np.float64).ravel()
    if flat.size == 0 or not np.all(flat == flat[0]) or not is_pow2(flat[:1]):
        return None
    return int(np.frexp(flat[0])[1]) - 1


def _real(c: Const) -> Const:
    """A scaled constant as its real values (float, no type)."""
    if c.scale is None:
        return c
    return Const(np.asarray(c.value, dtype=np.float64) * np.asarray(c.scale, dtype=np.float64))


_MOVING = frozenset({"Identity", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze"})
"""Ops that only move a constant's values: a scaled constant keeps its integers."""


@dataclass(frozen=True)
class _MovedConst(Const):
    """A scaled constant on its way through a moving op; ``moved``: its scale moved alike."""

    moved: np.ndarray | None = None


def _evaluate(node: Any, opset: int, values: list[Any]) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    feeds = {t: v for t, v in zip(node.input, values, strict=True) if t and v is not None}
    (result, *_) = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
    return np.asarray(result, dtype=np.float64)


def _uniform(values: np.ndarray) -> float | None:
    flat = np.asarray(values).ravel()
    return float(flat[0]) if flat.size and np.all(flat == flat[0]) else None


class ScaleTracker:
    """Pending factors of the IR tensors of one ONNX conversion (see the module docstring)."""

    def __init__(self, builder: Builder, options: ScaleOptions | None = None) -> None:
        self.builder = builder
        self.options = options or ScaleOptions()
        self.pending: dict[str, np.ndarray] = {}  # IR tensor -> factor, IR tensor's shape
        self.exact: set[str] = set()  # IR tensors whose type _exact_result chose
        self.handlers: dict[str, Callable[[NodeCall, Converter], list[Output]]] = {
            "Gemm": self._weighted,
            "MatMul": self._weighted,
            "Conv": self._weighted,
            "Relu": self._elementwise,
            "MaxPool": self._per_channel,
            "AveragePool": self._per_channel,
            "GlobalAveragePool": self._per_channel,
            "GlobalMaxPool": self._per_channel,
            "Add": self._add,
            "Sub": self._add,
            "Concat": self._concat,
            "Mul": self._scale_by_const,
            "Div": self._scale_by_const,
            **{op: self._view for op in VIEW_OPS},
        }

    # ------------------------------------------------------------- queries
    def factor(self, v: Value) -> np.ndarray | None:
        """The pending factor of ``v`` in its ONNX shape (batch removed), or None."""
        f = self.pending.get(v.ir)
        return None if f is None else f.reshape(-1)[v.index]

    def _set(self, v: Value, full: np.ndarray | None) -> None:
        if full is None or np.all(np.asarray(full) == 1):
            self.pending.pop(v.ir, None)
            return
        self.pending[v.ir] = self.builder.scatter(v, np.broadcast_to(full, v.shape))

    def _record(self, layer: str, where: str, mult: Multiplier, role: str) -> None:
        self.builder.graph.metadata.setdefault("rescales", []).append({
            "layer": layer, "onnx_node": where, "role": role,
            "ideal": mult.ideal.tolist(), "multiplier": mult.values.tolist(),
            "type": str(mult.type), "bits": self.options.multiplier_bits, "exact": mult.exact,
        })

    # ----------------------------------------------------------- the hook
    def convert(self, call: NodeCall, converter: Converter) -> list[Output]:
        """Convert one ONNX node of data inputs, carrying or applying pending factors."""
        domain = call.proto.domain or ""
        if call.op_type in ("Quant", "IntQuant") and domain not in ("", "ai.onnx"):
            return self._quant(call, converter)
        scaled = any(
            (isinstance(i, Value) and i.ir in self.pending)
            or (isinstance(i, Const) and i.scale is not None) for i in call.ins
        )
        if not scaled:
            return converter(call)
        handler = self.handlers.get(call.op_type) if domain in ("", "ai.onnx") else None
        if handler is not None:
            return handler(call, converter)
        return converter(self._materialize(call))

    def real_consts(self, ins: list[Any], where: str, op_type: str = "", opset: int = 13,
                    node: Any = None) -> list[Any]:
        """Constants folded by another op: a scaled first input of an op that moves values
        (Transpose, Reshape, ...) keeps integers and scale, the scale moved alike (its type
        is kept by the caller); other scaled constants become their real values."""
        first = ins[0] if ins else None
        if (node is not None and op_type in _MOVING and isinstance(first, Const)
                and first.scale is not None and first.type is not None
                and not any(isinstance(i, Const) and i.scale is not None for i in ins[1:])):
            scale = np.broadcast_to(np.asarray(first.scale, dtype=first.value.dtype),
                                    np.shape(first.value))
            moved = _evaluate(node, opset, [scale, *(getattr(i, "value", None) for i in ins[1:])])
            return [_MovedConst(first.value, first.type, moved=moved), *ins[1:]]
        if any(isinstance(i, Const) and i.scale is not None for i in ins):
            log.info("%s: folding a constant with a real (non-power-of-two) scale: its real "
                     "values are used (float, the configured precision applies)", where)
        return [_real(i) if isinstance(i, Const) else i for i in ins]

    @staticmethod
    def folded(ins: list[Any], outs: list[Const]) -> list[Const]:
        """The results of a fold: the moved scale of ``real_consts`` attached."""
        first = ins[0] if ins else None
        if isinstance(first, _MovedConst) and len(outs) == 1:
            return [Const(outs[0].value, outs[0].type, first.moved)]
        return outs

    def output(self, name: str, item: Any) -> Any:
        """A graph output: its pending factor applied, or reported in the metadata."""
        if not isinstance(item, Value) or item.ir not in self.pending:
            return item
        factor = self.factor(item)
        assert factor is not None
        where = f"graph output {name!r}"
        if not self.options.output_rescale:
            self.builder.graph.metadata.setdefault("output_scales", {})[name] = factor.tolist()
            log.warning("%s is in integer units: multiply by graph.metadata['output_scales']"
                        "[%r] (ScaleOptions.output_rescale=False)", where, name)
            return item
        out = self._rescale(item, factor, f"{item.ir}_rescale", where, None, "output")
        self.pending.pop(out.ir, None)
        return out

    # ------------------------------------------------------------ rescale
    def _rescale(self, x: Value, m: np.ndarray, base: str, where: str,
                 type_: FixedType | None, role: str) -> Value:
        """``x * m`` (``m`` in ONNX shape, per IR channel) by a fixed-point BatchNormalization."""
        graph = self.builder.graph
        ir_shape = graph.tensors[x.ir].shape
        m_ir = self.builder.scatter(x, np.broadcast_to(m, x.shape)).reshape(-1, ir_shape[-1])
        if not np.all(m_ir == m_ir[0]):
            raise UnsupportedLayerError(
                f"{where}: the real scale {_show(m)} varies along axes other than the channel "
                "axis; nnfab applies real scales per channel only"
            )
        mult = fixed_multiplier(m_ir[0], self.options.multiplier_bits, where)
        name = self.builder.fresh(base)
        node = Node(name, "BatchNormalization", [x.ir], {},
                    weights={"scale": mult.values, "bias": np.zeros(ir_shape[-1])},
                    source_class="Rescale")
        node.precision.update({"weight": mult.type, "bias": mult.type})
        self.builder.add(node, type_, where)
        self._record(name, where, mult, role)
        if not mult.exact:
            effect = (
                "bit-exactness to the float-scaled QONNX model ends here: a value within "
                "that error of a rounding tie of this Quant may come out one step off"
                if type_ is not None else
                f"the result is rounded to the configured precision of {name!r}"
            )
            log.warning(
                "%s: real scale factor %s applied as the %d-bit fixed-point multiplier %s "
                "(layer %r, max relative error %.3g); %s", where, _show(mult.ideal),
                self.options.multiplier_bits, mult.type, name, mult.max_rel_error, effect,
            )
        return Value(name, x.index, x.view)

    def _materialize(self, call: NodeCall) -> NodeCall:
        """``call`` with every pending factor applied and every scaled constant made real."""
        ins: list[Value | Const | None] = []
        for k, item in enumerate(call.ins):
            if isinstance(item, Value) and item.ir in self.pending:
                factor = self.factor(item)
                assert factor is not None
                log.warning("%s: input %d carries a real scale (%s) and %s needs real values: "
                            "it is multiplied first, result in the configured precision",
                            call.where, k, _show(factor), call.op_type)
                item = self._rescale(item, factor, f"{item.ir}_rescale", call.where, None,
                                     "materialize")
            elif isinstance(item, Const) and item.scale is not None:
                item = _real(item)
            ins.append(item)
        return replace(call, ins=ins)

    # ------------------------------------------------------------ handlers
    def _quant(self, call: NodeCall, converter: Converter) -> list[Output]:
        x = call.value(0, "X")
        if len(call.ins) != 4:
            raise UnsupportedLayerError(f"{call.where}: Quant takes 4 inputs, got {len(call.ins)}")
        consts = [call.const(i, what) for i, what in
                  ((1, "scale"), (2, "zero point"), (3, "bit width"))]
        f = self.factor(x)
        p = read_quant(call.where, call.attrs, *consts)
        if f is None and ((p.scale.size == 1 and is_pow2(p.scale)) or (p.bits == 1 and p.signed)):
            return converter(call)  # the power-of-two cast (onnx_quant.convert_quant), bipolar
        cast = activation_cast(p, 0)  # the Quant's checks; the cast to its integers
        scale = broadcast_constant(call, p.scale, x)
        ratio = (np.ones(x.shape) if f is None else f) / scale  # Quant computes round(v * ratio)
        exp = _is_one_pow2(ratio)
        if exp is not None:
            if _takes_result_type(self.builder.graph.node(x.ir)):
                self._release(x)  # the exact type gives way to the Quant's cast: one rounding
            y = cast_value(call, x, activation_cast(p, -exp))
            if y.ir != x.ir:
                self._set(y, f)
            return [y]
        if f is None:
            self._input_type(call, x, p.bits, p.signed, scale)
        y = self._rescale(x, ratio, call.source, call.where, cast, "requantize")
        self._set(y, scale)
        return [y]

    def _input_type(self, call: NodeCall, x: Value, bits: int, signed: bool,
                    scale: np.ndarray) -> None:
        """A graph input quantized with a real scale: a type fine enough that its own
        rounding costs less than the multiplier's (unless the configuration sets one)."""
        graph = self.builder.graph
        if graph.node(x.ir).op != "Input" or graph.tensors[x.ir].type is not None:
            return
        top = float(np.max(scale)) * 2.0 ** (bits - 1 if signed else bits)
        integer = math.ceil(math.log2(top)) + 1
        frac = self.options.multiplier_bits + math.ceil(-math.log2(float(np.min(scale))))
        t = FixedType(integer + frac, integer, True, Rounding.RND_CONV, Overflow.SAT)
        graph.tensors[x.ir].type = t
        log.info("%s: graph input %r quantized with a real scale gets the type %s (set its "
                 "'result' precision to change it)", call.where, x.ir, t)

    def _weighted(self, call: NodeCall, converter: Converter) -> list[Output]:
        x = call.value(0, "X" if call.op_type == "Conv" else "A")
        f = self.factor(x)
        if f is not None and _uniform(f) is None:
            call = self._materialize(call)  # a factor per input feature does not factor out
            x, f = call.value(0), None
        fx = 1.0 if f is None else float(np.ravel(f)[0])
        w = call.ins[1]
        if not isinstance(w, Const) or (w.type is None and w.scale is None):
            return converter(self._materialize(call))  # float weights: real inputs
        n_out, s_w = self._output_scale(call, w)
        alpha = float(call.attr("alpha", 1.0)) if call.op_type == "Gemm" else 1.0
        beta = float(call.attr("beta", 1.0)) if call.op_type == "Gemm" else 1.0
        c = fx * s_w * alpha  # the real factor of each output channel
        if not np.all(c > 0):  # a negative alpha: a factor relu and max cannot carry
            return converter(self._materialize(call))
        ins = list(call.ins)
        ins[1] = Const(w.value, w.type)
        if call.has(2):
            bias = call.ins[2]
            assert isinstance(bias, Const)
            ins[2] = self._bias(call, bias, c, beta, n_out)
        attrs = dict(call.attrs)
        if call.op_type == "Gemm":
            attrs.update(alpha=1.0, beta=1.0)
        (y, *rest) = converter(replace(call, ins=ins, attrs=attrs))
        assert isinstance(y, Value)
        if self.builder.graph.tensors[y.ir].type is None:
            self._exact_result(call.where, y.ir)
        if call.op_type == "Conv":
            full = np.broadcast_to(c.reshape((n_out,) + (1,) * (y.rank - 1)), y.shape)
        else:
            full = np.broadcast_to(c, y.shape)
        self._set(y, full)
        return [y, *rest]

    def _exact_result(self, where: str, ir: str) -> None:
        """Give a layer whose output is in accumulator units its exact type (the configured
        precision is meant for real values, not for these integers): weighted layers and
        add merges whose input types are known."""
        graph = self.builder.graph
        node = graph.node(ir)
        in_types = [self._known_type(t) for t in node.inputs]
        t: FixedType | None = None
        mode = node.attrs.get("mode")
        if node.op == "Merge" and mode in ("add", "subtract") and all(in_types):
            known = [u for u in in_types if u is not None]
            if mode == "add":
                lo, hi = sum(u.min for u in known), sum(u.max for u in known)
            else:
                lo, hi = known[0].min - known[1].max, known[0].max - known[1].min
            t = type_for_range(min(lo, 0.0), max(hi, 0.0), max(u.frac for u in known))
        elif node.op in WEIGHTED and in_types[0] is not None and "weight" in node.precision:
            w_type = node.precision["weight"]
            key = "scale" if node.op == "BatchNormalization" else "kernel"
            bias = node.weights["bias"]
            b_type = node.precision.get("bias") or exact_type(bias)
            t = exact_accumulator(in_types[0], weight_matrix(node, w_type.quantize(
                node.weights[key])), w_type, b_type.quantize(bias).reshape(-1), b_type)
        if t is None:
            log.warning("%s: the output of %r is in units of a real scale; the configured "
                        "result precision applies to those units", where, ir)
            return
        graph.tensors[ir].type = t
        self.exact.add(ir)
        log.debug("%s: exact result type %s for %r (accumulator units)", where, t, ir)

    def _known_type(self, ir: str) -> FixedType | None:
        """The type of IR tensor ``ir``, looking through layers that keep their input type
        (Flatten, Reshape, pooling: typed later by the precision pass)."""
        graph = self.builder.graph
        while graph.tensors[ir].type is None:
            node = graph.node(ir)
            pooling = node.op.startswith(("Pooling", "GlobalPooling"))
            keeps = node.op in PASS_THROUGH and not (pooling and node.attrs.get("mode") != "max")
            if not keeps or not node.inputs:
                return None
            ir = node.inputs[0]
        return graph.tensors[ir].type

    def _release(self, x: Value) -> bool:
        """Drop an exact result type that a following cast or folded bias may replace."""
        graph = self.builder.graph
        if x.ir in self.exact and self.builder.sole_reader(x):
            graph.tensors[x.ir].type = None
            self.exact.discard(x.ir)
            return True
        return False

    def _output_scale(self, call: NodeCall, w: Const) -> tuple[int, np.ndarray]:
        """(outputs, weight scale per output channel: ones when the weights are not scaled)."""
        value = np.asarray(w.value)
        if call.op_type == "Conv":
            out_axis = 0
        elif call.op_type == "Gemm":
            out_axis = 0 if int(call.attr("transB", 0)) else 1
        else:
            out_axis = value.ndim - 1
        n_out = int(value.shape[out_axis])
        if w.scale is None:
            return n_out, np.ones(n_out)
        try:
            full = np.broadcast_to(np.asarray(w.scale, dtype=np.float64), value.shape)
        except ValueError:
            raise UnsupportedLayerError(
                f"{call.where}: weight scale of shape {np.shape(w.scale)} does not broadcast to "
                f"the weights' shape {value.shape}"
            ) from None
        rows = np.moveaxis(full, out_axis, 0).reshape(n_out, -1)
        if not np.all(rows == rows[:, :1]):
            raise UnsupportedLayerError(
                f"{call.where}: the weight scale {_show(w.scale)} varies along an input axis; "
                "nnfab supports weight scales per tensor or per output channel"
            )
        return n_out, rows[:, 0].copy()

    def _bias(self, call: NodeCall, bias: Const, c: np.ndarray, beta: float,
              n_out: int) -> Const:
        """The bias in units of the accumulator (``c`` per output channel)."""
        value = np.asarray(bias.value, dtype=np.float64)
        if value.ndim == 2 and value.shape[0] == 1:
            value = value[0]
        if value.size not in (1, n_out) or value.ndim > 1:
            raise call.unsupported("bias shape", value.shape, f"(), ({n_out},) or (1, {n_out})")
        q = np.broadcast_to(value, (n_out,)).astype(np.float64)
        scale = None if bias.scale is None else np.broadcast_to(
            np.asarray(bias.scale, dtype=np.float64).reshape(-1), (n_out,))
        return self._units(call.where, q, scale, c / beta)

    def _units(self, where: str, q: np.ndarray, scale: np.ndarray | None,
               unit: np.ndarray) -> Const:
        """Constant ``q`` (times ``scale``, if any) in units of ``unit`` (same shapes)."""
        if scale is not None:
            # Brevitas' Int*Bias: scale float32(s_x * s_w), with s_x = unit * 2**e when the
            # input holds its values on a 2**e grid: the bias is q_b * 2**e units, exactly
            e = np.rint(np.log2(scale / unit)).astype(np.int64)
            if np.array_equal(scale, np.ldexp(unit, e).astype(np.float32).astype(np.float64)):
                log.debug("%s: bias integers used on the accumulator grid (bias scale = float32 "
                          "of input scale x weight scale)", where)
                units = np.ldexp(q, e) + 0.0
                return Const(units, exact_type(units))
            q = q * scale
        units = q / unit
        frac = self.options.bias_frac_bits
        rounded = np.ldexp(np.rint(np.ldexp(units, frac)), -frac) + 0.0
        if not np.array_equal(rounded, units):
            err = float(np.max(np.abs(rounded - units)))
            log.warning("%s: the bias is not on the accumulator grid (input scale x weight "
                        "scale); rounded to 2**-%d of its units (max error %.3g units)",
                        where, frac, err)
        return Const(rounded, exact_type(rounded))

    def _view(self, call: NodeCall, converter: Converter) -> list[Output]:
        """Views rearrange ``index`` only: the IR tensor, hence its factor, is the same."""
        if any(isinstance(i, Const) and i.scale is not None for i in call.ins):
            call = self._materialize(call)
        x = call.value(0)
        outs = converter(call)
        if any(isinstance(y, Value) and y.ir != x.ir for y in outs):
            return converter(self._materialize(call))
        return outs

    def _elementwise(self, call: NodeCall, converter: Converter) -> list[Output]:
        x = call.value(0)
        f = self.factor(x)
        (y, *rest) = converter(call)
        assert isinstance(y, Value)
        self._set(y, f)
        return [y, *rest]

    def _per_channel(self, call: NodeCall, converter: Converter) -> list[Output]:
        x = call.value(0)
        f = self.factor(x)
        assert f is not None
        rows = f.reshape(f.shape[0], -1)
        if not np.all(rows == rows[:, :1]):
            return converter(self._materialize(call))
        (y, *rest) = converter(call)
        assert isinstance(y, Value)
        graph = self.builder.graph
        if call.op_type in ("MaxPool", "GlobalMaxPool") and graph.tensors[y.ir].type is None:
            graph.tensors[y.ir].type = self._known_type(x.ir)  # integers in units: explicit
        self._set(y, rows[:, 0].reshape((-1,) + (1,) * (y.rank - 1)))
        return [y, *rest]

    def _add(self, call: NodeCall, converter: Converter) -> list[Output]:
        a, b = call.ins[0], call.ins[1]
        if isinstance(a, Value) and isinstance(b, Value):
            fa, fb = self.factor(a), self.factor(b)
            if fa is not None and fb is not None and np.array_equal(fa, fb):
                (y, *rest) = converter(call)
                assert isinstance(y, Value)
                if self.builder.graph.tensors[y.ir].type is None:
                    self._exact_result(call.where, y.ir)
                self._set(y, fa)
                return [y, *rest]
            return converter(self._materialize(call))
        x, c = (a, b) if isinstance(a, Value) else (b, a)
        f = self.factor(x) if isinstance(x, Value) else None
        if (f is None or not isinstance(c, Const) or not isinstance(x, Value)
                or call.op_type != "Add"):
            return converter(self._materialize(call))
        q = broadcast_constant(call, c.value, x)
        scale = None if c.scale is None else broadcast_constant(call, c.scale, x)
        units = self._units(call.where, q, scale, f)
        released = self._release(x)  # lets the bias fold into the layer before
        (y, *rest) = converter(replace(call, ins=[x, units]))
        assert isinstance(y, Value)
        graph = self.builder.graph
        if released and graph.tensors[x.ir].type is None:
            self._exact_result(call.where, x.ir)
        if y.ir != x.ir and graph.tensors[y.ir].type is None:
            self._exact_result(call.where, y.ir)
        self._set(y, f)
        return [y, *rest]

    def _concat(self, call: NodeCall, converter: Converter) -> list[Output]:
        """Concat of tensors of one type: the factors are concatenated along the axis."""
        graph = self.builder.graph
        values = [i for i in call.ins if isinstance(i, Value)]
        types = {graph.tensors[v.ir].type for v in values}
        if len(values) != len(call.ins) or len(types) != 1 or None in types:
            return converter(self._materialize(call))
        factors = [self.factor(v) for v in values]
        full = [np.ones(v.shape) if f is None else f for v, f in zip(values, factors, strict=True)]
        axis = int(call.attr("axis"))
        (y, *rest) = converter(call)
        assert isinstance(y, Value)
        self._set(y, np.concatenate(full, axis=axis - 1 if axis > 0 else axis))
        return [y, *rest]

    def _scale_by_const(self, call: NodeCall, converter: Converter) -> list[Output]:
        """Mul / Div of a tensor with a factor by a positive constant: the factor changes,
        the integers do not (an IR copy, as the two ONNX tensors need their own factors)."""
        a, b = call.ins[0], call.ins[1]
        x, c = (a, b) if isinstance(a, Value) else (b, a)
        graph = self.builder.graph
        ok = (isinstance(x, Value) and isinstance(c, Const) and x.ir in self.pending
              and graph.tensors[x.ir].type is not None
              and (call.op_type == "Mul" or isinstance(b, Const)))
        if not ok:
            return converter(self._materialize(call))
        assert isinstance(x, Value) and isinstance(c, Const)
        full = broadcast_constant(call, _real(c).value, x)
        if not np.all(full > 0):
            return converter(self._materialize(call))
        f = self.factor(x)
        assert f is not None
        node = call.emit("Activation", [x.ir], {"function": "linear"},
                         type_=graph.tensors[x.ir].type)
        y = call.same_layout(x, node)
        self._set(y, f * full if call.op_type == "Mul" else f / full)
        log.debug("%s: real constant factor carried, no IR arithmetic", call.where)
        return [y]
