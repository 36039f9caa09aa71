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

A Model-level value that most layers shadow with their own entries (as in a generated
``granularity="name"`` config whose Model value was changed) is reported in one warning
when the config is applied; ``set_model_setting(cfg, key, value)`` changes the Model
value and the layer entries together (docs/types_from_data.md).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
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
    "TableBits",
    "Static",
)
TABLE_KEYS = {
    "TableSize": "table_size",
    "TableRange": "table_range",
    "InvTableSize": "inv_table_size",
    "InvTableRange": "inv_range",
    "TableBits": "table_bits",
}
TABLE_OPS = ("Activation", "Softmax", "SimpleRNN", "LSTM", "GRU", "LayerNormalization")
"""Ops with lookup tables; on a recurrent layer TableSize/TableRange set both of its
tables (activation and recurrent activation); TableBits is LayerNormalization's entries
per octave of the variance (2**TableBits)."""
RECURRENT_OPS = ("SimpleRNN", "LSTM", "GRU")
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
    if "Static" in entry and not isinstance(entry["Static"], bool):
        raise ConfigError(f"{where}.Static must be true or false, got {entry['Static']!r}")
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
        if "Static" in entry and node.op not in RECURRENT_OPS:
            raise ConfigError(f"{where}.Static applies to recurrent layers only ({node.op}); "
                              f"recurrent layers: {', '.join(RECURRENT_OPS)}")
        for key in TABLE_KEYS:
            if key in entry and node.op not in TABLE_OPS:
                raise ConfigError(f"{where}.{key} applies to activation tables only ({node.op}); "
                                  f"layers with tables: {', '.join(TABLE_OPS)}")
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


# ----------------------------------------------------- Model-level settings shadowed by layers
SHADOWABLE_KEYS = ("ReuseFactor", "Strategy", "Precision")
"""Model-level keys that per-layer entries can shadow (checked by ``shadowed_model_settings``)."""
_DEFAULTED = ("weight", "bias", "result")
_MODEL_DEFAULTS: dict[str, Any] = {
    "ReuseFactor": 1, "Strategy": "Latency", "Precision": DEFAULT_PRECISION, "Trace": False,
}


def _precision_value(precision: Any, key: str) -> Any:
    """The type a Precision entry (string or dict) gives to ``key``, else None."""
    if precision is None:
        return None
    if isinstance(precision, dict):
        return precision.get(key, precision.get("default"))
    return precision


def _same(key: str, a: Any, b: Any) -> bool:
    if key == "Precision":
        try:
            return FixedType.parse(a) == FixedType.parse(b)
        except ValueError:
            return str(a) == str(b)
    return bool(a == b)


def _slots(config: dict[str, Any], graph: Graph, key: str) -> list[tuple[str, Any, Any]]:
    """(layer, its own value or None, the Model value) for every place ``key`` applies."""
    model = config.get("Model", {})
    by_name = config.get("LayerName", {}) or {}
    slots: list[tuple[str, Any, Any]] = []
    if key != "Precision":
        for node in graph.nodes:
            if node.op != "Input":
                slots.append((node.name, by_name.get(node.name, {}).get(key), model[key]))
        return slots
    model_precision = model["Precision"]
    classes = class_names_in(graph)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for cls, entry in (config.get("LayerType", {}) or {}).items():
        for name in classes.get(cls, []):
            by_type.setdefault(name, []).append(entry)
    for node in graph.nodes:
        for pkey in _DEFAULTED:
            if pkey not in precision_keys_for(node.op):
                continue
            fixed_by_model = (graph.tensors[node.name].type is not None if pkey == "result"
                              else pkey in node.precision)
            if fixed_by_model:  # a quantizer's type: the generator copies it, not the default
                continue
            own = _precision_value(by_name.get(node.name, {}).get("Precision"), pkey)
            for entry in reversed(by_type.get(node.name, [])) if own is None else ():
                own = _precision_value(entry.get("Precision"), pkey)
                if own is not None:
                    break
            model_value = _precision_value(model_precision, pkey) or DEFAULT_PRECISION
            slots.append((node.name, own, model_value))
    return slots


@dataclass
class Shadowing:
    """A Model-level value that most layers do not see: they carry their own value."""

    key: str
    model_value: Any
    layer_value: Any
    layers: list[str]
    total: int
    """Layers the key applies to."""


