"""Strategy Latency / Resource and reuse factors: same bits as the emulator, valid projects.

One graph holds Dense, Conv1D/2D and depthwise layers with every strategy and several
reuse factors (even foldings, uneven ones set behind the passes' back, layers beyond
4096 products); it is compiled twice: with the default size limits and with tiny ones
that split every layer into sub-function blocks. Both must equal the emulator exactly.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hls_helpers import (
    GXX,
    ODD_REUSE_FACTORS,
    STRATEGIES_CONFIG,
    edge_inputs,
    mlp_graph,
    needs_gxx,
    strategies_graph,
)
from test_csim import assert_same

import nnfab
from nnfab.backends.hls import CSimLibrary, ProjectSettings, render_project
from nnfab.backends.hls.csim import CXX_FLAGS
from nnfab.backends.hls.layers import multipliers, plan_tiles
from nnfab.errors import BackendError
from nnfab.passes.check_reuse_factor import reuse_factors_for

STRICT_FLAGS = (*CXX_FLAGS, "-Wall", "-Wextra", "-Werror", "-pedantic")


def strategies_model(big: bool = True, **hls_settings: int) -> nnfab.NnfabModel:
    config = dict(STRATEGIES_CONFIG)
    if not big:
        config["LayerName"] = {k: v for k, v in config["LayerName"].items() if "big" not in k}
    model = nnfab.convert_graph(strategies_graph(big=big), config)
    for name, rf in ODD_REUSE_FACTORS.items():
        model.graph.node(name).reuse_factor = rf
    for name in ("d_res144", "c_res54"):  # relu on the accumulator (emulator reads the attr)
        model.graph.node(name).attrs["activation"] = "relu"
    model.hls_settings = dict(hls_settings)
    return model


def strategy_inputs(model: nnfab.NnfabModel, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    arrays = []
    for k, name in enumerate(model.graph.inputs):
        t = model.graph.tensors[name]
        assert t.type is not None
        arrays.append(np.concatenate([
            rng.normal(0, 2, (n, *t.shape)), edge_inputs(t.type, t.shape, n, seed=k)]))
    return arrays


def test_configured_strategies_and_reuse_factors() -> None:
    model = strategies_model()
    g = model.graph
    assert g.node("d_res4").strategy == "Resource" and g.node("d_res4").reuse_factor == 4
    assert g.node("c_res54").reuse_factor == 54
    assert g.node("d_lat3").strategy == "Latency" and g.node("d_lat3").reuse_factor == 3
    for name, rf in ODD_REUSE_FACTORS.items():
        assert rf not in nnfab.valid_reuse_factors(g.node(name))


@needs_gxx
@pytest.mark.parametrize("limits", ["default", "tiny"])
def test_every_strategy_matches_emulator(limits: str, csim_cache: Path) -> None:
    settings = {} if limits == "default" else {"max_unroll": 16, "max_partition": 24}
    model = strategies_model(big=limits == "default", **settings)  # big: hundreds of blocks
    lib = CSimLibrary(model, cache_dir=csim_cache, flags=STRICT_FLAGS)  # warnings are errors
    x = strategy_inputs(model, 300)
    got, want = lib.predict(x), model.predict(x)
    assert_same(got, want)
    report = model.overflow_report()
    assert report["d_res4"]["accum"] > 0 and report["c_res9"]["accum"] > 0
    files = lib.project.files
    if limits == "tiny":
        assert "nnfab::mac_block<" in files["firmware/myproject.cpp"]
        assert "c_lat1_config_block1" in files["firmware/parameters.h"]
    else:
        assert "d_big_lat_w_block1" in files["firmware/parameters.h"]  # 4320 > 4096 products
        assert "d_big_res_w_block1" in files["firmware/parameters.h"]


@needs_gxx
def test_strategy_project_compiles_as_cpp17_warning_free(tmp_path: Path) -> None:
    model = strategies_model(big=False, max_unroll=16)
    model.output_dir = tmp_path / "prj"
    root = model.write()
    proc = subprocess.run(
        [GXX, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-pedantic",
         "-Ifirmware", "-Ifirmware/ap_types", "csim/bridge.cpp", "tb/myproject_test.cpp"],
        cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr[:4000]


def _weights_header(files: dict[str, str], name: str) -> list[int]:
    text = files[f"firmware/weights/{name}.h"]
    block = text.split("#ifdef NNFAB_AP_BASE_H")[1].split("#else")[0]
    body = block.split("= {")[1].split("};")[0]
    return [int(v.rstrip("LU")) for v in re.findall(r"-?\d+[LU]*", body)]


def test_resource_project_layout() -> None:
    config = {"Model": {"Precision": "ap_fixed<16,6>"},
              "LayerName": {"fc1": {"Strategy": "Resource", "ReuseFactor": 4}}}
    model = nnfab.convert_graph(mlp_graph((8, 6, 3), softmax=False), config)
    files = render_project(model.graph).files
    params = files["firmware/parameters.h"]
    fc1 = params.split("struct fc1_config {")[1].split("};")[0]
    assert "typedef nnfab::resource_tag strategy;" in fc1
    assert "reuse_factor = 4;" in fc1 and "block_factor = 12;" in fc1  # 8 * 6 / 4
    fc2 = params.split("struct fc2_config {")[1].split("};")[0]
    assert "typedef nnfab::latency_tag strategy;" in fc2
    # Resource weights are stored transposed: word r of the ROM holds products m * RF + r
    kernel = model.graph.node("fc1").weights["kernel"]
    w_type = model.graph.node("fc1").precision["weight"]
    mantissas = [round(float(v) * 2**w_type.frac) for v in w_type.quantize(kernel).T.ravel()]
    assert _weights_header(files, "fc1_w") == mantissas
    top = files["firmware/myproject.cpp"]
    assert "HLS DATAFLOW" in top and "static void fc1_layer(" in top
    assert "NNFAB_ALLOCATION_MUL(CONFIG_T::block_factor)" in files["firmware/nnfab/nnfab_dense.h"]
    common = files["firmware/nnfab/nnfab_common.h"]
    assert "HLS ALLOCATION operation instances=mul limit=LIMIT" in common  # Vitis
    assert "HLS ALLOCATION instances=mul limit=LIMIT operation" in common  # Vivado
    assert "HLS ARRAY_RESHAPE variable=weights block" in files["firmware/nnfab/nnfab_dense.h"]


def test_latency_top_is_pipelined_with_ii_equal_to_the_reuse_factor() -> None:
    config = {"Model": {"Precision": "ap_fixed<16,6>"}, "LayerName": {"fc2": {"ReuseFactor": 3}}}
    model = nnfab.convert_graph(mlp_graph((8, 6, 3), softmax=False), config)
    top = render_project(model.graph).files["firmware/myproject.cpp"]
    assert "NNFAB_PRAGMA(HLS PIPELINE II=3)" in top and "DATAFLOW" not in top


def test_vivado_and_vitis_pragma_spellings_and_partition_limit() -> None:
    model = nnfab.convert_graph(mlp_graph((8, 6, 3), softmax=False))
    vitis = render_project(model.graph, ProjectSettings(max_partition=5000)).files
    vivado = render_project(model.graph, ProjectSettings(backend="Vivado")).files
    assert "#define NNFAB_VITIS_HLS 1" in vitis["firmware/defines.h"]
    assert "NNFAB_VITIS_HLS" not in vivado["firmware/defines.h"]
    assert "set max_partition 5000" in vitis["project.tcl"]
    assert "set max_partition 4096" in vivado["project.tcl"]
    tcl = vivado["build_prj.tcl"]
    assert "config_array_partition -maximum_size $max_partition" in tcl
    assert "max_partition" in tcl.split("array set opt")[1].split("\n")[0]  # -tclargs override
    assert "4096" not in tcl


def test_big_arrays_are_partitioned_cyclically_and_the_knob_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = nnfab.convert_graph(mlp_graph((40, 30, 3), softmax=False))
    with caplog.at_level(logging.INFO, logger="nnfab.backends.hls"):
        files = render_project(model.graph, ProjectSettings(max_unroll=500,
                                                            max_partition=32)).files
    top = files["firmware/myproject.cpp"]
    assert "ARRAY_RESHAPE variable=x_out cyclic factor=32 dim=1" in top  # 40 inputs > 32
    assert "ARRAY_PARTITION variable=fc1_out complete dim=0" in top  # 30 <= 32
    assert "max_partition" in caplog.text and "'x'" in caplog.text
    assert "fc1" in caplog.text and "max_unroll" in caplog.text  # 1200 products split
    for name, text in files.items():
        if name.startswith("firmware/weights/fc1_w"):
            size = int(text.split("\n")[1].split()[1])
            assert size <= 32


def test_unsplittable_convolution_names_the_knobs(caplog: pytest.LogCaptureFixture) -> None:
    model = nnfab.convert_graph(strategies_graph(), STRATEGIES_CONFIG)
    with caplog.at_level(logging.WARNING, logger="nnfab.backends.hls"):
        render_project(model.graph, ProjectSettings(max_unroll=20))
    text = caplog.text
    assert "'c_lat1'" in text and "window of 27 inputs" in text
    assert "Strategy Resource" in text and "max_unroll" in text


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(BackendError, match="max_unroll must be an integer >= 1, got 0"):
        ProjectSettings(max_unroll=0)
    model = nnfab.convert_graph(mlp_graph((3, 2), softmax=False))
    model.hls_settings = {"max_unrol": 5}
    with pytest.raises(BackendError, match=r"unknown key\(s\) \['max_unrol'\]"):
        CSimLibrary(model)


@pytest.mark.parametrize("n_in,n_out", [(72, 60), (27, 4), (12, 5), (100, 100), (9, 32)])
@pytest.mark.parametrize("max_block", [1, 5, 16, 300])
def test_tiles_cover_the_matrix_and_respect_the_limit(n_in: int, n_out: int,
                                                      max_block: int) -> None:
    for strategy, factors in (("Latency", [1, 3]), ("Resource", reuse_factors_for(n_in, n_out))):
        for rf in factors:
            for split_rows in (True, False):
                tiles = plan_tiles(n_in, n_out, strategy, rf, max_block, split_rows)
                covered = np.zeros((n_in, n_out), dtype=int)
                for t in tiles:
                    covered[t.row0:t.row0 + t.rows, t.col0:t.col0 + t.cols] += 1
                    fold = rf if strategy == "Resource" else 1
                    if strategy == "Resource":  # a valid factor stays valid per block
                        assert rf in reuse_factors_for(t.rows, t.cols), (t, rf)
                    fits = multipliers(t.rows, t.cols, fold) <= max_block
                    one_column = t.cols == 1 or (fold > n_in and t.cols == fold // n_in)
                    assert fits or (not split_rows and one_column), (t, rf, strategy)
                assert (covered == 1).all()


def test_large_convolution_keeps_its_pixel_loop(caplog: pytest.LogCaptureFixture) -> None:
    """30 x 30 pixels x 216 products: unrolling the pixel loop in one pipeline would need
    194400 parallel products; the top becomes a dataflow of layer processes instead."""
    from nnfab.ir import Graph, Node

    g = Graph(name="conv")
    g.add_node(Node("img", "Input", [], attrs={"shape": (32, 32, 3)}), (32, 32, 3))
    weights = {"kernel": np.ones((3, 3, 3, 8)), "bias": np.zeros(8)}
    g.add_node(Node("conv", "Conv2D", ["img"], weights=weights), (30, 30, 8))
    g.outputs = ["conv"]
    model = nnfab.convert_graph(g)
    with caplog.at_level(logging.INFO, logger="nnfab.backends.hls"):
        top = render_project(model.graph).files["firmware/myproject.cpp"]
    assert "HLS DATAFLOW" in top and "static void conv_layer(" in top
    assert "194400 products" in caplog.text and "max_unroll = 4096" in caplog.text
    assert model.estimate().mode == "dataflow"
