"""Fixed-point types chosen from data: ``config_from_data``.

1. The float reference: the graph run in the bit-exact emulator with very wide types
   (``ap_fixed<32,12>``: 20 fractional bits; the integer bits grow by 8 until no value
   overflows). It is used whatever the framework, so a Graph or an NnfabModel work the
   same as a Keras, PyTorch or ONNX model, and the softmax / sigmoid tables are the
   same ones the fixed-point design uses, so they do not count as quantization error.
2. Integer bits, per layer output (and per weight / bias tensor): from the observed
   range on the data, the smallest count that holds it (signed when a negative value
   was seen), plus ``margin_bits``; or, with ``overflow_rate``, the smallest count
   whose saturations stay at most that fraction of the layer's values (checked again
   on the fixed-point design, adding a bit where propagation pushed a layer over).
   Weights and biases are known exactly: no margin. Accumulators stay ``auto`` (the
   exact width for the chosen input and weight types: they never overflow).
3. Fractional bits: the smallest uniform count meeting the budget (``error_budget``:
   max / mean absolute error at the outputs against the reference; ``accuracy_budget``:
   the accuracy drop allowed against the reference's accuracy on labels ``y``), then,
   one type at a time (largest first: the weights and the outputs that feed the most
   multiplications), the smallest count that still meets it. Every configuration kept
   was measured to meet the budget. Without a budget the fractional bits of
   ``default_precision`` are used.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.config import DEFAULT_PRECISION, config_from_graph, parse_type, precision_keys_for
from nnfab.errors import ConfigError
from nnfab.ir import FixedType, Graph, Overflow, Rounding
from nnfab.model import NnfabModel

log = logging.getLogger(__name__)

REFERENCE_FRAC = 20
"""Fractional bits of the float reference (and the most the search tries)."""
REFERENCE_INTEGER = 12
"""Integer bits the reference starts with; 8 more per retry while anything overflows."""
TUNED_KEYS = ("weight", "bias", "result")
WEIGHT_KEY = {"weight": "kernel", "bias": "bias"}
QUIET_LOGGERS = ("nnfab.passes", "nnfab.emulate", "nnfab.backends", "nnfab.model")
GRANULARITIES = ("name", "model")


@dataclass
class Slot:
    """One type being chosen: a layer's output, weights or biases."""

    layer: str
    key: str
    lo: float
    hi: float
    signed: bool
    integer: int
    frac: int
    cost: int
    """How much the type matters: weights, or the multiplications an output feeds."""
    values: np.ndarray | None = None
    """Observed output values (kept only for an overflow-rate target)."""

    def fixed(self, rounding: Rounding, overflow: Overflow) -> FixedType:
        return FixedType(self.integer + self.frac, self.integer, self.signed, rounding, overflow)

    @property
    def min_frac(self) -> int:
        """Fewest fractional bits: at least 0, and a width of 1 (unsigned) or 2 (signed)."""
        return max(0, (2 if self.signed else 1) - self.integer)


