"""Per-op renderers: what each layer contributes to the HLS project.

A renderer is a function ``(ctx, node) -> LayerCode`` registered with
``@renderer("Op")``. It names its typedefs, fills a config struct (constants and
type aliases read by the C++ template in ``include/nnfab``), lists its constant
arrays (weights, tables; taken from the same quantization and ``nnfab.ir.tables``
functions as the emulator) and writes the call in the top function. Arithmetic is
defined by docs/semantics.md; the C++ templates mirror it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nnfab.backends.hls.cpp import ConstArray, double_literal, exact_type
from nnfab.errors import BackendError, ConfigError
from nnfab.ir import FixedType, Graph, Namespace, Node
from nnfab.ir import activation_rules as rules
from nnfab.ir.ops import ACTIVATIONS, GLOBAL_POOL_MODES, POOL_MODES
from nnfab.ir.tables import (
    activation_table,
    pool_scale,
    pool_scale_type,
    reciprocal,
    softmax_exp_table,
    softmax_inv_table,
)

log = logging.getLogger(__name__)


@dataclass
class ConfigField:
    """One member of a layer's config struct."""

    name: str
    ctype: str  # "unsigned", "int", "bool", "double" or "type" (a typedef)
    value: str  # a literal, or the aliased type name


@dataclass
class LayerCode:
    """What one layer adds to the generated project."""

    node: Node
    includes: list[str] = field(default_factory=list)
    typedefs: list[tuple[str, FixedType, str]] = field(default_factory=list)
    """(typedef name, type, role) -- the first one is the layer's result type."""
    config_name: str | None = None
    config: list[ConfigField] = field(default_factory=list)
    arrays: list[ConstArray] = field(default_factory=list)
    call: list[str] = field(default_factory=list)
    extra_configs: list[tuple[str, list[ConfigField]]] = field(default_factory=list)
    """More config structs (name, fields), e.g. one per block of a split layer."""
    kernel: list[str] = field(default_factory=list)
    """Windowed layers (io_stream): statements computing one output pixel ``res`` from
    ``window`` and ``valid`` (see nnfab_stream.h)."""
    geometry: str | None = None
    """Windowed layers: the config struct holding the window geometry."""


DEFAULT_MAX_UNROLL = 4096
"""Default of ``ProjectSettings.max_unroll``: the vendor tools stop unrolling a loop whose
body grows beyond a few thousand operations (Vivado HLS XFORM 203-504, Vitis HLS 200-1471)."""
DEFAULT_MAX_PARTITION = 4096
"""Default of ``ProjectSettings.max_partition``: the largest array partitioned into single
elements (Vivado HLS ``config_array_partition -maximum_size``)."""


class RenderContext:
    """Names, types and size limits shared by the renderers of one project."""

    def __init__(self, graph: Graph, ns: Namespace, max_unroll: int = DEFAULT_MAX_UNROLL,
                 max_partition: int = DEFAULT_MAX_PARTITION) -> None:
        self.graph = graph
        self.ns = ns
        self.max_unroll = max_unroll
        self.max_partition = max_partition
        self.warned: set[str] = set()
        """Tensors already warned about (one warning each per project)."""

    @property
    def max_block(self) -> int:
        """Most products one function may unroll (and weights one array may spread over)."""
        return min(self.max_unroll, self.max_partition)

    def ident(self, node: Node | str, role: str) -> str:
        """A unique C++ identifier for ``role`` of a layer (``fc1`` + ``w`` -> ``fc1_w``)."""
        name = node.name if isinstance(node, Node) else node
        return self.ns(f"{name}/{role}")

    def array(self, tensor: str) -> str:
        """The C++ array holding a tensor's values."""
        return self.ident(tensor, "out")

    def type_name(self, tensor: str) -> str:
        """The typedef of a tensor's element type."""
        return self.ident(tensor, "t")

    def tensor_type(self, tensor: str) -> FixedType:
        t = self.graph.tensors[tensor].type
        if t is None:
            raise BackendError(f"tensor {tensor!r} has no fixed-point type; run the passes first")
        return t

    def size(self, tensor: str) -> int:
        return self.graph.tensors[tensor].size

    def shape(self, tensor: str) -> tuple[int, ...]:
        return self.graph.tensors[tensor].shape

    def rows(self) -> RenderContext:
        """A view of this context in which every tensor is one row (its last axis): the
        code it renders handles one io_stream transaction."""
        return RowContext(self)


class RowContext(RenderContext):
    """Tensors seen as their last axis only (one io_stream transaction)."""

    def __init__(self, base: RenderContext) -> None:
        super().__init__(base.graph, base.ns, base.max_unroll, base.max_partition)
        self.warned = base.warned

    def shape(self, tensor: str) -> tuple[int, ...]:
        return self.graph.tensors[tensor].shape[-1:]

    def size(self, tensor: str) -> int:
        return self.graph.tensors[tensor].shape[-1]


Renderer = Callable[[RenderContext, Node], LayerCode]
RENDERERS: dict[str, Renderer] = {}


def renderer(op: str) -> Callable[[Renderer], Renderer]:
    """Decorator: the renderer of IR op ``op``."""

    def wrap(fn: Renderer) -> Renderer:
        if op in RENDERERS:
            raise RuntimeError(f"two HLS renderers registered for op {op!r}")
        RENDERERS[op] = fn
        return fn

    return wrap


def render_layer(ctx: RenderContext, node: Node) -> LayerCode:
    fn = RENDERERS.get(node.op)
    if fn is None:
        raise BackendError(
            f"layer {node.name!r}: the HLS backend cannot generate op {node.op!r} yet; "
            f"supported ops: {', '.join(sorted(RENDERERS))}"
        )
    return fn(ctx, node)


# ------------------------------------------------------------------ helpers
def _precision(node: Node, key: str) -> FixedType:
    try:
        return node.precision[key]
    except KeyError:
        raise BackendError(
            f"layer {node.name!r} ({node.op}) has no {key!r} precision; run the precision "
            "passes (nnfab.passes) before generating HLS code"
        ) from None


