"""Render a typed IR graph into a self-contained Vivado/Vitis HLS project.

Layout of the project directory::

    firmware/<top>.cpp, <top>.h   the network as one top-level function: arrays in and out
                                  (io_parallel; one pipeline, or a dataflow of layer
                                  functions) or hls::stream ports (io_stream, dataflow)
    firmware/defines.h            typedefs (from FixedType) and array sizes
    firmware/parameters.h         one config struct per layer
    firmware/weights/*.h          weights, biases and lookup tables
    firmware/nnfab/*.h            nnfab's HLS layer library (copied)
    firmware/ap_types/*.h         nnfab's ap_fixed.h and hls_stream.h for g++ C simulation
                                  only (the vendor tools use their own)
    tb/<top>_test.cpp, tb_data/   C testbench and its data
    csim/bridge.cpp               batch entry points for nnfab's compiled C simulation
    build_prj.tcl, project.tcl, vivado_synth.tcl

Everything is rendered in memory first (``render_project``), so the compiled C
simulation can be cached by a hash of the exact sources.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from nnfab.backends.hls.cpp import cpp_type, double_literal
from nnfab.backends.hls.layers import (
    DEFAULT_MAX_PARTITION,
    DEFAULT_MAX_UNROLL,
    LayerCode,
    RenderContext,
    render_layer,
)
from nnfab.backends.hls.stream import render_stream
from nnfab.devices import DEFAULT_PART
from nnfab.errors import BackendError
from nnfab.ir import FixedType, Graph, Namespace
from nnfab.ir.names import CPP_KEYWORDS, VERILOG_KEYWORDS
from nnfab.passes.check_reuse_factor import REUSE_OPS

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
INCLUDE_DIR = HERE / "include"
TEMPLATE_DIR = HERE / "templates"
BACKENDS = ("Vitis", "Vivado")
ABI_VERSION = 2
"""Version of the C-simulation bridge's entry points (checked when loading)."""

GENERATED_NAMES = frozenset({
    "nnfab", "nnfab_ap", "r", "k", "s", "n", "in", "out", "x0", "y0", "run_range",
    "parse_line", "inputs", "outputs", "threads", "features", "predictions", "results",
    "traces", "begin", "end", "chunk", "pool",
    "samples", "compared", "mismatches", "line", "values", "token",
    # typedefs of the C/C++ headers the code includes: a layer named "size" must not
    # produce a type called size_t
    "size_t", "ssize_t", "ptrdiff_t", "max_align_t", "nullptr_t", "intptr_t", "uintptr_t",
    "intmax_t", "uintmax_t", "off_t", "time_t", "clock_t", "wint_t", "mbstate_t",
    "fpos_t", "div_t", "ldiv_t", "lldiv_t", "float_t", "double_t", "sig_atomic_t",
    *(f"{p}int{b}_t" for p in ("", "u") for b in (8, 16, 32, 64)),
    *(f"{p}int_{k}{b}_t" for p in ("", "u") for k in ("least", "fast") for b in (8, 16, 32, 64)),
    "ap_q_mode", "ap_o_mode", "ap_fixed_base", "ap_int_base",
    # locals of generated io_stream / dataflow functions and of the bridge
    "t", "o", "c", "value", "result", "window", "valid", "res", "status", "pixel", "hls",
})
"""Identifiers the templates and included headers use; layer names are kept off them."""


