"""SimpleRNN, LSTM and GRU: the rule of docs/semantics.md ("Recurrent layers").

Vectorized over the batch, one loop iteration per time step. Every sum of products
is exact in integers (each product cast to ``accum``, the sum wrapped once), every
gate pre-activation is cast to ``preact``, sigmoid/tanh come from the tables of
``nnfab.ir.tables`` (hard_sigmoid/hard_tanh are computed exactly and cast to the table
type), the hidden and cell states are cast to ``state``, and, with ``state_read``, cast
again where the next step reads them.
"""

from __future__ import annotations

import numpy as np

from nnfab.emulate.base import Kernel, OverflowCounter, register
from nnfab.emulate.exact import wrap_mantissas
from nnfab.emulate.kernels.common import (
    Exact,
    add,
    cast,
    cast_counted,
    clip,
    constant,
    from_values,
    max_abs,
    mul,
    round_to,
    sub,
    total,
    widen,
)
from nnfab.emulate.kernels.dense import check_accumulator
from nnfab.errors import EmulationError, GraphError
from nnfab.ir import FixedType, Graph, Node, Overflow
from nnfab.ir.recurrent import (
    GATES,
    check_recurrent,
    is_table_function,
    recurrent_table_attrs,
    uses_recurrent_activation,
)
from nnfab.ir.tables import LookupTable, activation_table

FLOAT_EXACT = 2.0**53
INT64_EXACT = 2.0**62