@dataclass
class TypeProposal:
    """What ``config_from_data`` proposes and how it compares with the uniform default."""

    config: dict[str, Any]
    """hls4ml-style configuration, granularity ``name``: pass it as ``hls_config=``."""
    types: dict[str, dict[str, str]]
    """Per layer, the proposed weight / bias / result types."""
    ranges: dict[str, dict[str, tuple[float, float]]]
    """Per layer, the observed (min, max) of its output (on the data) and weights."""
    default_types: dict[str, dict[str, str]]
    reference: str
    """How the float reference was computed."""
    default_precision: str
    accuracy: dict[str, float | None]
    """``float`` (the reference), ``default`` and ``proposal``; None without labels."""
    error: dict[str, dict[str, float]]
    """``default`` / ``proposal`` -> ``max`` / ``mean`` absolute error at the outputs."""
    bits: dict[str, int]
    """Total bits of every weight, bias and layer output of the design."""
    resources: dict[str, dict[str, Any]]
    """``default`` / ``proposal`` -> ``NnfabModel.estimate().totals()``."""
    budget: dict[str, float]
    budget_met: bool
    evaluations: int
    seconds: float
    samples: int
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        """A text table: default against proposal, then the per-layer types."""
        default = f"default {self.default_precision}"
        rows: list[tuple[str, str, str, str]] = []

        def fmt(value: Any) -> str:
            if value is None:
                return "-"
            if isinstance(value, bool):
                return "yes" if value else "no"
            if isinstance(value, float):
                return f"{value:.4g}"
            return str(value)

        rows.append(("accuracy", fmt(self.accuracy.get("float")), fmt(self.accuracy["default"]),
                     fmt(self.accuracy["proposal"])))
        for metric in ("max", "mean"):
            rows.append((f"{metric} |error|", "0", fmt(self.error["default"][metric]),
                         fmt(self.error["proposal"][metric])))
        rows.append(("total bits", "-", fmt(self.bits["default"]), fmt(self.bits["proposal"])))
        keys = [k for k, v in self.resources["default"].items()
                if isinstance(v, int | float) and not isinstance(v, bool)
                and not k.endswith(("_available", "_percent"))]
        for key in keys:
            rows.append((key, "-", fmt(self.resources["default"].get(key)),
                         fmt(self.resources["proposal"].get(key))))
        head = ("", "float", default, "proposal")
        lines = [
            f"types from data: {self.samples} samples, reference: {self.reference}",
            f"budget: {self.budget or 'none (fractional bits of the default)'}; "
            f"met: {'yes' if self.budget_met else 'NO'}; {self.evaluations} evaluations "
            f"in {self.seconds:.2f} s",
            *_columns([head, *rows]),
            "",
        ]
        layer_rows = [("layer", "key", "observed range", "default", "proposal")]
        for layer, types in self.types.items():
            for key, proposed in types.items():
                lo, hi = self.ranges.get(layer, {}).get(key, (math.nan, math.nan))
                layer_rows.append((layer, key, f"[{lo:.4g}, {hi:.4g}]",
                                   self.default_types.get(layer, {}).get(key, "-"), proposed))
        lines.extend(_columns(layer_rows))
        lines.extend(self.notes)
        return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


