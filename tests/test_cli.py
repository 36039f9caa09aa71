"""The command line, driven as a user would."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("keras")

from nnfab.cli import cli
from nnfab.demo.run import demo_model_path


def test_convert_then_predict(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "prj"
    res = runner.invoke(cli, ["convert", str(demo_model_path()), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "nnfab_model.json").exists() and (out / "nnfab_config.yml").exists()
    assert (out / "build_prj.tcl").exists() and (out / "firmware").is_dir()
    x = np.random.default_rng(0).normal(size=(64, 16))
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(cli, ["predict", str(out), "-i", str(tmp_path / "x.npy"), "-o",
                              str(tmp_path / "y.npy")])
    assert res.exit_code == 0, res.output
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (64, 5)


def test_convert_with_config_file_and_bad_key(tmp_path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("Model:\n  Precision: ap_fixed<12,4>\nLayerName:\n  fc1:\n    Precisoin: x\n")
    res = CliRunner().invoke(cli, ["convert", str(demo_model_path()), "-o", str(tmp_path / "p"),
                                   "-c", str(cfg)])
    assert res.exit_code != 0
    assert "Precisoin" in str(res.exception) or "Precisoin" in res.output


def test_demo_runs(tmp_path) -> None:
    res = CliRunner().invoke(cli, ["demo", "-o", str(tmp_path / "demo"), "-n", "2000"])
    assert res.exit_code == 0, res.output
    assert "fixed-point accuracy" in res.output
    assert "output_softmax" in res.output
    assert re.search(r"HLS C simulation == emulator \(bit for bit\)\s*│ yes", res.output)
    assert "ESTIMATE (analytic, not a synthesis result)" in res.output
    assert "fits" in res.output
    assert re.search(r"Verilog \(Verilator, \d+ samples\) == emulator\s*│ yes", res.output)
    assert "NO" not in res.output
    assert "Yosys synth_xilinx -family xc7 (xc7z020clg400-1)" in res.output
    assert "Verilog of output + output_softmax" in res.output
