"""Apply the user's configuration: explicit types, reuse factors, strategies, tables.

Resolves, per layer, LayerName > LayerType > Model. A Precision string (or a
``default`` key) sets the layer's default type: weight, bias and result. Keys that
the configuration leaves open are filled by ``InferPrecision``. A Model-level value that
most layers shadow with their own entries is reported in one warning
(``nnfab.config.shadowed_model_settings``).
"""

from __future__ import annotations

from typing import Any

from nnfab.config import (
    RECURRENT_OPS,
    TABLE_KEYS,
    class_names_in,
    layer_names_in,
    parse_type,
    precision_keys_for,
    validate_config,
    warn_shadowed_settings,
)
from nnfab.ir import FixedType, Graph, Node
from nnfab.passes.base import Pass

DEFAULTED_KEYS = ("weight", "bias", "result")
"""Keys a layer-level default precision sets (not accum, tables or params)."""


def _as_dict(precision: Any) -> dict[str, Any]:
    if precision is None:
        return {}
    if isinstance(precision, dict):
        return dict(precision)
    return {"default": precision}


class ApplyConfig(Pass):
    name = "apply_config"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def apply(self, graph: Graph) -> bool:
        config = validate_config(self.config, graph)
        warn_shadowed_settings(config, graph)  # before the graph's own types change
        model = config["Model"]
        model_precision = _as_dict(model.get("Precision"))
        default = parse_type(model_precision.pop("default", "ap_fixed<16,6>"), "Model.Precision")
        graph.metadata["default_precision"] = str(default)
        graph.metadata["reuse_factor_policy"] = model.get("ReuseFactorPolicy", "warn")
        if "IOType" in model:
            graph.io_type = model["IOType"]
        classes = class_names_in(graph)
        names = layer_names_in(graph)
        by_node: dict[str, list[dict[str, Any]]] = {n.name: [] for n in graph.nodes}
        for cls, entry in config.get("LayerType", {}).items():
            for node_name in classes.get(cls, []):
                by_node[node_name].append(entry)
        folded: dict[str, dict[str, Any]] = {}
        for name, entry in config.get("LayerName", {}).items():
            if names[name] == name:
                by_node[name].append(entry)
            else:
                folded[names[name]] = entry
        for node in graph.nodes:
            self._configure(graph, node, model, model_precision, by_node[node.name])
            if node.name in folded:  # a folded batch norm's result type moves to its host
                result = _as_dict(folded[node.name].get("Precision")).get("result")
                if result is not None:
                    graph.tensors[node.name].type = parse_type(result, f"LayerName.{node.name}")
        return True

    def _configure(
        self,
        graph: Graph,
        node: Node,
        model: dict[str, Any],
        model_precision: dict[str, Any],
        entries: list[dict[str, Any]],
    ) -> None:
        explicit: dict[str, Any] = {k: v for k, v in model_precision.items() if k in _keys(node)}
        node.reuse_factor = model.get("ReuseFactor", node.reuse_factor)
        node.strategy = model.get("Strategy", node.strategy)
        for entry in entries:  # LayerType entries first, then LayerName: later wins
            precision = _as_dict(entry.get("Precision"))
            layer_default = precision.pop("default", None)
            if layer_default is not None:
                for key in DEFAULTED_KEYS:
                    if key in _keys(node):
                        explicit[key] = layer_default
            explicit.update({k: v for k, v in precision.items() if k in _keys(node)})
            node.reuse_factor = entry.get("ReuseFactor", node.reuse_factor)
            node.strategy = entry.get("Strategy", node.strategy)
            if "Trace" in entry:
                node.attrs["trace"] = entry["Trace"]
            if "Static" in entry and node.op in RECURRENT_OPS:
                node.attrs["static"] = entry["Static"]
            for key, attr in TABLE_KEYS.items():
                if key in entry:
                    if node.op == "Softmax" and attr == "table_range":
                        attr = "exp_range"
                    node.attrs[attr] = entry[key]
                    if node.op in RECURRENT_OPS:
                        node.attrs["recurrent_" + attr] = entry[key]
        node.attrs.pop("auto_accum", None)
        for key, value in explicit.items():
            where = f"layer {node.name!r} precision {key!r}"
            parsed = parse_type(value, where, allow_auto=key in ("accum", "exp_sum"))
            if key == "result":
                assert isinstance(parsed, FixedType)
                graph.tensors[node.name].type = parsed
                node.attrs["result_from_config"] = True
            elif parsed == "auto":
                node.precision.pop(key, None)
            else:
                assert isinstance(parsed, FixedType)
                node.precision[key] = parsed


def _keys(node: Node) -> tuple[str, ...]:
    return precision_keys_for(node.op)
