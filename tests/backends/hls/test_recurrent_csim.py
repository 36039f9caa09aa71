"""SimpleRNN / LSTM / GRU: compiled C simulation == emulator, bit for bit.

The emulator is tested against Fraction arithmetic in tests/emulate/test_recurrent.py.
One graph holds every variant (SimpleRNN, LSTM, GRU with and without reset_after,
return_sequences and go_backwards) as parallel outputs, so each type configuration is
one compilation. Also: io_stream writes them, the Verilog backend rejects them clearly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hls_helpers import edge_inputs, needs_gxx

import nnfab
from nnfab.backends.hls import CSimLibrary
from nnfab.ir import Graph, Node, infer_shapes

STEPS, FEATURES, UNITS = 5, 3, 3
LAYERS: dict[str, tuple[str, dict[str, Any]]] = {
    "rnn": ("SimpleRNN", {"return_sequences": True, "go_backwards": True}),
    "lstm": ("LSTM", {"return_sequences": True}),
    "lstm_last": ("LSTM", {"go_backwards": True}),
    "gru_after": ("GRU", {"reset_after": True, "go_backwards": True}),
    "gru_before": ("GRU", {"reset_after": False, "return_sequences": True}),
    # Bidirectional's backward half: processed backwards, emitted in input time order
    "lstm_reversed": ("LSTM", {"return_sequences": True, "go_backwards": True,
                               "reverse_sequence": True}),
}
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def recurrent_graph(scale: float, seed: int = 0, only: str | None = None,
                    hard: bool = False) -> Graph:
    """Input -> every layer of LAYERS in parallel (or only the one named ``only``);
    ``hard``: hard_tanh / hard_sigmoid activations instead of the tables."""
    rng = np.random.default_rng(seed)
    g = Graph("rnns")
    g.add_node(Node("x", "Input", [], attrs={"shape": (STEPS, FEATURES)}), (STEPS, FEATURES))
    for name, (op, attrs) in LAYERS.items():
        if only is not None and name != only:
            continue
        width = GATES[op] * UNITS
        reset_after = attrs.get("reset_after", False)
        weights = {
            "kernel": rng.normal(0, scale, (FEATURES, width)),
            "recurrent_kernel": rng.normal(0, scale, (UNITS, width)),
            "bias": rng.normal(0, scale / 2, (2, width) if reset_after else (width,)),
        }
        tables: dict[str, Any] = {"table_size": 64, "table_range": 4.0}
        if op != "SimpleRNN":
            tables.update(recurrent_table_size=32, recurrent_table_range=8.0)
        if hard:
            tables = {"activation": "hard_tanh", "recurrent_activation": "hard_sigmoid"}
        g.add_node(Node(name, op, ["x"], attrs={"units": UNITS, **attrs, **tables},
                        weights=weights), (1,))
    g.outputs = [only] if only else list(LAYERS)
    infer_shapes(g)
    return g


def _precision(**types: str) -> dict[str, Any]:
    entry = {k: v for k, v in types.items() if k != "result"}
    out: dict[str, Any] = {}
    for name, (op, _) in LAYERS.items():
        keys = {k: v for k, v in entry.items() if op != "SimpleRNN" or k != "recurrent_table"}
        out[name] = {"Precision": {**keys, "result": types["result"]}}
    return out


CONFIGS: dict[str, dict[str, Any]] = {
    # products rounded into a narrow wrapping accumulator, ties, saturating states
    "rounding_saturating": {
        "Model": {"Precision": "ap_fixed<12,4,AP_RND_CONV,AP_SAT>"},
        "LayerName": {
            "x": {"Precision": {"result": "ap_fixed<9,3,AP_RND,AP_SAT>"}},
            **_precision(weight="ap_fixed<8,2,AP_RND_CONV,AP_SAT>",
                         recurrent_weight="ap_fixed<7,1,AP_RND,AP_SAT>",
                         accum="ap_fixed<10,4,AP_RND_CONV>",
                         preact="ap_fixed<7,3,AP_RND,AP_SAT_SYM>",
                         state="ap_fixed<7,1,AP_TRN,AP_SAT>",
                         table="ap_fixed<9,2,AP_RND_CONV,AP_SAT>",
                         recurrent_table="ap_ufixed<8,1,AP_RND_CONV,AP_SAT>",
                         result="ap_fixed<6,1,AP_RND_CONV,AP_WRAP>"),
        },
    },
    # the defaults of the passes (exact accumulators), default-size tables
    "defaults": {"Model": {"Precision": "ap_fixed<16,6>"}},
    # hard_tanh / hard_sigmoid cast to narrow types, a saturating state_read cast
    "hard_state_read": {
        "Model": {"Precision": "ap_fixed<16,6>"},
        "LayerName": {
            "x": {"Precision": {"result": "ap_fixed<9,3,AP_RND,AP_SAT>"}},
            **_precision(state="ap_fixed<14,4,AP_RND_CONV,AP_SAT>",
                         state_read="ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
                         table="ap_fixed<6,1,AP_RND_CONV,AP_SAT>",
                         recurrent_table="ap_ufixed<5,0,AP_RND_CONV,AP_SAT>",
                         result="ap_fixed<10,3,AP_RND_CONV,AP_SAT>"),
        },
    },
}


@needs_gxx
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_recurrent_csim_matches_emulator(name: str, csim_cache: Path) -> None:
    graph = recurrent_graph(scale=1.5 if name == "rounding_saturating" else 0.6,
                            hard=name == "hard_state_read")
    if name == "defaults":
        for node in graph.nodes[1:]:
            for key in ("table_size", "table_range", "recurrent_table_size",
                        "recurrent_table_range"):
                node.attrs.pop(key, None)
    model = nnfab.convert_graph(graph, CONFIGS[name])
    lib = CSimLibrary(model, cache_dir=csim_cache)
    x_type = model.graph.tensors["x"].type
    assert x_type is not None
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 2, (300, STEPS, FEATURES)),
                        edge_inputs(x_type, (STEPS, FEATURES), 300, seed=4)])
    got, want = lib.predict(x), model.predict(x)
    assert isinstance(got, list) and len(got) == len(LAYERS)
    for layer, g, w in zip(LAYERS, got, want, strict=True):
        assert g.shape == w.shape, layer
        bad = np.argwhere(g != w)
        assert bad.size == 0, (
            f"{layer}: {len(bad)} of {g.size} values differ, first at {bad[0]}: "
            f"C++ {g[tuple(bad[0])]!r} emulator {w[tuple(bad[0])]!r}"
        )
    if name == "hard_state_read":
        assert model.overflow_report()["lstm"]["state_read"] > 0
    if name == "rounding_saturating":  # the inputs must really reach the corner cases
        report = model.overflow_report()
        assert report["lstm"]["accum"] > 0 and report["gru_before"]["preact"] > 0
        assert report["lstm"]["state"] > 0


def test_io_stream_and_verilog_write_recurrent_layers(tmp_path: Path) -> None:
    graph = recurrent_graph(scale=0.5)
    model = nnfab.convert_graph(graph, {"Model": {"Precision": "ap_fixed<16,6>",
                                                  "IOType": "io_stream"}},
                                output_dir=tmp_path / "prj")
    model.write()  # io_stream: tests/backends/hls/test_recurrent_stream.py checks the values
    source = "\n".join(p.read_text() for p in (tmp_path / "prj").rglob("*.cpp"))
    assert source.count("nnfab::recurrent_stream<") == len(LAYERS)
    model = nnfab.convert_graph(recurrent_graph(scale=0.5, only="lstm"),
                                output_dir=tmp_path / "prj2")
    # the Verilog (tests/backends/rtl/test_rtl_recurrent.py checks its values)
    assert any(p.name.endswith("_lstm.v") for p in model.to_rtl().write())
