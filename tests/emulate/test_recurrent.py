"""SimpleRNN / LSTM / GRU emulator vs a reference written from docs/semantics.md.

The reference below is a literal per-sample, per-step loop on exact Fractions (every
accumulator addition wrapped, every cast by ``helpers.ref_cast``); its tables are
built here from ``math.exp`` / ``math.tanh``. It shares no code with nnfab's kernels.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import GraphError, PrecisionError
from nnfab.ir import FixedType, fixed
from tests.emulate.helpers import (
    assert_bits,
    random_on_grid,
    ref_cast,
    ref_round,
    ref_value,
    run,
    single_op_graph,
)

GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


# ------------------------------------------------------------------ reference
class Table:
    """``N`` bins over ``[-R, R)``; entry i = table_t(f(bin centre))."""

    def __init__(self, fn: str, size: int, half: float, t: FixedType) -> None:
        self.step = Fraction(2 * Fraction(half), size)
        self.size = size
        self.entries = []
        for i in range(size):
            c = float((i - size // 2 + Fraction(1, 2)) * self.step)
            v = 1.0 / (1.0 + math.exp(-c)) if fn == "sigmoid" else math.tanh(c)
            self.entries.append(ref_value(Fraction(v), t))

    def __call__(self, p: Fraction) -> Fraction:
        k = math.floor(p / self.step) + self.size // 2
        return self.entries[min(max(k, 0), self.size - 1)]


class Hard:
    """hard_sigmoid(p) = clip(p/2 + 1/2, 0, 1) or hard_tanh(p) = clip(p, -1, 1), cast to t."""

    def __init__(self, fn: str, t: FixedType) -> None:
        self.fn, self.t = fn, t

    def __call__(self, p: Fraction) -> Fraction:
        if self.fn == "hard_sigmoid":
            v = min(max(p / 2 + Fraction(1, 2), Fraction(0)), Fraction(1))
        else:
            v = min(max(p, Fraction(-1)), Fraction(1))
        return ref_value(v, self.t)


def _activation(fn: str, size: int, half: float, t: FixedType) -> Table | Hard:
    return Hard(fn, t) if fn.startswith("hard_") else Table(fn, size, half, t)


class Reference:
    """One recurrent layer, computed sample by sample and step by step."""

    def __init__(self, op: str, attrs: dict[str, Any], weights: dict[str, np.ndarray],
                 types: dict[str, FixedType]) -> None:
        self.op, self.attrs, self.t = op, attrs, types
        self.counts = {"accum": 0, "preact": 0, "state": 0, "state_read": 0, "result": 0}
        q = lambda a, key: [[ref_value(Fraction(float(v)), types[key]) for v in row]  # noqa: E731
                            for row in np.atleast_2d(a)]
        self.W = q(weights["kernel"], "weight")
        self.U = q(weights["recurrent_kernel"], "recurrent_weight")
        self.B = q(weights["bias"], "bias")  # one row, or two (GRU reset_after)
        self.units = len(self.U)
        self.act = _activation(attrs.get("activation", "tanh"), attrs["table_size"],
                               attrs["table_range"], types["table"])
        if op != "SimpleRNN":
            self.ract = _activation(attrs.get("recurrent_activation", "sigmoid"),
                                    attrs["recurrent_table_size"],
                                    attrs["recurrent_table_range"], types["recurrent_table"])

    def cast(self, v: Fraction, key: str) -> Fraction:
        out, over = ref_cast(v, self.t[key])
        self.counts[key] += over
        return out

    def acc(self, j: int, x: list[Fraction] | None, h: list[Fraction] | None,
            biases: list[Fraction]) -> Fraction:
        """A literal accumulator loop for column j: products cast, every addition wrapped."""
        a = self.t["accum"]
        value, exact = Fraction(0), 0
        terms = []
        if x is not None:
            terms += [x[i] * self.W[i][j] for i in range(len(x))]
        if h is not None:
            terms += [h[k] * self.U[k][j] for k in range(self.units)]
        for p in terms:
            value = ref_value(value + ref_value(p, a), a)
            exact += ref_round(p, a.frac, a.rounding)
        for b in biases:
            cb = ref_value(b, a)
            value = ref_value(value + cb, a)
            exact += ref_round(cb, a.frac, a.rounding)
        lo, hi = -(2 ** (a.width - 1)), 2 ** (a.width - 1) - 1
        self.counts["accum"] += not lo <= exact <= hi
        return value

    def step(self, x: list[Fraction], h: list[Fraction], c: list[Fraction]
             ) -> tuple[list[Fraction], list[Fraction]]:
        u, op = self.units, self.op
        b = self.B[0]
        if "state_read" in self.t:  # the step reads the states through this cast
            h = [self.cast(v, "state_read") for v in h]
            c = [self.cast(v, "state_read") for v in c]
        if op == "SimpleRNN":
            return [self.cast(self.act(self.cast(self.acc(j, x, h, [b[j]]), "preact")), "state")
                    for j in range(u)], c
        if op == "LSTM":
            p = [self.cast(self.acc(j, x, h, [b[j]]), "preact") for j in range(4 * u)]
            i = [self.ract(v) for v in p[:u]]
            f = [self.ract(v) for v in p[u:2 * u]]
            g = [self.act(v) for v in p[2 * u:3 * u]]
            o = [self.ract(v) for v in p[3 * u:]]
            c = [self.cast(f[k] * c[k] + i[k] * g[k], "state") for k in range(u)]
            h = [self.cast(o[k] * self.act(c[k]), "state") for k in range(u)]
            return h, c
        if self.attrs.get("reset_after", True):
            b_in, b_rec = self.B
            zr = [self.ract(self.cast(self.acc(j, x, h, [b_in[j], b_rec[j]]), "preact"))
                  for j in range(2 * u)]
            z, r = zr[:u], zr[u:]
            ax = [self.acc(2 * u + k, x, None, [b_in[2 * u + k]]) for k in range(u)]
            ah = [self.acc(2 * u + k, None, h, [b_rec[2 * u + k]]) for k in range(u)]
            hh = [self.act(self.cast(ax[k] + r[k] * ah[k], "preact")) for k in range(u)]
        else:
            zr = [self.ract(self.cast(self.acc(j, x, h, [b[j]]), "preact")) for j in range(2 * u)]
            z, r = zr[:u], zr[u:]
            qh = [self.cast(r[k] * h[k], "state") for k in range(u)]
            hh = [self.act(self.cast(self.acc(2 * u + k, x, qh, [b[2 * u + k]]), "preact"))
                  for k in range(u)]
        return [self.cast(z[k] * h[k] + (1 - z[k]) * hh[k], "state") for k in range(u)], c

    def run(self, xs: np.ndarray) -> np.ndarray:
        batch, steps, _ = xs.shape
        seq = self.attrs.get("return_sequences", False)
        order = range(steps - 1, -1, -1) if self.attrs.get("go_backwards") else range(steps)
        out = np.empty((batch, steps, self.units) if seq else (batch, self.units), dtype=object)
        for n in range(batch):
            h = [Fraction(0)] * self.units
            c = [Fraction(0)] * self.units
            for s, t in enumerate(order):
                h, c = self.step([Fraction(float(v)) for v in xs[n, t]], h, c)
                if seq:  # reverse_sequence: the state after step s goes to y[T-1-s]
                    pos = steps - 1 - s if self.attrs.get("reverse_sequence") else s
                    out[n, pos] = [self.cast(v, "result") for v in h]
            if not seq:
                out[n] = [self.cast(v, "result") for v in h]
        return out


# ------------------------------------------------------------------ cases
MODERATE = {
    "input": "ap_fixed<10,3,AP_RND_CONV,AP_SAT>",
    "weight": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>",
    "recurrent_weight": "ap_fixed<7,1,AP_RND,AP_SAT>",
    "bias": "ap_fixed<8,2>",
    "accum": "ap_fixed<16,6,AP_RND_CONV>",  # 10 fractional bits < 13 of a product: rounds
    "preact": "ap_fixed<9,4,AP_RND,AP_SAT>",
    "state": "ap_fixed<10,3,AP_RND_CONV,AP_SAT>",
    "table": "ap_fixed<10,2,AP_RND_CONV,AP_SAT>",
    "recurrent_table": "ap_ufixed<9,1,AP_RND_CONV,AP_SAT>",
    "result": "ap_fixed<8,2,AP_TRN,AP_SAT>",
}
SATURATING = {  # narrow state/preact, a wrapping accumulator, large weights
    **MODERATE,
    "accum": "ap_fixed<9,3,AP_TRN>",
    "preact": "ap_fixed<6,2,AP_RND,AP_SAT_SYM>",
    "state": "ap_fixed<6,1,AP_TRN,AP_SAT>",
    "result": "ap_fixed<5,1,AP_RND_CONV,AP_WRAP>",
}
WIDE = {  # int64 and Python-int paths of the exact sums (products of 32-bit values)
    "input": "ap_fixed<32,12,AP_RND_CONV,AP_SAT>",
    "weight": "ap_fixed<32,12>",
    "recurrent_weight": "ap_fixed<30,4>",
    "bias": "ap_fixed<32,12>",
    "accum": "ap_fixed<90,30>",
    "preact": "ap_fixed<40,12,AP_RND_CONV,AP_SAT>",
    "state": "ap_fixed<40,12,AP_RND_CONV,AP_SAT>",
    "table": "ap_fixed<24,2,AP_RND_CONV,AP_SAT>",
    "recurrent_table": "ap_ufixed<24,1,AP_RND_CONV,AP_SAT>",
    "result": "ap_fixed<40,12>",
}
HARD = {  # computed activations and a cast where each step reads the state
    **MODERATE,
    "state": "ap_fixed<14,4,AP_RND_CONV,AP_SAT>",
    "state_read": "ap_fixed<5,1,AP_RND_CONV,AP_SAT>",
    "table": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
    "recurrent_table": "ap_ufixed<5,0,AP_RND_CONV,AP_SAT>",
}
VARIANTS = [("SimpleRNN", {}), ("LSTM", {}), ("GRU", {"reset_after": True}),
            ("GRU", {"reset_after": False})]
FLAGS = [(False, False), (True, False), (True, True), (False, True)]


def _weights(rng: np.random.Generator, op: str, n_in: int, units: int, scale: float,
             reset_after: bool) -> dict[str, np.ndarray]:
    g = GATES[op] * units
    return {
        "kernel": rng.normal(0, scale, (n_in, g)),
        "recurrent_kernel": rng.normal(0, scale, (units, g)),
        "bias": rng.normal(0, scale / 2, (2, g) if reset_after else (g,)),
    }


def _case(op: str, extra: dict[str, Any], seq: bool, back: bool, types: dict[str, str],
          scale: float, seed: int) -> tuple[np.ndarray, np.ndarray, Reference, Any]:
    rng = np.random.default_rng(seed)
    steps, n_in, units = 4, 3, 3
    attrs = {"units": units, "return_sequences": seq, "go_backwards": back, **extra,
             "table_size": 64, "table_range": 4.0, "recurrent_table_size": 32,
             "recurrent_table_range": 8.0}
    if op == "SimpleRNN":
        attrs.pop("recurrent_table_size")
        attrs.pop("recurrent_table_range")
    weights = _weights(rng, op, n_in, units, scale, extra.get("reset_after", False))
    keys = [k for k in types if k not in ("input", "result")]
    if op == "SimpleRNN":
        keys.remove("recurrent_table")
    graph = single_op_graph(op, [(steps, n_in)], [types["input"]], types["result"], attrs,
                            weights, {k: types[k] for k in keys})
    x = random_on_grid(rng, fixed(types["input"]), (6, steps, n_in))
    result = run(graph, x)
    ref = Reference(op, attrs, weights, {k: fixed(v) for k, v in types.items()})
    return result.outputs["op"], ref.run(x), ref, result


@pytest.mark.parametrize("op,extra", VARIANTS)
@pytest.mark.parametrize("seq,back", FLAGS)
def test_matches_reference_moderate(op: str, extra: dict, seq: bool, back: bool) -> None:
    actual, expected, ref, result = _case(op, extra, seq, back, MODERATE, 0.6, 1)
    assert_bits(actual, expected)
    for key in ("accum", "preact", "state", "result"):
        assert result.overflows["op"].get(key, 0) == ref.counts[key], key


@pytest.mark.parametrize("op,extra", VARIANTS)
@pytest.mark.parametrize("seq,back", FLAGS[:2])
def test_matches_reference_saturating(op: str, extra: dict, seq: bool, back: bool) -> None:
    actual, expected, ref, result = _case(op, extra, seq, back, SATURATING, 2.5, 2)
    assert_bits(actual, expected)
    for key in ("accum", "preact", "state", "result"):
        assert result.overflows["op"].get(key, 0) == ref.counts[key], key
    # the case must really exercise saturation and wrap-around
    assert ref.counts["preact"] > 0 and ref.counts["accum"] > 0


@pytest.mark.parametrize("op,extra", VARIANTS)
@pytest.mark.parametrize("seq,back", FLAGS[:2])
def test_matches_reference_hard_functions_and_state_read(op: str, extra: dict, seq: bool,
                                                         back: bool) -> None:
    """hard_tanh / hard_sigmoid (QKeras' quantized_tanh / quantized_sigmoid) and the
    state_read cast (QKeras' state_quantizer), against the reference."""
    extra = {**extra, "activation": "hard_tanh", "recurrent_activation": "hard_sigmoid"}
    actual, expected, ref, result = _case(op, extra, seq, back, HARD, 1.5, 5)
    assert_bits(actual, expected)
    for key in ("accum", "preact", "state", "state_read", "result"):
        assert result.overflows["op"].get(key, 0) == ref.counts[key], key
    assert ref.counts["state_read"] > 0  # the read cast really saturates


@pytest.mark.parametrize("op,extra", VARIANTS)
def test_matches_reference_wide(op: str, extra: dict) -> None:
    actual, expected, ref, result = _case(op, extra, True, False, WIDE, 0.8, 4)
    assert_bits(actual, expected)
    assert result.overflows["op"].get("accum", 0) == ref.counts["accum"] == 0


def test_go_backwards_changes_result() -> None:
    """Guards against a flag that is silently ignored."""
    fwd, _, _, _ = _case("LSTM", {}, True, False, MODERATE, 0.6, 3)
    bwd, _, _, _ = _case("LSTM", {}, True, True, MODERATE, 0.6, 3)
    assert not np.array_equal(fwd, bwd)


@pytest.mark.parametrize("op,extra", VARIANTS)
@pytest.mark.parametrize("back", [True, False])
def test_reverse_sequence(op: str, extra: dict, back: bool) -> None:
    """``reverse_sequence`` emits y[t] = h after step T-1-t (Bidirectional's backward half)."""
    actual, expected, _, _ = _case(op, {**extra, "reverse_sequence": True}, True, back,
                                     MODERATE, 0.6, 6)
    assert_bits(actual, expected)
    plain, _, _, _ = _case(op, extra, True, back, MODERATE, 0.6, 6)
    assert_bits(actual, plain[:, ::-1])
    assert not np.array_equal(actual, plain)


@pytest.mark.parametrize("op,extra", VARIANTS)
def test_default_types_through_passes(op: str, extra: dict) -> None:
    """Types filled by the precision passes (auto accumulator: never wraps)."""
    rng = np.random.default_rng(5)
    steps, n_in, units = 3, 2, 2
    g = single_op_graph(op, [(steps, n_in)], ["ap_fixed<16,6>"], "ap_fixed<16,6>",
                        {"units": units, "return_sequences": True, **extra},
                        _weights(rng, op, n_in, units, 0.7, extra.get("reset_after", False)))
    g.nodes[0].attrs["shape"] = (steps, n_in)
    hm = nnfab.convert_graph(g, {"Model": {"Precision": "ap_fixed<16,6>"}})
    node = hm.graph.nodes[-1]
    assert node.precision["state"] == fixed("ap_fixed<16,6>")
    assert node.precision["recurrent_weight"] == node.precision["weight"]
    assert node.precision["table"] == fixed("ap_fixed<18,2,AP_RND_CONV,AP_SAT>")
    x = rng.normal(0, 2, (5, steps, n_in))
    y = hm.predict(x)
    types = dict(node.precision)
    types["result"] = hm.graph.tensors[node.name].type
    in_t = hm.graph.tensors[node.inputs[0]].type
    xq = in_t.quantize(x)
    ref = Reference(op, node.attrs, node.weights, types)
    assert_bits(np.asarray(y), ref.run(xq))
    assert ref.counts["accum"] == 0


def test_unsupported_activation_is_clear() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(GraphError, match="activation 'relu' is not supported; allowed: sigmoid"):
        single_op_graph("SimpleRNN", [(3, 2)], ["ap_fixed<16,6>"], "ap_fixed<16,6>",
                        {"units": 2, "activation": "relu"},
                        _weights(rng, "SimpleRNN", 2, 2, 1, False))


def test_bad_bias_shape_is_clear() -> None:
    rng = np.random.default_rng(0)
    w = _weights(rng, "GRU", 2, 2, 1, reset_after=False)
    with pytest.raises(GraphError, match=r"bias has shape \(6,\), expected \(2, 6\)"):
        single_op_graph("GRU", [(3, 2)], ["ap_fixed<16,6>"], "ap_fixed<16,6>",
                        {"units": 2, "reset_after": True}, w)


def test_saturating_accumulator_rejected() -> None:
    rng = np.random.default_rng(0)
    g = single_op_graph("LSTM", [(3, 2)], ["ap_fixed<16,6>"], "ap_fixed<16,6>",
                        {"units": 2, "table_size": 64, "table_range": 4.0,
                         "recurrent_table_size": 64, "recurrent_table_range": 8.0},
                        _weights(rng, "LSTM", 2, 2, 1, False),
                        {**{k: MODERATE[k] for k in MODERATE if k not in ("input", "result")},
                         "accum": "ap_fixed<20,8,AP_TRN,AP_SAT>"})
    with pytest.raises(PrecisionError, match="saturates"):
        run(g, np.zeros((1, 3, 2)))


@pytest.mark.parametrize("op,extra", VARIANTS)
def test_shapes(op: str, extra: dict) -> None:
    rng = np.random.default_rng(0)
    w = _weights(rng, op, 2, 3, 1, extra.get("reset_after", False))
    for seq, want in ((True, (7, 3)), (False, (3,))):
        g = single_op_graph(op, [(7, 2)], ["ap_fixed<16,6>"], "ap_fixed<16,6>",
                            {"units": 3, "return_sequences": seq, **extra}, w)
        assert g.tensors["op"].shape == want
    with pytest.raises(GraphError, match=r"needs an input \(steps, 2\).*got \(7, 4\)"):
        single_op_graph(op, [(7, 4)], ["ap_fixed<16,6>"], "ap_fixed<16,6>",
                        {"units": 3, **extra}, w)
    with pytest.raises(GraphError, match=r"recurrent_kernel has shape"):
        single_op_graph(op, [(7, 2)], ["ap_fixed<16,6>"], "ap_fixed<16,6>",
                        {"units": 2, **extra}, w)