@dataclass(frozen=True)
class ProjectSettings:
    """Target settings of a generated project."""

    project_name: str = "myproject"
    backend: str = "Vitis"
    part: str = DEFAULT_PART
    clock_period: float = 5.0
    clock_uncertainty: str = "12.5%"
    max_unroll: int = DEFAULT_MAX_UNROLL
    """Most products one generated function unrolls; larger layers are split into blocks,
    one sub-function each (the vendor tools refuse to unroll much larger loop bodies)."""
    max_partition: int = DEFAULT_MAX_PARTITION
    """Largest array partitioned into single elements; larger arrays are partitioned
    cyclically into this many banks. Also Vivado HLS's ``config_array_partition
    -maximum_size`` (project.tcl: ``max_partition``)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BackendError(
                f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if not isinstance(self.clock_period, int | float) or self.clock_period <= 0:
            raise BackendError(
                f"clock_period must be a positive number of ns, got {self.clock_period!r}"
            )
        for key in ("max_unroll", "max_partition"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BackendError(f"{key} must be an integer >= 1, got {value!r}")


class ModelLike(Protocol):
    """What the writer reads from an ``NnfabModel``."""

    graph: Graph
    project_name: str
    backend: str
    part: str
    clock_period: float


SETTING_KEYS = ("clock_uncertainty", "max_unroll", "max_partition")
"""Settings a model may carry in its ``hls_settings`` dict."""


def settings_of(model: ModelLike) -> ProjectSettings:
    """The project settings of a model: its target plus its ``hls_settings`` dict."""
    extra = dict(getattr(model, "hls_settings", None) or {})
    unknown = sorted(set(extra) - set(SETTING_KEYS))
    if unknown:
        raise BackendError(
            f"hls_settings: unknown key(s) {unknown}; allowed: {', '.join(SETTING_KEYS)}"
        )
    return ProjectSettings(
        project_name=model.project_name, backend=getattr(model, "hls_backend", model.backend),
        part=model.part,
        clock_period=model.clock_period, **extra,
    )


@dataclass
class Port:
    """A top-level argument: one graph input or output."""

    tensor: str
    array: str
    type_name: str
    type: FixedType
    shape: tuple[int, ...]
    size_name: str
    offset: int = 0  # position in the concatenated testbench line
    trace_index: int = 0  # position of the layer in graph order
    partition: str = "complete dim=0"  # ARRAY_PARTITION / ARRAY_RESHAPE arguments
    # io_stream: the top-level stream, its transaction typedef, values per transaction and
    # transactions per sample
    stream: str = ""
    pack: str = ""
    width: int = 0
    n_tx: int = 0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Project:
    """A rendered project: file paths (relative, '/'-separated) -> contents."""

    settings: ProjectSettings
    top: str
    inputs: list[Port]
    outputs: list[Port]
    files: dict[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        """SHA-256 over every path and content (what the compiled library is cached by)."""
        h = hashlib.sha256()
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + self.files[path].encode() + b"\0")
        return h.hexdigest()

    def write(self, output_dir: str | Path) -> Path:
        """Write every file under ``output_dir`` (created); unchanged files are left alone.

        Weight headers left over from an earlier model in the same directory are removed.
        """
        root = Path(output_dir)
        for rel, text in self.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() and path.read_text() == text:
                continue
            path.write_text(text)
        for stale in (root / "firmware" / "weights").glob("*.h"):
            if f"firmware/weights/{stale.name}" not in self.files:
                stale.unlink()
        log.info("wrote HLS project %r (%d files) to %s", self.top, len(self.files), root)
        return root


@dataclass
class _LayerView:
    """A layer as project.cpp.j2 sees it."""

    node: Any
    call: list[str]
    local: bool
    array: str
    type_name: str
    size_name: str
    trace_index: int
    partition: str = "complete dim=0"
    function: str | None = None  # dataflow: the layer's own function, called with args
    params: str = ""
    args: str = ""
    param_pragmas: list[str] = field(default_factory=list)


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def _version() -> str:
    try:
        return metadata.version("nnfab")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def library_headers() -> dict[str, str]:
    """nnfab's C++ headers, keyed by their path inside the project."""
    files: dict[str, str] = {}
    for path in sorted(INCLUDE_DIR.glob("*.h")):
        files[f"firmware/ap_types/{path.name}"] = path.read_text()
    for path in sorted((INCLUDE_DIR / "nnfab").glob("*.h")):
        files[f"firmware/nnfab/{path.name}"] = path.read_text()
    return files