# ------------------------------------------------------------------- the public call
def config_from_data(
    model: Any,
    X: Any,
    *,
    y: Any = None,
    granularity: str = "name",
    margin_bits: int = 1,
    overflow_rate: float | None = None,
    error_budget: float | Mapping[str, float] | None = None,
    accuracy_budget: float | None = None,
    default_precision: str = DEFAULT_PRECISION,
    rounding: str = "AP_RND",
    overflow: str = "AP_SAT",
    **convert_kwargs: Any,
) -> TypeProposal:
    """Propose per-layer fixed-point types from the values a model computes on ``X``.

    ``model``: a Keras model or file, a PyTorch module or ``.pt`` file (``input_shape=``,
    channels first, defaults to ``X.shape[1:]``), an ONNX model or file, an
    ``NnfabModel`` (its types are discarded) or a float IR ``Graph``.
    ``margin_bits``: integer bits added above what the observed range needs (outputs
    only); ``overflow_rate``: instead, the fraction of a layer's output values allowed to
    saturate. ``error_budget``: the largest absolute error at the outputs against the
    float reference (a number), or ``{"max": a, "mean": b}``; ``accuracy_budget``: with
    labels ``y``, the accuracy (argmax of the first output; > 0.5 for one output) that
    may be lost against the float reference, e.g. 0.01. ``granularity``: ``"name"`` (a
    type per layer and tensor) or ``"model"`` (one type for everything). The proposed
    types round (``rounding``) and saturate (``overflow``). ``convert_kwargs`` go to
    ``nnfab.convert_graph`` (part, io_type, ...) for the resource estimates.
    """
    start = time.perf_counter()
    if granularity not in GRANULARITIES:
        raise ConfigError(f"config_from_data: granularity must be one of "
                          f"{', '.join(GRANULARITIES)}, got {granularity!r}")
    if isinstance(margin_bits, bool) or not isinstance(margin_bits, int) or margin_bits < 0:
        raise ConfigError(f"config_from_data: margin_bits must be an integer >= 0, "
                          f"got {margin_bits!r}")
    if overflow_rate is not None and not (isinstance(overflow_rate, int | float)
                                          and 0.0 <= overflow_rate < 1.0):
        raise ConfigError(f"config_from_data: overflow_rate must be a fraction in [0, 1), "
                          f"got {overflow_rate!r}")
    budget = _budget(error_budget, accuracy_budget, y)
    base_type = parse_type(default_precision, "config_from_data: default_precision")
    assert isinstance(base_type, FixedType)
    try:
        rnd, ovf = Rounding(_mode(rounding)), Overflow(_mode(overflow))
    except ValueError:
        raise ConfigError(f"config_from_data: rounding must be one of "
                          f"{', '.join(m.value for m in Rounding)} and overflow one of "
                          f"{', '.join(m.value for m in Overflow)}; got {rounding!r}, "
                          f"{overflow!r}") from None
    input_shape = convert_kwargs.pop("input_shape", None)
    _check_convert_kwargs(convert_kwargs)
    graph = float_graph(model, X, input_shape)
    log.info("config_from_data: %s, %d layers; running the float reference", graph.name,
             len(graph))
    ref_outputs, traces, reference = _reference(graph, X, convert_kwargs)
    samples = ref_outputs[0].shape[0]
    labels = _labels(y, samples) if y is not None else None
    ref_acc = _accuracy(ref_outputs[0], labels) if labels is not None else None

    slots = _slots(graph, traces, base_type.frac, margin_bits, overflow_rate, ovf, rnd)
    del traces
    if granularity == "model":
        slots = _merge_slots(slots)
    evaluator = _Evaluator(graph, X, ref_outputs, labels, ref_acc, budget, slots, rnd, ovf,
                           granularity, convert_kwargs)
    if overflow_rate is not None:
        evaluator.fix_overflows(overflow_rate)
    budget_met = True
    if budget:
        budget_met = evaluator.search()
    if overflow_rate is not None:
        evaluator.fix_overflows(overflow_rate)
        if budget and not evaluator.passes(evaluator.fracs()):
            budget_met = False
    proposal_cfg = evaluator.config(evaluator.fracs())
    default_cfg = config_from_graph(graph, "name", str(base_type))
    log.info("config_from_data: comparing with the uniform default %s", base_type)
    with _quiet():
        prop_hm = _convert(graph, proposal_cfg, convert_kwargs)
        def_hm = _convert(graph, default_cfg, convert_kwargs)
        prop_out, def_out = _outputs(prop_hm, X), _outputs(def_hm, X)
        resources = {"default": dict(def_hm.estimate().totals()),
                     "proposal": dict(prop_hm.estimate().totals())}
        overflows = {name: _overflow_count(hm) for name, hm in
                     (("default", def_hm), ("proposal", prop_hm))}
    notes = [f"values that saturated or wrapped on the data: default {overflows['default']}, "
             f"proposal {overflows['proposal']} (overflow_report())"]
    if not budget_met:
        notes.append("NOTE: the budget could not be met; the proposal is the closest found.")
    seconds = time.perf_counter() - start
    proposal = TypeProposal(
        config=proposal_cfg,
        types=_types_of(proposal_cfg, slots),
        ranges=evaluator.ranges,
        default_types=_types_of(default_cfg, slots),
        reference=reference,
        default_precision=str(base_type),
        accuracy={
            "float": ref_acc,
            "default": _accuracy(def_out[0], labels) if labels is not None else None,
            "proposal": _accuracy(prop_out[0], labels) if labels is not None else None,
        },
        error={"default": _errors(def_out, ref_outputs),
               "proposal": _errors(prop_out, ref_outputs)},
        bits={"default": design_bits(def_hm.graph), "proposal": design_bits(prop_hm.graph)},
        resources=resources,
        budget=budget,
        budget_met=budget_met,
        evaluations=evaluator.evaluations,
        seconds=seconds,
        samples=samples,
        notes=notes,
    )
    log.info("config_from_data: done in %.2f s (%d evaluations); bits %d -> %d", seconds,
             evaluator.evaluations, proposal.bits["default"], proposal.bits["proposal"])
    return proposal


