"""PyTorch ``x[...]`` slicing, ``narrow`` and the parts of ``split`` / ``chunk`` /
``tensor_split`` / ``unbind``: IR ``Slice`` nodes in the order the data is
held in (channels-last feature maps are sliced as they are), a ``Reshape`` where an
integer index drops an axis.

Oracle: the PyTorch module itself. Types are ``ap_fixed<32,12>`` (20 fractional bits):
each of the at most three casts on a path is off by less than 2**-20, and the weights
are below 1 in magnitude with at most 18 terms per sum, so the outputs agree within
1e-4, while a slice that starts one element off moves them by more than 1e-2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError

torch = pytest.importorskip("torch")
WIDE = {"Model": {"Precision": "ap_fixed<32,12>"}}


class FeatureMaps(torch.nn.Module):
    """Channel and spatial ranges of a conv output, a narrow, then a dense head on the
    channels-last data, its last unit, and one row."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 6, 3)
        self.dense = torch.nn.Linear(3, 4)

    def forward(self, x: Any) -> Any:
        y = self.conv(x)[:, 1:4, :3, 1:]  # (N, 3, 3, 3)
        y = y.narrow(3, 1, 2)  # (N, 3, 3, 2)
        z = self.dense(y.permute(0, 2, 3, 1))[..., -1]  # (N, 3, 2)
        return z[:, 1]  # (N, 2)


class Strided(torch.nn.Module):
    """Every other channel, rows 1..3 and every third column of a conv output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 6, 3)
        self.dense = torch.nn.Linear(18, 4)

    def forward(self, x: Any) -> Any:
        return self.dense(self.conv(x)[:, ::2, 1:4, 0::3].flatten(1))  # (N, 3, 3, 2)


class Sequence(torch.nn.Module):
    """A (N, T, F) sequence: a window of steps, the last step, a feature range."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(5, 6)

    def forward(self, x: Any) -> Any:
        h = torch.relu(self.proj(x[:, 2:7]))  # (N, 5, 6)
        return torch.cat([h[:, -1], torch.narrow(h, 2, 0, 2)[:, 0]], dim=1)  # (N, 8)


def _predict(hm: nnfab.NnfabModel, x: np.ndarray) -> np.ndarray:
    if hm.graph.metadata["input_layouts"]["x"] == "channels_last":
        x = np.moveaxis(x, 1, -1)
    return hm.predict(x.astype(np.float64))


