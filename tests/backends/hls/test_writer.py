"""The HLS project writer: layout, TCL settings, identifiers, constant arrays, errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hls_helpers import activations_graph, mlp_graph

import nnfab
from nnfab.backends.hls import ProjectSettings, render_project, write_project
from nnfab.backends.hls.layers import RENDERERS
from nnfab.errors import BackendError
from nnfab.ir import OPS, FixedType, Node


def test_project_layout_and_tcl_settings(tmp_path: Path) -> None:
    model = nnfab.convert_graph(mlp_graph((6, 5, 4)), project_name="jet-tagger", backend="Vivado",
                                part="xc7z020clg400-1", clock_period=3.3)
    root = write_project(model, tmp_path / "prj")
    top = "jet_tagger"  # sanitized project name
    for rel in [f"firmware/{top}.cpp", f"firmware/{top}.h", "firmware/defines.h",
                "firmware/parameters.h", "firmware/weights/fc1_w.h", "firmware/weights/fc1_b.h",
                "firmware/nnfab/nnfab_dense.h", "firmware/ap_types/ap_fixed.h",
                f"tb/{top}_test.cpp", "csim/bridge.cpp", "build_prj.tcl", "project.tcl",
                "vivado_synth.tcl"]:
        assert (root / rel).is_file(), rel
    settings = (root / "project.tcl").read_text()
    assert f'set project_name "{top}"' in settings
    assert 'set backend "Vivado"' in settings
    assert 'set part "xc7z020clg400-1"' in settings
    assert "set clock_period 3.3" in settings
    build = (root / "build_prj.tcl").read_text()
    assert "vivado_hls -f build_prj.tcl" in build
    for step in ("csim_design", "csynth_design", "cosim_design", "export_design", "vivado"):
        assert step in build
    assert re.search(r"array set opt \{[^}]*csim 0[^}]*vsynth 0", build)
    # the vendor flow must not see nnfab's own ap_fixed.h
    assert "ap_types" not in build


def test_rewriting_a_project_removes_stale_weights(tmp_path: Path) -> None:
    write_project(nnfab.convert_graph(mlp_graph((6, 5, 4))), tmp_path)
    assert (tmp_path / "firmware/weights/fc2_w.h").is_file()
    write_project(nnfab.convert_graph(mlp_graph((6, 5), softmax=False)), tmp_path)
    assert not (tmp_path / "firmware/weights/fc2_w.h").exists()
    assert (tmp_path / "firmware/weights/fc1_w.h").is_file()


def test_default_settings_are_vitis_5ns() -> None:
    project = render_project(nnfab.convert_graph(mlp_graph((3, 2))).graph)
    assert project.top == "myproject"
    assert "set clock_period 5\n" in project.files["project.tcl"]
    assert 'set backend "Vitis"' in project.files["project.tcl"]
    assert "vitis_hls -f build_prj.tcl" in project.files["build_prj.tcl"]
    with pytest.raises(BackendError, match="backend"):
        ProjectSettings(backend="Quartus")


def _numbers(text: str, start: str, end: str) -> list[str]:
    body = text.split(start, 1)[1].split(end, 1)[0]
    body = body.split("{", 1)[1].split("}", 1)[0]
    return [tok.strip() for tok in body.replace("\n", " ").split(",") if tok.strip()]


def test_weights_are_exact_in_both_forms() -> None:
    graph = mlp_graph((7, 3), seed=4, softmax=False)
    config = {"Model": {"Precision": "ap_fixed<16,6>"},
              "LayerName": {"fc1": {"Precision": {"weight": "ap_fixed<9,2,AP_RND_CONV,AP_SAT>"}}}}
    model = nnfab.convert_graph(graph, config)
    text = render_project(model.graph).files["firmware/weights/fc1_w.h"]
    w_type = FixedType.parse("ap_fixed<9,2,AP_RND_CONV,AP_SAT>")
    kernel = graph.node("fc1").weights["kernel"]
    want = w_type.quantize(kernel).ravel()
    assert "static const int16_t fc1_w[21]" in text
    mantissas = [int(m) for m in _numbers(text, "#ifdef NNFAB_AP_BASE_H", "#else")]
    values = [float(v) for v in _numbers(text, "#else", "#endif")]
    assert np.array_equal(np.ldexp(np.array(mantissas, dtype=float), -w_type.frac), want)
    assert np.array_equal(np.array(values), want)


def test_identifiers_are_unique_and_safe() -> None:
    model = nnfab.convert_graph(activations_graph())
    files = render_project(model.graph).files
    code = files["firmware/defines.h"] + files["firmware/myproject.h"]
    for ident in ("in_put_out", "sigmoid_out", "l_2_soft_max_t", "int8_t_", "size_t_"):
        assert ident in code, ident
    typedefs = re.findall(r"^typedef .* (\w+);", files["firmware/defines.h"], re.MULTILINE)
    assert len(typedefs) == len(set(typedefs))
    assert "typedef ap_fixed<12,5> size_t;" not in files["firmware/defines.h"]


def test_unsupported_settings_and_ops_are_named() -> None:
    model = nnfab.convert_graph(mlp_graph((3, 2), softmax=False))
    model.graph.io_type = "io_serial"
    with pytest.raises(BackendError, match="io_serial"):
        render_project(model.graph)
    model = nnfab.convert_graph(mlp_graph((3, 2), softmax=False))
    model.graph.add_node(Node("odd", "Mystery", ["fc1"]), (2,), FixedType(8, 3))
    model.graph.outputs = ["odd"]
    with pytest.raises(BackendError, match=r"layer 'odd'.*'Mystery'"):
        render_project(model.graph)


def test_every_ir_op_has_a_renderer() -> None:
    assert set(OPS) <= set(RENDERERS), sorted(set(OPS) - set(RENDERERS))