def _attr(node: Node, key: str) -> object:
    try:
        return node.attrs[key]
    except KeyError:
        raise BackendError(
            f"layer {node.name!r} ({node.op}) has no {key!r} attribute; run the precision "
            "passes (nnfab.passes) before generating HLS code"
        ) from None


def _rows_call(rows: int, row_in: int, row_out: int, call: str | list[str], src: str,
               dst: str) -> list[str]:
    """``call`` (one statement, or lines) on each of ``rows`` slices of length row_in /
    row_out (the last axis); ``{src}`` and ``{dst}`` in it are the slices."""
    lines = [call + ";"] if isinstance(call, str) else call
    if rows == 1:
        return [line.format(src=src, dst=dst) for line in lines]
    return [
        f"for (unsigned r = 0; r < {rows}; r++) {{",
        *("  " + line.format(src=f"{src} + r * {row_in}", dst=f"{dst} + r * {row_out}")
          for line in lines),
        "}",
    ]


def _result_typedef(ctx: RenderContext, node: Node) -> tuple[str, FixedType, str]:
    return (ctx.type_name(node.name), ctx.tensor_type(node.name), "result")


def _table_array(ctx: RenderContext, node: Node, role: str, type_name: str, table) -> ConstArray:
    return ConstArray(
        ctx.ident(node, role), type_name, table.type, np.asarray(table.values, dtype=np.float64),
        comment=(f"{table.kind} table of {node.name!r}: {table.size} entries, "
                 f"step 2^{table.step_log2}"),
    )


# ------------------------------------------------------------------ ops
@renderer("Input")
def render_input(ctx: RenderContext, node: Node) -> LayerCode:
    return LayerCode(node, typedefs=[_result_typedef(ctx, node)])


# ------------------------------------------------------- product matrices
@dataclass(frozen=True)
class Tile:
    """A block of a layer's product matrix: rows (inputs) x cols (outputs)."""

    row0: int
    rows: int
    col0: int
    cols: int


