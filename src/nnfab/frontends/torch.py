"""PyTorch frontend: an ``nn.Module`` (or a ``.pt``/``.pth`` file of a whole pickled
module) -> ``nnfab.ir.Graph``, through ``torch.fx`` symbolic tracing.

The model is traced in eval mode and run once on random inputs of the given shape;
that forward pass gives every tensor's shape, which ``infer_shapes`` must reproduce.
The op table lives in ``torch_layers``; the channels-first to channels-last
bookkeeping in ``torch_layout``.

Layouts: the IR is channels-last. A model input of rank >= 2 (without batch) that
reaches a convolution, pooling or batch normalization is taken channels-last:
``predict`` wants ``(N, H, W, C)`` / ``(N, L, C)``, and conv feature-map outputs
come back channels-last too (``nchw_to_nhwc`` / ``nhwc_to_nchw`` convert).
``graph.metadata['input_layouts']`` and ``['output_layouts']`` say which
(``channels_last``, or ``unchanged``: PyTorch's own order). Flattening a feature map
feeds the next ``Linear`` with its rows permuted, so no transpose is ever emitted.

torch is imported lazily, so nnfab imports without it.
"""

from __future__ import annotations

import logging
import operator
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.errors import FrontendError, GraphError, UnsupportedLayerError
from nnfab.frontends import torch_attention as ta
from nnfab.frontends.attention import attention_nodes
from nnfab.frontends.torch_layers import (
    FUNCTIONS,
    METHODS,
    MODULES,
    OTHER,
    SPATIAL,
    TRANSPARENT,
    Kind,
    OpCall,
    _in_torch_order,
    bind,
    module_params,
    supported_list,
    to_float64,
)
from nnfab.frontends.torch_layout import (
    CHANNELS_LAST,
    PERMUTED,
    UNCHANGED,
    Shape,
    Value,
    canonical_index,
    channels_last_index,
    nchw_to_nhwc,
    nhwc_to_nchw,
)
from nnfab.frontends.torch_recurrent import TORCH_OPS as RECURRENT_MODULES
from nnfab.frontends.torch_recurrent import bidirectional_nodes, recurrent_nodes
from nnfab.frontends.torch_shape import SPLIT_CALLS, split_part
from nnfab.frontends.torch_zoo import example_inputs
from nnfab.ir.graph import Graph, Node
from nnfab.ir.names import sanitize
from nnfab.ir.ops import infer_shapes, op_spec

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".pt", ".pth")
BATCH = 2
"""Batch size of the shape-recording forward pass (2: ops that fold the batch show up)."""

__all__ = [
    "MODEL_SUFFIXES",
    "load_torch_model",
    "nchw_to_nhwc",
    "nhwc_to_nchw",
    "torch_to_graph",
]


def import_torch() -> Any:
    try:
        import torch
        import torch.fx
    except ImportError as e:
        raise FrontendError(
            f"the PyTorch frontend needs torch ({e}); install it with pip install 'nnfab[torch]'"
        ) from e
    return torch