@pytest.mark.parametrize(("net", "shape", "slices"), [
    (FeatureMaps, (2, 6, 6), [{"begin": (0, 1, 1), "size": (3, 3, 3)},
                              {"begin": (0, 1, 0), "size": (3, 2, 3)},
                              {"begin": (0, 0, 3), "size": (3, 2, 1)},
                              {"begin": (1, 0), "size": (1, 2)}]),
    (Strided, (2, 6, 6), [{"begin": (1, 0, 0), "size": (3, 2, 3), "step": (1, 3, 2)}]),
    (Sequence, (9, 5), [{"begin": (2, 0), "size": (5, 5)}, {"begin": (4, 0), "size": (1, 6)},
                        {"begin": (0, 0), "size": (5, 2)}, {"begin": (0, 0), "size": (1, 2)}]),
])
def test_slices_equal_pytorch(net: type, shape: tuple[int, ...], slices: list[dict]) -> None:
    torch.manual_seed(4)
    model = net().eval()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=shape, hls_config=WIDE)
    ops = [n.op for n in hm.graph.nodes]
    assert "Permute" not in ops
    assert [n.attrs for n in hm.graph.nodes if n.op == "Slice"] == slices
    x = np.random.default_rng(1).uniform(-2, 2, (16, *shape)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = _predict(hm, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


class Indexed(torch.nn.Module):
    def __init__(self, key: Any) -> None:
        super().__init__()
        self.key = key

    def forward(self, x: Any) -> Any:
        return torch.relu(x)[self.key]


@pytest.mark.parametrize(("key", "needle"), [
    ((slice(0, 2), slice(None)), "the batch axis kept whole"),
    ((slice(None), None), "no None / newaxis"),
    ((slice(None), 0, 1), "at least one sample axis left"),
    ((slice(None), slice(3, 3)), "non-empty ranges"),
])
def test_unsupported_indexing_names_the_node(key: Any, needle: str) -> None:
    with pytest.raises((UnsupportedLayerError, nnfab.errors.FrontendError)) as e:
        nnfab.convert_from_pytorch_model(Indexed(key).eval(), input_shape=(4, 3))
    assert needle in str(e.value) and "getitem" in str(e.value), str(e.value)


class Parts(torch.nn.Module):
    """Parts of a conv output: channels split unevenly, a chunk of rows, one row unbound
    (dropped), and a sequence's features split by a method with a keyword ``dim``
    (``tensor_split``, which the ONNX exporter turns into a ``Loop``, or ``split``)."""

    def __init__(self, tensor_split: bool = True) -> None:
        super().__init__()
        self.tensor_split = tensor_split
        self.conv = torch.nn.Conv2d(2, 6, 3)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: Any) -> Any:
        _, b, c = torch.split(self.conv(x), [1, 3, 2], dim=1)  # (N, 3 | 2, 4, 4)
        rows = b.chunk(2, dim=2)[1]  # (N, 3, 2, 4)
        row = torch.unbind(rows, dim=2)[0]  # (N, 3, 4)
        y = torch.relu(self.fc(row))
        head, tail = y.tensor_split([1], dim=-1) if self.tensor_split else y.split(
            [1, 2], dim=-1)  # (N, 3, 1 | 2)
        return torch.cat([tail.flatten(1), head.flatten(1), c.flatten(1)], 1)


def test_split_parts_equal_pytorch() -> None:
    torch.manual_seed(5)
    model = Parts().eval()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(2, 6, 6), hls_config=WIDE)
    # channels-last (H, W, C) feature maps: the channel parts, then rows 2..3, then row 2
    assert [n.attrs for n in hm.graph.nodes if n.op == "Slice"] == [
        {"begin": (0, 0, 1), "size": (4, 4, 3)}, {"begin": (0, 0, 4), "size": (4, 4, 2)},
        {"begin": (2, 0, 0), "size": (2, 4, 3)}, {"begin": (0, 0, 0), "size": (1, 4, 3)},
        {"begin": (0, 0), "size": (3, 1)}, {"begin": (0, 1), "size": (3, 2)}]
    x = np.random.default_rng(2).uniform(-2, 2, (16, 2, 6, 6)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = _predict(hm, x)
    index = hm.graph.metadata.get("torch_output_index", {}).get(hm.graph.outputs[0])
    if index is not None:  # the channels-last flatten of c: y_torch[..., index] = y_nnfab
        want = want[..., index]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_split_parts_through_onnx_equal_onnxruntime(tmp_path: Any) -> None:
    """The same module exported to ONNX (``Split`` nodes) reads the same."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(5)
    model = Parts(tensor_split=False).eval()
    path = tmp_path / "parts.onnx"
    torch.onnx.export(model, (torch.zeros(1, 2, 6, 6),), str(path), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}})
    x = np.random.default_rng(3).uniform(-2, 2, (16, 2, 6, 6)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    hm = nnfab.convert_from_onnx_model(str(path), hls_config=WIDE)
    got = hm.predict(np.moveaxis(x, 1, -1).astype(np.float64))  # channels-last input
    index = hm.graph.metadata["onnx_output_index"][hm.graph.outputs[0]]
    np.testing.assert_allclose(got[:, index], want, atol=1e-4, rtol=0)


class SplitBatch(torch.nn.Module):
    def forward(self, x: Any) -> Any:
        return torch.split(x, 1)[0]


class SplitIndex(torch.nn.Module):
    def forward(self, x: Any) -> Any:
        parts = x.split(2, dim=1)
        return torch.relu(parts[1])


@pytest.mark.parametrize(("net", "needle"), [
    (SplitBatch, "nnfab needs the batch to stay the first axis"),
])
def test_unsupported_split_names_the_node(net: type, needle: str) -> None:
    with pytest.raises((UnsupportedLayerError, nnfab.errors.FrontendError)) as e:
        nnfab.convert_from_pytorch_model(net().eval(), input_shape=(4, 3))
    assert needle in str(e.value) and "split" in str(e.value), str(e.value)


def test_split_method_reads_its_part() -> None:
    hm = nnfab.convert_from_pytorch_model(SplitIndex().eval(), input_shape=(5, 3))
    assert [n.attrs for n in hm.graph.nodes if n.op == "Slice"] == [
        {"begin": (2, 0), "size": (2, 3)}]