# ------------------------------------------------------------------------ helpers
def _mode(text: str) -> str:
    text = str(text).strip().upper()
    return text if text.startswith("AP_") else "AP_" + text


def _budget(error_budget: Any, accuracy_budget: Any, y: Any) -> dict[str, float]:
    budget: dict[str, float] = {}
    if error_budget is not None:
        if isinstance(error_budget, Mapping):
            unknown = set(error_budget) - {"max", "mean"}
            if unknown or not error_budget:
                raise ConfigError(f"config_from_data: error_budget keys must be 'max' and/or "
                                  f"'mean', got {sorted(error_budget)}")
            items = dict(error_budget)
        else:
            items = {"max": error_budget}
        for key, value in items.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"config_from_data: error_budget {key!r} must be a positive "
                                  f"number, got {value!r}")
            budget[f"{key}_error"] = float(value)
    if accuracy_budget is not None:
        if y is None:
            raise ConfigError("config_from_data: accuracy_budget needs the labels y=")
        if isinstance(accuracy_budget, bool) or not isinstance(accuracy_budget, int | float) or (
            not 0.0 <= accuracy_budget < 1.0
        ):
            raise ConfigError(f"config_from_data: accuracy_budget must be an accuracy drop in "
                              f"[0, 1), e.g. 0.01, got {accuracy_budget!r}")
        budget["accuracy_drop"] = float(accuracy_budget)
    return budget


def _check_convert_kwargs(kwargs: dict[str, Any]) -> None:
    from nnfab.api import ConvertOptions

    allowed = set(ConvertOptions.__annotations__)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ConfigError(f"config_from_data: unknown option(s) {', '.join(unknown)}; allowed: "
                          f"input_shape, {', '.join(sorted(allowed))}")


def float_graph(model: Any, X: Any = None, input_shape: Any = None) -> Graph:
    """The float IR graph of any model ``config_from_data`` accepts (a fresh copy)."""
    from nnfab import api
    from nnfab.passes import optimize_float

    if isinstance(model, NnfabModel):
        return _strip_types(model.graph.copy())
    if isinstance(model, Graph):
        return optimize_float(model.copy())
    torch = sys.modules.get("torch")
    is_torch = torch is not None and isinstance(model, torch.nn.Module)
    if isinstance(model, str | Path) and Path(model).suffix.lower() in (".pt", ".pth"):
        is_torch = True
    if is_torch:
        if input_shape is None:
            if X is None or not hasattr(X, "shape"):
                raise ConfigError("config_from_data: a PyTorch model needs input_shape= "
                                  "(one sample, channels first)")
            input_shape = tuple(X.shape[1:])
        return api._pytorch_graph(model, input_shape)
    if input_shape is not None:
        raise ConfigError("config_from_data: input_shape is only used with PyTorch models")
    is_onnx = type(model).__name__ in ("ModelProto", "ModelWrapper") or (
        isinstance(model, str | Path) and Path(model).suffix.lower() == ".onnx")
    if is_onnx:
        return api._onnx_graph(model)
    return api._keras_graph(model)


def _strip_types(graph: Graph) -> Graph:
    """Forget every type of a converted graph (it is typed again from scratch)."""
    for tensor in graph.tensors.values():
        tensor.type = None
    for node in graph.nodes:
        node.precision = {}
        for attr in ("auto_accum", "result_from_config"):
            node.attrs.pop(attr, None)
    return graph


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the per-conversion warnings of the candidates (zero weights, ...)."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _convert(graph: Graph, config: dict[str, Any], kwargs: dict[str, Any]) -> NnfabModel:
    from nnfab.api import convert_graph

    return convert_graph(graph.copy(), config, **kwargs)


def _overflow_count(hm: NnfabModel) -> int:
    return sum(n for keys in hm.overflow_report().values() for n in keys.values())


def _outputs(hm: NnfabModel, X: Any) -> list[np.ndarray]:
    out = hm.predict(X, warn_overflow=False)
    outs = out if isinstance(out, list) else [out]
    return [np.asarray(o, dtype=np.float64) for o in outs]