def render_project(graph: Graph, settings: ProjectSettings | None = None) -> Project:
    """All files of the HLS project for a typed graph (nothing written yet)."""
    settings = settings or ProjectSettings()
    graph.validate()
    if graph.io_type not in ("io_parallel", "io_stream"):
        raise BackendError(
            f"io_type {graph.io_type!r} is not supported by the HLS backend; use io_parallel "
            "or io_stream (Model.IOType in the configuration)"
        )
    stream = graph.io_type == "io_stream"
    ns = Namespace(CPP_KEYWORDS | VERILOG_KEYWORDS | GENERATED_NAMES)
    top = ns(settings.project_name)
    if top != settings.project_name:
        log.warning("project name %r is not a C++ identifier: using %r", settings.project_name, top)
    for name in ("defines", "parameters", "config", "weights", "N"):
        ns(name)
    ctx = RenderContext(graph, ns, settings.max_unroll, settings.max_partition)
    env = _environment()
    guard = top.upper()
    version = _version()

    network = render_stream(ctx, graph) if stream else None
    if network is not None:
        layers: list[LayerCode] = network.codes
    else:
        layers = [render_layer(ctx, node) for node in graph.nodes]
    sizes = [(ctx.ident(t, "N"), ctx.size(t)) for t in graph.tensors if graph.has_node(t)]
    size_names = {t: ctx.ident(t, "N") for t in graph.tensors}

    inputs = [_port(ctx, t, size_names[t]) for t in graph.inputs]
    outputs = []
    for t in dict.fromkeys(graph.outputs):
        if graph.node(t).op == "Input":
            raise BackendError(f"graph output {t!r} is an input layer; nothing to generate")
        outputs.append(_port(ctx, t, size_names[t]))
    offset = 0
    for p in inputs:
        p.offset, offset = offset, offset + p.size
    if network is not None:
        for p in [*inputs, *outputs]:
            t = network.tensors[p.tensor]
            p.stream, p.pack, p.width, p.n_tx = network.ports[p.tensor], t.pack, t.width, t.n_tx
        signature = ", ".join(f"hls::stream<{p.pack}>& {p.stream}" for p in [*inputs, *outputs])
        args = ", ".join(p.stream for p in [*inputs, *outputs])
    else:
        for p in [*inputs, *outputs]:
            p.partition = _partition(ctx, p.tensor)
        signature = ", ".join(
            [f"const {p.type_name} {p.array}[{p.size_name}]" for p in inputs]
            + [f"{p.type_name} {p.array}[{p.size_name}]" for p in outputs]
        )
        args = ", ".join(p.array for p in [*inputs, *outputs])

    typedefs: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for code in layers:
        for name, t, role in code.typedefs:
            if name not in seen:
                seen.add(name)
                typedefs.append((name, cpp_type(t), f"{code.node.name}: {role}"))
    if network is not None:
        typedefs += network.pack_typedefs
    arrays = [a for code in layers for a in code.arrays]
    includes = {h for code in layers for h in code.includes} | {"nnfab_common.h"}
    if stream:
        includes |= {"nnfab_stream.h", "nnfab_pool.h", "nnfab_conv.h"}
    includes = sorted(includes)
    order = {node.name: k for k, node in enumerate(graph.nodes)}
    for p in inputs:
        p.trace_index = order[p.tensor]
    dataflow = top_mode(graph, settings) == "dataflow"
    ii = max([n.reuse_factor for n in graph.nodes if n.op in REUSE_OPS], default=1)
    views = []
    for code in layers:
        node = code.node
        if node.op == "Input" or stream:
            continue
        view = _LayerView(node, code.call, node.name not in graph.outputs,
                          ctx.array(node.name), ctx.type_name(node.name),
                          size_names[node.name], order[node.name],
                          partition=_partition(ctx, node.name))
        if dataflow:
            _as_function(ctx, view, size_names)
        views.append(view)
    common = {"project": top, "top": top, "version": version, "guard": guard}
    files = library_headers()
    files["firmware/defines.h"] = env.get_template("defines.h.j2").render(
        **common, sizes=sizes, typedefs=typedefs, vitis=settings.backend == "Vitis",
        extra_includes=["hls_stream.h", "nnfab/nnfab_common.h"] if stream else [])
    files["firmware/parameters.h"] = env.get_template("parameters.h.j2").render(
        **common, includes=includes, arrays=arrays, layers=layers)
    weights = env.get_template("weights.h.j2")
    for array in arrays:
        files[f"firmware/weights/{array.name}.h"] = weights.render(
            version=version, array=array, mantissa_ctype=array.mantissa_ctype(),
            guard=f"{guard}_{array.name.upper()}_H")
    files[f"firmware/{top}.h"] = env.get_template("project.h.j2").render(
        **common, signature=signature)
    if network is not None:
        files[f"firmware/{top}.cpp"] = env.get_template("project_stream.cpp.j2").render(
            **common, signature=signature, inputs=inputs, outputs=outputs,
            functions=network.functions, body=network.body, locals=network.locals)
    else:
        files[f"firmware/{top}.cpp"] = env.get_template("project.cpp.j2").render(
            **common, signature=signature, inputs=inputs, outputs=outputs, layers=views,
            io_type=graph.io_type, dataflow=dataflow, ii=ii)
    io = {"inputs": inputs, "outputs": outputs, "args": args, "stream": stream}
    files[f"tb/{top}_test.cpp"] = env.get_template("testbench.cpp.j2").render(
        **common, **io, n_in_values=offset, input_names=", ".join(p.tensor for p in inputs))
    files["csim/bridge.cpp"] = env.get_template("bridge.cpp.j2").render(
        **common, **io, abi_version=ABI_VERSION)
    tool = "vitis_hls" if settings.backend == "Vitis" else "vivado_hls"
    files["project.tcl"] = env.get_template("project.tcl.j2").render(
        **common, backend=settings.backend, part=settings.part,
        clock_period=_number(settings.clock_period), clock_uncertainty=settings.clock_uncertainty,
        max_partition=settings.max_partition, max_unroll=settings.max_unroll)
    files["build_prj.tcl"] = env.get_template("build_prj.tcl.j2").render(**common, hls_tool=tool)
    files["vivado_synth.tcl"] = env.get_template("vivado_synth.tcl.j2").render(**common)
    return Project(settings, top, inputs, outputs, files)


