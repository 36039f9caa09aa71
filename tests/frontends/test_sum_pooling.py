"""Sums and means over the spatial axes as global pooling (``GlobalPooling1D/2D``, mode
``sum`` / ``avg`` / ``max``): PyTorch ``x.sum(dim)`` / ``torch.sum`` / ``x.mean(dim)`` on
convolution feature maps and on deep-sets data ``(batch, items, features)`` (a
``nn.Linear`` over the items, then a sum over them), the same modules exported to ONNX
(``ReduceSum`` / ``ReduceMean``), and ``keras.ops.sum / mean / max``.

Oracles: the frameworks' own float outputs. Types are ``ap_fixed<32,12>`` (20 fractional
bits): each cast is off by less than 2**-20 and the sums have at most 36 terms of weights
below 1 in magnitude, so the outputs agree within 1e-3, while a mean taken for a sum (or
the reverse) is off by a factor of the item count.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError

torch = pytest.importorskip("torch")
WIDE = {"Model": {"Precision": "ap_fixed<32,12>"}}


class DeepSets(torch.nn.Module):
    """phi over each of 6 items, a pooling over the items, then rho."""

    def __init__(self, reduce: str) -> None:
        super().__init__()
        self.phi = torch.nn.Linear(3, 5)
        self.rho = torch.nn.Linear(5, 2)
        self.reduce = reduce

    def forward(self, x: Any) -> Any:
        h = torch.relu(self.phi(x))
        pooled = {"sum": lambda: h.sum(dim=1), "torch.sum": lambda: torch.sum(h, 1),
                  "mean": lambda: h.mean(dim=-2)}[self.reduce]()
        return self.rho(pooled)


class ConvSum(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: Any) -> Any:
        return self.fc(torch.relu(self.conv(x)).sum(dim=(2, 3)))


def _modes(hm: nnfab.NnfabModel) -> list[str]:
    return [n.attrs["mode"] for n in hm.graph.nodes if n.op.startswith("GlobalPooling")]


@pytest.mark.parametrize(("reduce", "mode"), [("sum", "sum"), ("torch.sum", "sum"),
                                              ("mean", "avg")])
def test_deep_sets_pooling_over_the_items(reduce: str, mode: str) -> None:
    torch.manual_seed(1)
    model = DeepSets(reduce).eval()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(6, 3), hls_config=WIDE)
    assert _modes(hm) == [mode]
    x = np.random.default_rng(2).uniform(-2, 2, (32, 6, 3)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(hm.predict(x.astype(np.float64)), want, atol=1e-3, rtol=0)


def test_conv_feature_map_sum() -> None:
    torch.manual_seed(2)
    model = ConvSum().eval()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(2, 8, 8), hls_config=WIDE)
    assert _modes(hm) == ["sum"]
    x = np.random.default_rng(3).uniform(-1, 1, (16, 2, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = hm.predict(np.moveaxis(x, 1, -1).astype(np.float64))
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_a_sum_over_the_features_is_refused() -> None:
    class FeatureSum(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)

        def forward(self, x: Any) -> Any:
            return self.fc(x).sum(dim=-1)

    with pytest.raises(UnsupportedLayerError, match=r"dim=-1.*1 for \(batch, items, features\)"):
        nnfab.convert_from_pytorch_model(FeatureSum(), input_shape=(5, 3))


@pytest.mark.parametrize(("module", "shape", "op"), [
    (DeepSets("sum"), (6, 3), "ReduceSum"), (DeepSets("mean"), (6, 3), "ReduceMean"),
    (ConvSum(), (2, 8, 8), "ReduceSum"),
])
def test_onnx_export_reduce_over_items_or_pixels(module: Any, shape: tuple[int, ...],
                                                 op: str) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(4)
    module = type(module)(*([module.reduce] if isinstance(module, DeepSets) else [])).eval()
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.randn(1, *shape),), buf, opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    m = onnx.load_from_string(buf.getvalue())
    assert op in [n.op_type for n in m.graph.node]
    x = np.random.default_rng(5).uniform(-1, 1, (16, *shape)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    hm = nnfab.convert_from_onnx_model(m, WIDE)
    assert len(_modes(hm)) == 1
    feed = np.moveaxis(x, 1, -1) if len(shape) == 3 else x
    np.testing.assert_allclose(hm.predict(feed.astype(np.float64)), want, atol=1e-3, rtol=0)


@pytest.mark.parametrize(("fn", "mode"), [("sum", "sum"), ("mean", "avg"), ("max", "max")])
@pytest.mark.parametrize("keepdims", [False, True])
def test_keras_ops_reductions(fn: str, mode: str, keepdims: bool) -> None:
    keras = pytest.importorskip("keras")
    inp = keras.Input((6, 3), name="x")
    h = keras.layers.Dense(5, activation="relu", name="phi")(inp)
    pooled = getattr(keras.ops, fn)(h, axis=1, keepdims=keepdims)
    if keepdims:
        pooled = keras.layers.Flatten(name="flat")(pooled)
    model = keras.Model(inp, keras.layers.Dense(2, name="rho")(pooled))
    rng = np.random.default_rng(6)
    for layer in model.layers:
        layer.set_weights([rng.uniform(-1, 1, w.shape) for w in layer.get_weights()])
    hm = nnfab.convert_from_keras_model(model, WIDE)
    assert _modes(hm) == [mode]
    x = rng.uniform(-2, 2, (32, 6, 3)).astype(np.float32)
    want = np.asarray(model(x))
    np.testing.assert_allclose(hm.predict(x.astype(np.float64)), want, atol=1e-3, rtol=0)


def test_keras_ops_sum_over_the_features_is_refused() -> None:
    keras = pytest.importorskip("keras")
    inp = keras.Input((6, 3), name="x")
    model = keras.Model(inp, keras.ops.sum(keras.layers.Dense(4, name="fc")(inp), axis=-1))
    with pytest.raises(UnsupportedLayerError, match=r"axis.*spatial axes \(1,\)"):
        nnfab.convert_from_keras_model(model, WIDE)
