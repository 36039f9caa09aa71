"""docs/coverage.md is generated from the registries and must match the code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gen_coverage.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("nnfab_gen_coverage", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_coverage_doc_is_up_to_date(gen) -> None:
    expected = gen.render()
    current = gen.DOC.read_text() if gen.DOC.exists() else ""
    assert current == expected, (
        f"{gen.DOC.relative_to(REPO)} is out of date with the frontend/backend registries; "
        f"refresh it with: {gen.COMMAND}  (then review and commit the diff)"
    )


def test_every_registry_name_has_a_row_and_backend_cells_follow_the_registries(gen) -> None:
    from nnfab.backends.hls.layers import RENDERERS
    from nnfab.backends.rtl import supported_ops
    from nnfab.emulate.base import KERNELS
    from nnfab.emulate.kernels import load_all
    from nnfab.frontends import keras_json, onnx_layers, torch_layers

    text = gen.render()
    for name in [*keras_json.SUPPORTED_LAYERS[1:], *onnx_layers.CONVERTERS]:
        assert f"`{name}`" in text
    for name in torch_layers.MODULES:
        assert f"`nn.{name}`" in text
    load_all()
    registries = [set(KERNELS), set(RENDERERS), set(supported_ops())]
    checked = 0
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 9 or not cells[1].startswith("`"):
            continue
        row_ops = [o.strip().strip("`") for o in cells[1].split(",")]  # a row may need several
        for cell, ops in zip(cells[-3:], registries, strict=True):
            assert cell == ("✓" if all(o in ops for o in row_ops) else "—"), (row_ops, cell)
        checked += 1
    assert checked >= 17


def test_a_new_registry_entry_stops_the_generator(gen, monkeypatch) -> None:
    from nnfab.frontends import onnx_layers

    monkeypatch.setitem(onnx_layers.CONVERTERS, "Mish", onnx_layers.CONVERTERS["Relu"])
    with pytest.raises(gen.CoverageError, match=r"\['Mish'\].*add them"):
        gen.render()
    monkeypatch.delitem(onnx_layers.CONVERTERS, "Mish")
    monkeypatch.delitem(onnx_layers.CONVERTERS, "Div")
    with pytest.raises(gen.CoverageError, match=r"no longer lists \['Div'\]"):
        gen.render()


def test_check_mode(gen, tmp_path, capsys) -> None:
    out = tmp_path / "coverage.md"
    assert gen.main(["--check", "--output", str(out)]) == 1
    assert gen.COMMAND in capsys.readouterr().err
    assert gen.main(["--output", str(out)]) == 0
    assert gen.main(["--check", "--output", str(out)]) == 0
