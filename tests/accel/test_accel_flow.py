"""End to end: convert -> write the accelerator project -> the simulated board, whose
DMA runs the real wrapper (Verilator for the Verilog route, g++ for the HLS route)
under the unchanged driver written to deploy/, bit for bit against the emulator."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.graphs import mlp_graph

from nnfab.accel.project import expected_outputs
from nnfab.accel.simulate import simulate
from nnfab.api import convert_graph
from nnfab.config import config_from_graph
from nnfab.tools.verilator import verilator_available

BACKENDS = {"pynq-z2": "VivadoAccelerator", "zcu102": "VivadoAccelerator",
            "alveo-u250": "VitisAccelerator", "u55c": "CoyoteAccelerator"}
STUB = Path(__file__).with_name("data") / "coyote_stub"


def _project(tmp_path: Path, board: str, interface: str, route: str, x: np.ndarray):
    graph = mlp_graph((6, 5, 3), seed=3)
    config = config_from_graph(graph, default_precision="ap_fixed<10,4>")
    hm = convert_graph(graph, config, output_dir=tmp_path / "prj", backend=BACKENDS[board],
                       board=board, interface=interface, route=route)
    hm.write(x)
    return hm


@pytest.mark.skipif(not verilator_available(), reason="needs Verilator")
def test_verilog_route_on_the_simulated_pynq_z2(tmp_path: Path) -> None:
    x = np.random.default_rng(1).uniform(-9, 9, size=(40, 6))
    hm = _project(tmp_path, "pynq-z2", "fixed", "rtl", x)
    root = Path(hm.output_dir)
    assert (root / "axis" / f"{hm.to_rtl().top}_axis.v").is_file()
    board = simulate(root, engine="verilator", in_gap=0.3, out_stall=0.5, seed=2)
    y, seconds, rate = board.predict(x, profile=True, max_batch=16)  # 3 DMA transfers
    assert board.stats.transfers == 3 and board.transport.cycles > 0
    np.testing.assert_array_equal(y, expected_outputs(hm, x))
    np.testing.assert_array_equal(y, np.asarray(hm.predict(x)))
    assert seconds > 0 and rate > 0
    code, text = board.run_validate()
    assert code == 0, text


@pytest.mark.parametrize(("board_name", "interface"), [("pynq-z2", "float"),
                                                      ("zcu102", "fixed"),
                                                      ("alveo-u250", "float")])
def test_hls_route_on_the_simulated_board(tmp_path: Path, board_name: str,
                                          interface: str) -> None:
    x = np.random.default_rng(2).uniform(-9, 9, size=(33, 6))
    hm = _project(tmp_path, board_name, interface, "hls", x)
    board = simulate(Path(hm.output_dir), engine="csim")
    y = board.predict(x, max_batch=10)
    np.testing.assert_array_equal(y, expected_outputs(hm, x))
    code, text = board.run_validate()
    assert code == 0, text


def test_build_bitfile_without_vivado_writes_everything_and_says_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    x = np.zeros((4, 6))
    hm = _project(tmp_path, "pynq-z2", "float", "hls", x)
    result = hm.build(csim=False, synth=False, bitfile=True)
    root = Path(hm.output_dir)
    assert result["status"] == "written"
    assert result["command"] == f"bash {root / 'build_bitfile.sh'}"
    script = (root / "build_bitfile.sh").read_text()
    assert "build_axi_ip.tcl" in script and "vivado" in script
    assert (root / "build_axi_ip.tcl").is_file()
    assert (root / "accel" / "vivado" / "build_bitfile.tcl").is_file()
    assert {"vivado"} <= set(result["missing"])


@pytest.mark.skipif(not verilator_available(), reason="needs Verilator")
def test_coyote_on_the_simulated_u55c(tmp_path: Path) -> None:
    """512-bit host streams, the Verilog route, CoyoteOverlay(prj).predict(x, y_shape,
    batch_size) over the simulated host library, and the C++ host code compiled."""
    x = np.random.default_rng(3).uniform(-9, 9, size=(50, 6))
    hm = _project(tmp_path, "u55c", "fixed", "rtl", x)
    root = Path(hm.output_dir)
    board = simulate(root)
    assert board.engine == "verilator" and board.overlay_class == "CoyoteOverlay"
    nn = board.overlay()
    with board.board_python():
        y = nn.predict(x, (50, 3), batch_size=16)
    assert board.stats.transfers == 4
    np.testing.assert_array_equal(y, expected_outputs(hm, x))
    code, text = board.run_validate()
    assert code == 0, text
    # the C++ test program's vectors are the transfers' bytes
    deploy = root / "deploy"
    assert (deploy / "X_test.bin").stat().st_size == 50 * 6 * 2
    assert (deploy / "y_test.bin").stat().st_size == 50 * 3 * 2
    sw = root / "accel" / "coyote" / "sw"
    if shutil.which("g++"):
        exe = tmp_path / "host_test"
        subprocess.run(["g++", "-std=c++17", "-DNNFAB_COYOTE_MAIN", f"-I{STUB}",
                        str(sw / "nnfab_coyote.cpp"), "-o", str(exe)], check=True)
        # the stand-in vFPGA loops the input back: the program must see a mismatch with
        # y_test.bin, and a match against the input itself
        bad = subprocess.run([exe, deploy / "X_test.bin", deploy / "y_test.bin"],
                             capture_output=True, text=True)
        assert bad.returncode == 1 and "MISMATCH" in bad.stdout
        good = subprocess.run([exe, deploy / "X_test.bin", deploy / "X_test.bin"],
                              capture_output=True, text=True)
        assert good.returncode == 0 and "bit-exact" in good.stdout


def _garnet(tmp_path: Path):
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "frontends"))
    from test_keras_garnet import GARNET_CONFIG, _file_weights, _write, samples

    from nnfab.frontends.keras_json import graph_from_keras_json

    path = _write(tmp_path, {**GARNET_CONFIG, "output_activation": "relu"}, _file_weights())
    return graph_from_keras_json(path, tmp_path / "w.h5"), samples(30, seed=4)


@pytest.mark.skipif(not verilator_available(), reason="needs Verilator")
def test_two_input_network_on_the_simulated_pynq_z2(tmp_path: Path) -> None:
    """A GarNet layer (features and the vertex count) through the Verilog route: the
    driver packs both inputs onto the one bus."""
    graph, (x, n) = _garnet(tmp_path)
    config = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"}}
    hm = convert_graph(graph, config, output_dir=tmp_path / "prj", backend="VivadoAccelerator",
                       board="pynq-z2", interface="fixed", route="rtl")
    hm.write([x, n])
    board = simulate(Path(hm.output_dir), engine="verilator", in_gap=0.2, out_stall=0.3, seed=5)
    assert [p["name"] for p in board.desc["inputs"]] == ["x", "n"]
    want = np.asarray(hm.predict([x, n]))
    np.testing.assert_array_equal(board.predict([x, n]), want)
    np.testing.assert_array_equal(board.predict({"n": n, "x": x}), want)
    np.testing.assert_array_equal(expected_outputs(hm, [x, n]), want)
    code, text = board.run_validate()  # deploy/X_test.npy holds the packed bus batch
    assert code == 0, text


def _two_input_keras():
    import keras

    a, b = keras.Input((6,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Concatenate()([keras.layers.Dense(4, activation="relu", name="da")(a),
                                    keras.layers.Dense(2, name="db")(b)])
    return keras.Model([a, b], keras.layers.Dense(3, name="out")(h))


@pytest.mark.parametrize(("board_name", "interface", "io_type"),
                         [("pynq-z2", "fixed", "io_parallel"), ("zcu102", "fixed", "io_stream"),
                          ("alveo-u250", "float", "io_parallel")])
def test_two_inputs_through_the_hls_route(tmp_path: Path, board_name: str, interface: str,
                                          io_type: str) -> None:
    """Two inputs of different types on the HLS top's one stream (C simulation of the
    AXI4-Stream top, or of the Alveo kernel): by list, by dict and packed, bit-exact."""
    from nnfab.api import convert_from_keras_model

    config = {"Model": {"Precision": "ap_fixed<12,5>"},
              "LayerName": {"a": {"Precision": "ap_fixed<8,3>"},
                            "b": {"Precision": "ap_ufixed<7,0,AP_RND,AP_SAT>"}}}
    hm = convert_from_keras_model(_two_input_keras(), hls_config=config,
                                  output_dir=str(tmp_path / "prj"),
                                  backend=BACKENDS[board_name], board=board_name,
                                  interface=interface, io_type=io_type)
    rng = np.random.default_rng(7)
    x = [rng.uniform(-5, 5, (27, 6)), rng.uniform(-0.2, 1.2, (27, 3))]  # b saturates
    hm.write(x)
    board = simulate(Path(hm.output_dir), engine="csim")
    desc = board.desc
    assert [p["type"] for p in desc["inputs"]] == ["ap_fixed<8,3>",
                                                   "ap_ufixed<7,0,AP_RND,AP_SAT>"]
    if interface == "fixed":  # the bus type: 2 integer bits + sign, 7 fraction bits
        assert desc["input"]["type"] == "ap_fixed<10,3>"
    want = np.asarray(hm.predict(x))
    np.testing.assert_array_equal(expected_outputs(hm, x), want)
    np.testing.assert_array_equal(board.predict(x, max_batch=10), want)
    np.testing.assert_array_equal(board.predict({"b": x[1], "a": x[0]}), want)
    from nnfab.accel.project import bus_inputs

    np.testing.assert_array_equal(board.predict(bus_inputs(hm, x)), want)
    code, text = board.run_validate()
    assert code == 0, text
