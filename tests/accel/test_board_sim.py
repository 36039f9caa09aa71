"""The simulated board with the emulator behind the DMA: the driver written to deploy/
(unchanged), its chunking and conversions, validate.py, the package and project reload.

The Verilator and C-simulation transports are exercised in test_accel_flow.py."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from tests.graphs import mlp_graph

from nnfab.accel.interface import AccelSettings
from nnfab.accel.package import package
from nnfab.accel.project import (
    expected_outputs,
    interface_document,
    load_accel_model,
    write_deploy,
)
from nnfab.accel.simulate import simulate
from nnfab.api import convert_graph
from nnfab.config import config_from_graph
from nnfab.errors import ConfigError


def _model(tmp_path: Path, board: str = "pynq-z2", interface: str = "fixed",
           route: str | None = "rtl", precision: str = "ap_fixed<10,4>"):
    graph = mlp_graph((6, 5, 3), seed=3)
    backend = {"pynq-z2": "VivadoAccelerator", "zcu102": "VivadoAccelerator",
               "alveo-u250": "VitisAccelerator"}[board]
    config = config_from_graph(graph, default_precision=precision)  # narrow: casts matter
    return convert_graph(graph, config, output_dir=tmp_path / "prj", backend=backend,
                         board=board, interface=interface, route=route)


def _deploy(hm, x: np.ndarray) -> Path:
    """deploy/ alone (no wrapper, no board project: those are other modules' tests)."""
    root = Path(hm.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    hm.save_ir(root / "nnfab_model.json")
    doc = interface_document(hm)
    from nnfab.accel.interface import write_description

    write_description(doc, root / "accel" / "accel.json")
    return write_deploy(hm, root, doc, x)


@pytest.mark.parametrize(("interface", "route"), [("fixed", "rtl"), ("float", "hls"),
                                                  ("fixed", "hls")])
def test_driver_on_the_simulated_board_is_exact_and_chunks(tmp_path: Path, interface: str,
                                                           route: str) -> None:
    hm = _model(tmp_path, interface=interface, route=route)
    rng = np.random.default_rng(5)
    x = rng.uniform(-9, 9, size=(45, 6))  # out-of-range values: the input cast saturates/wraps
    _deploy(hm, x)
    board = simulate(hm, engine="emulator")
    y = board.predict(x, max_batch=7)  # 7 chunks, the last of 3 samples
    assert board.stats.transfers == 7
    want = expected_outputs(hm, x)
    assert y.shape == want.shape == (45, 3)
    assert np.array_equal(y, want)
    # the driver rounds on the ARM side for the fixed interface; a float64 input that is
    # not a float32 value must still give the emulator's outputs
    if interface == "fixed":
        assert np.array_equal(y, np.asarray(hm.predict(x)))
    if route == "hls":
        assert (0, 0x81) in board.stats.register_writes


def test_float_interface_rounds_inputs_to_float32_like_the_bus(tmp_path: Path) -> None:
    hm = _model(tmp_path, interface="float", route="hls")
    x = np.array([[0.1 + 1e-9 * k for k in range(6)]] * 3)
    _deploy(hm, x)
    y = simulate(hm, engine="emulator").predict(x)
    assert np.array_equal(y, np.asarray(hm.predict(x.astype(np.float32))))


def test_validate_script_passes_and_fails(tmp_path: Path) -> None:
    hm = _model(tmp_path)
    x = np.random.default_rng(2).uniform(-4, 4, size=(30, 6))
    deploy = _deploy(hm, x)
    board = simulate(hm, engine="emulator")
    code, text = board.run_validate()
    assert code == 0, text
    assert "bit-exact: all 30 samples" in text
    y = np.load(deploy / "y_test.npy")
    y[17, 1] += 2.0 ** -6  # one output off by one LSB
    np.save(deploy / "y_test.npy", y)
    code, text = board.run_validate()
    assert code == 1
    assert "MISMATCH: 1 of 30" in text and "sample 17" in text


def test_alveo_driver_runs_the_kernel_on_the_simulated_card(tmp_path: Path) -> None:
    hm = _model(tmp_path, board="alveo-u250", interface="fixed", route="hls")
    x = np.random.default_rng(4).uniform(-4, 4, size=(20, 6))
    _deploy(hm, x)
    board = simulate(hm, engine="emulator")
    nn = board.overlay(x.shape, (20, 3), max_batch=8)
    with board.board_python():
        y, latency, throughput = nn.predict(x, profile=True)
    assert board.stats.transfers == 3
    assert np.array_equal(y, expected_outputs(hm, x))
    assert latency > 0 and throughput > 0
    code, text = board.run_validate()
    assert code == 0, text


def test_driver_rejects_wrong_shapes(tmp_path: Path) -> None:
    hm = _model(tmp_path)
    _deploy(hm, np.zeros((4, 6)))
    board = simulate(hm, engine="emulator")
    with pytest.raises(ValueError, match=r"x_shape \(4, 5\)"):
        board.overlay((4, 5), None)
    with pytest.raises(ValueError, match=r"y_shape"):
        board.overlay((4, 6), (4, 2))
    with pytest.raises(ValueError, match=r"use x\[None\]"):
        board.predict(np.zeros(6))


def test_transfer_limit_of_the_dma_is_respected(tmp_path: Path) -> None:
    hm = _model(tmp_path)
    deploy = _deploy(hm, np.zeros((4, 6)))
    doc = json.loads((deploy / "nnfab_nn.json").read_text())
    doc["dma_length_bits"] = 7  # 127 bytes: 15 beats of 64 bits per transfer
    (deploy / "nnfab_nn.json").write_text(json.dumps(doc))
    board = simulate(hm, engine="emulator")
    nn = board.overlay((100, 6), None)
    # 6 inputs of 16-bit lanes = 1.5 beats a sample; outputs 3 lanes: the input side limits
    assert nn.max_batch == 10
    with board.board_python():
        y = nn.predict(np.ones((25, 6)))
    assert board.stats.transfers == 3 and y.shape == (25, 3)


def test_package_needs_the_bitfile_or_says_what_is_missing(tmp_path: Path) -> None:
    hm = _model(tmp_path)
    deploy = _deploy(hm, np.zeros((4, 6)))
    root = Path(hm.output_dir)
    with pytest.raises(ConfigError, match=r"nnfab_nn\.bit, nnfab_nn\.hwh.*build_bitfile\.sh"):
        package(root)
    archive = package(root, require_bitfile=False)
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        missing = tar.extractfile("nnfab_nn_package/MISSING.txt").read().decode()
    assert "nnfab_nn_package/nnfab_driver.py" in names
    assert "nnfab_nn_package/X_test.npy" in names and "nnfab_nn_package/validate.py" in names
    assert "nnfab_nn.bit" in missing and "nnfab_nn.hwh" in missing
    (deploy / "nnfab_nn.bit").write_bytes(b"\x00\x09bit")
    (deploy / "nnfab_nn.hwh").write_text("<hwh/>")
    archive = package(root)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        extracted = tmp_path / "board"
        tar.extractall(extracted, filter="data")
    assert "nnfab_nn_package/MISSING.txt" not in names
    assert (extracted / "nnfab_nn_package" / "nnfab_nn.bit").read_bytes() == b"\x00\x09bit"
    y = np.load(extracted / "nnfab_nn_package" / "y_test.npy")
    assert np.array_equal(y, expected_outputs(hm, np.zeros((4, 6))))


def test_project_reloads_with_its_settings(tmp_path: Path) -> None:
    hm = _model(tmp_path, board="zcu102", interface="fixed", route="rtl")
    _deploy(hm, np.zeros((2, 6)))
    again = load_accel_model(hm.output_dir)
    assert again.accel == AccelSettings.make("VivadoAccelerator", "zcu102", interface="fixed",
                                             route="rtl")
    assert again.clock_period == hm.clock_period == 5.0
    x = np.random.default_rng(0).uniform(-3, 3, (10, 6))
    assert np.array_equal(again.predict(x), hm.predict(x))
    with pytest.raises(ConfigError, match="not an nnfab accelerator project"):
        load_accel_model(tmp_path)
