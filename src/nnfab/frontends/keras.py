"""Keras 3 frontend: a ``keras.Model`` (Sequential or functional), or a ``.keras`` /
``.h5`` whole-model file, -> ``nnfab.ir.Graph``.

The graph has the model's structure, shapes and float64 weights; tensor types and
``node.precision`` stay empty for the passes to fill in. Keras is imported lazily,
so nnfab imports without it. Layers are mapped by ``keras_mapping``, the table the
JSON/HDF5 reader uses too: ``keras_layers`` describes each live layer as a model file
would (class name, ``get_config()``, weights by short name) and the table converts it;
qkeras-v3 layers (QKeras for Keras 3) are described by ``qkeras3``, HGQ2 models go to ``hgq``.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from nnfab.errors import FrontendError, GraphError, UnsupportedLayerError
from nnfab.frontends.keras_layers import (
    CUSTOM_LAYERS,
    LIVE_LAYERS,
    SUPPORTED_LAYERS,
    describe_layer,
)
from nnfab.frontends.keras_mapping import CONVERTERS, Converter, LayerCall, Shape
from nnfab.frontends.keras_ops import OPERATIONS, operation_nodes
from nnfab.frontends.qkeras3 import (
    describe_qkeras3_layer,
    is_qkeras3_layer,
    qkeras3_converter,
)
from nnfab.ir.graph import Graph, Node
from nnfab.ir.names import sanitize
from nnfab.ir.ops import infer_shapes

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def import_keras() -> Any:
    """Import Keras 3 (TensorFlow backend unless KERAS_BACKEND says otherwise), quietly."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras
    except ImportError as e:
        raise FrontendError(
            f"the Keras frontend needs keras 3 and a backend ({e}); install them with "
            "pip install 'nnfab[keras]'"
        ) from e
    major = str(getattr(keras, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 3:
        raise FrontendError(
            f"keras {getattr(keras, '__version__', '?')!r} is installed; nnfab's Keras frontend "
            "needs keras >= 3"
        )
    return keras


def load_keras_model(
    path: str | os.PathLike[str], custom_objects: dict[str, Any] | None = None
) -> Any:
    """Load a whole Keras model (architecture + weights) from a ``.keras`` or ``.h5`` file."""
    p = Path(path)
    if not p.exists():
        raise FrontendError(f"Keras model file {str(p)!r} does not exist")
    if p.is_dir():
        raise FrontendError(
            f"{str(p)!r} is a directory (a TensorFlow SavedModel?); nnfab reads whole-model "
            f"files with suffix {', '.join(MODEL_SUFFIXES)}"
        )
    suffix = p.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise FrontendError(
            f"Keras model file {str(p)!r} has suffix {p.suffix!r}; allowed: "
            f"{', '.join(MODEL_SUFFIXES)} (a whole model saved with model.save)"
        )
    if suffix == ".keras" and not zipfile.is_zipfile(p):
        raise FrontendError(f"{str(p)!r} is not a .keras archive (not a zip file)")
    if suffix in (".h5", ".hdf5"):
        _check_h5_model(p)
    keras = import_keras()
    if suffix == ".keras" and _mentions_hgq(p):
        try:  # HGQ2's layers register themselves with Keras on import
            import hgq  # noqa: F401
        except ImportError as e:
            raise FrontendError(f"{str(p)!r} is an HGQ2 model: pip install hgq2 (or "
                                "nnfab[hgq]) to read it") from e
    if suffix == ".keras" and _config_mentions(p, "qkeras"):  # qkeras-v3 layers
        from nnfab.frontends.qkeras3 import qkeras3_custom_objects

        custom_objects = {**qkeras3_custom_objects(), **(custom_objects or {})}
    try:
        model = keras.models.load_model(p, custom_objects=custom_objects, compile=False)
    except Exception as e:  # Keras raises many kinds; the message says what went wrong.
        raise FrontendError(f"Keras could not load {str(p)!r}: {type(e).__name__}: {e}") from e
    if not isinstance(model, keras.Model):
        raise FrontendError(f"{str(p)!r} holds a {type(model).__name__}, not a keras.Model")
    log.info("loaded Keras model %r from %s", model.name, p)
    return model


def _mentions_hgq(p: Path) -> bool:
    """Whether a ``.keras`` archive's config names layers of the ``hgq`` package."""
    return _config_mentions(p, "hgq")


def _config_mentions(p: Path, package: str) -> bool:
    """Whether a ``.keras`` archive's config names objects of the Python ``package``."""
    try:
        with zipfile.ZipFile(p) as z:
            config = z.read("config.json").decode("utf-8", "replace")
    except (KeyError, OSError, zipfile.BadZipFile):
        return False
    return f'"module": "{package}.' in config or f'"module":"{package}.' in config


def _check_h5_model(p: Path) -> None:
    import h5py

    if not h5py.is_hdf5(p):
        raise FrontendError(f"{str(p)!r} is not an HDF5 file")
    with h5py.File(p, "r") as f:
        if "model_config" not in f.attrs:
            raise FrontendError(
                f"{str(p)!r} holds no model architecture (attribute 'model_config' missing): "
                "it is a weights-only file; save the whole model with model.save(...)"
            )


def keras_to_graph(model_or_path: Any) -> Graph:
    """Translate a Keras 3 model, or the path of a ``.keras`` / ``.h5`` model file, to the IR."""
    if isinstance(model_or_path, str | os.PathLike):
        model = load_keras_model(model_or_path)
        keras = import_keras()
    else:
        keras = import_keras()
        model = model_or_path
        if not isinstance(model, keras.Model):
            raise FrontendError(
                f"expected a keras.Model or the path of a model file, got "
                f"{type(model_or_path).__name__}"
            )
    if any(type(layer).__module__.startswith("hgq.") for layer in model.layers):
        from nnfab.frontends.hgq import hgq_to_graph

        return hgq_to_graph(model)
    graph = _ModelWalker(keras, model).run()
    log.info(
        "converted Keras model %r: %d IR nodes, inputs %s, outputs %s",
        model.name,
        len(graph),
        graph.inputs,
        graph.outputs,
    )
    return graph


class _ModelWalker:
    """Walks a functional (or Sequential) model's layer calls from its outputs back."""

    def __init__(self, keras: Any, model: Any) -> None:
        self.keras = keras
        self.model = model
        self.graph = Graph(name=sanitize(model.name))
        self.graph.metadata.update(
            {"source": "keras", "source_model": str(model.name), "keras_version": keras.__version__}
        )
        self.done: set[tuple[int, int]] = set()
        self.tensor_of: dict[tuple[int, int, int], str] = {}
        self.call_of_layer: dict[int, int] = {}
        self.expected: dict[str, tuple[str, Shape]] = {}
        self.reserved: set[str] = set()
        major = str(keras.__version__).split(".", 1)[0]
        self.keras_major = int(major) if major.isdigit() else 3
        self.origin = f"Keras model {str(model.name)!r}"

    # ------------------------------------------------------------ structure
    def _model_tensors(self, which: str) -> list[Any]:
        try:
            tensors = getattr(self.model, which)
        except (AttributeError, ValueError) as e:
            raise FrontendError(
                f"model {self.model.name!r} has no defined {which} ({e}); give it a keras.Input "
                "or build it, and use a Sequential or functional model (subclassed models have "
                "no layer graph)"
            ) from e
        tensors = list(tensors) if isinstance(tensors, list | tuple) else [tensors]
        if not tensors:
            raise FrontendError(f"model {self.model.name!r} has no {which}")
        return tensors

    def _history(self, tensor: Any) -> tuple[Any, int, int]:
        hist = getattr(tensor, "_keras_history", None)
        if hist is None:
            raise FrontendError(
                f"model {self.model.name!r}: tensor {getattr(tensor, 'name', tensor)!r} has no "
                "layer history; only Sequential and functional models can be converted"
            )
        return hist.operation, int(hist.node_index), int(hist.tensor_index)

    def run(self) -> Graph:
        inputs = self._model_tensors("inputs")
        outputs = self._model_tensors("outputs")
        self.reserved = {str(layer.name) for layer in self.model.layers}
        self.reserved |= {str(self._history(t)[0].name) for t in inputs}
        for t in inputs + outputs:
            self._visit(t)
        self.graph.outputs = [self._ir_tensor(t) for t in outputs]
        self._check_shapes()
        try:
            self.graph.validate()
        except GraphError as e:
            raise FrontendError(f"model {self.model.name!r}: invalid converted graph: {e}") from e
        return self.graph

    def _ir_tensor(self, tensor: Any) -> str:
        op, node_index, tensor_index = self._history(tensor)
        return self.tensor_of[(id(op), node_index, tensor_index)]

    def _visit(self, tensor: Any) -> None:
        """Convert the layer call producing ``tensor`` after those feeding it (post-order)."""
        op, node_index, _ = self._history(tensor)
        stack: list[tuple[Any, int, bool]] = [(op, node_index, False)]
        while stack:
            op, node_index, ready = stack.pop()
            if (id(op), node_index) in self.done:
                continue
            knode = op._inbound_nodes[node_index]
            if ready:
                self._convert(op, node_index, knode)
                self.done.add((id(op), node_index))
                continue
            stack.append((op, node_index, True))
            for t in reversed(list(knode.input_tensors)):
                src, src_index, _ = self._history(t)
                if (id(src), src_index) not in self.done:
                    stack.append((src, src_index, False))

    # ----------------------------------------------------------- conversion
    def _unique_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.reserved or name in self.graph.tensors:
            name = f"{base}_{i}"
            i += 1
        self.reserved.add(name)
        return name

    def _keras_shape(self, layer: Any, tensor: Any, partial: bool = False) -> Shape:
        """The tensor's shape without the batch axis; ``partial``: unknown sizes are -1
        (Keras leaves e.g. an ``EinsumDense`` ``output_shape`` of None unknown)."""
        shape = tuple(tensor.shape)[1:]
        if partial and all(s is None or int(s) > 0 for s in shape):
            return tuple(-1 if s is None else int(s) for s in shape)
        if any(s is None for s in shape):
            raise FrontendError(
                f"layer {layer.name!r} ({type(layer).__name__}): output shape "
                f"{tuple(tensor.shape)!r} has an unknown non-batch size; give the model's "
                "inputs a fixed shape"
            )
        return tuple(int(s) for s in shape)

    def _convert(self, layer: Any, node_index: int, knode: Any) -> None:
        cls = type(layer).__name__
        previous = self.call_of_layer.setdefault(id(layer), node_index)
        if previous != node_index:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({cls}) is called more than once in the model; shared "
                "layers are not supported (use a separate layer per call)"
            )
        if len(knode.output_tensors) != 1:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} ({cls}) has {len(knode.output_tensors)} outputs; only "
                "single-output layers are supported"
            )
        is_input = cls == "InputLayer" and isinstance(layer, self.keras.layers.InputLayer)
        out_shape = self._keras_shape(layer, knode.output_tensors[0], partial=not is_input)
        if is_input:
            nodes = [
                Node(
                    name=str(layer.name),
                    op="Input",
                    inputs=[],
                    attrs={"shape": out_shape},
                    source_class=cls,
                )
            ]
        elif cls in OPERATIONS and not isinstance(layer, self.keras.layers.Layer):
            nodes = self._operation(layer, knode)
        else:
            if is_qkeras3_layer(layer):
                converter = qkeras3_converter(layer)
                desc = describe_qkeras3_layer(self.keras, layer)
            else:
                converter = self._converter(layer)
                desc = describe_layer(self.keras, layer)
            inputs = [self._ir_tensor(t) for t in knode.input_tensors]
            if cls == "MultiHeadAttention":
                inputs = self._attention_inputs(layer, knode)
            call = LayerCall(
                name=str(layer.name),
                cls=desc.cls,
                config=desc.config,
                inputs=inputs,
                in_shapes=[self.graph.tensors[t].shape for t in inputs],
                weights=desc.weights,
                keras_major=self.keras_major,
                unique_name=self._unique_name,
                origin=self.origin,
            )
            nodes = converter(call)
        for node in nodes:
            result = node.attrs.pop("_result_type", None)  # only quantized layers set it
            try:
                self.graph.add_node(node, out_shape, result)
            except GraphError as e:
                raise FrontendError(f"layer {layer.name!r} ({cls}): {e}") from e
        if -1 in out_shape:
            out_shape = self._resolve_unknown(layer, nodes[-1].name, out_shape)
        log.debug("layer %r (%s) -> %s", layer.name, cls, [(n.name, n.op) for n in nodes])
        self.tensor_of[(id(layer), node_index, 0)] = nodes[-1].name
        self.expected[nodes[-1].name] = (str(layer.name), out_shape)

    def _operation(self, layer: Any, knode: Any) -> list[Node]:
        """A ``keras.ops`` operation of ``keras_ops.OPERATIONS`` (``x[key]``, ``x + y``)."""
        inputs = [self._ir_tensor(t) for t in knode.input_tensors]
        args = list(getattr(getattr(knode, "arguments", None), "args", ()))
        config = {k: getattr(layer, k) for k in ("axis", "keepdims") if hasattr(layer, k)}
        call = LayerCall(name=str(layer.name), cls=type(layer).__name__, config=config,
                         inputs=inputs, in_shapes=[self.graph.tensors[t].shape for t in inputs],
                         weights={}, keras_major=self.keras_major,
                         unique_name=self._unique_name, origin=self.origin)
        return operation_nodes(call, args)

    def _attention_inputs(self, layer: Any, knode: Any) -> list[str]:
        """A ``MultiHeadAttention`` call's query, value and (if given) key, in that order;
        masks and other call options are refused by name."""
        arguments = getattr(knode, "arguments", None)
        args = list(getattr(arguments, "args", ()))
        kwargs = dict(getattr(arguments, "kwargs", {}))
        named = dict(zip(("query", "value", "key"), args, strict=False))
        for key in ("query", "value", "key"):
            if key in kwargs:
                named[key] = kwargs.pop(key)
        options = {k: v for k, v in kwargs.items() if v not in (None, False)}
        options.pop("training", None)
        if options or len(args) > 3:
            given = ", ".join(sorted(options)) or f"{len(args)} positional arguments"
            raise UnsupportedLayerError(
                f"layer {layer.name!r} (MultiHeadAttention) is called with {given}; "
                "supported: query, value and key (no masks, no return_attention_scores)")
        if "query" not in named or "value" not in named:
            raise UnsupportedLayerError(
                f"layer {layer.name!r} (MultiHeadAttention): query and value are needed")
        return [self._ir_tensor(named[k]) for k in ("query", "value", "key") if k in named]

    def _resolve_unknown(self, layer: Any, tensor: str, partial: Shape) -> Shape:
        """The IR's shape of ``tensor`` where Keras left sizes unknown (-1), checked
        against the sizes Keras knows."""
        try:
            infer_shapes(self.graph)
        except GraphError as e:
            raise FrontendError(f"layer {layer.name!r}: shape inference failed: {e}") from e
        got = self.graph.tensors[tensor].shape
        if len(got) != len(partial) or any(k not in (-1, g) for k, g in zip(partial, got,
                                                                              strict=False)):
            raise FrontendError(
                f"layer {layer.name!r}: nnfab infers output shape {got!r}, Keras gives "
                f"{partial!r} (-1: unknown); the Keras frontend mapped this layer wrongly")
        return got

    def _converter(self, layer: Any) -> Converter:
        cls = type(layer).__name__
        converter = CONVERTERS.get(cls) if cls in LIVE_LAYERS else None
        if converter is not None and getattr(self.keras.layers, cls, None) is type(layer):
            return converter
        if cls in CUSTOM_LAYERS and isinstance(layer, self.keras.layers.Layer):
            return CONVERTERS[cls]
        hint = ""
        if isinstance(layer, self.keras.Model):
            hint = " (a nested model: build the model from its layers directly)"
        elif not isinstance(layer, self.keras.layers.Layer):
            hint = f" (a keras.ops operation from {type(layer).__module__}, not a Keras layer)"
        elif cls in LIVE_LAYERS:
            hint = f" (a subclass from {type(layer).__module__}, not keras.layers.{cls})"
        raise UnsupportedLayerError(
            f"layer {layer.name!r} of type {cls!r} is not supported{hint}; supported: "
            f"{', '.join(SUPPORTED_LAYERS)}, and the operations x[key], x + y, x - y, x * y, "
            f"x / c ({', '.join(OPERATIONS)})"
        )

    def _check_shapes(self) -> None:
        """Infer IR shapes and compare them with Keras' own: catches mapping bugs."""
        try:
            infer_shapes(self.graph)
        except GraphError as e:
            raise FrontendError(
                f"model {self.model.name!r}: shape inference failed on the converted graph: {e}"
            ) from e
        for tensor, (layer_name, shape) in self.expected.items():
            got = self.graph.tensors[tensor].shape
            if got != shape:
                raise FrontendError(
                    f"layer {layer_name!r}: nnfab infers output shape {got!r} for {tensor!r}, "
                    f"Keras gives {shape!r}; the Keras frontend mapped this layer wrongly"
                )
