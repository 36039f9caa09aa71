"""The user's configuration: an hls4ml-style dict, its validation and YAML files.

Shape of the dict (every level optional except ``Model``)::

    Model:     {Precision: "ap_fixed<16,6>" | {default|weight|bias|result|accum|...: type},
                ReuseFactor: 1, Strategy: Latency, IOType: io_parallel,
                ReuseFactorPolicy: warn|strict}
    LayerType: {Dense: {Precision: ..., ReuseFactor: ..., Strategy: ...}, ...}
    LayerName: {fc1: {Precision: {weight: ..., result: ..., accum: auto}, ReuseFactor: 4,
                      Strategy: Resource, TableSize: 1024, TableRange: 8, ...}}

Precedence: LayerName > LayerType > Model. ``accum`` may be ``"auto"`` (the exact
width, computed from the weights). Everything is validated against the graph:
unknown keys, unknown layer names, bad types and bad values raise ``ConfigError``
naming where they are and what is allowed.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import yaml

from nnfab.errors import ConfigError
from nnfab.ir import FixedType, Graph
from nnfab.ir.ops import OPS

log = logging.getLogger(__name__)

DEFAULT_PRECISION = "ap_fixed<16,6>"
STRATEGIES = ("Latency", "Resource")
IO_TYPES = ("io_parallel", "io_stream")
REUSE_POLICIES = ("warn", "strict")
GRANULARITIES = ("model", "type", "name")

MODEL_KEYS = ("Precision", "ReuseFactor", "Strategy", "IOType", "ReuseFactorPolicy", "Trace")
LAYER_KEYS = (
    "Precision",
    "ReuseFactor",
    "Strategy",
    "Trace",
    "TableSize",
    "TableRange",
    "InvTableSize",
    "InvTableRange",
)
TABLE_KEYS = {
    "TableSize": "table_size",
    "TableRange": "table_range",
    "InvTableSize": "inv_table_size",
    "InvTableRange": "inv_range",
}
ALL_PRECISION_KEYS = tuple(
    sorted({"default", "result", *(k for spec in OPS.values() for k in spec.precision_keys)})
)


def precision_keys_for(op: str) -> tuple[str, ...]:
    """Precision keys a layer of IR op ``op`` accepts (``result`` always)."""
    return ("result", *OPS[op].precision_keys)


def parse_type(text: Any, where: str, allow_auto: bool = False) -> FixedType | str:
    """A type string from the config -> FixedType (or the word ``auto``)."""
    if isinstance(text, FixedType):
        return text
    if allow_auto and isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        return FixedType.parse(text)
    except ValueError as e:
        auto = " or 'auto'" if allow_auto else ""
        raise ConfigError(f"{where}: invalid precision {text!r}{auto}: {e}") from None


def _check_keys(entry: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(entry).__name__} {entry!r}")
    for key in entry:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(allowed)}")
    return entry


def _check_common(entry: dict[str, Any], where: str) -> None:
    if "ReuseFactor" in entry:
        rf = entry["ReuseFactor"]
        if isinstance(rf, bool) or not isinstance(rf, int) or rf < 1:
            raise ConfigError(f"{where}.ReuseFactor must be an integer >= 1, got {rf!r}")
    if "Strategy" in entry and entry["Strategy"] not in STRATEGIES:
        raise ConfigError(
            f"{where}.Strategy must be one of {', '.join(STRATEGIES)}, got {entry['Strategy']!r}"
        )
    if "Trace" in entry and not isinstance(entry["Trace"], bool):
        raise ConfigError(f"{where}.Trace must be true or false, got {entry['Trace']!r}")
    for key in ("TableSize", "InvTableSize"):
        if key in entry:
            v = entry[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 2 or v & (v - 1):
                raise ConfigError(f"{where}.{key} must be a power of two >= 2, got {v!r}")
    for key in ("TableRange", "InvTableRange"):
        if key in entry:
            v = entry[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise ConfigError(f"{where}.{key} must be a positive number, got {v!r}")


def _check_precision(value: Any, allowed: tuple[str, ...], where: str) -> None:
    if isinstance(value, dict):
        for key, text in value.items():
            if key not in allowed:
                raise ConfigError(
                    f"{where}.Precision: unknown key {key!r}; allowed here: {', '.join(allowed)}"
                )
            parse_type(text, f"{where}.Precision.{key}", allow_auto=key == "accum")
    else:
        parse_type(value, f"{where}.Precision")


def layer_names_in(graph: Graph) -> dict[str, str]:
    """Configurable names -> the node that answers to them (folded BNs map to their host)."""
    names = {n.name: n.name for n in graph.nodes}
    for n in graph.nodes:
        folded = n.attrs.get("folded_batchnorm")
        if folded:
            names[folded] = n.name
    return names


def class_names_in(graph: Graph) -> dict[str, list[str]]:
    """LayerType keys that match the graph -> the nodes they select."""
    classes: dict[str, list[str]] = {}
    for n in graph.nodes:
        for key in {n.source_class, n.op} - {""}:
            classes.setdefault(key, []).append(n.name)
    return classes


KNOWN_CLASSES = frozenset(
    {
        *OPS,
        "InputLayer", "Dense", "QDense", "Conv1D", "Conv2D", "QConv1D", "QConv2D",
        "DepthwiseConv1D", "DepthwiseConv2D", "QDepthwiseConv2D", "MaxPooling1D",
        "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalMaxPooling1D",
        "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
        "QBatchNormalization", "ReLU", "LeakyReLU", "QActivation", "Add",
        "Subtract", "Multiply", "Average", "Linear", "Conv1d", "Conv2d", "BatchNorm1d",
        "BatchNorm2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "Sigmoid", "Tanh",
        "Hardsigmoid", "ReLU6", "Gemm", "MatMul", "Conv", "Relu", "Sub", "Mul", "Concat",
    }
)


def validate_config(config: dict[str, Any], graph: Graph) -> dict[str, Any]:
    """Check every key and value of ``config`` against ``graph``; returns a deep copy."""
    config = copy.deepcopy(config or {})
    _check_keys(config, ("Model", "LayerType", "LayerName"), "config")
    model = _check_keys(config.setdefault("Model", {}), MODEL_KEYS, "Model")
    _check_common(model, "Model")
    if "IOType" in model and model["IOType"] not in IO_TYPES:
        raise ConfigError(
            f"Model.IOType must be one of {', '.join(IO_TYPES)}, got {model['IOType']!r}"
        )
    if "ReuseFactorPolicy" in model and model["ReuseFactorPolicy"] not in REUSE_POLICIES:
        raise ConfigError(
            f"Model.ReuseFactorPolicy must be one of {', '.join(REUSE_POLICIES)}, "
            f"got {model['ReuseFactorPolicy']!r}"
        )
    if "Precision" in model:
        _check_precision(model["Precision"], ALL_PRECISION_KEYS, "Model")
    classes = class_names_in(graph)
    layer_type = config.get("LayerType", {})
    if not isinstance(layer_type, dict):
        raise ConfigError(f"LayerType must be a mapping, got {layer_type!r}")
    for cls, entry in layer_type.items():
        where = f"LayerType.{cls}"
        if cls not in classes:
            if cls not in KNOWN_CLASSES:
                raise ConfigError(
                    f"{where}: unknown layer type {cls!r}; types in this model: "
                    f"{', '.join(sorted(classes))}"
                )
            log.warning("%s: the model has no layer of this type; the entry has no effect", where)
        _check_keys(entry, LAYER_KEYS, where)
        _check_common(entry, where)
        if "Precision" in entry:
            ops = {graph.node(n).op for n in classes.get(cls, [])}
            allowed = tuple(sorted({"default", *(k for op in ops for k in precision_keys_for(op))}))
            _check_precision(entry["Precision"], allowed if ops else ALL_PRECISION_KEYS, where)
    names = layer_names_in(graph)
    layer_name = config.get("LayerName", {})
    if not isinstance(layer_name, dict):
        raise ConfigError(f"LayerName must be a mapping, got {layer_name!r}")
    for name, entry in layer_name.items():
        where = f"LayerName.{name}"
        if name not in names:
            raise ConfigError(
                f"{where}: the model has no layer named {name!r}; layers: {', '.join(names)}"
            )
        _check_keys(entry, LAYER_KEYS, where)
        _check_common(entry, where)
        node = graph.node(names[name])
        if name != node.name:  # folded batch norm: only its result type survives
            allowed: tuple[str, ...] = ("result",)
        else:
            allowed = precision_keys_for(node.op)
        if "Precision" in entry:
            _check_precision(entry["Precision"], allowed, where)
        for key in TABLE_KEYS:
            if key in entry and node.op not in ("Activation", "Softmax"):
                raise ConfigError(f"{where}.{key} applies to activation tables only ({node.op})")
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) configuration file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping with a 'Model' key")
    return data


def save_config(config: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(_plain(config), sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, FixedType):
        return str(value)
    return value


def config_from_graph(
    graph: Graph,
    granularity: str = "model",
    default_precision: str = DEFAULT_PRECISION,
    default_reuse_factor: int = 1,
) -> dict[str, Any]:
    """The starting configuration for a model, at the requested granularity."""
    if granularity not in GRANULARITIES:
        raise ConfigError(
            f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}"
        )
    parse_type(default_precision, "default_precision")
    if isinstance(default_reuse_factor, bool) or not isinstance(default_reuse_factor, int) or (
        default_reuse_factor < 1
    ):
        raise ConfigError(
            f"default_reuse_factor must be an integer >= 1, got {default_reuse_factor!r}"
        )
    config: dict[str, Any] = {
        "Model": {
            "Precision": default_precision,
            "ReuseFactor": default_reuse_factor,
            "Strategy": "Latency",
            "IOType": "io_parallel",
        }
    }
    if granularity == "type":
        config["LayerType"] = {}
        for node in graph.nodes:
            cls = node.source_class or node.op
            quantized = bool(node.precision) or graph.tensors[node.name].type is not None
            if cls not in config["LayerType"] and not quantized:
                config["LayerType"][cls] = {"Precision": default_precision}
    elif granularity == "name":
        config["LayerName"] = {}
        for node in graph.nodes:
            precision: dict[str, str] = {}
            for key in precision_keys_for(node.op):
                tensor_type = graph.tensors[node.name].type
                known = tensor_type if key == "result" else node.precision.get(key)
                if known is not None:  # set by the model itself (e.g. QKeras quantizers)
                    precision[key] = str(known)
                elif key == "accum":
                    precision[key] = "auto"
                elif key in ("weight", "bias", "result"):
                    precision[key] = default_precision
            entry: dict[str, Any] = {"Precision": precision}
            if node.op not in ("Input",):
                entry["ReuseFactor"] = default_reuse_factor
            config["LayerName"][node.name] = entry
    return config