# ---------------------------------------------------------------- loading
def load_torch_model(path: str | os.PathLike[str]) -> Any:
    """Load a whole pickled ``nn.Module`` saved with ``torch.save(model, path)``.

    The file is unpickled (``weights_only=False``): load only files you trust.
    """
    p = Path(path)
    if not p.exists():
        raise FrontendError(f"PyTorch model file {str(p)!r} does not exist")
    if not p.is_file():
        raise FrontendError(f"{str(p)!r} is not a file")
    if p.suffix.lower() not in MODEL_SUFFIXES:
        raise FrontendError(
            f"PyTorch model file {str(p)!r} has suffix {p.suffix!r}; allowed: "
            f"{', '.join(MODEL_SUFFIXES)} (a whole module saved with torch.save(model, path))"
        )
    torch = import_torch()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obj = torch.load(p, map_location="cpu", weights_only=False)
    except (AttributeError, ImportError) as e:
        raise FrontendError(
            f"{str(p)!r} holds a pickled module whose class cannot be found ({e}): import or "
            "define that class (under the same module path it was saved from) before loading, "
            "or construct the model in Python and pass the object"
        ) from e
    except Exception as e:  # torch/pickle raise many kinds; the message says what went wrong.
        raise FrontendError(f"torch could not load {str(p)!r}: {type(e).__name__}: {e}") from e
    for w in caught:
        log.debug("torch.load(%s): %s", p, w.message)
    if isinstance(obj, torch.jit.ScriptModule):
        raise FrontendError(
            f"{str(p)!r} is a TorchScript archive, which torch.fx cannot trace; save the "
            "module itself with torch.save(model, path), or pass the nn.Module object"
        )
    if isinstance(obj, torch.nn.Module):
        log.info("loaded PyTorch module %s from %s", type(obj).__name__, p)
        return obj
    if isinstance(obj, Mapping):
        keys = list(obj)[:8]
        raise FrontendError(
            f"{str(p)!r} holds a {type(obj).__name__} (keys {keys!r}...), i.e. a state dict or "
            "checkpoint of weights only; nnfab needs the module class as well: construct the "
            "model in Python, load the weights with model.load_state_dict(...), and pass the "
            "model object"
        )
    raise FrontendError(
        f"{str(p)!r} holds a {type(obj).__name__}, not a torch.nn.Module; save the whole "
        "module with torch.save(model, path)"
    )


def _input_shapes(input_shape: Any) -> list[Shape]:
    """One shape (ints) or a sequence of shapes -> list of shapes without the batch axis."""
    if not isinstance(input_shape, Sequence) or isinstance(input_shape, str) or not input_shape:
        raise FrontendError(
            f"input_shape {input_shape!r} must be a shape without the batch axis, channels "
            "first (e.g. (3, 32, 32)), or a list of such shapes for several inputs"
        )
    shapes = (
        [input_shape]
        if all(isinstance(s, int | np.integer) or s is None for s in input_shape)
        else list(input_shape)
    )
    out = []
    for shape in shapes:
        if not isinstance(shape, Sequence) or isinstance(shape, str):
            raise FrontendError(f"input_shape entry {shape!r} is not a shape (a tuple of ints)")
        dims = list(shape)
        if dims and dims[0] is None:  # hls4ml style (None, ...): drop the batch
            dims = dims[1:]
        if not dims or any(
            not isinstance(d, int | np.integer) or isinstance(d, bool) or d < 1 for d in dims
        ):
            raise FrontendError(
                f"input shape {tuple(shape)!r} must be positive ints (without the batch axis)"
            )
        out.append(tuple(int(d) for d in dims))
    return out


def torch_to_graph(model_or_path: Any, input_shape: Any) -> Graph:
    """Translate a PyTorch ``nn.Module`` (or a ``.pt``/``.pth`` whole-module file) to the IR.

    ``input_shape`` excludes the batch and is in PyTorch's layout (``(3, 32, 32)``); a
    list of shapes for a model with several inputs (in ``forward``'s order).
    """
    torch = import_torch()
    if isinstance(model_or_path, str | os.PathLike):
        model = load_torch_model(model_or_path)
    else:
        model = model_or_path
        if isinstance(model, torch.jit.ScriptModule):
            raise FrontendError(
                "a TorchScript module cannot be traced by torch.fx; pass the nn.Module itself"
            )
        if not isinstance(model, torch.nn.Module):
            raise FrontendError(
                f"expected a torch.nn.Module or the path of a .pt/.pth file, got "
                f"{type(model_or_path).__name__}"
            )
    shapes = _input_shapes(input_shape)
    was_training = model.training
    model.eval()
    try:
        graph = _Converter(torch, model, shapes).run()
    finally:
        model.train(was_training)
    log.info(
        "converted PyTorch model %s: %d IR nodes, inputs %s, outputs %s",
        type(model).__name__,
        len(graph),
        graph.inputs,
        graph.outputs,
    )
    return graph


# ---------------------------------------------------------------- tracing
def _supported_base(torch: Any, module: Any) -> str | None:
    """The supported ``torch.nn`` class that ``module`` is an instance of, if any."""
    for cls in MODULES:
        base = getattr(torch.nn, cls, None)
        if base is not None and isinstance(module, base):
            return cls
    return None