def _reference(
    graph: Graph, X: Any, kwargs: dict[str, Any]
) -> tuple[list[np.ndarray], dict[str, np.ndarray], str]:
    """Outputs and per-layer traces with very wide types (no value overflows)."""
    integer = REFERENCE_INTEGER
    for _ in range(4):
        wide = f"ap_fixed<{integer + REFERENCE_FRAC},{integer}>"
        with _quiet():
            hm = _convert(graph, {"Model": {"Precision": wide}}, kwargs)
            traces = hm.trace(X, warn_overflow=False)
        overflows = _overflow_count(hm)
        if not overflows:
            outputs = [np.asarray(traces[name], dtype=np.float64) for name in hm.graph.outputs]
            return outputs, traces, f"bit-exact emulator with {wide} everywhere (accum exact)"
        log.info("config_from_data: %d values overflow %s; widening the reference", overflows,
                 wide)
        integer += 8
    raise ConfigError(f"config_from_data: values still overflow {wide} in the float "
                      "reference; the model's values are too large for fixed point")


def integer_bits_needed(lo: float, hi: float, signed: bool) -> int:
    """Fewest integer bits (sign included) whose type holds [lo, hi]: at least 1 signed,
    0 unsigned."""
    integer = 1 if signed else 0
    while True:
        top = 2.0 ** (integer - 1) if signed else 2.0**integer
        if hi < top and (not signed or lo >= -top):
            return integer
        integer += 1


def _slots(
    graph: Graph,
    traces: dict[str, np.ndarray],
    frac: int,
    margin_bits: int,
    overflow_rate: float | None,
    ovf: Overflow,
    rnd: Rounding,
) -> list[Slot]:
    from nnfab.passes.infer_precision import PASS_THROUGH, WEIGHTED

    slots: list[Slot] = []
    for node in graph.nodes:
        keys = precision_keys_for(node.op)
        for key in TUNED_KEYS:
            if key not in keys:
                continue
            if key == "result":
                if node.op in PASS_THROUGH or graph.tensors[node.name].type is not None:
                    continue  # keeps its input's type / a type the model fixes
                values = np.asarray(traces[node.name], dtype=np.float64)
                fan = sum(int(c.weights[_weight_name(c)].size) for c in graph.consumers(node.name)
                          if c.op in WEIGHTED)
                cost = graph.tensors[node.name].size + fan
            else:
                if key in node.precision or node.op not in WEIGHTED:
                    continue
                values = np.asarray(node.weights[_weight_name(node) if key == "weight"
                                                 else "bias"], dtype=np.float64)
                cost = int(values.size)
            lo = float(values.min()) if values.size else 0.0
            hi = float(values.max()) if values.size else 0.0
            signed = lo < 0
            needed = integer_bits_needed(lo, hi, signed)
            slot = Slot(node.name, key, lo, hi, signed, needed, frac, cost)
            if key == "result":
                if overflow_rate is None:
                    slot.integer = needed + margin_bits
                else:
                    slot.values = values.reshape(-1)
                    slot.integer = _integer_for_rate(slot, overflow_rate, rnd, ovf)
            slots.append(slot)
    return slots


def _weight_name(node: Any) -> str:
    return "scale" if node.op == "BatchNormalization" else "kernel"


def _integer_for_rate(slot: Slot, rate: float, rnd: Rounding, ovf: Overflow) -> int:
    """Fewest integer bits whose saturations stay at most ``rate`` of ``slot.values``."""
    assert slot.values is not None
    needed = slot.integer
    allowed = rate * slot.values.size
    best = needed
    floor = 1 if slot.signed else 0
    for integer in range(needed - 1, floor - 1, -1):
        t = FixedType(max(integer + slot.frac, 2 if slot.signed else 1), integer, slot.signed,
                      rnd, ovf)
        lo, hi = t.min, t.max
        outside = int(np.count_nonzero((slot.values < lo) | (slot.values > hi)))
        if outside > allowed:
            break
        best = integer
    return best