def multipliers(n_in: int, n_out: int, reuse_factor: int) -> int:
    """Multipliers of an n_in x n_out product matrix: ceil(n_in * n_out / reuse_factor)."""
    return -(-n_in * n_out // reuse_factor)


def plan_tiles(n_in: int, n_out: int, strategy: str, reuse_factor: int,
               max_block: int, split_rows: bool = True) -> list[Tile]:
    """Split a product matrix so that no block unrolls more than ``max_block`` products.

    Latency unrolls all products of a block; Resource unrolls ``multipliers(...)`` per step
    of its reuse loop. Row splits keep multiples of the reuse factor and column splits
    multiples of ``reuse_factor / n_in``, so valid reuse factors stay valid per block.
    With ``split_rows=False`` only the columns (outputs) are split, down to one column.
    """
    rf = reuse_factor if strategy == "Resource" else 1
    if multipliers(n_in, n_out, rf) <= max_block:
        return [Tile(0, n_in, 0, n_out)]
    rows = n_in if (-(-n_in // rf) <= max_block or not split_rows) else rf * max_block
    cols = max(1, max_block * rf // rows)
    if rf > n_in and rf % n_in == 0:
        d = rf // n_in
        cols = max(d, cols // d * d)
    cols = min(cols, n_out)
    return [
        Tile(r0, min(rows, n_in - r0), c0, min(cols, n_out - c0))
        for c0 in range(0, n_out, cols)
        for r0 in range(0, n_in, rows)
    ]


def _product_fields(n_in: int, n_out: int, node: Node, depthwise_mult: int = 0
                    ) -> list[ConfigField]:
    """Config fields of a product matrix (see nnfab_dense.h)."""
    rf = node.reuse_factor
    tag = "resource_tag" if node.strategy == "Resource" else "latency_tag"
    return [
        ConfigField("n_in", "unsigned", str(n_in)),
        ConfigField("n_out", "unsigned", str(n_out)),
        ConfigField("reuse_factor", "unsigned", str(rf)),
        ConfigField("block_factor", "unsigned", str(multipliers(n_in, n_out, rf))),
        ConfigField("depthwise", "bool", "true" if depthwise_mult else "false"),
        ConfigField("mult", "unsigned", str(max(depthwise_mult, 1))),
        ConfigField("strategy", "type", f"nnfab::{tag}"),
    ]


def _weight_order(matrix: np.ndarray, strategy: str) -> np.ndarray:
    """A (n_in, n_out) block in the order the strategy reads it (Resource: transposed)."""
    return matrix.T.copy() if strategy == "Resource" else matrix


def _fused_activation(node: Node) -> str:
    activation = node.attrs.get("activation", "linear")
    if activation not in ("linear", "relu"):
        raise BackendError(
            f"layer {node.name!r}: fused activation {activation!r} is not supported by the HLS "
            "backend (linear or relu)"
        )
    return activation


def _log_tiles(node: Node, ctx: RenderContext, tiles: list[Tile], n_in: int, n_out: int) -> None:
    log.info(
        "layer %r: %d x %d products split into %d blocks of at most %d (parallel) products, "
        "one sub-function each; to change the split set max_unroll / max_partition "
        "(now %d / %d) of the project settings (NnfabModel.hls_settings)",
        node.name, n_in, n_out, len(tiles), ctx.max_block, ctx.max_unroll, ctx.max_partition,
    )


def _warn_unsplittable(node: Node, ctx: RenderContext, per_output: int, what: str) -> None:
    log.warning(
        "layer %r: one output alone needs %d parallel products (%s), more than max_unroll / "
        "max_partition = %d / %d allow, and %s cannot be split further; the vendor tool may "
        "refuse to unroll it. Use Strategy Resource with a larger ReuseFactor (valid values: "
        "nnfab.valid_reuse_factors(layer)) or raise max_unroll / max_partition in "
        "NnfabModel.hls_settings",
        node.name, per_output, what, ctx.max_unroll, ctx.max_partition, node.op,
    )


@renderer("Dense")
def render_dense(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    w_type, b_type, accum = (_precision(node, k) for k in ("weight", "bias", "accum"))
    activation = _fused_activation(node)
    kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
    n_in, n_out = kernel.shape
    rows = ctx.size(src) // n_in
    names = {k: ctx.ident(node, k) for k in ("weight_t", "bias_t", "accum_t", "config", "w", "b")}
    code = LayerCode(node, includes=["nnfab_dense.h"], config_name=names["config"])
    code.typedefs = [
        _result_typedef(ctx, node),
        (names["weight_t"], w_type, "weight"),
        (names["bias_t"], b_type, "bias"),
        (names["accum_t"], accum, "accum"),
    ]
    types = [
        ConfigField("accum_t", "type", names["accum_t"]),
        ConfigField("weight_t", "type", names["weight_t"]),
        ConfigField("bias_t", "type", names["bias_t"]),
    ]
    code.config = [
        *_product_fields(n_in, n_out, node),
        ConfigField("relu", "bool", "true" if activation == "relu" else "false"),
        *types,
    ]
    bias = b_type.quantize(np.asarray(node.weights["bias"], dtype=np.float64))
    code.arrays = [ConstArray(names["b"], names["bias_t"], b_type, bias,
                              comment=f"bias of {node.name!r}")]
    weights = w_type.quantize(kernel)
    order = "(n_out, n_in)" if node.strategy == "Resource" else "(n_in, n_out)"
    src_t, dst_t = ctx.type_name(src), ctx.type_name(node.name)
    tiles = plan_tiles(n_in, n_out, node.strategy, node.reuse_factor, ctx.max_block)
    if len(tiles) == 1:
        code.arrays.insert(0, ConstArray(
            names["w"], names["weight_t"], w_type, _weight_order(weights, node.strategy),
            comment=f"kernel of {node.name!r}, ({n_in}, {n_out}) stored {order} row-major"))
        call: str | list[str] = (
            f"nnfab::dense<{src_t}, {dst_t}, {names['config']}>"
            f"({{src}}, {{dst}}, {names['w']}, {names['b']})"
        )
    else:
        _log_tiles(node, ctx, tiles, n_in, n_out)
        acc = ctx.ident(node, "acc")
        call = [  # lines for str.format: braces doubled
            "{{",
            f"  {names['accum_t']} {acc}[{n_out}];",
            f"  NNFAB_PRAGMA(HLS ARRAY_PARTITION variable={acc} complete)",
            f"  nnfab::bias_init<{names['config']}>({acc}, {names['b']});",
        ]
        for k, tile in enumerate(tiles):
            config = ctx.ident(node, f"config_block{k}")
            w_name = ctx.ident(node, f"w_block{k}")
            block = weights[tile.row0:tile.row0 + tile.rows, tile.col0:tile.col0 + tile.cols]
            code.arrays.insert(k, ConstArray(
                w_name, names["weight_t"], w_type, _weight_order(block, node.strategy),
                comment=(f"kernel of {node.name!r}, block {k}: rows {tile.row0}..+{tile.rows}, "
                         f"columns {tile.col0}..+{tile.cols}, stored {order} row-major")))
            code.extra_configs.append((config, [
                *_product_fields(tile.rows, tile.cols, node), *types]))
            call.append(f"  nnfab::mac_block<{src_t}, {config}>({{src}} + {tile.row0}, "
                        f"{acc} + {tile.col0}, {w_name});")
        call += [f"  nnfab::result_cast<{dst_t}, {names['config']}>({acc}, {{dst}});", "}}"]
    code.call = _rows_call(rows, n_in, n_out, call, ctx.array(src), ctx.array(node.name))
    return code


def _elementwise(ctx: RenderContext, node: Node, function: str, fields: list[ConfigField],
                 typedefs: list[tuple[str, FixedType, str]], extra_args: str = "") -> LayerCode:
    (src,) = node.inputs
    config = ctx.ident(node, "config")
    code = LayerCode(node, includes=["nnfab_activation.h"], config_name=config)
    code.typedefs = [_result_typedef(ctx, node), *typedefs]
    code.config = [ConfigField("n_in", "unsigned", str(ctx.size(src))), *fields]
    code.call = [
        f"nnfab::{function}<{ctx.type_name(src)}, {ctx.type_name(node.name)}, {config}>"
        f"({ctx.array(src)}, {ctx.array(node.name)}{extra_args});"
    ]
    return code


@renderer("Activation")
def render_activation(ctx: RenderContext, node: Node) -> LayerCode:
    fn = node.attrs.get("function")
    if fn == "linear":
        return _elementwise(ctx, node, "linear", [], [])
    if fn == "relu":
        max_value = node.attrs.get("max_value")
        if max_value is None:
            return _elementwise(ctx, node, "relu", [], [])
        max_t = ctx.ident(node, "max_t")
        return _elementwise(
            ctx, node, "relu_max",
            [ConfigField("max_t", "type", max_t),
             ConfigField("max_value", "double", double_literal(float(max_value)))],
            [(max_t, exact_type(float(max_value)), "max_value (exact)")],
        )
    if fn in ("leaky_relu", "hard_sigmoid"):
        param = _precision(node, "param")
        param_t = ctx.ident(node, "param_t")
        keys = ("alpha",) if fn == "leaky_relu" else ("slope", "offset")
        fields = [ConfigField("param_t", "type", param_t)]
        for key in keys:
            value = float(param.quantize(np.array([float(_attr(node, key))]))[0])
            fields.append(ConfigField(key, "double", double_literal(value)))
        return _elementwise(ctx, node, fn, fields, [(param_t, param, "param")])
    if fn in ("prelu", "thresholded_relu", "hard_tanh") or fn in rules.NEGATIVE_TABLE_FUNCTIONS:
        return _render_extra_activation(ctx, node, fn)
    if fn in rules.FULL_TABLE_FUNCTIONS:
        table = activation_table(fn, node.attrs, _precision(node, "table"), layer=node.name)
        table_t = ctx.ident(node, "table_t")
        array = _table_array(ctx, node, "table", table_t, table)
        code = _elementwise(
            ctx, node, "table_activation",
            [ConfigField("table_size", "unsigned", str(table.size)),
             ConfigField("table_base", "int", str(table.base)),
             ConfigField("step_log2", "int", str(table.step_log2)),
             ConfigField("table_t", "type", table_t)],
            [(table_t, table.type, "table")],
            extra_args=f", {array.name}",
        )
        code.arrays = [array]
        return code
    raise BackendError(
        f"layer {node.name!r}: activation function {fn!r} is not supported by the HLS backend "
        f"({', '.join(ACTIVATIONS)})"
    )


def _render_extra_activation(ctx: RenderContext, node: Node, fn: str) -> LayerCode:
    """prelu, thresholded_relu, hard_tanh and elu / celu / selu (``nnfab_activation_extra.h``)."""
    if fn == "thresholded_relu":
        theta = float(_attr(node, "theta"))
        theta_t = ctx.ident(node, "theta_t")
        code = _elementwise(ctx, node, "thresholded_relu",
                            [ConfigField("theta_t", "type", theta_t),
                             ConfigField("theta", "double", double_literal(theta))],
                            [(theta_t, exact_type(theta), "theta (exact)")])
    elif fn == "hard_tanh":
        try:
            lo, hi = rules.clip_bounds(node.attrs, node.name)
        except ConfigError as e:
            raise BackendError(str(e)) from None
        min_t, max_t = ctx.ident(node, "min_t"), ctx.ident(node, "max_t")
        code = _elementwise(ctx, node, "hard_tanh",
                            [ConfigField("min_t", "type", min_t),
                             ConfigField("min_val", "double", double_literal(lo)),
                             ConfigField("max_t", "type", max_t),
                             ConfigField("max_val", "double", double_literal(hi))],
                            [(min_t, exact_type(lo), "min_val (exact)"),
                             (max_t, exact_type(hi), "max_val (exact)")])
    elif fn == "prelu":
        param = _precision(node, "param")
        param_t = ctx.ident(node, "param_t")
        (src,) = node.inputs
        try:
            alpha = rules.broadcast_alpha(node.weights["alpha"], ctx.shape(src), node.name)
        except (ConfigError, KeyError) as e:
            raise BackendError(f"layer {node.name!r} (prelu): {e}") from None
        array = ConstArray(ctx.ident(node, "alpha"), param_t, param, param.quantize(alpha),
                           comment=f"prelu slopes of {node.name!r}, one per element")
        code = _elementwise(ctx, node, "prelu", [ConfigField("param_t", "type", param_t)],
                            [(param_t, param, "param")], extra_args=f", {array.name}")
        code.arrays = [array]
    else:  # elu, celu, selu: the table for x < 0
        table = activation_table(fn, node.attrs, _precision(node, "table"), layer=node.name)
        table_t = ctx.ident(node, "table_t")
        array = _table_array(ctx, node, "table", table_t, table)
        fields = [ConfigField("table_size", "unsigned", str(table.size)),
                  ConfigField("table_base", "int", str(table.base)),
                  ConfigField("step_log2", "int", str(table.step_log2)),
                  ConfigField("table_t", "type", table_t)]
        typedefs = [(table_t, table.type, "table")]
        function = "negative_table_activation"
        scale = rules.linear_scale(fn)
        if scale is not None:
            param = _precision(node, "param")
            param_t = ctx.ident(node, "param_t")
            value = float(param.quantize(np.array([scale]))[0])
            fields += [ConfigField("param_t", "type", param_t),
                       ConfigField("scale", "double", double_literal(value))]
            typedefs.append((param_t, param, "param"))
            function = "scaled_negative_table_activation"
        code = _elementwise(ctx, node, function, fields, typedefs, extra_args=f", {array.name}")
        code.arrays = [array]
    code.includes = ["nnfab_activation_extra.h"]
    return code


@renderer("Softmax")
def render_softmax(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    axis = node.attrs.get("axis", -1)
    if axis not in (-1, len(ctx.shape(src)) - 1):
        raise BackendError(f"layer {node.name!r}: softmax over axis {axis!r}; only -1 is supported")
    n = ctx.shape(src)[-1]
    rows = ctx.size(src) // n
    exp_type, inv_type, sum_type = (
        _precision(node, k) for k in ("exp_table", "inv_table", "exp_sum")
    )
    exp = softmax_exp_table(node.attrs, exp_type, layer=node.name)
    inv = softmax_inv_table(node.attrs, inv_type, layer=node.name)
    extra = math.ceil(math.log2(max(n, 2)))  # any sum of n entries fits exactly
    exact = FixedType(exp_type.width + extra, exp_type.integer + extra, exp_type.signed)
    names = {k: ctx.ident(node, k) for k in ("exp_table_t", "exp_exact_t", "exp_sum_t",
                                              "inv_table_t", "config")}
    exp_array = _table_array(ctx, node, "exp_table", names["exp_table_t"], exp)
    inv_array = _table_array(ctx, node, "inv_table", names["inv_table_t"], inv)
    code = LayerCode(node, includes=["nnfab_activation.h"], config_name=names["config"])
    code.typedefs = [
        _result_typedef(ctx, node),
        (names["exp_table_t"], exp_type, "exp_table"),
        (names["exp_exact_t"], exact, "exact sum of exp entries"),
        (names["exp_sum_t"], sum_type, "exp_sum"),
        (names["inv_table_t"], inv_type, "inv_table"),
    ]
    code.config = [
        ConfigField("n_in", "unsigned", str(n)),
        ConfigField("table_size", "unsigned", str(exp.size)),
        ConfigField("exp_step_log2", "int", str(exp.step_log2)),
        ConfigField("inv_table_size", "unsigned", str(inv.size)),
        ConfigField("inv_step_log2", "int", str(inv.step_log2)),
        *(ConfigField(k, "type", names[k]) for k in ("exp_table_t", "exp_exact_t", "exp_sum_t",
                                                     "inv_table_t")),
    ]
    code.arrays = [exp_array, inv_array]
    call = (
        f"nnfab::softmax<{ctx.type_name(src)}, {ctx.type_name(node.name)}, {names['config']}>"
        f"({{src}}, {{dst}}, {exp_array.name}, {inv_array.name})"
    )
    code.call = _rows_call(rows, n, n, call, ctx.array(src), ctx.array(node.name))
    return code


def _render_move(ctx: RenderContext, node: Node) -> LayerCode:
    """Flatten / Reshape / Dropout: values keep their row-major order, cast to the result."""
    (src,) = node.inputs
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node)])
    code.call = [
        f"nnfab::copy_cast<{ctx.type_name(src)}, {ctx.type_name(node.name)}, {ctx.size(src)}>"
        f"({ctx.array(src)}, {ctx.array(node.name)});"
    ]
    return code


for _op in ("Flatten", "Reshape", "Dropout"):
    renderer(_op)(_render_move)


def _render_rearrange(ctx: RenderContext, node: Node) -> LayerCode:
    """ZeroPadding / Cropping / UpSampling / Permute / Slice: ``nnfab::rearrange`` (nnfab_shape.h)
    with the output axes of ``nnfab.ir.rearrange.axis_maps`` (4 axes, leading ones of 1)."""
    from nnfab.ir.rearrange import axis_maps

    (src,) = node.inputs
    in_shape = ctx.graph.tensors[src].shape
    maps = axis_maps(node, in_shape)
    if len(maps) > 4:
        raise BackendError(f"layer {node.name!r} ({node.op}): the HLS backend rearranges "
                           f"tensors of at most 4 axes, got shape {in_shape}")
    strides = [math.prod(in_shape[m.source + 1:]) for m in maps]
    rows = [(1, 1, 0, 1, 0, 1)] * (4 - len(maps)) + [
        (m.size, m.length, m.offset, m.repeat, s, m.step)
        for m, s in zip(maps, strides, strict=True)]
    config = ctx.ident(node, "config")
    code = LayerCode(node, includes=["nnfab_shape.h"], config_name=config,
                     typedefs=[_result_typedef(ctx, node)])
    code.config = [ConfigField("n_in", "unsigned", str(math.prod(in_shape))),
                   ConfigField("n_out", "unsigned", str(ctx.graph.tensors[node.name].size))]
    for k, (size, length, offset, repeat, stride, step) in enumerate(rows):
        code.config += [ConfigField(f"size{k}", "unsigned", str(size)),
                        ConfigField(f"length{k}", "unsigned", str(length)),
                        ConfigField(f"offset{k}", "int", str(offset)),
                        ConfigField(f"repeat{k}", "unsigned", str(repeat)),
                        ConfigField(f"stride{k}", "unsigned", str(stride)),
                        ConfigField(f"step{k}", "unsigned", str(step))]
    code.call = [f"nnfab::rearrange<{ctx.type_name(src)}, {ctx.type_name(node.name)}, {config}>"
                 f"({ctx.array(src)}, {ctx.array(node.name)});"]
    return code


for _op in ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D",
            "UpSampling2D", "Permute", "Slice"):
    renderer(_op)(_render_rearrange)


# ------------------------------------------------------------ spatial layers
def _spatial(ctx: RenderContext, node: Node, rank: int, window: tuple[int, ...],
             default_strides: tuple[int, ...],
             out_spatial: tuple[int, ...] | None = None) -> list[ConfigField]:
    """Geometry fields shared by convolutions and pooling, 1-D seen as height 1."""
    (src,) = node.inputs
    in_shape = ctx.shape(src)
    out_shape = ctx.shape(node.name) if out_spatial is None else (*out_spatial, in_shape[-1])
    if len(in_shape) != rank + 1:
        raise BackendError(
            f"layer {node.name!r} ({node.op}): input shape {in_shape} must have {rank} spatial "
            "axis(es) plus channels"
        )
    strides = tuple(int(s) for s in node.attrs.get("strides", default_strides))
    pads = tuple(int(p) for p in node.attrs.get("pads", (0,) * (2 * rank)))
    if len(strides) != rank or len(pads) != 2 * rank:
        raise BackendError(
            f"layer {node.name!r} ({node.op}): strides {strides} / pads {pads} do not match "
            f"{rank} spatial axis(es)"
        )
    prefix = "pool" if "Pool" in node.op else "filt"
    if rank == 1:
        in_hw, out_hw, win = (1, in_shape[0]), (1, out_shape[0]), (1, window[0])
        strides, pads = (1, strides[0]), (0, 0, pads[0], pads[1])
    else:
        in_hw, out_hw, win = in_shape[:2], out_shape[:2], window
    return [
        ConfigField("in_height", "unsigned", str(in_hw[0])),
        ConfigField("in_width", "unsigned", str(in_hw[1])),
        ConfigField("n_chan", "unsigned", str(in_shape[-1])),
        ConfigField("out_height", "unsigned", str(out_hw[0])),
        ConfigField("out_width", "unsigned", str(out_hw[1])),
        ConfigField("stride_height", "unsigned", str(strides[0])),
        ConfigField("stride_width", "unsigned", str(strides[1])),
        ConfigField("pad_top", "unsigned", str(pads[0])),
        ConfigField("pad_left", "unsigned", str(pads[2])),
        ConfigField(f"{prefix}_height", "unsigned", str(win[0])),
        ConfigField(f"{prefix}_width", "unsigned", str(win[1])),
        ConfigField("win_height", "unsigned", str(win[0])),
        ConfigField("win_width", "unsigned", str(win[1])),
    ]


def _render_conv(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    rank = 2 if node.op.endswith("2D") else 1
    depthwise = node.op.startswith("Depthwise")
    w_type, b_type, accum = (_precision(node, k) for k in ("weight", "bias", "accum"))
    activation = _fused_activation(node)
    kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
    n_filt = ctx.shape(node.name)[-1]
    taps = math.prod(kernel.shape[:rank])
    n_chan = kernel.shape[rank]
    n_in = taps if depthwise else taps * n_chan
    mult = kernel.shape[-1] if depthwise else 0
    names = {k: ctx.ident(node, k) for k in ("weight_t", "bias_t", "accum_t", "config", "w", "b")}
    code = LayerCode(node, includes=["nnfab_conv.h"], config_name=names["config"])
    code.typedefs = [
        _result_typedef(ctx, node),
        (names["weight_t"], w_type, "weight"),
        (names["bias_t"], b_type, "bias"),
        (names["accum_t"], accum, "accum"),
    ]
    geometry = _spatial(ctx, node, rank, tuple(kernel.shape[:rank]), (1,) * rank)
    tail = [
        ConfigField("relu", "bool", "true" if activation == "relu" else "false"),
        ConfigField("accum_t", "type", names["accum_t"]),
        ConfigField("weight_t", "type", names["weight_t"]),
        ConfigField("bias_t", "type", names["bias_t"]),
    ]
    matrix = w_type.quantize(kernel).reshape(n_in, n_filt)
    bias = b_type.quantize(np.asarray(node.weights["bias"], dtype=np.float64).ravel())
    order = "(n_out, n_in)" if node.strategy == "Resource" else "(n_in, n_out)"
    function = "depthwise_conv_2d" if depthwise else "conv_2d"
    src_t, dst_t = ctx.type_name(src), ctx.type_name(node.name)
    tiles = [Tile(0, n_in, 0, n_filt)]
    if not depthwise:  # split over filters only: every block needs the whole window
        tiles = plan_tiles(n_in, n_filt, node.strategy, node.reuse_factor, ctx.max_block,
                           split_rows=False)
    if multipliers(n_in, tiles[0].cols, _fold(node)) > ctx.max_block:
        what = f"{taps} taps" if depthwise else f"window of {n_in} inputs"
        _warn_unsplittable(node, ctx, multipliers(n_in, tiles[0].cols, _fold(node)), what)
    if len(tiles) > 1:
        _log_tiles(node, ctx, tiles, n_in, n_filt)
    for k, tile in enumerate(tiles):
        single = len(tiles) == 1
        config = names["config"] if single else ctx.ident(node, f"config_block{k}")
        w_name = names["w"] if single else ctx.ident(node, f"w_block{k}")
        b_name = names["b"] if single else ctx.ident(node, f"b_block{k}")
        fields = [
            *geometry,
            ConfigField("n_filt", "unsigned", str(tile.cols)),
            ConfigField("n_filt_total", "unsigned", str(n_filt)),
            ConfigField("filt_offset", "unsigned", str(tile.col0)),
            *_product_fields(n_in, tile.cols, node, mult),
            *tail,
        ]
        if single:
            code.config = fields
        else:
            code.extra_configs.append((config, fields))
        cols = slice(tile.col0, tile.col0 + tile.cols)
        part = "" if single else f", filters {tile.col0}..+{tile.cols}"
        code.arrays += [
            ConstArray(w_name, names["weight_t"], w_type,
                       _weight_order(matrix[:, cols], node.strategy),
                       comment=(f"kernel of {node.name!r}{part}: {tuple(kernel.shape)} as the "
                                f"product matrix ({n_in}, {tile.cols}), stored {order} "
                                "row-major")),
            ConstArray(b_name, names["bias_t"], b_type, bias[cols],
                       comment=f"bias of {node.name!r}{part}"),
        ]
        code.call.append(
            f"nnfab::{function}<{src_t}, {dst_t}, {config}>"
            f"({ctx.array(src)}, {ctx.array(node.name)}, {w_name}, {b_name});"
        )
        code.kernel.append(
            f"nnfab::conv_window<{src_t}, {dst_t}, {config}>(window, res, {w_name}, {b_name});"
        )
        code.geometry = code.geometry or config
    return code


def _fold(node: Node) -> int:
    """How many products share a multiplier: the reuse factor for Resource, else 1."""
    return node.reuse_factor if node.strategy == "Resource" else 1


for _op in ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D"):
    renderer(_op)(_render_conv)


def _render_pool(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    mode = node.attrs.get("mode")
    modes = GLOBAL_POOL_MODES if node.op.startswith("Global") else POOL_MODES
    if mode not in modes:
        raise BackendError(f"layer {node.name!r} ({node.op}): pooling mode {mode!r} is not one "
                           f"of {modes}")
    rank = 2 if node.op.endswith("2D") else 1
    in_shape = ctx.shape(src)
    if node.op.startswith("Global"):
        window = tuple(in_shape[:rank])  # one window over the whole input: output (C,)
        fields = _spatial(ctx, node, rank, window, window, out_spatial=(1,) * rank)
    else:
        window = tuple(int(k) for k in _attr(node, "pool_size"))
        fields = _spatial(ctx, node, rank, window, window)
    taps = math.prod(window)
    x_type = ctx.tensor_type(src)
    extra = math.ceil(math.log2(taps)) if taps > 1 else 0
    sum_type = FixedType(x_type.width + extra, x_type.integer + extra, x_type.signed)
    scale_type = pool_scale_type(mode, _precision(node, "scale"))
    scales = np.zeros(taps + 1, dtype=np.float64)
    for count in range(1, taps + 1):
        scales[count] = pool_scale(mode, count, scale_type)[0]
    names = {k: ctx.ident(node, k) for k in ("sum_t", "scale_t", "config", "scales")}
    code = LayerCode(node, includes=["nnfab_pool.h"], config_name=names["config"])
    code.typedefs = [
        _result_typedef(ctx, node),
        (names["sum_t"], sum_type, "exact window sum"),
        (names["scale_t"], scale_type, "scale"),
    ]
    code.config = [
        *fields,
        ConfigField("is_max", "bool", "true" if mode == "max" else "false"),
        ConfigField("reuse_factor", "unsigned", "1"),
        ConfigField("strategy", "type", "nnfab::latency_tag"),
        ConfigField("sum_t", "type", names["sum_t"]),
        ConfigField("scale_t", "type", names["scale_t"]),
    ]
    code.geometry = names["config"]
    code.kernel = [
        f"nnfab::pool_window<{ctx.type_name(src)}, {ctx.type_name(node.name)}, "
        f"{names['config']}>(window, valid, res, {names['scales']});"
    ]
    code.arrays = [ConstArray(names["scales"], names["scale_t"], scale_type, scales,
                              comment=f"scale(1/count) of {node.name!r} by window count")]
    code.call = [
        f"nnfab::pool_2d<{ctx.type_name(src)}, {ctx.type_name(node.name)}, {names['config']}>"
        f"({ctx.array(src)}, {ctx.array(node.name)}, {names['scales']});"
    ]
    return code


for _op in ("Pooling1D", "Pooling2D", "GlobalPooling1D", "GlobalPooling2D"):
    renderer(_op)(_render_pool)


@renderer("BatchNormalization")
def render_batchnorm(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    w_type, b_type, accum = (_precision(node, k) for k in ("weight", "bias", "accum"))
    channels = ctx.shape(src)[-1]
    names = {k: ctx.ident(node, k) for k in ("weight_t", "bias_t", "accum_t", "config", "s", "b")}
    code = LayerCode(node, includes=["nnfab_norm.h"], config_name=names["config"])
    code.typedefs = [
        _result_typedef(ctx, node),
        (names["weight_t"], w_type, "weight (scale)"),
        (names["bias_t"], b_type, "bias"),
        (names["accum_t"], accum, "accum"),
    ]
    code.config = [
        ConfigField("n_in", "unsigned", str(ctx.size(src))),
        ConfigField("n_chan", "unsigned", str(channels)),
        ConfigField("accum_t", "type", names["accum_t"]),
        ConfigField("weight_t", "type", names["weight_t"]),
        ConfigField("bias_t", "type", names["bias_t"]),
    ]
    scale = np.asarray(node.weights["scale"], dtype=np.float64).ravel()
    bias = np.asarray(node.weights["bias"], dtype=np.float64).ravel()
    code.arrays = [
        ConstArray(names["s"], names["weight_t"], w_type, w_type.quantize(scale),
                   comment=f"scale of {node.name!r}"),
        ConstArray(names["b"], names["bias_t"], b_type, b_type.quantize(bias),
                   comment=f"bias of {node.name!r}"),
    ]
    code.call = [
        f"nnfab::batchnorm<{ctx.type_name(src)}, {ctx.type_name(node.name)}, {names['config']}>"
        f"({ctx.array(src)}, {ctx.array(node.name)}, {names['s']}, {names['b']});"
    ]
    return code


# ------------------------------------------------------------- merges
@renderer("Merge")
def render_merge(ctx: RenderContext, node: Node) -> LayerCode:
    """Elementwise exact add / subtract / multiply / average of the inputs, one cast."""
    mode = node.attrs.get("mode")
    n = len(node.inputs)
    if mode in ("maximum", "minimum"):
        return _render_extremum(ctx, node, mode)
    if mode not in ("add", "subtract", "multiply", "average") or (mode == "subtract" and n != 2):
        raise BackendError(
            f"layer {node.name!r}: Merge mode {mode!r} with {n} inputs is not supported "
            "(add, multiply, average: 2 or more inputs; subtract: exactly 2)"
        )
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node)])
    terms = [f"{ctx.array(t)}[i]" for t in node.inputs]
    op = {"add": " + ", "average": " + ", "subtract": " - ", "multiply": " * "}[mode]
    expr = terms[0]
    for term in terms[1:]:  # parenthesized left to right: every step is exact
        expr = f"({expr}{op}{term})"
    lines = []
    if mode == "average":
        scale_type = _precision(node, "scale")
        scale_t = ctx.ident(node, "scale_t")
        scale = ctx.ident(node, "scale")
        value = reciprocal(n, scale_type)[0]
        code.typedefs.append((scale_t, scale_type, "scale (1/n)"))
        lines.append(f"const {scale_t} {scale} = {scale_t}({double_literal(value)});")
        expr = f"{expr} * {scale}"
    out = ctx.array(node.name)
    code.call = [
        *lines,
        f"for (unsigned i = 0; i < {ctx.size(node.name)}; i++) {{",
        "  NNFAB_PRAGMA(HLS UNROLL)",
        f"  {out}[i] = {ctx.type_name(node.name)}({expr});",
        "}",
    ]
    return code


def _render_extremum(ctx: RenderContext, node: Node, mode: str) -> LayerCode:
    """Elementwise maximum / minimum: exact compares in a type holding every input, one cast."""
    common = rules.common_type([ctx.tensor_type(t) for t in node.inputs])
    common_t = ctx.ident(node, "common_t")
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node),
                                     (common_t, common, "holds every input exactly")])
    better = ">" if mode == "maximum" else "<"
    out, m = ctx.array(node.name), ctx.ident(node, "best")
    body = [f"  {common_t} {m} = {common_t}({ctx.array(node.inputs[0])}[i]);"]
    for t in node.inputs[1:]:
        body.append(f"  if ({common_t}({ctx.array(t)}[i]) {better} {m}) {m} = "
                    f"{common_t}({ctx.array(t)}[i]);")
    code.call = [
        f"for (unsigned i = 0; i < {ctx.size(node.name)}; i++) {{",
        "  NNFAB_PRAGMA(HLS UNROLL)",
        *body,
        f"  {out}[i] = {ctx.type_name(node.name)}({m});",
        "}",
    ]
    return code


