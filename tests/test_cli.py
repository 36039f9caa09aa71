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


def _tiny_project(tmp_path):
    """A converted 6-5-3 MLP saved as a project directory (nnfab_model.json)."""
    import nnfab
    from nnfab.ir import Graph, Node

    rng = np.random.default_rng(0)
    g = Graph(name="tiny")
    g.add_node(Node("inp", "Input", [], attrs={"shape": (6,)}), (6,))
    g.add_node(Node("fc0", "Dense", ["inp"], weights={"kernel": rng.normal(size=(6, 5)),
                                                      "bias": rng.normal(size=5)}), (5,))
    g.add_node(Node("fc1", "Dense", ["fc0"], weights={"kernel": rng.normal(size=(5, 3)),
                                                      "bias": rng.normal(size=3)}), (3,))
    g.outputs = ["fc1"]
    model = nnfab.convert_graph(g, {"Model": {"Precision": "ap_fixed<12,5>"}})
    root = tmp_path / "tiny"
    root.mkdir()
    model.save_ir(root / "nnfab_model.json")
    return root


def _manifest(root):
    import json

    return json.loads((root / "out" / "rtl" / "design.json").read_text())


def test_rtl_pipeline_option(tmp_path) -> None:
    root = _tiny_project(tmp_path)
    runner = CliRunner()
    out = ["-o", str(root / "out")]
    # default: the project's clock (5 ns; xcvu9p is UltraScale+: (5 - 0.6) / 0.55 -> 8)
    res = runner.invoke(cli, ["rtl", str(root), *out])
    assert res.exit_code == 0, res.output
    assert _manifest(root)["adders_per_stage"] == 8
    res = runner.invoke(cli, ["rtl", str(root), *out, "--pipeline", "none"])
    assert res.exit_code == 0, res.output
    assert _manifest(root)["adders_per_stage"] is None
    flat = _manifest(root)["latency"]
    # an integer: adder levels per stage, as --adders-per-stage
    res = runner.invoke(cli, ["rtl", str(root), *out, "--pipeline", "1"])
    assert res.exit_code == 0, res.output
    assert "1 adder level(s) per pipeline stage" in res.output
    assert _manifest(root)["adders_per_stage"] == 1 and _manifest(root)["latency"] > flat
    # a clock period in ns, with or without the unit (xcvu9p: UltraScale+, 2.5 ns -> 3)
    for period in ("2.5ns", "2.5", "2.5 ns"):
        res = runner.invoke(cli, ["rtl", str(root), *out, "--pipeline", period])
        assert res.exit_code == 0, res.output
        assert _manifest(root)["adders_per_stage"] == 3
    # the family follows --part (7-series: 5 ns -> 4 levels)
    res = runner.invoke(cli, ["rtl", str(root), *out, "--pipeline", "5ns", "--part",
                                  "xc7a35t"])
    assert res.exit_code == 0, res.output
    assert _manifest(root)["adders_per_stage"] == 4


def test_rtl_pipeline_errors(tmp_path) -> None:
    root = _tiny_project(tmp_path)
    runner = CliRunner()
    res = runner.invoke(cli, ["rtl", str(root), "--pipeline", "2", "--adders-per-stage", "2"])
    assert res.exit_code == 2
    assert "mutually exclusive" in res.output
    for bad in ("0", "fast", "-1ns", "0ns", "inf"):
        res = runner.invoke(cli, ["rtl", str(root), "--pipeline", bad])
        assert res.exit_code == 2, (bad, res.output)
        assert "--pipeline" in res.output and "clock period in ns" in res.output
    res = runner.invoke(cli, ["rtl", "--help"])
    assert "--pipeline" in res.output and "clock period" in res.output
