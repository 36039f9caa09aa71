"""SimpleRNN / LSTM / GRU in the Verilog backend: structure, timing, Verilator == emulator.

Each variant is one small graph (5 steps x 3 features -> 4 units) with random weights
and types that round and saturate (``preact`` ap_fixed<10,3,AP_RND,AP_SAT>, ``state``
ap_fixed<9,2,AP_RND_CONV,AP_SAT>,
products finer than a narrow wrapping accumulator, small tables), one Verilator build,
and a few hundred samples (normal, large and edge values) fed back to back at the
design's II; the outputs must equal ``model.predict`` bit for bit. The emulator itself
is checked against Fraction arithmetic in tests/emulate/test_recurrent.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import convert, needs_verilator

import nnfab
from nnfab.backends.rtl import RtlOptions, RTLProject, generate
from nnfab.backends.rtl.layers import RENDERERS, LayerContext
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node, infer_shapes
from nnfab.tools.verilator import lint

STEPS, FEATURES, UNITS = 5, 3, 4
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
ROUNDING: dict[str, str] = {
    "weight": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>",
    "recurrent_weight": "ap_fixed<7,1,AP_RND,AP_SAT>",
    "accum": "ap_fixed<14,5>",  # coarser than the products: each is rounded, the sum wraps
    "preact": "ap_fixed<10,3,AP_RND,AP_SAT>",
    "state": "ap_fixed<9,2,AP_RND_CONV,AP_SAT>",
    "table": "ap_fixed<9,2,AP_RND_CONV,AP_SAT>",
    "recurrent_table": "ap_ufixed<8,1,AP_RND_CONV,AP_SAT>",
    "result": "ap_fixed<8,2,AP_RND_CONV,AP_SAT>",
}


def with_verilator(fn: Any) -> Any:
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


def rnn_graph(op: str, attrs: dict[str, Any], *, dense: bool = False, tables: bool = True,
              scale: float = 1.2, seed: int = 0) -> Graph:
    """Input (STEPS, FEATURES) -> one recurrent layer 'rnn' (-> Dense 'fc')."""
    rng = np.random.default_rng(seed)
    g = Graph(f"rtl_{op.lower()}")
    g.add_node(Node("x", "Input", [], attrs={"shape": (STEPS, FEATURES)}), (STEPS, FEATURES))
    width = GATES[op] * UNITS
    two_biases = op == "GRU" and attrs.get("reset_after", True)
    weights = {
        "kernel": rng.normal(0, scale, (FEATURES, width)),
        "recurrent_kernel": rng.normal(0, scale, (UNITS, width)),
        "bias": rng.normal(0, scale / 2, (2, width) if two_biases else (width,)),
    }
    extra: dict[str, Any] = {}
    if tables:
        extra = {"table_size": 32, "table_range": 4.0}
        if op != "SimpleRNN":
            extra.update(recurrent_table_size=16, recurrent_table_range=8.0)
    g.add_node(Node("rnn", op, ["x"], attrs={"units": UNITS, **attrs, **extra},
                    weights=weights), (1,))
    out = "rnn"
    if dense:
        g.add_node(Node("fc", "Dense", ["rnn"], weights={
            "kernel": rng.normal(0, 1.0, (UNITS, 2)), "bias": rng.normal(0, 0.1, 2)}), (2,))
        out = "fc"
    g.outputs = [out]
    infer_shapes(g)
    return g


def rnn_model(op: str, attrs: dict[str, Any], *, dense: bool = False,
              config: str = "rounding") -> nnfab.NnfabModel:
    if config == "defaults":  # the passes' defaults: auto (exact) accumulator, default tables
        return convert(rnn_graph(op, attrs, dense=dense, tables=False, scale=0.6),
                       {"Model": {"Precision": "ap_fixed<16,6>"}})
    precision = {k: v for k, v in ROUNDING.items()
                 if op != "SimpleRNN" or k != "recurrent_table"}
    return convert(rnn_graph(op, attrs, dense=dense), {
        "Model": {"Precision": "ap_fixed<12,4,AP_RND_CONV,AP_SAT>"},
        "LayerName": {"x": {"Precision": {"result": "ap_fixed<9,3,AP_RND,AP_SAT>"}},
                      "rnn": {"Precision": precision}},
    })


def inputs(n: int, seed: int = 1) -> np.ndarray:
    """Moderate, large (saturating) and edge-valued samples."""
    rng = np.random.default_rng(seed)
    edges = rng.choice([-4.0, 3.984375, 0.0, 0.015625, -0.015625, 1.5, -2.5],
                       size=(n // 4, STEPS, FEATURES))
    return np.concatenate([rng.normal(0, 1.5, (n // 2, STEPS, FEATURES)),
                           rng.normal(0, 8.0, (n - n // 2 - n // 4, STEPS, FEATURES)), edges])


# ------------------------------------------------------------- no tools
def test_structure_and_timing() -> None:
    model = rnn_model("LSTM", {"return_sequences": True})
    for aps in (None, 2):
        design = generate(model.graph, RtlOptions(adders_per_stage=aps))
        (layer,) = design.layers
        assert layer.valid_in and layer.op == "LSTM"
        per_step = layer.stats["cycles_per_step"]
        assert (per_step == 1) == (aps is None)
        assert layer.ii == STEPS * per_step and layer.latency == layer.ii + 1
        assert design.ii == layer.ii and design.latency == 1 + layer.latency
        text = design.files[f"{layer.module}.v"]
        assert "input  wire rst," in text and "input  wire x_valid," in text
        assert f"[{STEPS * UNITS * 8 - 1}:0] y" in text  # the whole sequence, 8-bit results


def test_not_folded_warns_once_and_vectors_only(caplog: pytest.LogCaptureFixture) -> None:
    model = rnn_model("GRU", {"reset_after": False})
    model.graph.node("rnn").reuse_factor = 4
    with caplog.at_level(logging.WARNING, logger="nnfab.backends.rtl.recurrent"):
        design = generate(model.graph)
    warnings = [r for r in caplog.records if "not folded" in r.getMessage()]
    assert len(warnings) == 1 and "'rnn'" in warnings[0].getMessage()
    assert design.ii == STEPS  # the reuse factor is ignored
    ctx = LayerContext(model.graph.node("rnn"), model.graph, "m", RtlOptions(), folding=False)
    with pytest.raises(BackendError, match=r"layer 'rnn' \(GRU\).*rst/x_valid"):
        RENDERERS["GRU"](ctx)


# ------------------------------------------------------------- Verilator
VARIANTS: dict[str, tuple[str, dict[str, Any], str, int | None, bool]] = {
    # name: (op, attrs, style, adders_per_stage, Dense after the layer)
    "rnn_seq_backwards": ("SimpleRNN", {"return_sequences": True, "go_backwards": True},
                          "lut", None, False),
    "rnn_dsp_piped": ("SimpleRNN", {}, "dsp", 2, True),
    "lstm_seq": ("LSTM", {"return_sequences": True}, "lut", None, False),
    "lstm_backwards_dense": ("LSTM", {"go_backwards": True}, "dsp", 2, True),
    "lstm_reversed_piped": ("LSTM", {"return_sequences": True, "go_backwards": True,
                                     "reverse_sequence": True}, "lut", 2, False),
    "gru_after_backwards": ("GRU", {"reset_after": True, "go_backwards": True},
                            "lut", None, False),
    "gru_after_reversed": ("GRU", {"reset_after": True, "return_sequences": True,
                                   "go_backwards": True, "reverse_sequence": True},
                           "dsp", 2, False),
    "gru_before_seq_piped": ("GRU", {"reset_after": False, "return_sequences": True},
                             "lut", 2, False),
    "gru_before_dense": ("GRU", {"reset_after": False}, "dsp", None, True),
}


def _check(model: nnfab.NnfabModel, project: RTLProject, x: np.ndarray, label: str,
           **sim: Any) -> None:
    result = project.simulate(x, **sim)
    want = model.predict(x)
    assert result.outputs.shape == want.shape
    bad = np.argwhere(result.outputs != want)
    assert bad.size == 0, (
        f"{label}: {len(bad)} of {want.size} values differ, first at {bad[0]}: "
        f"Verilator {result.outputs[tuple(bad[0])]!r} emulator {want[tuple(bad[0])]!r}")
    assert result.latency == project.latency
    assert result.ii == sim.get("interval", project.ii)
    assert np.unique(want.reshape(len(x), -1), axis=0).shape[0] > 20  # not a constant output


@with_verilator
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_recurrent_verilator_matches_emulator(name: str, tmp_path: Path) -> None:
    op, attrs, style, aps, dense = VARIANTS[name]
    model = rnn_model(op, attrs, dense=dense)
    project = RTLProject(model, tmp_path, style=style, adders_per_stage=aps)
    assert project.ii == STEPS * (1 if aps is None else project.design.layers[0].stats[
        "cycles_per_step"])
    _check(model, project, inputs(240), name)
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []
    report = model.overflow_report()["rnn"]
    assert report["preact"] > 0  # the corner cases are reached
    if op == "LSTM":  # the accumulator wraps, the cell state saturates
        assert report["accum"] > 0 and report["state"] > 0
    if name == "lstm_seq":  # samples further apart than II: y holds between results
        _check(model, project, inputs(40, seed=7), f"{name} (spaced)",
               interval=project.ii + 3, gap=2)


@with_verilator
def test_recurrent_defaults_exact_accumulator(tmp_path: Path) -> None:
    """The passes' defaults: an ``auto`` accumulator (exact products, never wraps) and the
    default table sizes; LSTM and GRU in one pipelined ``lut`` design each."""
    for op, attrs in (("LSTM", {"return_sequences": True}), ("GRU", {"reset_after": True})):
        model = rnn_model(op, attrs, config="defaults")
        project = RTLProject(model, tmp_path / op, adders_per_stage=3)
        _check(model, project, inputs(120, seed=3), f"{op} defaults")


HARD_VARIANTS = {  # op, attrs, style, adders_per_stage
    "rnn_hard": ("SimpleRNN", {"return_sequences": True}, "lut", None),
    "lstm_hard_piped": ("LSTM", {"go_backwards": True}, "dsp", 2),
    "gru_after_hard": ("GRU", {"reset_after": True, "return_sequences": True}, "lut", None),
    "gru_before_hard": ("GRU", {"reset_after": False}, "lut", 2),
}


@with_verilator
@pytest.mark.parametrize("name", sorted(HARD_VARIANTS))
def test_hard_activations_and_state_read(name: str, tmp_path: Path) -> None:
    """hard_tanh / hard_sigmoid cast to narrow types and a saturating state_read cast
    (QKeras' quantized_tanh / quantized_sigmoid / state_quantizer): Verilator == emulator."""
    op, attrs, style, aps = HARD_VARIANTS[name]
    attrs = {**attrs, "activation": "hard_tanh", "recurrent_activation": "hard_sigmoid"}
    precision = {**ROUNDING, "state": "ap_fixed<12,3,AP_RND_CONV,AP_SAT>",
                 "state_read": "ap_fixed<6,0,AP_RND_CONV,AP_SAT>",
                 "table": "ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
                 "recurrent_table": "ap_ufixed<5,0,AP_RND_CONV,AP_SAT>"}
    if op == "SimpleRNN":
        precision.pop("recurrent_table")
    model = convert(rnn_graph(op, attrs, tables=False), {
        "Model": {"Precision": "ap_fixed<12,4,AP_RND_CONV,AP_SAT>"},
        "LayerName": {"x": {"Precision": {"result": "ap_fixed<9,3,AP_RND,AP_SAT>"}},
                      "rnn": {"Precision": precision}},
    })
    project = RTLProject(model, tmp_path, style=style, adders_per_stage=aps)
    _check(model, project, inputs(200, seed=5), name)
    assert lint(project.write(), project.top, tmp_path / "lint.log") == []
    assert model.overflow_report()["rnn"]["state_read"] > 0
