"""io_stream projects: hls::stream dataflow, C simulation == emulator bit for bit.

The generated code is compiled with warnings as errors (c++14 -Wall -Wextra -pedantic
for the C simulation, c++17 for the testbench) and against nnfab's own hls_stream.h.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hls_helpers import (
    ACTIVATIONS_CONFIG,
    GXX,
    activations_graph,
    cnn_graph,
    edge_inputs,
    mlp_graph,
    needs_gxx,
)
from test_csim import CNN_CONFIG, assert_same
from test_strategies import STRICT_FLAGS, strategies_model

import nnfab
from nnfab.backends.hls import CSimLibrary, render_project, write_project
from nnfab.errors import BackendError
from nnfab.ir import Graph

pytestmark = needs_gxx


def stream_inputs(model: nnfab.NnfabModel, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for k, name in enumerate(model.graph.inputs):
        t = model.graph.tensors[name]
        assert t.type is not None
        arrays.append(np.concatenate([rng.normal(0, 2, (n, *t.shape)),
                                      edge_inputs(t.type, t.shape, n, seed=seed + k)]))
    return arrays


def check_model(model: nnfab.NnfabModel, csim_cache: Path, n: int = 300) -> CSimLibrary:
    assert model.io_type == "io_stream"
    lib = CSimLibrary(model, cache_dir=csim_cache, flags=STRICT_FLAGS)
    x = stream_inputs(model, n)
    got, want = lib.trace(x), model.trace(x)
    assert list(got) == list(want)
    for name in want:
        assert_same(got[name], want[name])
    assert_same(lib.predict(x), model.predict(x))
    assert "hls::stream<" in lib.project.files["firmware/myproject.cpp"]
    return lib


def _stream(graph: Graph, config: dict[str, Any]) -> nnfab.NnfabModel:
    return nnfab.convert_graph(graph, config, io_type="io_stream")


def test_cnn_layers_in_io_stream(csim_cache: Path) -> None:
    """Conv1D/2D, depthwise, padded pooling (line buffers), global pooling, batch norm,
    merges, concatenation on inner and last axes, reshape, fan-out to several layers."""
    lib = check_model(_stream(cnn_graph(), CNN_CONFIG), csim_cache)
    top = lib.project.files["firmware/myproject.cpp"]
    assert "nnfab::window_stream<" in top and "nnfab::global_pool_stream<" in top
    assert "NNFAB_PRAGMA(HLS DATAFLOW)" in top and "INTERFACE axis port=img_stream" in top


def test_activations_softmax_and_multi_output_in_io_stream(csim_cache: Path) -> None:
    check_model(_stream(activations_graph(), ACTIVATIONS_CONFIG), csim_cache)


def test_strategies_in_io_stream(csim_cache: Path) -> None:
    model = strategies_model()
    model.graph.io_type = "io_stream"
    lib = check_model(model, csim_cache, n=150)
    top = lib.project.files["firmware/myproject.cpp"]
    assert "d_big_lat_w_block1" in lib.project.files["firmware/parameters.h"]
    # a Resource layer's transaction loop is not pipelined (its reuse loop is)
    res = top.split("static void d_res4_layer(")[1].split("\n}\n")[0]
    lat = top.split("static void d_lat3_layer(")[1].split("\n}\n")[0]
    assert "PIPELINE" not in res and "PIPELINE II=3" in lat


def test_stream_testbench_checks_outputs_exactly(tmp_path: Path) -> None:
    model = _stream(mlp_graph((6, 5, 4), seed=2), {"Model": {"Precision": "ap_fixed<12,4>"}})
    x = np.random.default_rng(4).normal(0, 3, (30, 6))
    root = write_project(model, tmp_path / "prj", tb_input=x, tb_output=model.predict(x))
    exe = root / "tb.exe"
    build = subprocess.run(
        [GXX, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic",
         "-Ifirmware/ap_types", "tb/myproject_test.cpp", "firmware/myproject.cpp", "-o",
         str(exe)], cwd=root, capture_output=True, text=True)
    assert build.returncode == 0 and not build.stderr, build.stderr[:4000]
    ok = subprocess.run([str(exe)], cwd=root, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    assert "30 sample(s) run, 120 value(s) compared, 0 mismatch(es)" in ok.stdout


def test_own_hls_stream_header(tmp_path: Path) -> None:
    """FIFO order, non-blocking calls, and a read of an empty stream is reported."""
    source = tmp_path / "t.cpp"
    source.write_text(
        '#include <cstdio>\n#include "hls_stream.h"\n'
        "int main() {\n"
        '  hls::stream<int> s("fifo");\n'
        "  s.write(1); s << 2; s.write_nb(3);\n"
        "  int a = s.read(), b = 0, c = 0, d = 7;\n"
        "  s >> b; bool got = s.read_nb(c); bool none = s.read_nb(d);\n"
        "  std::printf(\"%d %d %d %d %d %d %zu\\n\", a, b, c, got, none, d, s.size());\n"
        "  int e = s.read();\n"
        '  std::printf("%d %ld %d\\n", e, hls::nnfab_stream_underflows(), s.empty());\n'
        "}\n")
    include = Path(nnfab.__file__).parent / "backends" / "hls" / "include"
    exe = tmp_path / "t"
    subprocess.run([GXX, "-std=c++14", "-Wall", "-Wextra", "-Werror", f"-I{include}",
                    str(source), "-o", str(exe)], check=True, capture_output=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.stdout.splitlines() == ["1 2 3 1 0 7 0", "0 1 1"]
    assert "hls::stream 'fifo' read while empty" in run.stderr


def test_stream_project_is_named_and_unsupported_cases_are_clear() -> None:
    model = _stream(mlp_graph((3, 2), softmax=False), {"Model": {"Precision": "ap_fixed<8,3>"}})
    files = render_project(model.graph).files
    assert "hls::stream<fc1_pack_t>& fc1_port" in files["firmware/myproject.h"]
    assert "typedef nnfab::packed<x_t, 3> x_pack_t;" in files["firmware/defines.h"]
    assert '#include "hls_stream.h"' in files["firmware/defines.h"]
    assert "firmware/ap_types/hls_stream.h" in files
    g = cnn_graph()
    g.node("cat").inputs = ["add", "add", "mul", "avg"]
    with pytest.raises(BackendError, match=r"'cat'.*same tensor twice"):
        render_project(_stream(g, CNN_CONFIG).graph)


# ------------------------------------------- ops on the whole sample, per-channel casts
def _cast_cnn(per_element: bool) -> Graph:
    """Conv -> ElementCast (per channel, or per element) -> MatMul of the feature map
    with its own transpose (a Gram matrix) -> Flatten -> Dense."""
    from nnfab.ir import Node
    from nnfab.ir.ops import infer_shapes

    rng = np.random.default_rng(12)
    g = Graph(name="casts")
    g.add_node(Node("img", "Input", [], attrs={"shape": (5, 5, 2)}), (5, 5, 2))
    g.add_node(Node("conv", "Conv2D", ["img"], weights={
        "kernel": rng.normal(size=(3, 3, 2, 3)) * 0.3, "bias": rng.normal(size=3)}),
        (3, 3, 3))
    shape = (3, 3, 3) if per_element else (1, 1, 3)
    bits = rng.integers(0, 8, size=shape)
    g.add_node(Node("q", "ElementCast", ["conv"],
                    attrs={"rounding": "AP_RND_CONV", "overflow": "AP_SAT"},
                    weights={"keep_negative": rng.integers(0, 2, size=shape), "bits": bits,
                             "integers": rng.integers(1, 4, size=shape)}), (3, 3, 3))
    g.add_node(Node("rows", "Reshape", ["q"], attrs={"target_shape": (9, 3)}), (9, 3))
    g.add_node(Node("cols", "Permute", ["rows"], attrs={"perm": (1, 0)}), (3, 9))
    g.add_node(Node("gram", "MatMul", ["cols", "rows"]), (3, 3))
    g.add_node(Node("flat", "Flatten", ["gram"]), (9,))
    g.add_node(Node("fc", "Dense", ["flat"], weights={"kernel": rng.normal(size=(9, 2)),
                                                      "bias": rng.normal(size=2)}), (2,))
    g.outputs = ["fc"]
    infer_shapes(g)
    return g


@pytest.mark.parametrize("per_element", [False, True])
def test_element_cast_and_matmul_in_io_stream(per_element: bool, csim_cache: Path) -> None:
    cfg = {"Model": {"Precision": "ap_fixed<14,6,AP_RND,AP_SAT>"},
           "LayerName": {"gram": {"Precision": {"result": "ap_fixed<12,6,AP_RND,AP_SAT>"}}}}
    lib = check_model(_stream(_cast_cnn(per_element), cfg), csim_cache)
    top = lib.project.files["firmware/myproject.cpp"]
    cast_fn = top[top.index("static void q_layer"):].split("\n}\n")[0]
    assert ("conv_out[27];" in cast_fn) == per_element  # per element: the sample, buffered
    assert "static void gram_layer" in top


def test_garnet_in_io_stream(csim_cache: Path, tmp_path: Path) -> None:
    """VertexMask / VertexMean (and the MatMuls) of a GarNet layer, two input streams."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[2] / "frontends"))
    from test_keras_garnet import GARNET_CONFIG, _file_weights, _write

    from nnfab.frontends.keras_json import graph_from_keras_json

    path = _write(tmp_path, {**GARNET_CONFIG, "output_activation": "relu"}, _file_weights())
    cfg = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"}}
    model = _stream(graph_from_keras_json(path, tmp_path / "w.h5"), cfg)
    check_model(model, csim_cache, n=150)
