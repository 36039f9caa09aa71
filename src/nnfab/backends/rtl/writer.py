"""Verilog for a whole network: one module per layer plus a top with a valid pipeline.

Top interface (Verilog-2001)::

    module <top> (
      input  wire clk, rst,            // rst: synchronous, active high; clears the valids
      input  wire in_valid,
      input  wire [N_IN*W_IN-1:0] in_data,   // element e in bits [e*W_IN +: W_IN]
      output wire out_valid,
      output wire [N_OUT*W_OUT-1:0] out_data
    );

``in_data`` carries the mantissas of the input type (the input layer's cast from
real numbers happens before the hardware, as in the emulator), ``out_data`` the
mantissas of the output type, both flattened row-major (channels-last). A sample
presented with ``in_valid`` at a rising edge appears on ``out_data`` with
``out_valid`` exactly ``latency`` rising edges later; a new sample may be presented
every ``ii`` edges (``RtlDesign.ii``: 1, or the largest reuse factor of the folded
layers, ``folded.py``). ``in_data`` is registered on entry; every layer registers its
output (reshapes are wires); there is no back-pressure.

Several inputs (GarNet's vertex count, a second sequence) share ``in_data``: input k's
elements follow input k-1's, each element ``W_IN`` bits wide in the *bus type*, the
union of the input types (``bus_type``: it holds every input type exactly), and the top
takes each input's own mantissas out of it (a bit slice: the values are on their own
grids). ``RTLProject.simulate`` packs a list of inputs that way.

The graph may branch (one output): layers are instantiated in topological
order, each starting in the cycle its last input is ready; earlier inputs pass through
delay registers so that all inputs of a layer (a ``Merge``, a ``Concatenate``) carry the
same sample. Folded layers get ``rst`` and their input's valid bit (a tap of the
``valid_q`` shift register).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnfab.backends.rtl import ecp5
from nnfab.backends.rtl.layers import RENDERERS, LayerContext, LayerModule, RtlOptions
from nnfab.errors import BackendError
from nnfab.ir import FixedType, Graph, Namespace, sanitize
from nnfab.ir.types import union_of

log = logging.getLogger(__name__)

GENERATOR_VERSION = "rtl-4"
"""Changes whenever the generated Verilog would change for the same graph."""


@dataclass
class RtlDesign:
    """The generated Verilog and its interface."""

    top: str
    files: dict[str, str]
    layers: list[LayerModule]
    latency: int
    ii: int
    in_type: FixedType
    out_type: FixedType
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    options: RtlOptions
    graph_name: str = ""
    notes: list[str] = field(default_factory=list)
    inputs: list[tuple[str, FixedType, tuple[int, ...]]] = field(default_factory=list)
    """(name, type, shape) of each graph input on ``in_data``, in order (several inputs:
    ``in_type`` is their bus type)."""

    @property
    def n_in(self) -> int:
        return _prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return _prod(self.out_shape)

    @property
    def in_width(self) -> int:
        return self.n_in * self.in_type.width

    @property
    def out_width(self) -> int:
        return self.n_out * self.out_type.width

    def content_hash(self) -> str:
        """Hash of all generated Verilog (names the simulation build)."""
        h = hashlib.sha256(GENERATOR_VERSION.encode())
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + self.files[name].encode() + b"\0")
        return h.hexdigest()[:20]

    def manifest(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "latency": self.latency,
            "ii": self.ii,
            "style": self.options.style,
            "adders_per_stage": self.options.adders_per_stage,
            "input": {"type": str(self.in_type), "shape": list(self.in_shape),
                      "width": self.in_width},
            "output": {"type": str(self.out_type), "shape": list(self.out_shape),
                       "width": self.out_width},
            "files": sorted(self.files),
            "layers": [
                {"name": m.node, "op": m.op, "module": m.module, "latency": m.latency,
                 "ii": m.ii, **m.stats}
                for m in self.layers
            ],
            "hash": self.content_hash(),
            "generator": GENERATOR_VERSION,
        }

    def write(self, directory: str | Path) -> list[Path]:
        """Write the ``.v`` files, ``filelist.f`` and ``design.json``; returns the ``.v`` paths."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in self.files.items():
            path = out / name
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
            paths.append(path)
        (out / "filelist.f").write_text("".join(f"{name}\n" for name in self.files))
        (out / "design.json").write_text(json.dumps(self.manifest(), indent=1) + "\n")
        return paths


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def chain(graph: Graph) -> list[str]:
    """Names of the layers from the single input to the single output, in order."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise BackendError(
            f"a streamed (pixel) RTL design takes one input and one output; graph "
            f"{graph.name!r} has inputs {graph.inputs} and outputs {graph.outputs}"
        )
    path = []
    name = graph.outputs[0]
    while True:
        node = graph.node(name)
        path.append(name)
        if node.op == "Input":
            break
        if len(node.inputs) != 1:
            raise BackendError(
                f"layer {name!r} ({node.op}) has {len(node.inputs)} inputs; the RTL backend "
                "supports single-input layer chains for now"
            )
        name = node.inputs[0]
    path.reverse()
    return path


def dataflow(graph: Graph) -> list[str]:
    """The graph inputs (in order), then the layers the single output depends on, in
    topological order."""
    if len(graph.outputs) != 1:
        raise BackendError(
            f"the RTL backend supports one output for now; graph {graph.name!r} has outputs "
            f"{graph.outputs}"
        )
    needed: set[str] = set()
    stack = [graph.outputs[0]]
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(graph.node(name).inputs)
    unused = [name for name in graph.inputs if name not in needed]
    if unused:
        raise BackendError(f"the output {graph.outputs[0]!r} of graph {graph.name!r} does not "
                           f"depend on its input(s) {unused}")
    return [*graph.inputs, *(n.name for n in graph.nodes
                             if n.name in needed and n.op != "Input")]


def bus_type(types: list[FixedType]) -> FixedType:
    """The type of the input bus: the narrowest holding each input type exactly."""
    return union_of(types)


def generate_parallel(graph: Graph, options: RtlOptions | None = None, top: str | None = None
                      ) -> RtlDesign:
    """Render every layer the output depends on, and the top module (a vector in, a
    vector out; pixel streams are ``stream.generate_stream``, ``design.generate`` picks)."""
    options = options or RtlOptions()
    graph.validate()
    names = Namespace()
    top_name = names(top or sanitize(graph.name or "nnfab_top"))
    order = dataflow(graph)
    n_inputs = len(graph.inputs)
    in_types = [graph.tensors[name].type for name in graph.inputs]
    out_t = graph.tensors[order[-1]].type
    if any(t is None for t in in_types) or out_t is None:
        raise BackendError("the graph has untyped tensors; run the precision passes first")
    inputs = [(name, graph.tensors[name].type, graph.tensors[name].shape)
              for name in graph.inputs]
    in_t = in_types[0] if n_inputs == 1 else bus_type(in_types)  # type: ignore[arg-type]
    in_shape = graph.tensors[order[0]].shape if n_inputs == 1 else (
        sum(graph.tensors[name].size for name in graph.inputs),)
    modules: list[LayerModule] = []
    ready = dict.fromkeys(graph.inputs, 1)  # cycle (after in_valid) each tensor holds the sample
    starts: dict[str, int] = {}
    for name in order[n_inputs:]:
        node = graph.node(name)
        renderer = RENDERERS.get(node.op)
        if renderer is None:
            raise BackendError(
                f"layer {name!r}: op {node.op!r} is not supported by the RTL backend yet; "
                f"supported: {', '.join(sorted(RENDERERS))}"
            )
        for t in (*node.inputs, node.name):
            if graph.tensors[t].type is None:
                raise BackendError(f"layer {name!r}: tensor {t!r} has no fixed-point type")
        ctx = LayerContext(node, graph, names(f"{top_name}_{name}"), options, folding=True)
        module = renderer(ctx)
        modules.append(module)
        starts[name] = max(ready[t] for t in node.inputs)
        ready[name] = starts[name] + module.latency
        log.debug("rendered %s (%s): latency %d, %s", name, node.op, module.latency,
                  module.stats)
    latency = ready[order[-1]]
    ii = max((m.ii for m in modules), default=1)
    files = {f"{m.module}.v": m.text for m in modules}
    files[f"{top_name}.v"] = _top_text(graph, top_name, order, modules, starts, latency, ii,
                                       in_t)
    ecp5.add_cell_models(files)
    return RtlDesign(
        top=top_name, files=files, layers=modules, latency=latency, ii=ii, in_type=in_t,
        out_type=out_t, in_shape=in_shape,
        out_shape=graph.tensors[order[-1]].shape, options=options, graph_name=graph.name,
        inputs=inputs,  # type: ignore[arg-type]
    )


def _input_comments(graph: Graph, bus: FixedType) -> list[str]:
    """One comment line per input when several share ``in_data``."""
    if len(graph.inputs) == 1:
        return []
    lines, offset = [], 0
    for name in graph.inputs:
        tensor = graph.tensors[name]
        lines.append(f"//   input {name!r}: elements {offset}..{offset + tensor.size - 1}, "
                     f"{tensor.type} on the bus type {bus}")
        offset += tensor.size
    return lines


def _top_text(graph: Graph, top: str, order: list[str], modules: list[LayerModule],
              starts: dict[str, int], latency: int, ii: int, in_t: FixedType) -> str:
    out_t = graph.tensors[order[-1]].type
    n_in = sum(graph.tensors[name].size for name in graph.inputs)
    n_out = graph.tensors[order[-1]].size
    assert out_t is not None
    w_in, w_out = n_in * in_t.width, n_out * out_t.width
    local = Namespace()
    for reserved in ("clk", "rst", "in_valid", "in_data", "out_valid", "out_data", "valid_q"):
        local(reserved)
    ready = {**dict.fromkeys(graph.inputs, 1),
             **{m.node: starts[m.node] + m.latency for m in modules}}
    delays: dict[str, int] = {}  # longest delay line each tensor needs
    for m in modules:
        for t in graph.node(m.node).inputs:
            delays[t] = max(delays.get(t, 0), starts[m.node] - ready[t])
    kind = "fully parallel logic (II = 1)" if ii == 1 else (
        f"parallel logic with folded layers (II = {ii}: at most one sample every {ii} cycles)")
    lines = [
        f"// {top}: network {graph.name!r} as {kind}.",
        f"// Latency: {latency} clock cycles from in_valid to out_valid.",
        f"// in_data:  {n_in} x {in_t} (mantissas), element e in bits [e*{in_t.width} +: "
        f"{in_t.width}]",
        *_input_comments(graph, in_t),
        f"// out_data: {n_out} x {out_t} (mantissas), element e in bits [e*{out_t.width} +: "
        f"{out_t.width}]",
        "// Layers (latency in cycles; the cycle after in_valid in which each one starts):",
        f"//   input register {', '.join(repr(n) for n in graph.inputs)}: 1",
        *[f"//   {m.node!r} ({m.op}) -> module {m.module}: {m.latency}, from cycle "
          f"{starts[m.node]}" + (f", II {m.ii}" if m.ii > 1 else "") for m in modules],
        f"module {top} (",
        "  input  wire clk,",
        "  input  wire rst,",
        "  input  wire in_valid,",
        f"  input  wire [{w_in - 1}:0] in_data,",
        "  output wire out_valid,",
        f"  output wire [{w_out - 1}:0] out_data",
        ");",
    ]
    wires: dict[str, str] = {}
    shifts: list[str] = []
    taps: dict[tuple[str, int], str] = {}

    def declared(tensor: str, wire: str, width: int) -> None:
        """Record ``wire`` as the tensor's value and declare its delay line."""
        wires[tensor] = wire
        prev = wire
        for d in range(1, delays.get(tensor, 0) + 1):
            reg = local(f"{wire}_d{d}")
            lines.append(f"  reg  [{width - 1}:0] {reg};")
            shifts.append(f"    {reg} <= {prev};")
            taps[(tensor, d)] = prev = reg

    first = local(order[0] + "_q" if len(graph.inputs) == 1 else "in_q")
    lines += [
        f"  reg [{w_in - 1}:0] {first};",
        f"  reg [{latency - 1}:0] valid_q;  // valid_q[k]: in_valid k + 1 edges ago",
    ]
    if len(graph.inputs) == 1:
        declared(order[0], first, w_in)
    else:  # each input's own mantissas, sliced from the bus type's
        offset = 0
        for name in graph.inputs:
            t = graph.tensors[name].type
            size = graph.tensors[name].size
            assert t is not None
            shift = in_t.frac - t.frac
            parts = [f"{first}[{(offset + e) * in_t.width + shift} +: {t.width}]"
                     for e in range(size)]
            wire = local(f"{name}_x")
            lines.append(f"  wire [{size * t.width - 1}:0] {wire} = "
                         + ("{" + ", ".join(reversed(parts)) + "}" if size > 1 else parts[0])
                         + ";")
            declared(name, wire, size * t.width)
            offset += size
    for m in modules:
        node = graph.node(m.node)
        wire = local(f"{m.node}_y")
        parts = []
        for t in node.inputs:
            d = starts[m.node] - ready[t]
            parts.append(taps[(t, d)] if d > 0 else wires[t])
        x = parts[0] if len(parts) == 1 else "{" + ", ".join(reversed(parts)) + "}"
        lines.append(f"  wire [{m.out_width - 1}:0] {wire};")
        ports = ".clk(clk), "
        if m.valid_in:
            ports += f".rst(rst), .x_valid(valid_q[{starts[m.node] - 1}]), "
        lines.append(f"  {m.module} u_{wire} ({ports}.x({x}), .y({wire}));")
        declared(m.node, wire, m.out_width)
    lines += [
        "  always @(posedge clk) begin",
        f"    {first} <= in_data;",
        *shifts,
        "    if (rst)",
        f"      valid_q <= {latency}'b0;",
        "    else",
        "      valid_q <= " + (f"{{valid_q[{latency - 2}:0], in_valid}};" if latency > 1
                               else "in_valid;"),
        "  end",
        f"  assign out_data = {wires[order[-1]]};",
        f"  assign out_valid = valid_q[{latency - 1}];",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"
