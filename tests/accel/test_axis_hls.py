"""The HLS AXI4-Stream top and the Alveo kernel, compiled with g++ == the emulator.

Bytes are made and read by the driver's ``Codec`` (the one implementation of
docs/axi_stream.md); expected values come from the emulator through
``expected_outputs`` (float32 on the bus for ``interface="float"``).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "backends" / "rtl"))

from rtl_helpers import mlp_graph, sample_inputs
from test_rtl_stream import CNN_CONFIG, small_cnn

import nnfab
from nnfab.accel.axis_hls import AxisCSim, ip_vlnv, write_axis_top
from nnfab.accel.drivers.nnfab_driver import Codec
from nnfab.accel.project import expected_outputs, interface_document
from nnfab.errors import ConfigError

MLP = {"Model": {"Precision": "ap_fixed<8,3>", "ReuseFactor": 1},
       "LayerName": {"inp": {"Precision": {"result": "ap_fixed<10,3,AP_RND,AP_SAT>"}},
                     "fc1": {"Precision": {"result": "ap_ufixed<12,4,AP_RND_CONV,AP_SAT>"}}}}


def _model(tmp_path: Path, graph, config, **accel):
    return nnfab.convert_graph(graph, config, backend="VivadoAccelerator",
                               output_dir=tmp_path / "prj", **accel)


def _check(model, x: np.ndarray, tmp_path: Path) -> None:
    codec = Codec(interface_document(model))
    n = len(x)
    csim = AxisCSim(model, tmp_path / "csim")
    want = expected_outputs(model, x)
    out = csim.run_bytes(codec.encode(x)[: codec.in_stream_bytes(n)])
    assert out.size == codec.out_stream_bytes(n)  # TKEEP keeps exactly the outputs
    np.testing.assert_array_equal(codec.decode(out, n), want)
    mem = csim.run_kernel(codec.encode(x), n)
    assert mem.size == codec.out_bytes(n)
    np.testing.assert_array_equal(codec.decode(mem, n), want)


@pytest.mark.parametrize("interface", ["fixed", "float"])
@pytest.mark.parametrize("bus_width", [32, 64, 128, 512])
def test_mlp_bit_exact(interface: str, bus_width: int, tmp_path: Path) -> None:
    """16-bit input lanes, 16-bit unsigned output lanes (zero-extended), values beyond
    the input type's range (rounded and saturated by its modes, in the fabric for float)."""
    model = _model(tmp_path, mlp_graph([6, 5, 3]), MLP, board="pynq-z2",
                   interface=interface, bus_width=bus_width)
    t = model.graph.tensors[model.graph.inputs[0]].type
    x = sample_inputs(t, 6, 57, seed=bus_width)
    _check(model, x, tmp_path)


def test_pixel_stream_cnn_bit_exact(tmp_path: Path) -> None:
    config = copy.deepcopy(CNN_CONFIG)
    config["Model"]["IOType"] = "io_stream"
    model = _model(tmp_path, small_cnn(), config, board="zcu102", interface="float")
    x = np.random.default_rng(0).uniform(-4, 4, size=(5, 10, 10, 2))
    _check(model, x, tmp_path)


def test_single_sample_on_a_wide_bus(tmp_path: Path) -> None:
    """One 6-lane sample in a 32-lane beat: TKEEP, not the zero lanes, ends the transfer."""
    model = _model(tmp_path, mlp_graph([6, 5, 3]), MLP, board="pynq-z2", interface="fixed",
                   bus_width=512)
    x = np.array([[0.5, -1.25, 2.0, 0.0, -3.0, 1.0]])
    _check(model, x, tmp_path)


def test_written_files_and_ip_name(tmp_path: Path) -> None:
    model = _model(tmp_path, mlp_graph([6, 5, 3]), MLP, board="pynq-z2", interface="fixed")
    files = write_axis_top(model, tmp_path / "prj")
    names = {p.name for p in files}
    top = model.project_name
    assert {f"{top}_axi.cpp", f"{top}_axi.h", f"{top}_kernel.cpp", "nnfab_axis.h",
            "build_axi_ip.tcl"} <= names
    tcl = (tmp_path / "prj" / "build_axi_ip.tcl").read_text()
    assert f"set_top {top}_axi" in tcl and "export_design -format ip_catalog" in tcl
    assert ip_vlnv(top) == f"nnfab.org:hls:{top}_axi:1.0"
    cpp = (tmp_path / "prj" / "firmware" / f"{top}_axi.cpp").read_text()
    assert "HLS INTERFACE axis port=in_stream" in cpp
    assert "HLS INTERFACE s_axilite port=return bundle=control" in cpp


def test_needs_accelerator_settings(tmp_path: Path) -> None:
    model = nnfab.convert_graph(mlp_graph([6, 5, 3]), MLP, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="accelerator settings"):
        write_axis_top(model, tmp_path)