def shadowed_model_settings(config: dict[str, Any], graph: Graph) -> list[Shadowing]:
    """Model-level ReuseFactor / Strategy / Precision values that per-layer entries shadow.

    The rule: a key set in ``Model`` is reported when more than half of the places it
    applies to (layers for ReuseFactor and Strategy; the weight / bias / result types not
    fixed by the model's own quantizers for Precision) carry one and the same own value
    (LayerName entries; LayerType entries too for Precision) that differs from the Model
    value. That is what a generated configuration (``config_from_graph``, which writes
    the Model value into every layer entry) looks like after only its Model value was
    changed. A few layers deliberately set to another value are not reported.
    """
    found: list[Shadowing] = []
    for key in SHADOWABLE_KEYS:
        if key not in config.get("Model", {}):
            continue
        slots = _slots(config, graph, key)
        groups: dict[str, tuple[Any, list[str]]] = {}
        for layer, own, model_value in slots:
            if own is None or _same(key, own, model_value):
                continue
            label = str(FixedType.parse(own)) if key == "Precision" else repr(own)
            groups.setdefault(label, (own, []))[1].append(layer)
        if not groups:
            continue
        own, layers = max(groups.values(), key=lambda g: len(g[1]))
        if 2 * len(layers) > len(slots):
            found.append(Shadowing(key, config["Model"][key], own, sorted(set(layers)),
                                   len({s[0] for s in slots})))
    return found


def warn_shadowed_settings(config: dict[str, Any], graph: Graph) -> list[Shadowing]:
    """Log ONE warning naming every shadowed Model-level setting (see
    ``shadowed_model_settings``); returns what was found."""
    found = shadowed_model_settings(config, graph)
    if found:
        parts = [
            f"Model.{s.key} is {s.model_value!r} but {len(s.layers)} of {s.total} layers keep "
            f"their own {s.key} {s.layer_value!r} (per-layer entries take precedence), so the "
            f"Model value does not reach them; apply it to every layer with "
            f"nnfab.config.set_model_setting(cfg, {s.key!r}, {s.model_value!r}), or remove "
            f"'{s.key}' from those layer entries"
            for s in found
        ]
        log.warning("%s", "; ".join(parts))
    return found


def set_model_setting(
    config: dict[str, Any], key: str, value: Any, *, keep_custom: bool = True
) -> int:
    """Set ``config["Model"][key] = value`` and the same value in the layer entries.

    Layer entries (LayerType and LayerName) that carry ``key`` with the previous Model
    value, as a generated configuration does, get the new value; with ``keep_custom``
    (the default) entries holding another value (a layer set on purpose, or a quantizer's
    type copied from the model) are left alone, with ``keep_custom=False`` every entry is
    overwritten. For Precision the weight / bias / result / default types of each entry
    are changed (accumulators and tables are not). Modifies ``config`` in place; returns
    the number of layer entries changed.
    """
    if key not in MODEL_KEYS:
        raise ConfigError(f"set_model_setting: unknown Model key {key!r}; allowed keys: "
                          f"{', '.join(MODEL_KEYS)}")
    model = config.setdefault("Model", {})
    if not isinstance(model, dict):
        raise ConfigError(f"Model must be a mapping, got {model!r}")
    _check_common({key: value}, "Model")
    if key == "Precision":
        if not isinstance(value, str | FixedType):
            raise ConfigError(f"set_model_setting: Precision must be one type string such as "
                              f"'ap_fixed<16,6>', got {value!r}")
        value = str(parse_type(value, "Model.Precision"))
    if key == "IOType" and value not in IO_TYPES:
        raise ConfigError(f"Model.IOType must be one of {', '.join(IO_TYPES)}, got {value!r}")
    if key == "ReuseFactorPolicy" and value not in REUSE_POLICIES:
        raise ConfigError(f"Model.ReuseFactorPolicy must be one of {', '.join(REUSE_POLICIES)}, "
                          f"got {value!r}")
    old = model.get(key, _MODEL_DEFAULTS.get(key))
    if key == "Precision":
        old = _precision_value(old, "default") or DEFAULT_PRECISION
        if isinstance(model.get("Precision"), dict):
            model["Precision"]["default"] = value
        else:
            model["Precision"] = value
    else:
        model[key] = value
    changed = 0
    if key not in LAYER_KEYS:
        return changed
    entries = [*(config.get("LayerType") or {}).values(), *(config.get("LayerName") or {}).values()]
    for entry in entries:
        if not isinstance(entry, dict) or key not in entry:
            continue
        if key != "Precision":
            if not keep_custom or _same(key, entry[key], old):
                changed += entry[key] != value
                entry[key] = value
            continue
        precision = entry["Precision"]
        if isinstance(precision, dict):
            touched = False
            for pkey in ("default", *_DEFAULTED):
                if pkey in precision and (not keep_custom or _same(key, precision[pkey], old)):
                    touched |= not _same(key, precision[pkey], value)
                    precision[pkey] = value
            changed += touched
        elif not keep_custom or _same(key, precision, old):
            changed += not _same(key, precision, value)
            entry["Precision"] = value
    log.info("Model.%s set to %r and in %d layer entries", key, value, changed)
    return changed