def _trace(torch: Any, model: Any) -> Any:
    if _supported_base(torch, model) is not None:
        # fx traces into the root module's forward: keep a bare layer a layer.
        from collections import OrderedDict

        model = torch.nn.Sequential(OrderedDict([(type(model).__name__.lower(), model)]))

    class Tracer(torch.fx.Tracer):  # type: ignore[misc,name-defined]
        """Subclasses of supported layers stay one node, so errors can name them."""

        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            return super().is_leaf_module(m, qualname) or _supported_base(torch, m) is not None

    try:
        tracer = Tracer()
        fx_graph = tracer.trace(model)
        return torch.fx.GraphModule(tracer.root, fx_graph, type(model).__name__)
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError, ...
        raise FrontendError(
            f"torch.fx could not trace {type(model).__name__}: {type(e).__name__}: {e}. "
            "Symbolic tracing runs forward() on placeholders, so forward() must not branch or "
            "loop on tensor values, call len()/.item()/.tolist()/numpy on tensors, or build "
            "Python values from them. Try: make such branches static (decide them in "
            "__init__), use torch.where for data-dependent choices, move shape-only code into "
            "a function registered with torch.fx.wrap, or express the network with supported "
            "torch.nn modules (e.g. nn.Sequential)"
        ) from e


def _recorder_class(torch: Any) -> Any:
    class Recorder(torch.fx.Interpreter):  # type: ignore[misc,name-defined]
        """Runs the traced graph, keeping each tensor's shape and every non-tensor value."""

        def __init__(self, module: Any) -> None:
            super().__init__(module)
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.constants: dict[str, Any] = {}

        def run_node(self, n: Any) -> Any:
            result = super().run_node(n)
            if isinstance(result, torch.Tensor):
                self.shapes[n.name] = tuple(int(s) for s in result.shape)
            else:
                self.constants[n.name] = result
            return result

    return Recorder


def _is_last_step(index: Any) -> bool:
    """``[:, -1]``: every sample, the last time step."""
    return (isinstance(index, tuple) and len(index) == 2 and index[0] == slice(None)
            and index[1] == -1)


def _dotted(target: Any) -> str:
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", None) or repr(target)
    if module in ("_operator", "operator"):
        module = "operator"
    elif module.startswith("torch._C") or module == "torch._VF":
        module = "torch"
    return f"{module}.{name}" if module else name