def _product_sum_type(ta: FixedType, tb: FixedType, n: int) -> FixedType:
    """A type holding any sum of ``n`` products of ``ta`` and ``tb`` values exactly."""
    extra = math.ceil(math.log2(n)) if n > 1 else 0
    return FixedType(ta.width + tb.width + extra, ta.integer + tb.integer + extra,
                     ta.signed or tb.signed)


@renderer("Dot")
def render_dot(ctx: RenderContext, node: Node) -> LayerCode:
    """``result(sum_i x_i * z_i)``: exact products summed in a type that holds any sum."""
    a, b = node.inputs
    ta, tb = ctx.tensor_type(a), ctx.tensor_type(b)
    n = ctx.size(a)
    sum_t, acc = ctx.ident(node, "sum_t"), ctx.ident(node, "sum")
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node),
                                     (sum_t, _product_sum_type(ta, tb, n),
                                      "exact sum of the products")])
    code.call = [
        f"{sum_t} {acc} = 0;",
        f"for (unsigned i = 0; i < {n}; i++) {{",
        "  NNFAB_PRAGMA(HLS UNROLL)",
        f"  {acc} += {ctx.array(a)}[i] * {ctx.array(b)}[i];",
        "}",
        f"{ctx.array(node.name)}[0] = {ctx.type_name(node.name)}({acc});",
    ]
    return code


