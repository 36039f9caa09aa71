"""Keras 2 / QKeras model files -> ``nnfab.ir.Graph``, without Keras, TensorFlow or QKeras.

Two file layouts are read with ``json`` and ``h5py`` only:

- an architecture JSON (``model.to_json()``) plus a weights HDF5 file
  (``model.save_weights("w.h5")``): ``graph_from_keras_json(json, weights)``;
- a whole-model HDF5 file (``model.save("m.h5")``), whose ``model_config`` attribute
  holds the JSON and whose ``model_weights`` group the weights:
  ``graph_from_keras_h5(path)``.

Sequential and functional models are supported; Keras 3's legacy ``.h5`` layout is
read too. Float layers keep float64 weights and leave every type to the passes.
QKeras layers (``QDense``, ``QConv1D``, ``QConv2D``, ``QDepthwiseConv2D``,
``QActivation``, ``QBatchNormalization``) carry their quantized weights and the exact
types of their quantizers (``nnfab.frontends.qkeras``): ``node.precision["weight"]``
and ``["bias"]``, and the result type of quantized activations. ``ApplyConfig`` only
replaces these when the configuration names them. The layer table itself is
``nnfab.frontends.keras_mapping``, shared with the Keras 3 (live model) frontend.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, GraphError, UnsupportedLayerError
from nnfab.frontends.keras_mapping import (
    CONVERTERS,
    QKERAS_LAYERS,
    SUPPORTED_LAYERS,
    JsonDict,
    LayerCall,
    Shape,
)
from nnfab.frontends.keras_recurrent import wrapped_weight_name
from nnfab.ir.graph import Graph, Node
from nnfab.ir.names import sanitize
from nnfab.ir.ops import OPS, infer_shapes

__all__ = [
    "CONVERTERS",
    "QKERAS_LAYERS",
    "SUPPORTED_LAYERS",
    "WeightStore",
    "graph_from_keras_h5",
    "graph_from_keras_json",
]

log = logging.getLogger(__name__)

MODEL_CLASSES = ("Sequential", "Model", "Functional")


# =============================================================== public API
def graph_from_keras_json(
    json_path_or_text: str | Path | JsonDict, weights_h5_path: str | Path
) -> Graph:
    """A Keras 2 / QKeras architecture JSON (path, text or dict) plus its weights .h5 -> IR."""
    config, origin = _load_json(json_path_or_text)
    weights_path = Path(weights_h5_path)
    h5py = _import_h5py()
    _check_h5(weights_path, h5py)
    with h5py.File(weights_path, "r") as f:
        group = f.get("model_weights", f)
        _check_weights_layout(group, weights_path)
        store = WeightStore(group, str(weights_path))
        version = str(config.get("keras_version") or _attr_text(f.attrs.get("keras_version")))
        return _ModelReader(config, store, version, origin).run()


def graph_from_keras_h5(path: str | Path) -> Graph:
    """A whole Keras 2 / QKeras model saved as HDF5 (``model.save("m.h5")``) -> IR."""
    p = Path(path)
    h5py = _import_h5py()
    _check_h5(p, h5py)
    with h5py.File(p, "r") as f:
        if "model_config" not in f.attrs:
            raise FrontendError(
                f"{str(p)!r} holds no model architecture (attribute 'model_config' is "
                "missing): it is a weights-only file. Pass the architecture JSON too: "
                "graph_from_keras_json(json, weights)"
            )
        text = _attr_text(f.attrs["model_config"])
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise FrontendError(f"{str(p)!r}: attribute 'model_config' is not JSON: {e}") from e
        group = f.get("model_weights", f)
        _check_weights_layout(group, p)
        store = WeightStore(group, str(p))
        version = _attr_text(f.attrs.get("keras_version"))
        return _ModelReader(config, store, version, str(p)).run()


# ============================================================ file helpers
def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as e:  # h5py is a core dependency; this is a broken install
        raise FrontendError(f"reading Keras .h5 files needs h5py ({e}): pip install h5py") from e
    return h5py


def _check_h5(path: Path, h5py: Any) -> None:
    if not path.exists():
        raise FrontendError(f"Keras weights/model file {str(path)!r} does not exist")
    if not h5py.is_hdf5(path):
        raise FrontendError(f"{str(path)!r} is not an HDF5 file")


def _attr_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _load_json(source: str | Path | JsonDict) -> tuple[JsonDict, str]:
    if isinstance(source, dict):
        return source, "<dict>"
    text: str
    origin: str
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text, origin = source, "<json text>"
    else:
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as e:
            raise FrontendError(f"cannot read Keras architecture JSON {str(path)!r}: {e}") from e
        origin = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FrontendError(f"{origin}: not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise FrontendError(f"{origin}: a Keras model JSON must be an object, got {type(data)}")
    return data, origin


def _check_weights_layout(group: Any, path: Path | str) -> None:
    if "layer_names" in group.attrs:
        return
    if "layers" in group or "vars" in group:
        raise FrontendError(
            f"{str(path)!r} is a Keras 3 '.weights.h5' file; nnfab reads it through the Keras 3 "
            "frontend: load the model in Keras 3 and pass the model object"
        )
    raise FrontendError(
        f"{str(path)!r} has no 'layer_names' attribute: it is not a Keras weights file "
        "(saved with model.save_weights('w.h5') or model.save('m.h5'))"
    )


class WeightStore:
    """The per-layer weight arrays of a Keras HDF5 weights group, by short name.

    Keras 2 writes ``<layer>/<scope>/kernel:0``; Keras 3 ``<layer>/<layer>/kernel``;
    the ``weight_names`` attribute of each layer group lists them. Short names are
    the last path component without ``:0``.
    """

    def __init__(self, group: Any, origin: str) -> None:
        self.origin = origin
        self.layers: dict[str, dict[str, np.ndarray]] = {}
        names = [_attr_text(n) for n in group.attrs["layer_names"]]
        for layer in names:
            if layer not in group:
                continue
            lgroup = group[layer]
            arrays: dict[str, np.ndarray] = {}
            for wname in [_attr_text(n) for n in lgroup.attrs.get("weight_names", [])]:
                short = wrapped_weight_name(wname, layer)
                if wname not in lgroup:
                    raise FrontendError(
                        f"{origin}: layer {layer!r} lists weight {wname!r} but the file does "
                        "not contain it"
                    )
                if short in arrays:
                    raise FrontendError(
                        f"{origin}: layer {layer!r} has two weights named {short!r}"
                    )
                arrays[short] = np.array(lgroup[wname], dtype=np.float64)
            self.layers[layer] = arrays

    def get(self, layer: str) -> dict[str, np.ndarray]:
        return self.layers.get(layer, {})


# ============================================================ model walker
@dataclass
class _LayerEntry:
    name: str
    cls: str
    config: JsonDict
    inbound: list[tuple[str, int, int]]


class _ModelReader:
    """Parses a model config (Sequential or functional) and converts its layers in order."""

    def __init__(self, data: JsonDict, store: WeightStore, version: str, origin: str) -> None:
        self.data = data
        self.store = store
        self.origin = origin
        self.version = version or str(data.get("keras_version", ""))
        major = self.version.split(".", 1)[0]
        self.keras_major = int(major) if major.isdigit() else 2
        self.graph = Graph()
        self.reserved: set[str] = set()
        self.tensor_of: dict[str, str] = {}  # Keras layer name -> IR tensor of its output

    # ----------------------------------------------------------- parsing
    def _model_config(self) -> tuple[str, JsonDict | list[Any]]:
        cls = self.data.get("class_name")
        config = self.data.get("config")
        if cls not in MODEL_CLASSES or config is None:
            raise FrontendError(
                f"{self.origin}: top-level class_name {cls!r} is not a Keras model (expected one "
                f"of {', '.join(MODEL_CLASSES)} with a 'config')"
            )
        return str(cls), config

    def _entries(self) -> tuple[str, list[_LayerEntry], list[str], list[str]]:
        cls, config = self._model_config()
        if cls == "Sequential":
            return self._sequential(config)
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise FrontendError(f"{self.origin}: functional model config has no 'layers' list")
        name = str(config.get("name", "model"))
        entries = []
        for layer in config["layers"]:
            lcls, lname, lconfig = self._layer_identity(layer)
            entries.append(_LayerEntry(lname, lcls, lconfig, self._inbound(lname, layer)))
        inputs = [r[0] for r in _refs(config.get("input_layers", []), self.origin, "input_layers")]
        outputs = [r[0] for r in _refs(config.get("output_layers", []), self.origin,
                                       "output_layers")]
        return name, entries, inputs, outputs

    def _layer_identity(self, layer: Any) -> tuple[str, str, JsonDict]:
        if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
            raise FrontendError(f"{self.origin}: malformed layer entry {str(layer)[:200]!r}")
        cls = str(layer.get("class_name"))
        config = layer["config"]
        name = str(layer.get("name") or config.get("name") or "")
        if not name:
            raise FrontendError(f"{self.origin}: a {cls} layer has no name")
        return cls, name, config

    def _sequential(self, config: Any) -> tuple[str, list[_LayerEntry], list[str], list[str]]:
        if isinstance(config, list):  # Keras <= 2.1 wrote the layer list directly
            name, layers = "sequential", config
        elif isinstance(config, dict) and isinstance(config.get("layers"), list):
            name, layers = str(config.get("name", "sequential")), config["layers"]
        else:
            raise FrontendError(f"{self.origin}: Sequential model config has no 'layers' list")
        if not layers:
            raise FrontendError(f"{self.origin}: the Sequential model has no layers")
        entries: list[_LayerEntry] = []
        identities = [self._layer_identity(layer) for layer in layers]
        if identities[0][0] != "InputLayer":
            first_cls, first_name, first_config = identities[0]
            shape = first_config.get("batch_input_shape") or first_config.get("batch_shape")
            if shape is None and isinstance(config, dict):
                shape = config.get("build_input_shape")
            if shape is None:
                raise FrontendError(
                    f"{self.origin}: the first layer {first_name!r} ({first_cls}) of the "
                    "Sequential model has no batch_input_shape: the input shape is unknown"
                )
            input_name = f"{first_name}_input"
            entries.append(
                _LayerEntry(input_name, "InputLayer", {"batch_input_shape": shape}, [])
            )
        for cls, lname, lconfig in identities:
            inbound = [(entries[-1].name, 0, 0)] if entries else []
            entries.append(_LayerEntry(lname, cls, lconfig, inbound))
        return name, entries, [entries[0].name], [entries[-1].name]

    def _inbound(self, name: str, layer: JsonDict) -> list[tuple[str, int, int]]:
        calls = layer.get("inbound_nodes", [])
        if not calls:
            return []
        if len(calls) > 1:
            raise UnsupportedLayerError(
                f"layer {name!r} ({layer.get('class_name')}) is called {len(calls)} times in the "
                "model; shared layers are not supported (use a separate layer per call)"
            )
        call = calls[0]
        if isinstance(call, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            found: list[tuple[str, int, int]] = []
            _keras_tensors(call.get("args", []), found)
            return found
        return _refs(call, self.origin, f"inbound_nodes of layer {name!r}")

    # -------------------------------------------------------- conversion
    def run(self) -> Graph:
        name, entries, inputs, outputs = self._entries()
        self.graph.name = sanitize(name)
        self.reserved = {e.name for e in entries}
        by_name: dict[str, _LayerEntry] = {}
        for e in entries:
            if e.name in by_name:
                raise FrontendError(f"{self.origin}: two layers are named {e.name!r}")
            by_name[e.name] = e
        for ref in (*inputs, *outputs):
            if ref not in by_name:
                raise FrontendError(f"{self.origin}: model input/output {ref!r} is not a layer")
        for e in _topological(by_name, outputs, inputs):
            self._convert(e)
        self.graph.outputs = [self.tensor_of[o] for o in outputs]
        self.graph.metadata.update(
            {
                "source": "keras-json",
                "source_file": self.origin,
                "source_model": name,
                "keras_version": self.version,
                "layer_outputs": dict(self.tensor_of),
            }
        )
        try:
            infer_shapes(self.graph)
            self.graph.validate()
        except GraphError as e:
            raise FrontendError(f"{self.origin}: invalid converted graph: {e}") from e
        log.info("converted %s: %d IR nodes, inputs %s, outputs %s", self.origin,
                 len(self.graph), self.graph.inputs, self.graph.outputs)
        return self.graph

    def _unique_name(self, base: str) -> str:
        candidate, i = base, 1
        while candidate in self.reserved or candidate in self.graph.tensors:
            candidate = f"{base}_{i}"
            i += 1
        self.reserved.add(candidate)
        return candidate

    def _convert(self, e: _LayerEntry) -> None:
        if e.cls == "InputLayer":
            nodes = [Node(e.name, "Input", [], {"shape": self._input_shape(e)},
                          source_class=e.cls)]
        else:
            converter = CONVERTERS.get(e.cls)
            if converter is None:
                hint = " (a nested model: save the model with its layers flattened)" if (
                    e.cls in MODEL_CLASSES) else ""
                raise UnsupportedLayerError(
                    f"layer {e.name!r} of type {e.cls!r} is not supported{hint}; supported: "
                    f"{', '.join(SUPPORTED_LAYERS)}"
                )
            if not e.inbound:
                raise FrontendError(f"{self.origin}: layer {e.name!r} ({e.cls}) has no inputs")
            for src, node_index, tensor_index in e.inbound:
                if node_index != 0 or tensor_index != 0:
                    raise UnsupportedLayerError(
                        f"layer {e.name!r} ({e.cls}) reads output {tensor_index} of call "
                        f"{node_index} of {src!r}; only single-call, single-output layers are "
                        "supported"
                    )
            inputs = [self.tensor_of[src] for src, _, _ in e.inbound]
            call = LayerCall(
                name=e.name, cls=e.cls, config=e.config, inputs=inputs,
                in_shapes=[self.graph.tensors[t].shape for t in inputs],
                weights=self.store.get(e.name), keras_major=self.keras_major,
                unique_name=self._unique_name, origin=self.store.origin,
            )
            nodes = converter(call)
        for node in nodes:
            self._add(e, node)
        self.tensor_of[e.name] = nodes[-1].name
        log.debug("layer %r (%s) -> %s", e.name, e.cls, [(n.name, n.op) for n in nodes])

    def _add(self, e: _LayerEntry, node: Node) -> None:
        spec = OPS[node.op]
        result = node.attrs.pop("_result_type", None)
        try:
            shapes = [self.graph.tensors[t].shape for t in node.inputs]
            shape = spec.infer_shape(node, shapes)
            self.graph.add_node(node, shape, result)
        except (GraphError, KeyError, IndexError, ValueError) as err:
            raise FrontendError(f"layer {e.name!r} ({e.cls}): {err}") from err

    def _input_shape(self, e: _LayerEntry) -> Shape:
        shape = e.config.get("batch_input_shape") or e.config.get("batch_shape")
        if not isinstance(shape, list | tuple) or len(shape) < 2:
            raise FrontendError(
                f"input layer {e.name!r}: batch_input_shape {shape!r} should be [null, sizes...]"
            )
        dims = shape[1:]
        if not all(isinstance(d, int) and d > 0 for d in dims):
            raise FrontendError(
                f"input layer {e.name!r}: shape {list(shape)!r} has an unknown or invalid "
                "non-batch size; nnfab needs fixed sizes"
            )
        return tuple(int(d) for d in dims)


def _refs(value: Any, origin: str, what: str) -> list[tuple[str, int, int]]:
    """``[[name, node, tensor(, kwargs)], ...]`` (or one bare ``[name, node, tensor]``)."""
    if isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str):
        value = [value]
    refs = []
    for item in value if isinstance(value, list) else [None]:
        if not (isinstance(item, list) and len(item) >= 3 and isinstance(item[0], str)):
            raise FrontendError(f"{origin}: cannot read {what}: {value!r}")
        refs.append((item[0], int(item[1]), int(item[2])))
    return refs


def _keras_tensors(value: Any, found: list[tuple[str, int, int]]) -> None:
    """Collect ``keras_history`` references from Keras 3 call arguments, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            hist = value.get("config", {}).get("keras_history", [])
            found.append((str(hist[0]), int(hist[1]), int(hist[2])))
            return
        for v in value.values():
            _keras_tensors(v, found)
    elif isinstance(value, list):
        for v in value:
            _keras_tensors(v, found)


def _topological(
    by_name: dict[str, _LayerEntry], outputs: list[str], inputs: list[str]
) -> list[_LayerEntry]:
    """Layers needed for ``outputs`` (and every input), producers first."""
    order: list[_LayerEntry] = []
    state: dict[str, int] = {}
    for root in (*inputs, *outputs):
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            name, ready = stack.pop()
            if ready:
                if state.get(name) != 2:
                    state[name] = 2
                    order.append(by_name[name])
                continue
            mark = state.get(name, 0)
            if mark == 2:
                continue
            if mark == 1:
                raise FrontendError(f"the model has a cycle through layer {name!r}")
            state[name] = 1
            stack.append((name, True))
            for src, _, _ in reversed(by_name[name].inbound):
                if src not in by_name:
                    raise FrontendError(f"layer {name!r} reads unknown layer {src!r}")
                if state.get(src, 0) == 0:
                    stack.append((src, False))
                elif state.get(src) == 1:
                    raise FrontendError(f"the model has a cycle through layer {src!r}")
    return order
