"""The numbers behind the profiling figures: per-layer value statistics and type ranges.

Everything here is plain data (``LayerProfile`` rows, dicts of floats), computed with
NumPy from a converted model:

- ``weight_profile``: each weighted layer's weights and biases, as floats (the graph's
  values) or after the cast to their fixed-point types (what the emulator multiplies).
- ``activation_profile``: each layer's outputs for a batch ``X``, after quantization
  (``hls_model.trace(X)``, bit-exact) or before it (``float_outputs``).
- ``compare_errors``: per layer, the mean and max absolute difference between the float
  outputs and the emulator's.

Float ("before quantization") outputs come from the framework model when one is given: a
Keras model (one sub-model returning every layer's output) or a PyTorch module (forward
hooks on its submodules). A framework layer is matched to the IR node of the same name,
or, when the frontend split the layer (``fc1`` with a relu becomes ``fc1`` then
``fc1_relu``), to the last node of that split, whose output is the layer's output.
Without a model, the reference is the emulator run on a copy of the graph in which every
type is widened (``WIDE``: 18 fractional bits, saturating; exact accumulators), which
is float to about 4e-6 except that sigmoid, tanh and softmax keep their lookup tables.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnfab.errors import ConfigError
from nnfab.ir import FixedType, Graph, Node
from nnfab.ir.names import sanitize
from nnfab.ir.types import Overflow, Rounding

log = logging.getLogger(__name__)

PERCENTILES = (5, 25, 50, 75, 95)
"""Percentiles of |value| (nonzero values) each profile row carries."""

WEIGHT_PRECISION = {"kernel": "weight", "scale": "weight", "bias": "bias"}
"""Which precision key types each graph weight (others: the key of the same name)."""

WIDE = FixedType(32, 14, True, Rounding.RND_CONV, Overflow.SAT)
"""Type of every value and weight in the float reference copy (``wide_graph``)."""
WIDE_ACCUM = FixedType(64, 28)
"""Accumulator of the float reference copy: exact for products of two ``WIDE`` values."""
WIDENED_KEYS = ("weight", "bias", "scale", "param")


def type_range(t: FixedType | str) -> tuple[float, float]:
    """``(smallest nonzero step 2**-F, largest magnitude)`` of a fixed-point type.

    The largest magnitude is the type's maximum ``2**(I-1) - 2**-F`` (signed) or
    ``2**I - 2**-F`` (unsigned), e.g. ``(2**-5, 2**2 - 2**-5)`` for ``ap_fixed<8,3>``;
    a signed type also holds ``-2**(I-1)``. For a type whose maximum is 0 (a 1-bit
    signed type) it is ``|min|``.
    """
    t = FixedType.parse(t)
    hi = t.max if t.max > 0 else abs(t.min)
    return t.lsb, float(hi)


@dataclass
class LayerProfile:
    """Statistics of one array of values (one row of a figure).

    ``percentiles`` maps 5/25/50/75/95 to percentiles of ``|value|`` over the nonzero
    values (log-axis statistics); ``abs_min`` / ``abs_max`` are the smallest nonzero and
    the largest ``|value|``. ``overflow`` counts values outside the type's
    ``[min, max]``; ``underflow`` counts nonzero values with ``|value| < 2**-F`` (they
    quantize to zero or one step). Both are 0 without a type.
    """

    layer: str
    kind: str  # "weight", "bias", ... (the graph weight's name) or "activation"
    stage: str  # "float" or "quantized"
    type: str | None
    range: tuple[float, float] | None
    size: int
    zeros: int
    min: float
    max: float
    mean: float
    abs_min: float
    abs_max: float
    percentiles: dict[int, float] = field(default_factory=dict)
    overflow: int = 0
    underflow: int = 0

    @property
    def label(self) -> str:
        """Row label: ``fc1`` for activations, ``fc1 kernel`` for weights."""
        return self.layer if self.kind == "activation" else f"{self.layer} {self.kind}"


def profile_values(
    values: Any, layer: str, kind: str, stage: str, t: FixedType | None = None
) -> LayerProfile:
    """One ``LayerProfile`` from an array (NaNs ignored)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    mags = np.abs(a[a != 0])
    pct = (
        {p: float(v) for p, v in zip(PERCENTILES, np.percentile(mags, PERCENTILES), strict=True)}
        if mags.size else {p: 0.0 for p in PERCENTILES}
    )
    overflow = underflow = 0
    rng = None
    if t is not None:
        rng = type_range(t)
        overflow = int(np.count_nonzero((a > t.max) | (a < t.min)))
        underflow = int(np.count_nonzero(mags < t.lsb))
    return LayerProfile(
        layer=layer,
        kind=kind,
        stage=stage,
        type=str(t) if t is not None else None,
        range=rng,
        size=int(a.size),
        zeros=int(a.size - mags.size),
        min=float(a.min()) if a.size else 0.0,
        max=float(a.max()) if a.size else 0.0,
        mean=float(a.mean()) if a.size else 0.0,
        abs_min=float(mags.min()) if mags.size else 0.0,
        abs_max=float(mags.max()) if mags.size else 0.0,
        percentiles=pct,
        overflow=overflow,
        underflow=underflow,
    )