@renderer("MatMul")
def render_matmul(ctx: RenderContext, node: Node) -> LayerCode:
    """``result(sum_k a[g, i, k] * b[g, k, j])`` per group ``g`` of the leading axes:
    exact products summed in a type that holds any sum (as ``Dot``), fully unrolled."""
    a, b = node.inputs
    ta, tb = ctx.tensor_type(a), ctx.tensor_type(b)
    *lead, m, k = ctx.shape(a)
    n = ctx.shape(b)[-1]
    groups = math.prod(lead)
    sum_t, acc = ctx.ident(node, "sum_t"), ctx.ident(node, "sum")
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node),
                                     (sum_t, _product_sum_type(ta, tb, k),
                                      "exact sum of the products")])
    out, out_t = ctx.array(node.name), ctx.type_name(node.name)
    code.call = [
        f"for (unsigned g = 0; g < {groups}; g++) {{",
        "  NNFAB_PRAGMA(HLS UNROLL)",
        f"  for (unsigned i = 0; i < {m}; i++) {{",
        "    NNFAB_PRAGMA(HLS UNROLL)",
        f"    for (unsigned j = 0; j < {n}; j++) {{",
        "      NNFAB_PRAGMA(HLS UNROLL)",
        f"      {sum_t} {acc} = 0;",
        f"      for (unsigned q = 0; q < {k}; q++) {{",
        "        NNFAB_PRAGMA(HLS UNROLL)",
        f"        {acc} += {ctx.array(a)}[(g * {m} + i) * {k} + q] * "
        f"{ctx.array(b)}[(g * {k} + q) * {n} + j];",
        "      }",
        f"      {out}[(g * {m} + i) * {n} + j] = {out_t}({acc});",
        "    }",
        "  }",
        "}",
    ]
    return code


