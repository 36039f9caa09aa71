"""io_stream rendering: the network as a dataflow of ``hls::stream`` channels.

A tensor of shape (..., C) travels as ``prod(...)`` transactions of C values
(``nnfab::packed<T, C>``), one pixel or feature vector each. Every layer becomes one
function (a dataflow process) reading its input streams and writing its output stream:

- last-axis layers (Dense, activations, softmax, batch norm, merges, concatenation on the
  last axis): a loop over transactions around the io_parallel code of one row;
- windowed layers (convolutions, pooling): ``nnfab::window_stream`` (line buffer) with a
  per-pixel kernel functor; global pooling: ``nnfab::global_pool_stream``;
- Flatten / Reshape / Dropout: ``nnfab::repack_stream``; concatenation on another axis:
  the input streams one after the other;
- SimpleRNN / LSTM / GRU: ``nnfab::recurrent_stream`` (one time step per transaction);
- ``ElementCast`` whose types depend on the channel only: a row op; ops that need the
  whole sample (``MatMul``, ``VertexMask``, ``VertexMean``, a per-element
  ``ElementCast``): every input read into a local array, the io_parallel code, the
  result written back transaction by transaction (``_buffered_body``).

A tensor read by several layers (or also a graph output) is copied by a clone process.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from nnfab.backends.hls.layers import LayerCode, RenderContext, render_layer
from nnfab.backends.hls.recurrent import stream_call
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node
from nnfab.ir.rearrange import REARRANGE_OPS
from nnfab.ir.rows import row_weights

ROW_OPS = ("Dense", "Activation", "BatchNormalization", "Merge", "Dot", "MultiThreshold")
LAST_AXIS_OPS = ("Softmax", "Concatenate")
"""Row ops when their ``axis`` is the last one."""
WINDOW_OPS = ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "Pooling1D", "Pooling2D")
GLOBAL_POOL_OPS = ("GlobalPooling1D", "GlobalPooling2D")
REPACK_OPS = ("Flatten", "Reshape", "Dropout")
RECURRENT_OPS = ("SimpleRNN", "LSTM", "GRU")
"""One time step (row) per transaction; the state is kept across the steps of a sample."""
STRATEGY_OPS = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D")
BUFFERED_OPS = ("MatMul", "VertexMask", "VertexMean", "ElementCast")
"""Ops rendered on the whole sample, buffered (an ``ElementCast`` with per-channel types is
a row op instead)."""


@dataclass
class StreamTensor:
    """How a tensor travels: transactions of ``width`` values, ``n_tx`` of them."""

    name: str
    width: int
    n_tx: int
    pack: str  # typedef of one transaction
    source: str = ""  # the stream its producer writes (or the input port)
    sinks: dict[str, str] = field(default_factory=dict)  # consumer layer -> stream it reads


@dataclass
class StreamNetwork:
    """Everything io_stream adds to a project."""

    codes: list[LayerCode]
    tensors: dict[str, StreamTensor]
    pack_typedefs: list[tuple[str, str, str]]
    functions: list[list[str]]  # C++ function definitions (lines)
    body: list[str]  # statements of the top function
    locals: list[tuple[str, str, int]]  # (pack typedef, stream name, depth)
    ports: dict[str, str]  # graph input / output tensor -> top-level stream parameter


def render_stream(ctx: RenderContext, graph: Graph) -> StreamNetwork:
    """The io_stream network of a typed graph."""
    tensors: dict[str, StreamTensor] = {}
    for node in graph.nodes:
        shape = graph.tensors[node.name].shape
        width = shape[-1] if shape else 1
        tensors[node.name] = StreamTensor(node.name, width, graph.tensors[node.name].size // width,
                                          ctx.ident(node.name, "pack_t"))
    ports: dict[str, str] = {t: ctx.ident(t, "stream") for t in graph.inputs}
    for t in graph.outputs:
        ports[t] = ctx.ident(t, "port")
    net = StreamNetwork([], tensors, [], [], [], [], ports)
    for t in tensors.values():
        net.pack_typedefs.append(
            (t.pack, f"nnfab::packed<{ctx.type_name(t.name)}, {t.width}>",
             f"{t.name}: one transaction ({t.n_tx} per sample)"))
    _wire(ctx, graph, net)
    for k, node in enumerate(graph.nodes):
        if node.op == "Input":
            net.codes.append(render_layer(ctx, node))
        else:
            net.body.append("")
            net.body.append(f"// {node.name} ({node.op})")
            net.body += _render_node(ctx, graph, net, node)
        out = tensors[node.name]
        net.body.append(f"NNFAB_TRACE_STREAM({k}, {out.source}, {out.n_tx}, {out.width});")
        net.body += _clone(ctx, net, out)
    return net


def _wire(ctx: RenderContext, graph: Graph, net: StreamNetwork) -> None:
    """Name the streams: each consumer reads its own; one reader needs no clone."""
    ports = set(net.ports.values())
    declared: set[str] = set()

    def declare(t: StreamTensor, name: str) -> None:
        if name not in ports and name not in declared:
            declared.add(name)
            net.locals.append((t.pack, name, t.n_tx))

    for t in net.tensors.values():
        readers = [n.name for n in graph.nodes if t.name in n.inputs]
        sinks = {r: ctx.ident(t.name, f"to/{r}") for r in readers}
        if t.name in graph.outputs:
            sinks[""] = net.ports[t.name]  # the top-level output
        if t.name in graph.inputs:
            t.source = net.ports[t.name]
            if len(sinks) == 1:
                sinks = dict.fromkeys(sinks, t.source)
        elif len(sinks) == 1:
            t.source = next(iter(sinks.values()))
        else:
            t.source = ctx.ident(t.name, "stream")
        t.sinks = sinks
        declare(t, t.source)
        for name in sinks.values():
            declare(t, name)


def _clone(ctx: RenderContext, net: StreamNetwork, t: StreamTensor) -> list[str]:
    targets = [s for s in t.sinks.values() if s != t.source]
    if not targets:
        return []
    function = ctx.ident(t.name, "clone")
    outs = ", ".join(f"hls::stream<{t.pack}>& {s}" for s in targets)
    lines = [
        f"static void {function}(hls::stream<{t.pack}>& {t.source}, {outs}) {{",
        f"  for (unsigned t = 0; t < {t.n_tx}; t++) {{",
        "    NNFAB_PRAGMA(HLS PIPELINE II=1)",
        f"    const {t.pack} value = {t.source}.read();",
        *(f"    {s}.write(value);" for s in targets),
        "  }",
        "}",
    ]
    net.functions.append(lines)
    return [f"{function}({', '.join([t.source, *targets])});"]


def _render_node(ctx: RenderContext, graph: Graph, net: StreamNetwork, node: Node) -> list[str]:
    out = net.tensors[node.name]
    sources = list(dict.fromkeys(node.inputs))
    ins = [net.tensors[s] for s in sources]
    params = [f"hls::stream<{t.pack}>& {t.sinks[node.name]}" for t in ins]
    params.append(f"hls::stream<{out.pack}>& {out.source}")
    function = ctx.ident(node, "layer")
    call = [f"{function}({', '.join([*(t.sinks[node.name] for t in ins), out.source])});"]
    last_axis = len(graph.tensors[node.name].shape) - 1
    if node.op in ROW_OPS or (node.op in LAST_AXIS_OPS and _axis(node, graph) == last_axis):
        body = _row_body(ctx, net, node, ins, out)
    elif node.op == "Softmax":
        raise BackendError(
            f"layer {node.name!r}: softmax over axis {node.attrs.get('axis')!r}; only the last "
            "axis is supported"
        )
    elif node.op in WINDOW_OPS:
        code = render_layer(ctx, node)
        net.codes.append(code)
        (src,) = ins
        kernel = ctx.ident(node, "kernel")
        net.functions.append([
            f"struct {kernel} {{",
            f"  void operator()(const {ctx.type_name(src.name)}* window, const bool* valid, "
            f"{ctx.type_name(node.name)}* res) const {{",
            "    (void)valid;" if node.op.startswith(("Conv", "Depthwise")) else "",
            *(f"    {line}" for line in code.kernel),
            "  }",
            "};",
        ])
        body = [f"  nnfab::window_stream<{src.pack}, {out.pack}, {code.geometry}>("
                f"{src.sinks[node.name]}, {out.source}, {kernel}());"]
    elif node.op in GLOBAL_POOL_OPS:
        code = render_layer(ctx, node)
        net.codes.append(code)
        (src,) = ins
        body = [f"  nnfab::global_pool_stream<{src.pack}, {out.pack}, {code.config_name}>("
                f"{src.sinks[node.name]}, {out.source}, {code.arrays[0].name});"]
    elif node.op in REPACK_OPS:
        net.codes.append(LayerCode(node, typedefs=[(ctx.type_name(node.name),
                                                    ctx.tensor_type(node.name), "result")]))
        (src,) = ins
        size = graph.tensors[node.name].size
        body = [f"  nnfab::repack_stream<{src.pack}, {out.pack}, {size}>("
                f"{src.sinks[node.name]}, {out.source});"]
    elif node.op in REARRANGE_OPS:  # the sample buffered, then rearranged (nnfab_shape.h)
        code = render_layer(ctx, node)
        net.codes.append(code)
        (src,) = ins
        body = [f"  nnfab::rearrange_stream<{src.pack}, {out.pack}, {code.config_name}>("
                f"{src.sinks[node.name]}, {out.source});"]
    elif node.op == "Concatenate":
        body = _concat_body(ctx, graph, net, node, ins, out)
    elif node.op == "ElementCast" and (row := _per_channel(node, graph)) is not None:
        body = _row_body(ctx, net, row, ins, out)
    elif node.op in BUFFERED_OPS:
        body = _buffered_body(ctx, net, node, ins, out)
    elif node.op in RECURRENT_OPS:  # one time step per transaction (nnfab_recurrent.h)
        (src,) = ins
        code, body = stream_call(ctx, node, src.pack, out.pack, src.sinks[node.name],
                                 out.source)
        net.codes.append(code)
    else:
        raise BackendError(
            f"layer {node.name!r}: op {node.op!r} is not supported with io_stream by the HLS "
            "backend; use io_parallel"
        )
    net.functions.append([
        f"static void {function}({', '.join(params)}) {{",
        *body,
        "}",
    ])
    return call


def _axis(node: Node, graph: Graph) -> int:
    axis = node.attrs.get("axis", -1)
    rank = len(graph.tensors[node.name].shape)
    return axis + rank if isinstance(axis, int) and axis < 0 else axis


def _row_body(ctx: RenderContext, net: StreamNetwork, node: Node, ins: list[StreamTensor],
              out: StreamTensor) -> list[str]:
    """A loop over transactions around the io_parallel code of one row."""
    row_node = node
    if node.op in ("Concatenate", "Softmax"):  # in the row view the last axis is axis 0
        row_node = dataclasses.replace(node, attrs={**node.attrs, "axis": 0 if node.op ==
                                                    "Concatenate" else -1})
    code = render_layer(ctx.rows(), row_node)
    code.node = node
    net.codes.append(code)
    lines = [f"  for (unsigned t = 0; t < {out.n_tx}; t++) {{"]
    if node.op not in STRATEGY_OPS or node.strategy != "Resource":
        ii = node.reuse_factor if node.op in STRATEGY_OPS else 1
        lines.append(f"    NNFAB_PRAGMA(HLS PIPELINE II={ii})")
    for t in ins:
        value = ctx.ident(t.name, "value")
        lines += [
            f"    const {t.pack} {value} = {t.sinks[node.name]}.read();",
            f"    const {ctx.type_name(t.name)}* const {ctx.array(t.name)} = {value}.data;",
        ]
    result = ctx.ident(node, "value")
    lines += [
        f"    {out.pack} {result};",
        f"    {ctx.type_name(node.name)}* const {ctx.array(node.name)} = {result}.data;",
        *(f"    {line}" for line in code.call),
        f"    {out.source}.write({result});",
        "  }",
    ]
    return lines


def _per_channel(node: Node, graph: Graph) -> Node | None:
    """The ElementCast with its per-element weights cut to one row of channels, when every
    row (transaction) has the same types; else None."""
    from nnfab.ir.element_cast import WEIGHTS

    rows = row_weights(node, graph.tensors[node.name].shape, WEIGHTS)
    return None if rows is None else dataclasses.replace(node, weights=rows)


def _buffered_body(ctx: RenderContext, net: StreamNetwork, node: Node,
                   ins: list[StreamTensor], out: StreamTensor) -> list[str]:
    """The whole sample: inputs read into local arrays, the io_parallel code, the result
    written back as transactions."""
    code = render_layer(ctx, node)
    net.codes.append(code)
    lines: list[str] = []
    for t in [*ins, out]:
        array = ctx.array(t.name)
        lines += [f"  {ctx.type_name(t.name)} {array}[{t.n_tx * t.width}];",
                  f"  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable={array} complete)"]
    for t in ins:
        value = ctx.ident(t.name, "value")
        lines += [
            f"  for (unsigned t = 0; t < {t.n_tx}; t++) {{",
            "    NNFAB_PRAGMA(HLS PIPELINE II=1)",
            f"    const {t.pack} {value} = {t.sinks[node.name]}.read();",
            f"    for (unsigned c = 0; c < {t.width}; c++) {ctx.array(t.name)}[t * {t.width} + c]"
            f" = {value}.data[c];",
            "  }",
        ]
    lines += [f"  {line}" for line in code.call]
    result = ctx.ident(node, "value")
    lines += [
        f"  for (unsigned t = 0; t < {out.n_tx}; t++) {{",
        "    NNFAB_PRAGMA(HLS PIPELINE II=1)",
        f"    {out.pack} {result};",
        f"    for (unsigned c = 0; c < {out.width}; c++) {result}.data[c] = "
        f"{ctx.array(out.name)}[t * {out.width} + c];",
        f"    {out.source}.write({result});",
        "  }",
    ]
    return lines


def _concat_body(ctx: RenderContext, graph: Graph, net: StreamNetwork, node: Node,
                 ins: list[StreamTensor], out: StreamTensor) -> list[str]:
    """Concatenation on an axis before the last: whole blocks of transactions in turn."""
    if len(set(node.inputs)) != len(node.inputs):
        raise BackendError(
            f"layer {node.name!r}: io_stream concatenation of the same tensor twice along "
            f"axis {node.attrs.get('axis')!r} is not supported; use io_parallel"
        )
    net.codes.append(LayerCode(node, typedefs=[(ctx.type_name(node.name),
                                                ctx.tensor_type(node.name), "result")]))
    axis = _axis(node, graph)
    outer = math.prod(graph.tensors[node.name].shape[:axis])
    res_t = ctx.type_name(node.name)
    lines = [f"  for (unsigned o = 0; o < {outer}; o++) {{"]
    for t in ins:
        block = math.prod(graph.tensors[t.name].shape[axis:]) // t.width
        lines += [
            f"    for (unsigned t = 0; t < {block}; t++) {{",
            "      NNFAB_PRAGMA(HLS PIPELINE II=1)",
            f"      const {t.pack} value = {t.sinks[node.name]}.read();",
            f"      {out.pack} result;",
            f"      for (unsigned c = 0; c < {t.width}; c++) result[c] = {res_t}(value[c]);",
            f"      {out.source}.write(result);",
            "    }",
        ]
    lines.append("  }")
    return lines