def accumulate(x: Exact, w: Exact, accum: FixedType) -> np.ndarray:
    """Mantissas (on ``accum``'s grid, not wrapped) of ``sum_i accum(x_i * w_ij)``.

    ``x`` is (rows, n_in), ``w`` (n_in, n_out). Products are exact; each is rounded
    to ``accum`` only when it is finer than ``accum`` (then one by one, in integers).
    """
    prod_frac = x.frac + w.frac
    shift = accum.frac - prod_frac
    n_in = w.m.shape[0]
    if shift >= 0:
        col = float(np.max(np.abs(w.m).astype(np.float64).sum(axis=0))) if w.m.size else 0.0
        bound = float(max_abs(x.m)) * col * 2.0**shift
        if bound < FLOAT_EXACT:
            s = x.m.astype(np.float64) @ (w.m.astype(np.float64) * 2.0**shift)
            return s.astype(np.int64)
        if bound < INT64_EXACT:
            return x.m.astype(np.int64) @ (w.m.astype(np.int64) << np.int64(shift))
        xo = widen(x.m, 1 << 63)
        wo = widen(w.m, 1 << 63) * (1 << shift)
        return xo @ wo
    rows = x.m.shape[0]
    out = []
    step = max(1, (1 << 22) // max(1, n_in * w.m.shape[1]))
    for start in range(0, rows, step):
        products = mul(Exact(x.m[start:start + step, :, None], x.frac),
                       Exact(w.m[None, :, :], w.frac))
        out.append(total(round_to(products, accum.frac, accum.rounding), axis=1).m)
    if any(o.dtype == object for o in out):
        return np.concatenate([widen(o, 1 << 63) for o in out], axis=0)
    return np.concatenate(out, axis=0)


def _sum(*parts: np.ndarray) -> np.ndarray:
    """Exact sum of integer mantissa arrays (int64 while it fits, Python ints beyond)."""
    bound = sum(max_abs(p) for p in parts)
    out = widen(parts[0], bound)
    for p in parts[1:]:
        out = out + widen(p, bound)
    return out


class RecurrentKernel(Kernel):
    """Shared set-up: quantized weights, tables and the step loop."""

    def __init__(self, node: Node, graph: Graph) -> None:
        super().__init__(node, graph)
        try:
            self.attrs = check_recurrent(node)
        except GraphError as e:
            raise EmulationError(str(e)) from None
        self.units = self.attrs["units"]
        self.gates = GATES[node.op]
        self.w_type = self.precision("weight")
        self.r_type = self.precision("recurrent_weight")
        self.b_type = self.precision("bias")
        self.accum = self.precision("accum")
        check_accumulator(node, self.accum)
        self.preact = self.precision("preact")
        self.state = self.precision("state")
        kernel, n_k = self.w_type.quantize_and_count(node.weights["kernel"])
        rec, n_r = self.r_type.quantize_and_count(node.weights["recurrent_kernel"])
        self.kernel_overflow = n_k + n_r
        bias, self.bias_overflow = self.b_type.quantize_and_count(node.weights["bias"])
        self.W = from_values(kernel, self.w_type)
        self.U = from_values(rec, self.r_type)
        acc_bias = self.accum.quantize(bias).reshape(-1, self.gates * self.units)
        self.bias_rows = [from_values(row, self.accum).m for row in acc_bias]
        self._mantissas: dict[int, np.ndarray] = {}  # entries of each table as mantissas
        self.state_read = node.precision.get("state_read")
        self.table_overflow = 0
        self.table_type = self.precision("table")
        self.table = self._activation(self.attrs["activation"], self.table_type, False)
        if uses_recurrent_activation(node.op):
            self.rtable_type = self.precision("recurrent_table")
            self.rtable = self._activation(self.attrs["recurrent_activation"],
                                           self.rtable_type, True)

    def _activation(self, fn: str, t: FixedType, recurrent: bool) -> LookupTable | HardFunction:
        if not is_table_function(fn):
            return HardFunction(fn, t)
        table = self._table(fn, t, recurrent)
        self.table_overflow += int(np.count_nonzero(table.overflow))
        return table

    def _table(self, fn: str, t: FixedType, recurrent: bool) -> LookupTable:
        attrs = recurrent_table_attrs(self.node.attrs, recurrent)
        prefix = "recurrent_" if recurrent else ""
        for key in ("table_size", "table_range"):
            if key not in attrs:
                raise EmulationError(
                    f"layer {self.node.name!r} ({self.node.op}) has no {prefix + key!r} "
                    "attribute; run the precision passes (nnfab.passes) before emulating"
                )
        table = activation_table(fn, attrs, t, layer=self.node.name)
        self._mantissas[id(table)] = from_values(table.values, table.type).m
        return table

    # ----------------------------------------------------------- arithmetic
    def wrap(self, m: np.ndarray, counter: OverflowCounter) -> Exact:
        """The accumulator value of exact mantissas ``m`` (wraps; counts under 'accum')."""
        a = self.accum
        if (m.dtype != object and m.size and a.width <= 62
                and m.min() >= a.min_mantissa and m.max() <= a.max_mantissa):
            counter.record("accum", 0, int(m.size))  # in range: the wrap is the identity
            return Exact(m.astype(np.int64), a.frac)
        values, flags = wrap_mantissas(m, self.accum)
        counter.record("accum", int(np.count_nonzero(flags)), int(flags.size))
        return from_values(values, self.accum)

    def lookup(self, table: LookupTable | HardFunction, v: Exact, t: FixedType,
               counter: OverflowCounter) -> Exact:
        """The activation at values ``v`` of type ``t``: the table entry indexed from the
        mantissas, or the hard function's exact value cast to its type."""
        if isinstance(table, HardFunction):
            t = table.type
            if t.overflow is not Overflow.WRAP:  # saturating at the type's ends is the
                values, _ = cast(table.exact(v), t)  # quantizer's own clip: not counted
                return from_values(values, t)
            return from_values(cast_counted(counter, "activation", table.exact(v), t), t)
        mantissas = self._mantissas[id(table)]
        return Exact(mantissas[table.index_mantissas(v.m, v.frac)], table.type.frac)

    def read_state(self, v: Exact | None, counter: OverflowCounter) -> Exact | None:
        """The state as a step reads it: cast to ``state_read`` when that is set."""
        if v is None or self.state_read is None:
            return v
        t = self.state_read
        return from_values(cast_counted(counter, "state_read", v, t), t)

    def to_preact(self, a: Exact, counter: OverflowCounter) -> Exact:
        return from_values(cast_counted(counter, "preact", a, self.preact), self.preact)

    def to_state(self, a: Exact, counter: OverflowCounter) -> Exact:
        return from_values(cast_counted(counter, "state", a, self.state), self.state)

    def step(self, xw: np.ndarray, h: Exact, c: Exact | None, counter: OverflowCounter
             ) -> tuple[Exact, Exact | None]:
        raise NotImplementedError

    def __call__(self, inputs: list[np.ndarray], counter: OverflowCounter) -> np.ndarray:
        (x,) = inputs
        batch, steps, n_in = x.shape
        xe = from_values(x.reshape(batch * steps, n_in), self.in_types[0])
        # input part of every gate for every step at once: (batch, steps, G*units)
        xw = accumulate(xe, self.W, self.accum).reshape(batch, steps, -1)
        zero = from_values(np.zeros((batch, self.units)), self.state)
        h, c = zero, (zero if self.node.op == "LSTM" else None)
        outs = []
        order = range(steps - 1, -1, -1) if self.attrs["go_backwards"] else range(steps)
        for t in order:
            h, c = self.step(xw[:, t], self.read_state(h, counter),
                             self.read_state(c, counter), counter)
            if self.attrs["return_sequences"]:
                outs.append(h)
        if self.attrs["return_sequences"]:
            if self.node.attrs.get("reverse_sequence", False):  # y[t] = h after step T-1-t
                outs.reverse()
            stacked = np.stack([np.ldexp(o.m.astype(np.float64), -o.frac) for o in outs], axis=1)
            return counter.cast("result", self.out_type, stacked, source=self.state)
        last = np.ldexp(h.m.astype(np.float64), -h.frac)
        return counter.cast("result", self.out_type, last, source=self.state)


class HardFunction:
    """``hard_sigmoid(v) = clip(v/2 + 1/2, 0, 1)`` or ``hard_tanh(v) = clip(v, -1, 1)``,
    exact, then cast to ``type`` (the layer's table type)."""

    def __init__(self, function: str, t: FixedType) -> None:
        self.function, self.type = function, t

    def exact(self, v: Exact) -> Exact:
        if self.function == "hard_sigmoid":
            return clip(add(Exact(v.m, v.frac + 1), constant(0.5, v.m.shape)), 0.0, 1.0)
        return clip(v, -1.0, 1.0)


def _block(m: np.ndarray, k: int, units: int) -> np.ndarray:
    return m[:, k * units:(k + 1) * units]


@register("SimpleRNN")
class SimpleRNNKernel(RecurrentKernel):
    def step(self, xw: np.ndarray, h: Exact, c: Exact | None, counter: OverflowCounter
             ) -> tuple[Exact, Exact | None]:
        a = self.wrap(_sum(xw, accumulate(h, self.U, self.accum), *self.bias_rows), counter)
        act = self.lookup(self.table, self.to_preact(a, counter), self.preact, counter)
        return self.to_state(act, counter), None


@register("LSTM")
class LSTMKernel(RecurrentKernel):
    def step(self, xw: np.ndarray, h: Exact, c: Exact | None, counter: OverflowCounter
             ) -> tuple[Exact, Exact | None]:
        assert c is not None
        u = self.units
        a = self.wrap(_sum(xw, accumulate(h, self.U, self.accum), *self.bias_rows), counter)
        p = self.to_preact(a, counter)
        i, f, g, o = (Exact(_block(p.m, k, u), p.frac) for k in range(4))
        i, f, o = (self.lookup(self.rtable, v, self.preact, counter) for v in (i, f, o))
        g = self.lookup(self.table, g, self.preact, counter)
        c_new = self.to_state(add(mul(f, c), mul(i, g)), counter)
        h_new = self.to_state(mul(o, self.lookup(self.table, c_new, self.state, counter)), counter)
        return h_new, c_new


@register("GRU")
class GRUKernel(RecurrentKernel):
    def step(self, xw: np.ndarray, h: Exact, c: Exact | None, counter: OverflowCounter
             ) -> tuple[Exact, Exact | None]:
        u = self.units
        U = self.U
        if self.attrs["reset_after"]:
            b_in, b_rec = self.bias_rows
            hu = accumulate(h, U, self.accum)
            zr = self.wrap(_sum(xw[:, :2 * u], hu[:, :2 * u], b_in[:2 * u], b_rec[:2 * u]),
                           counter)
            zr = self.lookup(self.rtable, self.to_preact(zr, counter), self.preact, counter)
            z, r = Exact(zr.m[:, :u], zr.frac), Exact(zr.m[:, u:], zr.frac)
            ax = self.wrap(_sum(xw[:, 2 * u:], b_in[2 * u:]), counter)
            ah = self.wrap(_sum(hu[:, 2 * u:], b_rec[2 * u:]), counter)
            p_h = self.to_preact(add(ax, mul(r, ah)), counter)
        else:
            (b,) = self.bias_rows
            U_zr = Exact(U.m[:, :2 * u], U.frac)
            U_h = Exact(U.m[:, 2 * u:], U.frac)
            zr = self.wrap(_sum(xw[:, :2 * u], accumulate(h, U_zr, self.accum), b[:2 * u]),
                           counter)
            zr = self.lookup(self.rtable, self.to_preact(zr, counter), self.preact, counter)
            z, r = Exact(zr.m[:, :u], zr.frac), Exact(zr.m[:, u:], zr.frac)
            q = self.to_state(mul(r, h), counter)
            a_h = self.wrap(_sum(xw[:, 2 * u:], accumulate(q, U_h, self.accum), b[2 * u:]),
                            counter)
            p_h = self.to_preact(a_h, counter)
        hh = self.lookup(self.table, p_h, self.preact, counter)
        one_minus_z = sub(constant(1.0, z.shape), z)
        return self.to_state(add(mul(z, h), mul(one_minus_z, hh)), counter), None