@renderer("ElementCast")
def render_element_cast(ctx: RenderContext, node: Node) -> LayerCode:
    """Each element cast to its own type (one typedef per distinct type), then held in
    the result type; zero-width elements are 0 (``nnfab.ir.element_cast``)."""
    from nnfab.ir.element_cast import element_type, element_types, modes

    shape = ctx.shape(node.name)
    rounding, overflow = modes(node)
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node)])
    x, out, out_t = ctx.array(node.inputs[0]), ctx.array(node.name), ctx.type_name(node.name)
    lines = []
    for g, (key, mask) in enumerate(sorted(element_types(node, shape).items())):
        t = element_type(*key, rounding, overflow)
        flat = np.flatnonzero(mask.reshape(-1))
        if t is None:
            lines += [f"{out}[{e}] = 0;" for e in flat]
            continue
        name = ctx.ident(node, f"e{g}_t")
        code.typedefs.append((name, t, f"the elements with k, b, i = {key}"))
        lines += [f"{out}[{e}] = {out_t}({name}({x}[{e}]));" for e in flat]
    code.call = lines
    return code


@renderer("Concatenate")
def render_concatenate(ctx: RenderContext, node: Node) -> LayerCode:
    """Each input cast to the result type, blocks joined along ``axis`` (row-major)."""
    axis = node.attrs.get("axis")
    out_shape = ctx.shape(node.name)
    if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < len(out_shape):
        raise BackendError(
            f"layer {node.name!r}: Concatenate axis {axis!r} must be an axis of {out_shape} "
            "(without the batch)"
        )
    outer = math.prod(out_shape[:axis])
    row = math.prod(out_shape[axis:])
    out, out_t = ctx.array(node.name), ctx.type_name(node.name)
    code = LayerCode(node, typedefs=[_result_typedef(ctx, node)])
    offset = 0
    for t in node.inputs:
        block = math.prod(ctx.shape(t)[axis:])
        code.call += [
            f"for (unsigned o = 0; o < {outer}; o++) {{",
            "  NNFAB_PRAGMA(HLS UNROLL)",
            f"  for (unsigned i = 0; i < {block}; i++) {{",
            "    NNFAB_PRAGMA(HLS UNROLL)",
            f"    {out}[o * {row} + {offset} + i] = {out_t}({ctx.array(t)}[o * {block} + i]);",
            "  }",
            "}",
        ]
        offset += block
    return code


# Recurrent layers (SimpleRNN, LSTM, GRU) register their renderer in their own module.
from nnfab.backends.hls import recurrent as _recurrent  # noqa: E402, F401

# MultiThreshold (FINN / QONNX thresholds) registers its renderer in backends/hls/threshold.py.
from nnfab.backends.hls import threshold as _threshold  # noqa: E402, F401

# VertexMask and VertexMean (vertex counts of graph layers) register theirs in
# backends/hls/vertex.py.
from nnfab.backends.hls import vertex as _vertex  # noqa: E402, F401

# Embedding, Conv1D/2DTranspose and LayerNormalization register theirs in backends/hls/zoo.py.
from nnfab.backends.hls import zoo as _zoo  # noqa: E402, F401
