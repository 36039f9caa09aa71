"""Model files as users have them: ``graph_from_file`` and ``nnfab convert`` on PyTorch
``.pt``/``.pth`` files (whole pickled modules, with ``--input-shape``), state-dict files,
and ``.onnx`` files, end to end through ``nnfab predict``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tests.paths import SHARED_MODELS, missing

from nnfab.cli import cli
from nnfab.errors import FrontendError
from nnfab.frontends.loader import graph_from_file

torch = pytest.importorskip("torch")
nn = torch.nn


class TwoInputs(nn.Module):
    """A module class (not a Sequential): pickled by reference to this test module."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.a(x) + self.b(y))


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5)
    ).eval()


def run(*args: str) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_converts_a_whole_module_file_and_predicts(tmp_path: Path) -> None:
    model = small_cnn()
    path = tmp_path / "cnn.pt"
    torch.save(model, path)
    out = tmp_path / "prj"
    res = run("convert", path, "--input-shape", "3,8,8", "-o", out, "-c", _wide_config(tmp_path))
    assert res.exit_code == 0, res.output
    assert "channels-last" in res.output
    assert (out / "nnfab_model.json").exists() and (out / "firmware").is_dir()
    x = np.random.default_rng(0).normal(size=(16, 3, 8, 8))
    np.save(tmp_path / "x.npy", x.transpose(0, 2, 3, 1))  # predict takes NHWC
    res = run("predict", out, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert res.exit_code == 0, res.output
    with torch.no_grad():
        expected = model.double()(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(np.load(tmp_path / "y.npy") - expected)) < 1e-4


def test_cli_pth_suffix_and_shape_spellings(tmp_path: Path) -> None:
    path = tmp_path / "cnn.pth"
    torch.save(small_cnn(), path)
    for spelling in ("3x8x8", "(3, 8, 8)"):
        res = run("convert", path, "--input-shape", spelling, "-o", tmp_path / "p")
        assert res.exit_code == 0, res.output


def test_cli_several_inputs(tmp_path: Path) -> None:
    path = tmp_path / "two.pt"
    torch.save(TwoInputs(), path)
    res = run("convert", path, "--input-shape", "4", "--input-shape", "6", "-o", tmp_path / "p")
    assert res.exit_code == 0, res.output
    res = run("convert", path, "--input-shape", "4", "-o", tmp_path / "q")
    assert isinstance(res.exception, FrontendError)
    assert "takes 2 input(s)" in str(res.exception)


def test_cli_needs_the_input_shape_for_pytorch(tmp_path: Path) -> None:
    path = tmp_path / "cnn.pt"
    torch.save(small_cnn(), path)
    res = run("convert", path, "-o", tmp_path / "p")
    assert isinstance(res.exception, FrontendError)
    assert "--input-shape 3,32,32" in str(res.exception)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("bad", ["3,a,8", "3,0,8", "", "-1"])
def test_cli_rejects_malformed_shapes(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "cnn.pt"
    torch.save(small_cnn(), path)
    res = run("convert", path, "--input-shape", bad, "-o", tmp_path / "p")
    assert res.exit_code == 2
    assert "is not a shape" in res.output


def test_cli_state_dict_file_asks_for_the_module_class(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(small_cnn().state_dict(), path)
    res = run("convert", path, "--input-shape", "3,8,8", "-o", tmp_path / "p")
    assert isinstance(res.exception, FrontendError)
    message = str(res.exception)
    assert "state dict" in message and "module class" in message
    assert "load_state_dict" in message


def test_shared_two_layer_model_through_the_cli(tmp_path: Path) -> None:
    path = SHARED_MODELS / "pytorch" / "two_layer_model.pt"  # saved on a CUDA device
    if not path.exists():
        missing(f"{path} (../shared/models)")
    res = run("convert", path, "--input-shape", "10", "-o", tmp_path / "p")
    assert res.exit_code == 0, res.output
    assert "channels-last" not in res.output
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(8, 10)))
    res = run("predict", tmp_path / "p", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "y.npy").shape == (8, 1)


def test_shared_onnx_model_through_the_cli(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    path = SHARED_MODELS / "onnx" / "three_layer_pytorch.onnx"
    if not path.exists():
        missing(f"{path} (../shared/models)")
    res = run("convert", path, "-o", tmp_path / "p")
    assert res.exit_code == 0, res.output
    np.save(tmp_path / "x.npy", np.random.default_rng(2).normal(size=(8, 16)))
    res = run("predict", tmp_path / "p", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "y.npy").shape == (8, 5)


def test_cli_refuses_an_input_shape_for_other_formats(tmp_path: Path) -> None:
    path = SHARED_MODELS / "onnx" / "three_layer_pytorch.onnx"
    if not path.exists():
        missing(f"{path} (../shared/models)")
    res = run("convert", path, "--input-shape", "16", "-o", tmp_path / "p")
    assert isinstance(res.exception, FrontendError)
    assert "only used with PyTorch" in str(res.exception)


def test_graph_from_file_pytorch(tmp_path: Path) -> None:
    path = tmp_path / "cnn.pt"
    torch.save(small_cnn(), path)
    g = graph_from_file(path, input_shape=(3, 8, 8))
    assert list(g.metadata["input_layouts"].values()) == ["channels_last"]
    assert g.tensors[g.inputs[0]].shape == (8, 8, 3)
    with pytest.raises(FrontendError, match="does not record its input shape"):
        graph_from_file(path)
    with pytest.raises(FrontendError, match="holds its weights"):
        graph_from_file(path, tmp_path / "w.h5", input_shape=(3, 8, 8))


def _wide_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "wide.yml"
    cfg.write_text("Model:\n  Precision: ap_fixed<40,16,AP_RND_CONV,AP_SAT>\n")
    return cfg
