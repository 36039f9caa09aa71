"""Resource and latency ESTIMATES of an HLS project, without vendor tools.

Analytic, from the typed graph and the project settings; they say what the generated
code asks for, not what a tool will make of it (use ``NnfabModel.build`` for that):

- multipliers: Latency layers multiply by constants, so zero weights cost nothing and
  weights +-2^k are shifts; their ``ceil(nonzero products / ReuseFactor)`` multipliers are
  replicated over every pixel / row the top-level pipeline unrolls. Resource layers read
  weights from a ROM: ``ceil(products / ReuseFactor)`` multipliers (zeros included).
- DSPs per multiplier: none when an operand has at most ``LUT_MULT_BITS`` bits (LUT
  logic), else ``ceil(a / A) * ceil(b / 18)`` for operand widths a >= b (a sign bit added
  to unsigned operands) with A = 27 (UltraScale DSP48E2) or 25 (7-series DSP48E1).
- memory: weight bits; BRAM_18K for Resource ROMs (depth ReuseFactor, width block x
  weight bits), io_stream line buffers and FIFOs, in the cheapest 18 Kb aspect ratio.
- latency / II in clock cycles: a multiply stage, an adder tree of ceil(log2(n)) levels
  and a cast per layer; pixels and rows one after the other where they are not unrolled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nnfab.backends.hls.layers import plan_tiles
from nnfab.backends.hls.writer import ModelLike, ProjectSettings, settings_of, top_mode
from nnfab.devices import part_info
from nnfab.ir import FixedType, Graph, Node
from nnfab.passes.check_reuse_factor import REUSE_OPS, reuse_factor_shape

LUT_MULT_BITS = 4
"""Products with an operand this narrow (or narrower) are assumed to use LUTs, not DSPs."""
BRAM_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
"""(depth, width) configurations of one 18 Kb block RAM."""
FIFO_BRAM_BITS = 1024
"""Stream FIFOs smaller than this are assumed to be shift registers (no BRAM)."""
ROM_BRAM_DEPTH = 64
"""Resource ROMs with fewer words (ReuseFactor) than this are assumed in LUTs (no BRAM)."""
LABEL = "ESTIMATE (analytic, not a synthesis result)"


def bram_18k(depth: int, width: int) -> int:
    """18 Kb blocks for a memory of ``depth`` words of ``width`` bits (best aspect ratio)."""
    if depth <= 0 or width <= 0:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in BRAM_SHAPES)


def dsp_per_multiplier(a: FixedType, b: FixedType, family: str = "xcup") -> int:
    """DSP slices of one a x b product (0: LUT logic)."""
    wa = a.width + (0 if a.signed else 1)
    wb = b.width + (0 if b.signed else 1)
    wa, wb = max(wa, wb), min(wa, wb)
    if min(a.width, b.width) <= LUT_MULT_BITS:
        return 0
    port_a = 25 if family == "xc7" else 27
    return math.ceil(wa / port_a) * math.ceil(wb / 18)


@dataclass
class LayerEstimate:
    """Estimated cost of one layer."""

    name: str
    op: str
    strategy: str = ""
    reuse_factor: int = 1
    products: int = 0  # per sample (all pixels / rows)
    zero_weights: int = 0
    multipliers: int = 0
    dsp: int = 0
    weight_bits: int = 0
    bram_18k: int = 0
    latency_cycles: int = 1
    ii_cycles: int = 1
    note: str = ""


@dataclass
class Estimate:
    """Per-layer and total estimates of a project (see the module docstring)."""

    part: str
    clock_period: float
    mode: str
    layers: list[LayerEstimate] = field(default_factory=list)
    label: str = LABEL

    @property
    def dsp(self) -> int:
        return sum(r.dsp for r in self.layers)

    @property
    def bram_18k(self) -> int:
        return sum(r.bram_18k for r in self.layers)

    @property
    def multipliers(self) -> int:
        return sum(r.multipliers for r in self.layers)

    @property
    def weight_bits(self) -> int:
        return sum(r.weight_bits for r in self.layers)

    @property
    def latency_cycles(self) -> int:
        return sum(r.latency_cycles for r in self.layers)

    @property
    def ii_cycles(self) -> int:
        """Pipeline: the largest reuse factor; dataflow / stream: the slowest layer."""
        return max((r.ii_cycles for r in self.layers), default=1)

    @property
    def latency_ns(self) -> float:
        return self.latency_cycles * self.clock_period

    def available(self) -> dict[str, int] | None:
        info = part_info(self.part)
        return None if info is None else {"DSP": info.dsp, "BRAM_18K": info.bram_18k}

    def fits(self) -> bool | None:
        """Whether the DSP and BRAM estimates fit the part (None: part not in the table)."""
        available = self.available()
        if available is None:
            return None
        return self.dsp <= available["DSP"] and self.bram_18k <= available["BRAM_18K"]

    def totals(self) -> dict[str, Any]:
        available = self.available()
        out: dict[str, Any] = {
            "multipliers": self.multipliers, "dsp": self.dsp, "bram_18k": self.bram_18k,
            "weight_bits": self.weight_bits, "latency_cycles": self.latency_cycles,
            "latency_ns": self.latency_ns, "ii_cycles": self.ii_cycles, "fits": self.fits(),
        }
        if available is not None:
            out["dsp_available"] = available["DSP"]
            out["bram_18k_available"] = available["BRAM_18K"]
            out["dsp_percent"] = 100.0 * self.dsp / available["DSP"]
            out["bram_18k_percent"] = 100.0 * self.bram_18k / available["BRAM_18K"]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "part": self.part, "clock_period": self.clock_period,
                "mode": self.mode, "layers": [asdict(r) for r in self.layers],
                "totals": self.totals()}


def _tree(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 1) + 1)))


def _weighted(graph: Graph, node: Node, mode: str, settings: ProjectSettings,
              family: str) -> LayerEstimate:
    row = LayerEstimate(node.name, node.op, node.strategy, node.reuse_factor)
    w_type = node.precision["weight"]
    x_type = graph.tensors[node.inputs[0]].type
    assert x_type is not None
    kernel = w_type.quantize(np.asarray(node.weights["kernel"], dtype=np.float64))
    n_in, n_out = reuse_factor_shape(node)
    out_shape = graph.tensors[node.name].shape
    invocations = graph.tensors[node.name].size // out_shape[-1]  # pixels / rows
    per_call = n_in * n_out
    nonzero = int(np.count_nonzero(kernel))
    row.zero_weights = kernel.size - nonzero
    row.products = per_call * invocations
    row.weight_bits = kernel.size * w_type.width
    rf = node.reuse_factor
    per_mult = dsp_per_multiplier(x_type, w_type, family)
    if node.strategy == "Resource":
        row.multipliers = math.ceil(per_call / rf)
        row.dsp = row.multipliers * per_mult
        tiles = plan_tiles(n_in, n_out, "Resource", rf, min(settings.max_unroll,
                                                            settings.max_partition))
        if rf >= ROM_BRAM_DEPTH:
            row.bram_18k = sum(bram_18k(rf, math.ceil(t.rows * t.cols / rf) * w_type.width)
                               for t in tiles)
        step = rf + _tree(math.ceil(n_in / rf)) + 2
        row.ii_cycles = invocations * rf
        row.latency_cycles = (invocations - 1) * rf + step
        row.note = ("weights in ROM" if rf >= ROM_BRAM_DEPTH else
                    f"weights in a LUT ROM (fewer than {ROM_BRAM_DEPTH} words)") + (
                    "; zeros not removed")
        return row
    mantissas = np.abs(w_type.to_mantissa(kernel.ravel())).astype(object)
    shifts = sum(1 for m in mantissas if m and (int(m) & (int(m) - 1)) == 0)
    unrolled = invocations if mode == "pipeline" else 1
    row.multipliers = unrolled * math.ceil(nonzero / rf)
    row.dsp = unrolled * math.ceil((nonzero - shifts) / rf) * per_mult
    depth = 1 + _tree(n_in) + 1
    if mode == "pipeline":
        row.ii_cycles = rf
        row.latency_cycles = depth + rf - 1
    else:
        row.ii_cycles = invocations * rf
        row.latency_cycles = (invocations - 1) * rf + depth + rf - 1
    row.note = f"{shifts} power-of-two weights as shifts" if shifts else ""
    return row


RECURRENT_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _recurrent(graph: Graph, node: Node, family: str) -> LayerEstimate:
    """SimpleRNN/LSTM/GRU as the HLS header builds them: one time step after the other,
    every product of a step unrolled (multipliers shared by the steps)."""
    row = LayerEstimate(node.name, node.op, node.strategy, node.reuse_factor)
    kernel = np.asarray(node.weights["kernel"])
    recurrent = np.asarray(node.weights["recurrent_kernel"])
    steps, n_in = graph.tensors[node.inputs[0]].shape[-2:]
    columns = kernel.shape[-1]  # gates x units
    units = recurrent.shape[0]
    per_step = n_in * columns + units * columns
    row.products = steps * per_step
    row.zero_weights = int(np.count_nonzero(kernel == 0) + np.count_nonzero(recurrent == 0))
    row.multipliers = per_step - row.zero_weights
    x_type = graph.tensors[node.inputs[0]].type
    state_type = node.precision.get("state", x_type)
    w_type = node.precision["weight"]
    rw_type = node.precision.get("recurrent_weight", w_type)
    assert x_type is not None and state_type is not None
    nz_kernel = int(np.count_nonzero(kernel))
    nz_recurrent = int(np.count_nonzero(recurrent))
    row.dsp = (nz_kernel * dsp_per_multiplier(x_type, w_type, family)
               + nz_recurrent * dsp_per_multiplier(state_type, rw_type, family))
    row.weight_bits = kernel.size * w_type.width + recurrent.size * rw_type.width
    step_depth = _tree(n_in + units) + 2 + 3  # sum tree, bias/cast, table look-up and state
    row.latency_cycles = int(steps) * step_depth
    row.ii_cycles = row.latency_cycles  # the next sample starts after the last step
    row.note = f"{RECURRENT_GATES.get(node.op, 1)} gate(s) x {units} units, {steps} steps"
    return row


ZOO_OPS = ("Embedding", "Conv1DTranspose", "Conv2DTranspose", "LayerNormalization",
           "MultiThreshold")


def _zoo(graph: Graph, node: Node, family: str) -> LayerEstimate:
    """The fully unrolled renderers of ``backends/hls/zoo.py`` and ``threshold.py``."""
    row = LayerEstimate(node.name, node.op, node.strategy, node.reuse_factor)
    src = graph.tensors[node.inputs[0]]
    out = graph.tensors[node.name]
    x_type = src.type
    assert x_type is not None
    if node.op == "Embedding":  # a ROM read per index: no multiplier
        table = np.asarray(node.weights["embeddings"])
        row.weight_bits = table.size * node.precision["weight"].width
        row.latency_cycles, row.note = 1, f"ROM {table.shape[0]} x {table.shape[1]}"
    elif node.op.endswith("Transpose"):  # every input pixel times every tap and filter
        kernel = np.asarray(node.weights["kernel"])
        w_type = node.precision["weight"]
        row.products = src.size * int(np.prod(kernel.shape[:-2])) * kernel.shape[-1]
        row.zero_weights = int(np.count_nonzero(kernel == 0))
        nonzero = int(np.count_nonzero(kernel)) / max(1, kernel.size)
        row.multipliers = round(row.products * nonzero)
        row.dsp = row.multipliers * dsp_per_multiplier(x_type, w_type, family)
        row.weight_bits = kernel.size * w_type.width
        taps = int(np.prod(kernel.shape[:-1]))
        row.latency_cycles = _tree(taps) + 2
    elif node.op == "LayerNormalization":  # d * r, d * d and norm * gamma per element
        n = src.shape[-1] if src.shape else 1
        row.products = 3 * src.size
        row.multipliers = row.products
        row.dsp = row.multipliers * dsp_per_multiplier(x_type, x_type, family)
        row.weight_bits = 2 * n * node.precision["weight"].width
        row.latency_cycles = 2 * _tree(n) + 6  # mean, variance, table, scale
    else:  # MultiThreshold: comparisons and a level mux, no multiplier
        thresholds = np.asarray(node.weights["thresholds"])
        row.weight_bits = thresholds.size * (x_type.width + 2)
        row.latency_cycles = _tree(thresholds.shape[-1]) + 1
        row.note = f"{out.size * thresholds.shape[-1]} comparisons"
    row.ii_cycles = 1
    return row


def _other(graph: Graph, node: Node, mode: str, family: str) -> LayerEstimate:
    row = LayerEstimate(node.name, node.op)
    shape = graph.tensors[node.name].shape
    width = shape[-1] if shape else 1
    invocations = graph.tensors[node.name].size // width
    depth = {"Softmax": _tree(width) + 4, "Activation": 2, "BatchNormalization": 2}.get(
        node.op, 1)
    if node.op in ("Input", "Flatten", "Reshape", "Dropout"):
        depth = 0
    if node.op == "Input":  # the input's own transfer: no work, but it paces a stream
        row.latency_cycles = 0
        row.ii_cycles = invocations if mode == "stream" else 1
    elif mode == "pipeline" or invocations == 1:
        row.latency_cycles, row.ii_cycles = depth, 1
    else:
        row.latency_cycles, row.ii_cycles = invocations + depth, invocations
    if node.op == "BatchNormalization":
        scale_type = node.precision["weight"]
        x_type = graph.tensors[node.inputs[0]].type
        assert x_type is not None
        row.multipliers = graph.tensors[node.name].size if mode == "pipeline" else width
        row.dsp = row.multipliers * dsp_per_multiplier(x_type, scale_type, family)
        row.weight_bits = 2 * width * scale_type.width
    return row


def _stream_memory(graph: Graph, node: Node, row: LayerEstimate) -> None:
    """io_stream: line buffers of windowed layers and the FIFO of the layer's output."""
    t = graph.tensors[node.name]
    width = t.shape[-1] if t.shape else 1
    assert t.type is not None
    fifo_bits = (t.size // width) * width * t.type.width
    if fifo_bits > FIFO_BRAM_BITS:
        row.bram_18k += bram_18k(t.size // width, width * t.type.width)
    if node.op in ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "Pooling1D",
                   "Pooling2D"):
        src = graph.tensors[node.inputs[0]]
        assert src.type is not None
        rows = (np.shape(node.weights["kernel"])[0] if node.op.startswith(("Conv", "Depth"))
                else node.attrs["pool_size"][0])
        rows = 1 if len(src.shape) == 2 else int(rows)
        line = src.shape[-2] * src.shape[-1] * src.type.width  # one input row
        if rows * line > FIFO_BRAM_BITS:
            row.bram_18k += rows * bram_18k(src.shape[-2], src.shape[-1] * src.type.width)


def estimate(model: ModelLike | Graph, settings: ProjectSettings | None = None) -> Estimate:
    """Analytic per-layer estimates of the HLS project of ``model`` (an NnfabModel, or a
    typed graph with ``settings``)."""
    if isinstance(model, Graph):
        graph, settings = model, settings or ProjectSettings()
    else:
        graph, settings = model.graph, settings or settings_of(model)
    mode = top_mode(graph, settings)
    info = part_info(settings.part)
    family = info.family if info is not None else "xcup"
    result = Estimate(settings.part, settings.clock_period, mode)
    for node in graph.nodes:
        if node.op in RECURRENT_GATES:
            row = _recurrent(graph, node, family)
        elif node.op in ZOO_OPS:
            row = _zoo(graph, node, family)
        elif node.op in REUSE_OPS:
            row = _weighted(graph, node, mode, settings, family)
        else:
            row = _other(graph, node, mode, family)
        if mode == "stream" and node.op != "Input":
            _stream_memory(graph, node, row)
        result.layers.append(row)
    if mode == "pipeline":  # one pipeline: the II is the largest reuse factor
        for row in result.layers:
            if row.op not in RECURRENT_GATES:  # a recurrence cannot start a sample early
                row.ii_cycles = min(row.ii_cycles, max(1, row.reuse_factor))
    return result