def unrolled_products(graph: Graph, node: Any) -> int:
    """Products a layer computes per sample (every output pixel / row), 0 without weights."""
    if node.op not in REUSE_OPS:
        return 0
    return int(np.prod(np.shape(node.weights["kernel"]))) * (
        graph.tensors[node.name].size // graph.tensors[node.name].shape[-1])


def top_mode(graph: Graph, settings: ProjectSettings | None = None) -> str:
    """How the top function runs the layers: ``"stream"`` (io_stream), ``"pipeline"`` (one
    pipeline, II = the largest reuse factor, every loop unrolled) or ``"dataflow"``
    (one process per layer; io_parallel with a Resource layer, or with a layer whose
    products over all its pixels / rows exceed max_unroll, so that its pixel loop
    stays a loop)."""
    if graph.io_type == "io_stream":
        return "stream"
    settings = settings or ProjectSettings()
    for node in graph.nodes:
        if node.op in REUSE_OPS and node.strategy == "Resource":
            return "dataflow"
    for node in graph.nodes:
        total = unrolled_products(graph, node)
        if total > settings.max_unroll and graph.tensors[node.name].size > graph.tensors[
                node.name].shape[-1]:
            log.info(
                "layer %r computes %d products per sample over its pixels / rows, more than "
                "max_unroll = %d: the network runs as a dataflow of layers (pixel loops kept) "
                "instead of one fully unrolled pipeline", node.name, total, settings.max_unroll,
            )
            return "dataflow"
    return "pipeline"


def _partition(ctx: RenderContext, tensor: str) -> str:
    """ARRAY_PARTITION arguments of a tensor's array: complete up to max_partition elements,
    else cyclic into max_partition banks."""
    size = ctx.size(tensor)
    if size <= ctx.max_partition:
        return "complete dim=0"
    if tensor not in ctx.warned:
        ctx.warned.add(tensor)
        log.warning(
            "tensor %r: %d values, more than max_partition = %d: its array is partitioned into %d "
            "banks (cyclic), which may lengthen the pipeline; raise max_partition in "
            "NnfabModel.hls_settings (and Vivado HLS's config_array_partition -maximum_size "
            "follows), or use io_stream", tensor, size, ctx.max_partition, ctx.max_partition,
        )
    return f"cyclic factor={ctx.max_partition} dim=1"


def _as_function(ctx: RenderContext, view: _LayerView, size_names: dict[str, str]) -> None:
    """Move a layer's code into its own function (a dataflow process)."""
    node = view.node
    sources = list(dict.fromkeys(node.inputs))
    params = [f"const {ctx.type_name(t)} {ctx.array(t)}[{size_names[t]}]" for t in sources]
    params.append(f"{view.type_name} {view.array}[{view.size_name}]")
    view.function = ctx.ident(node, "layer")
    view.params = ", ".join(params)
    view.args = ", ".join([*(ctx.array(t) for t in sources), view.array])
    view.param_pragmas = [
        f"NNFAB_PRAGMA(HLS ARRAY_PARTITION variable={ctx.array(t)} {_partition(ctx, t)})"
        for t in [*sources, node.name]
    ]


def _port(ctx: RenderContext, tensor: str, size_name: str) -> Port:
    return Port(tensor, ctx.array(tensor), ctx.type_name(tensor), ctx.tensor_type(tensor),
                ctx.shape(tensor), size_name)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def tb_lines(arrays: list[np.ndarray]) -> str:
    """Samples as text lines: per sample, every array flattened and concatenated, exact."""
    flat = [np.asarray(a, dtype=np.float64).reshape(len(a), -1) for a in arrays]
    rows = np.concatenate(flat, axis=1)
    return "".join(" ".join(double_literal(v) for v in row) + "\n" for row in rows)


def write_project(
    model: ModelLike,
    output_dir: str | Path | None = None,
    *,
    tb_input: np.ndarray | list[np.ndarray] | None = None,
    tb_output: np.ndarray | list[np.ndarray] | None = None,
) -> Path:
    """Write the HLS project of ``model`` (default: ``model.output_dir``); returns its path.

    ``tb_input`` (one array per model input, batch first) becomes
    tb_data/tb_input_features.dat; ``tb_output`` (the emulator's outputs for it)
    becomes tb_data/tb_output_predictions.dat, which the C testbench checks bit for bit.
    """
    if output_dir is None:
        output_dir = getattr(model, "output_dir", None)
        if output_dir is None:
            raise BackendError("write_project: no output_dir given and the model has none")
    root = Path(output_dir)
    project = render_project(model.graph, settings_of(model))
    if tb_input is not None:
        project.files["tb_data/tb_input_features.dat"] = tb_lines(_as_list(tb_input))
    if tb_output is not None:
        project.files["tb_data/tb_output_predictions.dat"] = tb_lines(_as_list(tb_output))
    project.files.setdefault("tb_data/.keep", "")
    return project.write(root)


def _as_list(arrays: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    return [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