def _hls_graph(hls_model: Any) -> Graph:
    graph = getattr(hls_model, "graph", None)
    if not isinstance(graph, Graph):
        raise ConfigError(
            f"hls_model must be a converted model (nnfab.NnfabModel, e.g. from "
            f"nnfab.convert_from_keras_model), got {type(hls_model).__name__}"
        )
    return graph


def select_nodes(graph: Graph, layers: Iterable[str] | None) -> list[Node]:
    """The graph's nodes in order, restricted to ``layers`` (IR node names) if given."""
    if layers is None:
        return list(graph.nodes)
    wanted = [layers] if isinstance(layers, str) else list(layers)
    names = [n.name for n in graph.nodes]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise ConfigError(f"layers: no layer(s) named {unknown}; the model's layers: {names}")
    return [n for n in graph.nodes if n.name in wanted]


def weight_type(node: Node, weight: str) -> FixedType | None:
    """The fixed-point type a graph weight is cast to (None if the node has none)."""
    return node.precision.get(WEIGHT_PRECISION.get(weight, weight))


def weight_profile(
    hls_model: Any, *, quantized: bool = False, layers: Iterable[str] | None = None
) -> list[LayerProfile]:
    """Per weighted layer and weight array (kernel, bias, scale), its statistics.

    ``quantized=False``: the graph's float weights; ``True``: those weights cast to the
    layer's ``weight`` / ``bias`` types, as the emulator casts them. Each row carries
    the type's range either way.
    """
    graph = _hls_graph(hls_model)
    rows = []
    for node in select_nodes(graph, layers):
        for wname, w in node.weights.items():
            t = weight_type(node, wname)
            values = np.asarray(w, dtype=np.float64)
            if quantized:
                if t is None:
                    continue
                values = t.quantize(values)
            rows.append(profile_values(values, node.name, wname,
                                       "quantized" if quantized else "float", t))
    return rows


# ------------------------------------------------------------------ float outputs
def wide_graph(graph: Graph) -> Graph:
    """A copy of a typed graph with every value, weight and accumulator type widened."""
    g = graph.copy()
    for tensor in g.tensors.values():
        tensor.type = WIDE
    for node in g.nodes:
        for key in list(node.precision):
            if key == "accum":
                node.precision[key] = WIDE_ACCUM
            elif key in WIDENED_KEYS:
                node.precision[key] = WIDE
    return g


def _input_batches(hls_model: Any, X: Any) -> list[np.ndarray]:
    """``X`` as one batch-first float64 array per model input, checked as ``predict`` does
    (an array, a list in input order, or a dict by input name)."""
    graph = _hls_graph(hls_model)
    feeds = hls_model.emulator._normalize_inputs(X)
    return [feeds[name] for name in graph.inputs]