def _merge_slots(slots: list[Slot]) -> list[Slot]:
    """One signed type for everything (granularity ``model``)."""
    if not slots:
        return slots
    integer = max(s.integer + (0 if s.signed else 1) for s in slots)
    for s in slots:
        s.integer, s.signed = integer, True
    return slots


def _labels(y: Any, samples: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(axis=1)
    labels = labels.reshape(-1)
    if labels.shape[0] != samples:
        raise ConfigError(f"config_from_data: y has {labels.shape[0]} labels for {samples} "
                          f"samples of X")
    return labels


def _accuracy(out: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    flat = out.reshape(out.shape[0], -1)
    pred = flat.argmax(axis=1) if flat.shape[1] > 1 else (flat[:, 0] > 0.5).astype(int)
    return float(np.mean(pred == labels))


def _errors(outs: list[np.ndarray], ref: list[np.ndarray]) -> dict[str, float]:
    diff = np.concatenate([np.abs(o - r).reshape(-1) for o, r in zip(outs, ref, strict=True)])
    return {"max": float(diff.max()) if diff.size else 0.0,
            "mean": float(diff.mean()) if diff.size else 0.0}


def design_bits(graph: Graph) -> int:
    """Bits of every weight, bias and layer output (one sample) of a typed graph."""
    from nnfab.passes.infer_precision import WEIGHTED

    total = 0
    for node in graph.nodes:
        t = graph.tensors[node.name].type
        if t is not None:
            total += t.width * graph.tensors[node.name].size
        if node.op in WEIGHTED:
            for key, wname in (("weight", _weight_name(node)), ("bias", "bias")):
                if key in node.precision and wname in node.weights:
                    total += node.precision[key].width * int(node.weights[wname].size)
    return total


def _types_of(config: dict[str, Any], slots: list[Slot]) -> dict[str, dict[str, str]]:
    types: dict[str, dict[str, str]] = {}
    layers = config.get("LayerName", {})
    for s in slots:
        precision = layers.get(s.layer, {}).get("Precision", {})
        value = precision.get(s.key) if isinstance(precision, dict) else precision
        if value is None:
            value = config["Model"]["Precision"]
        types.setdefault(s.layer, {})[s.key] = str(value)
    return types


class _Evaluator:
    """Builds candidate configurations and measures them against the budget."""

    def __init__(
        self,
        graph: Graph,
        X: Any,
        ref: list[np.ndarray],
        labels: np.ndarray | None,
        ref_acc: float | None,
        budget: dict[str, float],
        slots: list[Slot],
        rnd: Rounding,
        ovf: Overflow,
        granularity: str,
        kwargs: dict[str, Any],
    ) -> None:
        self.graph, self.X, self.ref, self.labels, self.ref_acc = graph, X, ref, labels, ref_acc
        self.budget, self.slots, self.rnd, self.ovf = budget, slots, rnd, ovf
        self.granularity, self.kwargs = granularity, kwargs
        self.base = config_from_graph(graph, "name", DEFAULT_PRECISION)
        from nnfab.passes.infer_precision import PASS_THROUGH

        for node in graph.nodes:  # pass-through layers keep their input's type
            if node.op in PASS_THROUGH and graph.tensors[node.name].type is None:
                self.base["LayerName"][node.name]["Precision"].pop("result", None)
        self.evaluations = 0
        self._cache: dict[tuple[int, ...], bool] = {}
        self.ranges: dict[str, dict[str, tuple[float, float]]] = {}
        for s in slots:
            self.ranges.setdefault(s.layer, {})[s.key] = (s.lo, s.hi)

    def fracs(self) -> tuple[int, ...]:
        return tuple(s.frac for s in self.slots)

    def _set(self, fracs: tuple[int, ...]) -> None:
        for s, f in zip(self.slots, fracs, strict=True):
            s.frac = max(f, s.min_frac)

    def config(self, fracs: tuple[int, ...]) -> dict[str, Any]:
        """The configuration for these fractional bits (integer bits as the slots say)."""
        import copy

        self._set(fracs)
        cfg = copy.deepcopy(self.base)
        types = [str(s.fixed(self.rnd, self.ovf)) for s in self.slots]
        for s, text in zip(self.slots, types, strict=True):
            cfg["LayerName"][s.layer]["Precision"][s.key] = text
        if types:  # the most common type: Model's value then matches most layers
            cfg["Model"]["Precision"] = Counter(types).most_common(1)[0][0]
        return cfg

    def measure(self, fracs: tuple[int, ...]) -> tuple[NnfabModel, list[np.ndarray]]:
        self.evaluations += 1
        with _quiet():
            hm = _convert(self.graph, self.config(fracs), self.kwargs)
            return hm, _outputs(hm, self.X)

    def passes(self, fracs: tuple[int, ...]) -> bool:
        key = tuple(max(f, s.min_frac) for f, s in zip(fracs, self.slots, strict=True))
        if key in self._cache:
            return self._cache[key]
        _, outs = self.measure(key)
        err = _errors(outs, self.ref)
        ok = err["max"] <= self.budget.get("max_error", math.inf)
        ok = ok and err["mean"] <= self.budget.get("mean_error", math.inf)
        if "accuracy_drop" in self.budget:
            acc = _accuracy(outs[0], self.labels)
            assert acc is not None and self.ref_acc is not None
            ok = ok and self.ref_acc - acc <= self.budget["accuracy_drop"] + 1e-12
        log.debug("candidate %s: max err %.3g, mean err %.3g -> %s", key, err["max"],
                  err["mean"], "ok" if ok else "over budget")
        self._cache[key] = ok
        return ok

    def search(self) -> bool:
        """Uniform fractional bits, then per type; False when even the widest fails."""
        n = len(self.slots)
        hi = REFERENCE_FRAC
        if not self.passes((hi,) * n):
            log.warning("config_from_data: the budget %s is not met even with %d fractional "
                        "bits everywhere; keeping %d", self.budget, hi, hi)
            self._set((hi,) * n)
            return False
        lo = 0
        while lo < hi:
            mid = (lo + hi) // 2
            if self.passes((mid,) * n):
                hi = mid
            else:
                lo = mid + 1
        current = [max(hi, s.min_frac) for s in self.slots]
        log.info("config_from_data: %d fractional bits everywhere meet the budget", hi)
        if self.granularity == "name":
            order = sorted(range(n), key=lambda i: -self.slots[i].cost)
            for i in order:
                lo_i, hi_i = self.slots[i].min_frac, current[i]
                if lo_i < hi_i:  # one bit less first: most types stop there
                    trial = list(current)
                    trial[i] = hi_i - 1
                    if self.passes(tuple(trial)):
                        hi_i -= 1
                    else:
                        lo_i = hi_i
                while lo_i < hi_i:
                    mid = (lo_i + hi_i) // 2
                    trial = list(current)
                    trial[i] = mid
                    if self.passes(tuple(trial)):
                        hi_i = mid
                    else:
                        lo_i = mid + 1
                current[i] = hi_i
                log.info("config_from_data: %s %s: %d fractional bits", self.slots[i].layer,
                         self.slots[i].key, hi_i)
        self._set(tuple(current))
        return True

    def fix_overflows(self, rate: float, rounds: int = 8) -> None:
        """Add integer bits where the fixed-point design saturates more than ``rate``."""
        for _ in range(rounds):
            hm, _ = self.measure(self.fracs())
            report = hm.overflow_report()
            totals = hm.last_result.totals if hm.last_result is not None else {}
            over = []
            for s in self.slots:
                if s.key != "result":
                    continue
                n = report.get(s.layer, {}).get("result", 0)
                total = totals.get(s.layer, {}).get("result", 0)
                if total and n > rate * total:
                    over.append(s)
            if not over:
                return
            for s in over:
                s.integer += 1
            if self.granularity == "model":
                _merge_slots(self.slots)
            self._cache.clear()
            log.info("config_from_data: %d layer(s) saturate more than %g of their values; "
                     "one more integer bit for %s", len(over), rate,
                     ", ".join(s.layer for s in over))