class _Converter:
    """Walks the traced fx graph in program order and emits IR nodes."""

    def __init__(self, torch: Any, model: Any, shapes: list[Shape]) -> None:
        self.torch = torch
        self.model = model
        self.input_shapes = shapes
        self.graph = Graph(name=sanitize(type(model).__name__))
        self.values: dict[str, Value] = {}
        self.constants: dict[str, Any] = {}
        self.functions = self._function_table()
        self.gm: Any = None
        self.recurrent: dict[str, tuple[str, tuple[Any, ...]]] = {}
        """fx node -> (recurrent module call, index path into its output tuple)."""
        self.emitted_recurrent: dict[str, set[str]] = {}
        """recurrent module call -> the readings emitted (torch_recurrent.READINGS)."""
        self.attention: dict[str, Any] = {}
        """fx node name of an nn.MultiheadAttention call -> that fx node."""

    def _function_table(self) -> dict[Any, tuple[Kind, str]]:
        table: dict[Any, tuple[Kind, str]] = {}
        roots = {"torch": self.torch, "operator": operator}
        for dotted, kind in FUNCTIONS.items():
            head, *rest = dotted.split(".")
            obj: Any = roots[head]
            for part in rest:
                obj = getattr(obj, part, None)
                if obj is None:
                    break
            if obj is not None:
                table[obj] = (kind, rest[-1])
        return table

    # ------------------------------------------------------------ run
    def run(self) -> Graph:
        gm = _trace(self.torch, self.model)
        fx_graph = gm.graph
        placeholders = [n for n in fx_graph.nodes if n.op == "placeholder"]
        if len(placeholders) != len(self.input_shapes):
            raise FrontendError(
                f"{type(self.model).__name__}.forward takes {len(placeholders)} input(s) "
                f"{[n.name for n in placeholders]}; input_shape gives {len(self.input_shapes)} "
                f"shape(s) {self.input_shapes}"
            )
        self.gm = gm
        self._rewrite_inplace(gm)
        recorder = self._forward(gm)
        self.constants = dict(recorder.constants)
        live = self._live(fx_graph)
        expected: list[tuple[str, str, Shape]] = []
        outputs: Any = None
        for n in fx_graph.nodes:
            if n.op == "placeholder":
                shape = self.input_shapes[placeholders.index(n)]
                self._add_input(n, shape)
            elif n.op == "output":
                outputs = n.args[0]
            elif n.name not in live:
                log.debug("skipping node %r: its value is never used", n.name)
            elif self._recurrent_part(gm, n) or self._attention_part(gm, n):
                continue
            elif n.op == "get_attr" or n.name not in recorder.shapes:
                self.constants.setdefault(n.name, f"<{n.op} {n.target}>")
            else:
                value = self._convert(gm, n, recorder.shapes[n.name])
                if value.tensor == n.name:
                    expected.append((n.name, value.tensor, value.shape))
        self._set_outputs(outputs)
        self._check_shapes(expected)
        try:
            self.graph.validate()
        except GraphError as e:
            raise FrontendError(
                f"model {type(self.model).__name__}: invalid converted graph: {e}"
            ) from e
        return self.graph

    # ------------------------------------------------------ recurrent modules
    def _recurrent_part(self, gm: Any, n: Any) -> bool:
        """Handle an ``nn.RNN``/``LSTM``/``GRU`` call or an index into its output tuple.

        ``out, h = rnn(x)``: ``out`` (the sequence) becomes the stacked layers with
        ``return_sequences``; ``out[:, -1]``, ``h[-1]`` (``h[0][-1]`` for an LSTM) the
        last step only. A ``bidirectional`` module also gives ``h[-2]`` / ``h[-1]`` (the
        last layer's forward / backward final states; both may be read). Other uses
        (``c_n``, earlier layers' states) are an error.
        """
        if n.op == "call_module":
            module = gm.get_submodule(n.target)
            if type(module).__name__ not in RECURRENT_MODULES:
                return False
            self.recurrent[n.name] = (n.name, ())
            return True
        if not (n.op == "call_function" and n.target is operator.getitem
                and getattr(n.args[0], "name", None) in self.recurrent):
            return False
        call, path = self.recurrent[n.args[0].name]
        path = (*path, n.args[1])
        module = gm.get_submodule(self._call_node(gm, call).target)
        lstm = type(module).__name__ == "LSTM"
        bidirectional = bool(getattr(module, "bidirectional", False))
        last = int(module.num_layers) - 1
        where = f"node {n.name!r} (output of {type(module).__name__} {call!r})"
        if path in ((0,), (1,)) or (lstm and path == (1, 0)):
            self.recurrent[n.name] = (call, path)  # resolved by the index that follows
            if path == (0,) and not self._only_last_step(n):
                self._emit_recurrent(gm, n, call, "sequence")
            return True
        step = path[-1]
        h_n = path[0] == 1 and len(path) == (3 if lstm else 2)
        reading = None
        sequence_last = path[0] == 0 and len(path) == 2 and _is_last_step(step)
        if sequence_last or (h_n and not bidirectional and step in (-1, last)):
            reading = "last_step"
        elif h_n and bidirectional and step in (-1, 2 * last + 1):
            reading = "h_backward"
        elif h_n and bidirectional and step in (-2, 2 * last):
            reading = "h_forward"
        if reading is None:
            h = "h_n[-2] and h_n[-1] (the last layer's forward and backward states)" if (
                bidirectional) else "the last layer's hidden state h_n[-1]"
            raise UnsupportedLayerError(
                f"{where}: indexing its outputs as {path!r} is not supported; supported: the "
                f"sequence output[0], its last step output[0][:, -1], and {h}"
                + (" (output[1][0][k])" if lstm else "")
            )
        self._emit_recurrent(gm, n, call, reading)
        return True

    # ------------------------------------------------------ attention modules
    def _attention_part(self, gm: Any, n: Any) -> bool:
        """An ``nn.MultiheadAttention`` call (recorded) or ``[0]`` of its output (the
        attention nodes, ``torch_attention``); ``[1]`` (the weights) is refused."""
        if n.op == "call_module":
            if type(gm.get_submodule(n.target)).__name__ != ta.MODULE:
                return False
            self.attention[n.name] = n
            return True
        if not (n.op == "call_function" and n.target is operator.getitem
                and getattr(n.args[0], "name", None) in self.attention):
            return False
        call = self.attention[n.args[0].name]
        module = gm.get_submodule(call.target)
        where = f"module {call.name!r} (MultiheadAttention)"
        if n.args[1] != 0:
            raise UnsupportedLayerError(
                f"{where}: its output [{n.args[1]!r}] is used; supported: the attention "
                "output [0] (not the attention weights)")
        bound = ta.call_arguments(where, tuple(call.args), dict(call.kwargs))
        weights = ta.attention_weights(where, module, to_float64)
        tensors = []
        for key in ("query", "key", "value"):
            v = self._arg(bound[key])
            if not isinstance(v, Value) or len(v.torch_shape) != 2:
                raise UnsupportedLayerError(
                    f"{where}: {key} must be a (batch, sequence, features) tensor computed by "
                    "the model")
            nodes, tensor = _in_torch_order(
                OpCall(f"{call.name}_{key}", "MultiheadAttention", module, {}, v.torch_shape),
                v, "in")
            for node in nodes:
                self._add_shaped(where, node)
            tensors.append((tensor, v.torch_shape))
        (q, q_shape), (k, _), (v_in, v_shape) = tensors
        nodes = attention_nodes(sanitize(call.name), self._fresh, q, k, v_in,
                                (q_shape[0], v_shape[0]), weights, "MultiheadAttention")
        for node in nodes:
            self._add_shaped(where, node)
        out = nodes[-1].name
        shape = self.graph.tensors[out].shape
        self.values[n.name] = Value(out, shape, np.arange(int(np.prod(shape))).reshape(shape))
        return True

    def _add_shaped(self, where: str, node: Node) -> None:
        try:
            shape = op_spec(node).infer_shape(node, [self.graph.tensors[t].shape
                                                     for t in node.inputs])
            self.graph.add_node(node, shape)
        except GraphError as e:
            raise FrontendError(f"{where}: {e}") from e

    def _fresh(self, base: str) -> str:
        name, k = sanitize(base), 1
        while name in self.graph.tensors:
            name = f"{sanitize(base)}_{k}"
            k += 1
        return name

    def _call_node(self, gm: Any, name: str) -> Any:
        return next(x for x in gm.graph.nodes if x.name == name)

    def _only_last_step(self, n: Any) -> bool:
        """Every reader of the sequence ``n`` takes its last step ``[:, -1]``."""
        users = list(n.users)
        return bool(users) and all(
            u.op == "call_function" and u.target is operator.getitem and _is_last_step(u.args[1])
            for u in users)

    def _emit_recurrent(self, gm: Any, n: Any, call: str, reading: str) -> None:
        """IR nodes for one reading (``torch_recurrent.READINGS``) of a recurrent call."""
        call_node = self._call_node(gm, call)
        module = gm.get_submodule(call_node.target)
        where = f"module {call!r} ({type(module).__name__})"
        done = self.emitted_recurrent.setdefault(call, set())
        if reading in done:
            self.values[n.name] = self.values[f"{call}#{reading}"]
            return
        if done and not done | {reading} <= {"h_forward", "h_backward"}:
            raise UnsupportedLayerError(
                f"{where}: both its whole output sequence and its last step are used "
                f"({', '.join(sorted(done | {reading}))}); nnfab supports one of them per "
                "recurrent module (or h_n[-2] with h_n[-1] of a bidirectional one)")
        if len(call_node.args) != 1 or call_node.kwargs:
            raise UnsupportedLayerError(
                f"{where}: called with an initial state; only rnn(x) (zero initial state) "
                "is supported")
        source = self._arg(call_node.args[0])
        if not isinstance(source, Value) or len(source.shape) != 2 or (
                source.layout() != UNCHANGED):
            raise UnsupportedLayerError(
                f"{where}: its input must be a (batch, steps, features) tensor in PyTorch's "
                f"own element order; got {getattr(source, 'torch_shape', source)!r}")
        steps = source.shape[0]
        if getattr(module, "bidirectional", False):
            nodes = bidirectional_nodes(module, sanitize(call), source.tensor, reading, steps)
        else:
            nodes = recurrent_nodes(module, sanitize(call), source.tensor,
                                    last_only=reading == "last_step")
        shape = source.shape
        for node in nodes:
            if node.name in self.graph.tensors and done:
                shape = self.graph.tensors[node.name].shape  # a lower layer emitted before
                continue
            try:
                shape = op_spec(node).infer_shape(
                    node, [self.graph.tensors[t].shape for t in node.inputs])
                self.graph.add_node(node, shape)
            except (GraphError, KeyError) as e:
                raise FrontendError(f"{where}: {e}") from e
        value = Value(nodes[-1].name, shape, canonical_index(shape))
        self.values[n.name] = value
        self.values[f"{call}#{reading}"] = value
        done.add(reading)
        self.graph.metadata.setdefault("layer_outputs", {})[call] = value.tensor
        log.debug("%s -> %s", where, [x.op for x in nodes])

    def _rewrite_inplace(self, gm: Any) -> None:
        """After ``y = x.relu_()``, later readers of ``x`` read ``y``: the graph is pure."""
        order = {n: i for i, n in enumerate(gm.graph.nodes)}
        for n in list(gm.graph.nodes):
            if not self._inplace(gm, n) or not n.args or not hasattr(n.args[0], "users"):
                continue
            source = n.args[0]
            for user in list(source.users):
                if user is not n and order[user] > order[n]:
                    user.replace_input_with(source, n)
        gm.recompile()

    def _inplace(self, gm: Any, n: Any) -> bool:
        if n.op == "call_method":
            return str(n.target).endswith("_") and n.target in METHODS
        if n.op == "call_module":
            return bool(getattr(gm.get_submodule(n.target), "inplace", False))
        if n.op == "call_function":
            entry = self.functions.get(n.target)
            if entry is None:
                return False
            kind = entry[0]
            if "inplace" in n.kwargs:
                return bool(n.kwargs["inplace"])
            if "inplace" in kind.params and kind.params.index("inplace") < len(n.args):
                return bool(n.args[kind.params.index("inplace")])
        return False

    def _forward(self, gm: Any) -> Any:
        torch = self.torch
        param = next((p for p in self.model.parameters() if p.is_floating_point()), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else torch.device("cpu")
        generator = torch.Generator(device="cpu").manual_seed(0)
        inputs = example_inputs(torch, gm, self.input_shapes, BATCH, generator, dtype, device)
        recorder = _recorder_class(torch)(gm)
        try:
            with torch.no_grad():
                recorder.run(*inputs)
        except Exception as e:  # whatever the model raises
            raise FrontendError(
                f"{type(self.model).__name__} failed on random inputs of shape "
                f"{[tuple(i.shape) for i in inputs]} ({type(e).__name__}: {e}); check "
                "input_shape: one sample without the batch axis, channels first"
            ) from e
        return recorder

    @staticmethod
    def _live(fx_graph: Any) -> set[str]:
        """Names of the nodes the outputs depend on."""
        out = [n for n in fx_graph.nodes if n.op == "output"]
        live: set[str] = set()
        stack = list(out)
        while stack:
            n = stack.pop()
            for a in n.all_input_nodes:
                if a.name not in live:
                    live.add(a.name)
                    stack.append(a)
        return live

    # ------------------------------------------------------------ inputs
    def _kind(self, gm: Any, n: Any) -> tuple[Kind | None, str, Any, str]:
        """(kind or None, source class, module or None, description for errors)."""
        if n.op == "call_module":
            module = gm.get_submodule(n.target)
            cls = type(module).__name__
            kind = MODULES.get(cls)
            if kind is not None and getattr(self.torch.nn, cls, None) is type(module):
                return kind, cls, module, f"module {cls}"
            base = _supported_base(self.torch, module)
            hint = ""
            if base is not None:
                hint = (
                    f" from {type(module).__module__}, a subclass of torch.nn.{base} (quantized "
                    "layers such as Brevitas' go through the ONNX/QONNX frontend)"
                )
            return None, cls, module, f"module {cls}{hint}"
        if n.op == "call_function":
            entry = self.functions.get(n.target)
            if entry is not None:
                return entry[0], entry[1], None, f"function {_dotted(n.target)}"
            name = getattr(n.target, "__name__", str(n.target))
            return None, name, None, f"function {_dotted(n.target)}"
        if n.op == "call_method":
            kind = METHODS.get(str(n.target))
            return kind, str(n.target), None, f"tensor method .{n.target}()"
        return None, n.op, None, f"{n.op} {n.target}"

    def _channels_last_input(self, gm: Any, placeholder: Any, shape: Shape) -> bool:
        """An input of rank >= 2 is channels-first data if it reaches a conv/pool/norm."""
        if len(shape) < 2:
            return False
        seen: set[str] = set()
        stack = [placeholder]
        while stack:
            for user in stack.pop().users:
                if user.name in seen:
                    continue
                seen.add(user.name)
                kind = self._kind(gm, user)[0]
                role = kind.role if kind is not None else OTHER
                if role == SPATIAL:
                    return True
                if role == TRANSPARENT:
                    stack.append(user)
        return False

    def _add_input(self, n: Any, shape: Shape) -> None:
        channels_last = self._channels_last_input(self.gm, n, shape)
        index = channels_last_index(shape) if channels_last else canonical_index(shape)
        node = Node(
            name=n.name, op="Input", inputs=[], attrs={"shape": index.shape}, source_class="Input"
        )
        self.graph.add_node(node, index.shape)
        self.values[n.name] = Value(n.name, shape, index)
        meta = self.graph.metadata
        meta.setdefault("source", "pytorch")
        meta.setdefault("source_model", type(self.model).__name__)
        meta.setdefault("torch_version", str(self.torch.__version__))
        meta.setdefault("input_layouts", {})[n.name] = CHANNELS_LAST if channels_last else UNCHANGED
        meta.setdefault("torch_input_shapes", {})[n.name] = list(shape)

    # ---------------------------------------------------------- conversion
    def _arg(self, a: Any) -> Any:
        if isinstance(a, list | tuple):
            return type(a)(self._arg(x) for x in a)
        if hasattr(a, "op") and hasattr(a, "users"):  # an fx Node
            if a.name in self.values:
                return self.values[a.name]
            return self.constants.get(a.name, f"<{a.name}>")
        return a

    def _convert(self, gm: Any, n: Any, shape: tuple[int, ...]) -> Value:
        kind, source_class, module, what = self._kind(gm, n)
        if kind is None:
            raise UnsupportedLayerError(
                f"node {n.name!r} ({what}) is not supported; supported: {supported_list()}"
            )
        where = f"node {n.name!r} ({what})"
        split = self._split_call(n.args[0]) if n.target is operator.getitem else None
        if split is not None:  # a part of split / chunk / tensor_split / unbind
            where = f"node {n.name!r} (part {n.args[1]!r} of {split[0]} {n.args[0].name!r})"
        if not shape or shape[0] != BATCH:
            raise FrontendError(
                f"{where}: its output has shape {shape!r} in a forward pass with batch size "
                f"{BATCH}; nnfab needs the batch to stay the first axis of every tensor "
                "(e.g. x.view(x.size(0), -1), not x.view(-1))"
            )
        args = self._arg(tuple(n.args))
        kwargs = {k: self._arg(v) for k, v in n.kwargs.items()}
        if module is not None:
            if len(args) != 1 or kwargs:
                raise UnsupportedLayerError(
                    f"{where}: called with {len(args)} positional and {len(kwargs)} keyword "
                    "arguments; only single-input module calls are supported"
                )
            params = module_params(kind, module, args[0])
        else:
            params = bind(kind, args, kwargs, where)
        if split is not None:
            split_name, split_params = split
            call = OpCall(n.name, split_name, None, split_params, shape[1:])
            ir_node, value = split_part(call, self.constants[n.args[0].name], n.args[1])
        else:
            call = OpCall(n.name, source_class, module, params, shape[1:], kind.rank)
            ir_node, value = kind.convert(call)
        nodes = ir_node if isinstance(ir_node, list) else [] if ir_node is None else [ir_node]
        for k, node in enumerate(nodes):
            try:
                node_shape = value.shape if k == len(nodes) - 1 else op_spec(node).infer_shape(
                    node, [self.graph.tensors[t].shape for t in node.inputs])
                self.graph.add_node(node, node_shape)
            except GraphError as e:
                raise FrontendError(f"{where}: {e}") from e
            log.debug("%s -> %s %s", where, node.op, node_shape)
        if not nodes:
            log.debug("%s -> no node (reads %r)", where, value.tensor)
        self.values[n.name] = value
        self.graph.metadata.setdefault("layer_outputs", {})[n.name] = value.tensor
        return value

    def _split_call(self, n: Any) -> tuple[str, dict[str, Any]] | None:
        """(function name, bound arguments) when fx node ``n`` is a call of
        ``SPLIT_CALLS`` (``torch.split(x, ...)`` or ``x.split(...)``), else None."""
        name = None
        if getattr(n, "op", None) == "call_method" and str(n.target) in SPLIT_CALLS:
            name = str(n.target)
        elif getattr(n, "op", None) == "call_function":
            name = next((f for f in SPLIT_CALLS if getattr(self.torch, f, None) is n.target),
                        None)
        if name is None:
            return None
        params = dict(zip(SPLIT_CALLS[name], self._arg(tuple(n.args)), strict=False))
        params.update({("input" if k in ("tensor", "self") else k): self._arg(v)
                       for k, v in n.kwargs.items()})
        return name, params

    def _set_outputs(self, outputs: Any) -> None:
        items = list(outputs) if isinstance(outputs, list | tuple) else [outputs]
        values = [self._arg(o) for o in items]
        for i, v in enumerate(values):
            if not isinstance(v, Value):
                raise FrontendError(
                    f"output {i} of {type(self.model).__name__}.forward is {v!r}, not a tensor "
                    "computed from the inputs; forward must return a tensor or a tuple/list of "
                    "tensors"
                )
        self.graph.outputs = [v.tensor for v in values]
        meta = self.graph.metadata
        meta["output_layouts"] = [v.layout() for v in values]
        meta["torch_output_shapes"] = [list(v.torch_shape) for v in values]
        for v in values:
            if v.layout() == PERMUTED:
                meta.setdefault("torch_output_index", {})[v.tensor] = v.index.reshape(-1).tolist()
                log.warning(
                    "output %r holds the PyTorch output in a different element order (a flatten "
                    "of channels-last data); graph.metadata['torch_output_index'][%r] maps it "
                    "back: y_torch[..., index] = y_nnfab",
                    v.tensor,
                    v.tensor,
                )

    def _check_shapes(self, expected: list[tuple[str, str, Shape]]) -> None:
        """IR shape inference must reproduce the shapes of the real forward pass."""
        try:
            infer_shapes(self.graph)
        except GraphError as e:
            raise FrontendError(
                f"model {type(self.model).__name__}: shape inference failed on the converted "
                f"graph: {e}"
            ) from e
        for fx_name, tensor, shape in expected:
            got = self.graph.tensors[tensor].shape
            if got != shape:
                torch_shape = self.values[fx_name].torch_shape
                raise FrontendError(
                    f"node {fx_name!r}: nnfab infers shape {got!r}, but PyTorch's forward pass "
                    f"gives {torch_shape!r} (held as {shape!r} in nnfab's layout); the PyTorch "
                    "frontend mapped this node wrongly"
                )