def _feed(graph: Graph, xs: list[np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip(graph.inputs, xs, strict=True))


def _trace(hls_model: Any, xs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """``hls_model.trace`` without its overflow warnings (the figures show overflows)."""
    return dict(hls_model.emulator.run(_feed(_hls_graph(hls_model), xs), trace=True).traces)


def _is_keras(model: Any) -> bool:
    return any(c.__module__.startswith(("keras", "tf_keras", "tensorflow"))
               for c in type(model).__mro__)


def _is_torch(model: Any) -> bool:
    return any(c.__module__.startswith("torch") for c in type(model).__mro__)


def match_layers(graph: Graph, framework_names: Sequence[str]) -> dict[str, str]:
    """``{framework layer name: IR node name}`` for the layers found in the graph.

    A name matches the node of that name, or of the name as torch.fx spells submodules
    (``layers.0`` -> ``layers_0``, ``0`` -> ``_0``), or sanitized. When that node feeds
    exactly one Activation/Softmax node named ``<name>_...`` that is not a framework
    layer itself (an activation the frontend split off), the chain's last node is used.
    """
    names = {n.name for n in graph.nodes}
    taken = set(framework_names)
    out: dict[str, str] = {}
    for fname in framework_names:
        dotted = re.sub(r"[^0-9a-zA-Z_]+", "_", fname)
        fx_name = f"_{dotted}" if dotted[:1].isdigit() else dotted  # torch.fx's spelling
        candidates = [fname, fx_name, sanitize(fname)]
        node_name = next((c for c in candidates if c in names), None)
        if node_name is None:
            continue
        prefix = f"{node_name}_"
        while True:
            users = graph.consumers(node_name)
            if (len(users) == 1 and users[0].name.startswith(prefix)
                    and users[0].name not in taken and users[0].op in ("Activation", "Softmax")):
                node_name = users[0].name
            else:
                break
        out[fname] = node_name
    return out


def _keras_outputs(model: Any, xs: list[np.ndarray]) -> dict[str, np.ndarray]:
    import keras

    layers, outputs = [], []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            outputs.append(layer.output)  # fails for layers called several times
        except (AttributeError, ValueError) as e:
            log.debug("layer %r: no single output (%s); skipped", layer.name, e)
            continue
        layers.append(layer)
    if not layers:
        return {}
    sub = keras.Model(model.inputs, outputs)
    inputs = xs[0] if len(xs) == 1 else xs
    outs = sub.predict(inputs, verbose=0, batch_size=max(1, min(len(xs[0]), 4096)))
    outs = outs if isinstance(outs, list | tuple) else [outs]
    result = {str(layer.name): np.asarray(o, dtype=np.float64)
              for layer, o in zip(layers, outs, strict=True)}
    return result


def _torch_outputs(graph: Graph, model: Any, xs: list[np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    layouts = graph.metadata.get("input_layouts", {})
    feeds = []
    for name, x in zip(graph.inputs, xs, strict=True):
        if layouts.get(name) == "channels_last" and x.ndim > 2:
            x = np.moveaxis(x, -1, 1)  # the emulator's channels-last -> PyTorch's layout
        feeds.append(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32))
    captured: dict[str, np.ndarray] = {}
    handles = []

    def hook(qualname: str) -> Any:
        def record(module: Any, args: Any, output: Any) -> None:
            del module, args
            if isinstance(output, torch.Tensor):
                captured[qualname] = output.detach().double().cpu().numpy()
        return record

    for qualname, module in model.named_modules():
        if qualname and not list(module.children()):
            handles.append(module.register_forward_hook(hook(qualname)))
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(*feeds)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return captured


RESETS_ORDER = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D")
"""Ops whose output is in PyTorch's order again (the frontend folds reorderings into
their weights)."""


def torch_reordered(graph: Graph) -> set[str]:
    """IR nodes whose 1-D output holds PyTorch's values in another order.

    A flatten (or reshape) of a channels-last tensor with several positions and channels
    orders its elements (H, W, C) where PyTorch has (C, H, W); element-wise layers after
    it keep that order until a weighted layer, which absorbs it.
    """
    out: set[str] = set()
    for node in graph.nodes:
        shapes = [graph.tensors[t].shape for t in node.inputs]
        if node.op in ("Flatten", "Reshape"):
            shape = shapes[0]
            if len(shape) >= 2 and math.prod(shape[:-1]) > 1 and shape[-1] > 1:
                out.add(node.name)
                continue
        if node.op not in RESETS_ORDER and any(t in out for t in node.inputs):
            out.add(node.name)
    return out


def float_outputs(hls_model: Any, X: Any, model: Any = None) -> dict[str, np.ndarray]:
    """Float ("before quantization") outputs per IR node name, for a batch ``X``.

    ``model``: a Keras model, a PyTorch module, or None (the emulator on ``wide_graph``).
    With a framework model only the layers matched by ``match_layers`` whose shape
    agrees with the IR's (after moving PyTorch's channel axis last) are returned, less
    the PyTorch flatten outputs whose element order differs (``torch_reordered``).
    """
    graph = _hls_graph(hls_model)
    xs = _input_batches(hls_model, X)
    if model is None:
        from nnfab.emulate import Emulator

        result = Emulator(wide_graph(graph)).run(_feed(graph, xs), trace=True)
        return dict(result.traces)
    skip: set[str] = set()
    if _is_keras(model):
        raw = _keras_outputs(model, xs)
    elif _is_torch(model):
        raw = _torch_outputs(graph, model, xs)
        skip = torch_reordered(graph)
    else:
        raise ConfigError(f"model must be a Keras model, a PyTorch module or None, got "
                          f"{type(model).__name__}")
    out: dict[str, np.ndarray] = {}
    for fname, node_name in match_layers(graph, list(raw)).items():
        if node_name in skip:
            log.debug("layer %r: PyTorch orders its elements differently; skipped", fname)
            continue
        value = raw[fname]
        shape = (value.shape[0], *graph.tensors[node_name].shape)
        if value.shape != shape and value.ndim > 2:
            moved = np.moveaxis(value, 1, -1)
            value = moved if moved.shape == shape else value
        if value.shape != shape:
            log.debug("layer %r: framework output shape %s differs from the IR's %s; skipped",
                      fname, value.shape, shape)
            continue
        out[node_name] = value
    if not out:
        log.warning("no framework layer name matched a layer of the converted model")
    for name, x in zip(graph.inputs, xs, strict=True):
        out[name] = x  # the float input is X itself
    return out


def activation_profile(
    hls_model: Any,
    X: Any,
    model: Any = None,
    *,
    quantized: bool = True,
    layers: Iterable[str] | None = None,
) -> list[LayerProfile]:
    """Per layer, statistics of its outputs for the batch ``X``.

    ``quantized=True``: the emulator's bit-exact outputs (``hls_model.trace(X)``);
    ``False``: the float outputs of ``float_outputs(hls_model, X, model)``. Each row
    carries the range of the layer's output type.
    """
    graph = _hls_graph(hls_model)
    nodes = select_nodes(graph, layers)
    if quantized:
        xs = _input_batches(hls_model, X)
        values = _trace(hls_model, xs)
    else:
        values = float_outputs(hls_model, X, model)
    stage = "quantized" if quantized else "float"
    return [profile_values(values[n.name], n.name, "activation", stage,
                           graph.tensors[n.name].type)
            for n in nodes if n.name in values]


def compare_errors(
    model: Any, hls_model: Any, X: Any, *, layers: Iterable[str] | None = None
) -> dict[str, tuple[float, float]]:
    """``{IR layer name: (mean |float - emulator|, max |float - emulator|)}``.

    The float side is ``float_outputs(hls_model, X, model)`` (``model`` may be None);
    layers without a float counterpart are left out.
    """
    graph = _hls_graph(hls_model)
    nodes = select_nodes(graph, layers)
    ref = float_outputs(hls_model, X, model)
    xs = _input_batches(hls_model, X)
    traced = _trace(hls_model, xs)
    out = {}
    for n in nodes:
        if n.name in ref and n.name in traced:
            diff = np.abs(np.asarray(ref[n.name], dtype=np.float64) - traced[n.name])
            out[n.name] = (float(diff.mean()) if diff.size else 0.0,
                           float(diff.max()) if diff.size else 0.0)
    return out

