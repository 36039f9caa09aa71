"""SimpleRNN / LSTM / GRU in io_stream: compiled C simulation == emulator, bit for bit.

Two graphs, one compilation each per type configuration of test_recurrent_csim.py:
``chain``: LSTM (return_sequences) -> GRU (reset_after, go_backwards: the input sample is
buffered) -> Dense; ``reversed``: SimpleRNN (go_backwards, return_sequences,
reverse_sequence: the output sequence is buffered) -> GRU (reset_after false,
return_sequences, ``static: false``: the state is an argument of the kernel). And the
six parallel variants of test_recurrent_csim.py (the input cloned to each) in io_stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hls_helpers import edge_inputs, needs_gxx
from test_recurrent_csim import CONFIGS, FEATURES, GATES, LAYERS, STEPS, UNITS, recurrent_graph

import nnfab
from nnfab.backends.hls import CSimLibrary
from nnfab.backends.hls.csim import MIN_SAMPLES_PER_THREAD
from nnfab.errors import BackendError, ConfigError
from nnfab.ir import Graph, Node, infer_shapes

GRAPHS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "chain": [
        ("lstm", "LSTM", {"return_sequences": True}),
        ("gru", "GRU", {"reset_after": True, "go_backwards": True}),
    ],
    "reversed": [
        ("rnn", "SimpleRNN", {"return_sequences": True, "go_backwards": True,
                              "reverse_sequence": True}),
        ("gru", "GRU", {"reset_after": False, "return_sequences": True, "static": False}),
    ],
}


def stream_graph(kind: str, scale: float, tables: bool = True, seed: int = 0) -> Graph:
    """Input -> the recurrent layers of ``GRAPHS[kind]`` in a chain (-> Dense for chain)."""
    rng = np.random.default_rng(seed)
    g = Graph(f"rnn_stream_{kind}")
    g.add_node(Node("x", "Input", [], attrs={"shape": (STEPS, FEATURES)}), (STEPS, FEATURES))
    prev, n_in = "x", FEATURES
    for name, op, attrs in GRAPHS[kind]:
        width = GATES[op] * UNITS
        weights = {
            "kernel": rng.normal(0, scale, (n_in, width)),
            "recurrent_kernel": rng.normal(0, scale, (UNITS, width)),
            "bias": rng.normal(0, scale / 2, (2, width) if attrs.get("reset_after") else (width,)),
        }
        extra: dict[str, Any] = {}
        if tables:
            extra = {"table_size": 64, "table_range": 4.0}
            if op != "SimpleRNN":
                extra.update(recurrent_table_size=32, recurrent_table_range=8.0)
        g.add_node(Node(name, op, [prev], attrs={"units": UNITS, **attrs, **extra},
                        weights=weights), (1,))
        prev, n_in = name, UNITS
    if kind == "chain":
        g.add_node(Node("fc", "Dense", [prev], weights={
            "kernel": rng.normal(0, scale, (UNITS, 2)), "bias": rng.normal(0, 0.1, 2)}), (2,))
        prev = "fc"
    g.outputs = [prev]
    infer_shapes(g)
    return g


def _config(name: str, kind: str) -> dict[str, Any]:
    config: dict[str, Any] = {"Model": {**CONFIGS[name]["Model"], "IOType": "io_stream"}}
    if "LayerName" in CONFIGS[name]:
        layers = CONFIGS[name]["LayerName"]
        mine = {n: op for n, op, _ in GRAPHS[kind]}
        config["LayerName"] = {"x": layers["x"]}
        for layer, op in mine.items():  # the type entry of a layer of the same op
            source = {"LSTM": "lstm", "GRU": "gru_after", "SimpleRNN": "rnn"}[op]
            config["LayerName"][layer] = layers[source]
    return config


@needs_gxx
@pytest.mark.parametrize("kind", sorted(GRAPHS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_recurrent_stream_csim_matches_emulator(name: str, kind: str, csim_cache: Path,
                                                tmp_path: Path) -> None:
    graph = stream_graph(kind, scale=1.5 if name == "rounding_saturating" else 0.6,
                         tables=name != "defaults")
    model = nnfab.convert_graph(graph, _config(name, kind), output_dir=tmp_path / "prj")
    model.write()
    source = "\n".join(p.read_text() for p in (tmp_path / "prj").rglob("*.cpp"))
    assert "nnfab::recurrent_stream<nnfab::" in source
    assert ("nnfab::recurrent_stream_state<" in source) == (kind == "reversed")
    lib = CSimLibrary(model, cache_dir=csim_cache)
    x_type = model.graph.tensors["x"].type
    assert x_type is not None
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 2, (200, STEPS, FEATURES)),
                        edge_inputs(x_type, (STEPS, FEATURES), 200, seed=4)])
    got, want = lib.predict(x), model.predict(x)
    assert isinstance(got, np.ndarray) and got.shape == want.shape
    bad = np.argwhere(got != want)
    assert bad.size == 0, (
        f"{kind}/{name}: {len(bad)} of {got.size} values differ, first at {bad[0]}: "
        f"C++ {got[tuple(bad[0])]!r} emulator {want[tuple(bad[0])]!r}"
    )
    assert np.unique(got.reshape(len(x), -1), axis=0).shape[0] > 10  # not a constant output


@needs_gxx
def test_recurrent_stream_parallel_variants(csim_cache: Path) -> None:
    config = {**CONFIGS["rounding_saturating"]}
    config["Model"] = {**config["Model"], "IOType": "io_stream"}
    model = nnfab.convert_graph(recurrent_graph(scale=1.5), config)
    # two threads: the static state of a kernel instance must be private to each thread
    lib = CSimLibrary(model, cache_dir=csim_cache, threads=2)
    x = np.random.default_rng(5).normal(0, 2, (4 * MIN_SAMPLES_PER_THREAD, STEPS, FEATURES))
    got, want = lib.predict(x), model.predict(x)
    assert isinstance(got, list) and len(got) == len(LAYERS)
    for layer, g, w in zip(LAYERS, got, want, strict=True):
        assert g.shape == w.shape and np.array_equal(g, w), layer


def test_stream_static_attr_must_be_bool(tmp_path: Path) -> None:
    graph = stream_graph("reversed", scale=0.5)
    graph.nodes[-1].attrs["static"] = "no"
    model = nnfab.convert_graph(graph, {"Model": {"Precision": "ap_fixed<16,6>",
                                                  "IOType": "io_stream"}},
                                output_dir=tmp_path / "prj")
    with pytest.raises(BackendError, match=r"layer 'gru' \(GRU\): attr 'static' must be true"):
        model.write()


def test_static_config_key(tmp_path: Path) -> None:
    """hls4ml's ``Static`` switch: per layer name or type, recurrent layers only."""
    base = {"Model": {"Precision": "ap_fixed<16,6>", "IOType": "io_stream"}}
    model = nnfab.convert_graph(stream_graph("chain", scale=0.5),
                                {**base, "LayerType": {"LSTM": {"Static": False}},
                                 "LayerName": {"gru": {"Static": False}}},
                                output_dir=tmp_path / "prj")
    assert model.graph.node("lstm").attrs["static"] is False
    assert model.graph.node("gru").attrs["static"] is False
    model.write()
    source = (tmp_path / "prj" / "firmware" / "myproject.cpp").read_text()
    assert source.count("static: false, the state is an argument") == 2
    default = nnfab.convert_graph(stream_graph("chain", scale=0.5), base,
                                  output_dir=tmp_path / "prj2")
    assert "static" not in default.graph.node("lstm").attrs
    default.write()
    assert "the state is an argument" not in (
        tmp_path / "prj2" / "firmware" / "myproject.cpp").read_text()
    with pytest.raises(ConfigError, match=r"LayerName.gru.Static must be true or false"):
        nnfab.convert_graph(stream_graph("chain", scale=0.5),
                            {**base, "LayerName": {"gru": {"Static": "yes"}}})
    with pytest.raises(ConfigError, match=r"LayerName.fc.Static applies to recurrent layers"):
        nnfab.convert_graph(stream_graph("chain", scale=0.5),
                            {**base, "LayerName": {"fc": {"Static": True}}})
