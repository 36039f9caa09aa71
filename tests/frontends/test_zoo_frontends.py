"""Embedding, Conv1D/2DTranspose, LayerNormalization through Keras, PyTorch and ONNX.

The oracle is the framework itself (Keras predict, the torch forward, onnxruntime).
nnfab runs with wide types: Embedding tables hold values on a 2**-8 grid, so the rows
match exactly; the transposed convolutions (inputs and weights on small grids, exact
accumulators) match within float32 rounding; the layer norm within its 1/sqrt table
error (a fine table, ``table_bits`` 12, set on the graph before the passes run).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError
from nnfab.ir import Graph

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WIDE: dict[str, Any] = {"Model": {"Precision": "ap_fixed<40,14>"}}
LN_WIDE = {"mean": "ap_fixed<48,14,AP_RND_CONV,AP_SAT>", "var": "ap_ufixed<48,16,AP_RND_CONV>",
           "norm": "ap_fixed<40,8,AP_RND_CONV,AP_SAT>", "table": "ap_ufixed<30,8,AP_RND_CONV>",
           "scale": "ap_ufixed<32,1,AP_RND_CONV>"}
LN_TABLE = {"table_bits": 12}  # 4096 bins per octave of the variance
LN_TOL = 2e-3  # 1/sqrt: < 2**-13 relative, |gamma * norm| < 4, plus float32 in the frameworks


def grid(rng: np.random.Generator, shape: tuple[int, ...], step: float, scale: float = 1.0
         ) -> np.ndarray:
    return np.round(rng.normal(0, scale, shape) / step) * step


def finish(graph: Graph, layer_types: dict[str, Any] | None = None) -> nnfab.NnfabModel:
    """The graph with fine LayerNorm tables and wide LayerNorm types, converted."""
    config: dict[str, Any] = {"Model": dict(WIDE["Model"]), "LayerName": {}}
    for node in graph.nodes:
        if node.op == "LayerNormalization":
            node.attrs.update(LN_TABLE)
            config["LayerName"][node.name] = {"Precision": dict(LN_WIDE)}
    config["LayerName"].update(layer_types or {})
    return nnfab.convert_graph(graph, config)


# ===================================================================== Keras
@pytest.fixture(scope="module")
def keras() -> Any:
    return pytest.importorskip("keras")


@pytest.mark.keras
def test_keras_embedding_is_exact(keras: Any) -> None:
    from nnfab.frontends.keras import keras_to_graph

    rng = np.random.default_rng(0)
    inp = keras.Input((7,), dtype="int32")
    layer = keras.layers.Embedding(19, 5)
    model = keras.Model(inp, layer(inp))
    layer.set_weights([grid(rng, (19, 5), 2.0**-8, 2.0)])
    graph = keras_to_graph(model)
    assert [n.op for n in graph.nodes] == ["Input", "Embedding"]
    hm = finish(graph)
    x = rng.integers(0, 19, (64, 7))
    x[0] = [0, 18, 1, 17, 2, 16, 9]
    want = model.predict(x, verbose=0)
    np.testing.assert_array_equal(hm.predict(x.astype(np.float64)), want)
    masked = keras.Model(inp, keras.layers.Embedding(19, 5, mask_zero=True)(inp))
    with pytest.raises(UnsupportedLayerError, match=r"mask_zero=True is not supported"):
        keras_to_graph(masked)


KERAS_TRANSPOSE = [
    # rank, in shape, kernel, strides, padding, output_padding
    (1, (6, 3), 3, 2, "same", None),
    (1, (5, 2), 2, 3, "valid", None),
    (1, (5, 2), 4, 2, "same", 1),
    (1, (5, 2), 2, 3, "same", None),  # k < s: the output padding appends s - k
    (2, (4, 5, 2), (3, 2), (2, 1), "same", None),
    (2, (3, 4, 2), (2, 3), (3, 2), "valid", (1, 1)),
]


@pytest.mark.keras
@pytest.mark.parametrize("case", range(len(KERAS_TRANSPOSE)))
def test_keras_conv_transpose(keras: Any, case: int) -> None:
    from nnfab.frontends.keras import keras_to_graph

    rank, shape, k, s, padding, extra = KERAS_TRANSPOSE[case]
    rng = np.random.default_rng(case)
    cls = keras.layers.Conv1DTranspose if rank == 1 else keras.layers.Conv2DTranspose
    inp = keras.Input(shape)
    layer = cls(3, k, strides=s, padding=padding, output_padding=extra)
    model = keras.Model(inp, layer(inp))
    layer.set_weights([grid(rng, w.shape, 2.0**-6) for w in layer.get_weights()])
    hm = finish(keras_to_graph(model))
    assert hm.graph.nodes[1].op == f"Conv{rank}DTranspose"
    x = grid(rng, (16, *shape), 2.0**-6, 2.0)
    want = model.predict(x, verbose=0)
    got = hm.predict(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.keras
def test_keras_layernorm_and_errors(keras: Any) -> None:
    from nnfab.frontends.keras import keras_to_graph

    rng = np.random.default_rng(1)
    inp = keras.Input((4, 6))
    layer = keras.layers.LayerNormalization(epsilon=1e-3)
    model = keras.Model(inp, layer(inp))
    layer.set_weights([rng.normal(1, 0.3, 6), rng.normal(0, 0.3, 6)])
    hm = finish(keras_to_graph(model))
    assert hm.graph.nodes[1].attrs["epsilon"] == pytest.approx(1e-3)
    x = rng.normal(0, 1.5, (32, 4, 6)) + rng.normal(0, 1, (32, 4, 1))
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(hm.predict(x), want, atol=LN_TOL, rtol=0)
    bad = keras.Model(inp, keras.layers.LayerNormalization(axis=1)(inp))
    with pytest.raises(UnsupportedLayerError, match=r"axis=\[?1\]? is not supported.*last axis"):
        keras_to_graph(bad)


# =================================================================== PyTorch
torch_hook = "example_inputs" in inspect.getsource(
    __import__("nnfab.frontends.torch", fromlist=["x"]))


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch")


@pytest.mark.xfail(not torch_hook, strict=True, raises=Exception,
                   reason="needs torch.py's traced forward to use torch_zoo.example_inputs "
                          "(integer indices for nn.Embedding)")
def test_torch_embedding_is_exact(torch: Any) -> None:
    from nnfab.frontends.torch import torch_to_graph

    rng = np.random.default_rng(2)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(11, 3)

        def forward(self, x: Any) -> Any:
            return self.emb(x)

    net = Net().eval()
    with torch.no_grad():
        net.emb.weight.copy_(torch.tensor(grid(rng, (11, 3), 2.0**-8, 2.0)))
    hm = finish(torch_to_graph(net, (6,)))
    x = rng.integers(0, 11, (40, 6))
    with torch.no_grad():
        want = net(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(hm.predict(x.astype(np.float64)), want)


TORCH_TRANSPOSE = [
    # rank, in (C, spatial...), kernel, stride, padding, output_padding
    (1, (2, 6), 3, 2, 1, 1),
    (1, (3, 4), 2, 3, 0, 2),
    (2, (2, 4, 3), (3, 2), (2, 1), (1, 0), (1, 0)),
]


@pytest.mark.parametrize("case", range(len(TORCH_TRANSPOSE)))
def test_torch_conv_transpose(torch: Any, case: int) -> None:
    from nnfab.frontends.torch import torch_to_graph

    rank, shape, k, s, p, op = TORCH_TRANSPOSE[case]
    rng = np.random.default_rng(10 + case)
    cls = torch.nn.ConvTranspose1d if rank == 1 else torch.nn.ConvTranspose2d
    net = torch.nn.Sequential(cls(shape[0], 4, k, stride=s, padding=p, output_padding=op))
    net = net.double().eval()
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(torch.tensor(grid(rng, tuple(prm.shape), 2.0**-6)))
    hm = finish(torch_to_graph(net, shape))
    x = grid(rng, (16, *shape), 2.0**-6, 2.0)
    with torch.no_grad():
        want = np.moveaxis(net(torch.tensor(x)).numpy(), 1, -1)
    np.testing.assert_allclose(hm.predict(np.moveaxis(x, 1, -1)), want, atol=1e-9, rtol=0)


def test_torch_layernorm_and_errors(torch: Any) -> None:
    from nnfab.frontends.torch import torch_to_graph

    rng = np.random.default_rng(3)
    net = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.LayerNorm(6)).double().eval()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor(rng.normal(1, 0.3, 6)))
        net[1].bias.copy_(torch.tensor(rng.normal(0, 0.3, 6)))
    hm = finish(torch_to_graph(net, (3, 5)))
    assert hm.graph.nodes[-1].attrs["epsilon"] == pytest.approx(1e-5)
    x = rng.normal(0, 1, (32, 3, 5))
    with torch.no_grad():
        want = net(torch.tensor(x)).numpy()
    np.testing.assert_allclose(hm.predict(x), want, atol=LN_TOL, rtol=0)
    bad = torch.nn.Sequential(torch.nn.LayerNorm((3, 5))).eval()
    with pytest.raises(UnsupportedLayerError, match=r"normalized_shape=\(3, 5\).*last dim"):
        torch_to_graph(bad, (3, 5))
    grouped = torch.nn.Sequential(torch.nn.ConvTranspose1d(2, 2, 3, groups=2)).eval()
    with pytest.raises(UnsupportedLayerError, match=r"groups=2 is not supported"):
        torch_to_graph(grouped, (2, 5))


# ====================================================================== ONNX
@pytest.fixture(scope="module")
def onnx_mods() -> tuple[Any, Any, Any]:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    return onnx, onnx.helper, ort


def _onnx_model(onnx_mods: tuple[Any, Any, Any], nodes: list[Any], x: tuple[Any, ...],
                y: tuple[Any, ...], inits: dict[str, np.ndarray], opset: int = 17) -> Any:
    onnx, helper, _ = onnx_mods
    T = onnx.TensorProto
    graph = helper.make_graph(
        nodes, "zoo", [helper.make_tensor_value_info("x", T.FLOAT, ["N", *x])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["N", *y])],
        [onnx.numpy_helper.from_array(np.asarray(v, dtype=np.float32), k)
         for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _ort(onnx_mods: tuple[Any, Any, Any], m: Any, x: np.ndarray) -> np.ndarray:
    sess = onnx_mods[2].InferenceSession(m.SerializeToString(),
                                         providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0]


def test_onnx_gather_embedding_is_exact(onnx_mods: tuple[Any, Any, Any]) -> None:
    from nnfab.frontends.onnx import onnx_to_graph

    onnx, helper, _ = onnx_mods
    rng = np.random.default_rng(4)
    table = grid(rng, (9, 4), 2.0**-8, 2.0)
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=onnx.TensorProto.INT64),
             helper.make_node("Gather", ["table", "i"], ["y"], axis=0)]
    m = _onnx_model(onnx_mods, nodes, (5,), (5, 4), {"table": table})
    graph = onnx_to_graph(m)
    assert [n.op for n in graph.nodes] == ["Input", "Activation", "Embedding"]  # Cast: a cast
    hm = finish(graph)
    assert str(hm.graph.tensors[graph.nodes[1].name].type) == "ap_fixed<64,64,AP_TRN_ZERO,AP_SAT>"
    x = rng.integers(0, 9, (30, 5)).astype(np.float64)
    np.testing.assert_array_equal(hm.predict(x), _ort(onnx_mods, m, x))


ONNX_TRANSPOSE = [
    # in (C, spatial...), W shape (C, M, k...), strides, pads (begins + ends), output_padding
    ((2, 5), (2, 3, 3), [2], [1, 0], [1]),
    ((3, 3, 4), (3, 2, 2, 3), [2, 3], [0, 1, 1, 0], [1, 2]),
]


@pytest.mark.parametrize("case", range(len(ONNX_TRANSPOSE)))
def test_onnx_conv_transpose(onnx_mods: tuple[Any, Any, Any], case: int) -> None:
    from nnfab.frontends.onnx import onnx_to_graph

    helper = onnx_mods[1]
    shape, wshape, strides, pads, extra = ONNX_TRANSPOSE[case]
    rng = np.random.default_rng(20 + case)
    w, b = grid(rng, wshape, 2.0**-6), grid(rng, (wshape[1],), 2.0**-6)
    rank = len(shape) - 1
    out = [(n - 1) * s + k - pads[a] - pads[rank + a] + e for a, (n, s, k, e) in
           enumerate(zip(shape[1:], strides, wshape[2:], extra, strict=True))]
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=strides,
                              pads=pads, output_padding=extra)]
    m = _onnx_model(onnx_mods, nodes, shape, (wshape[1], *out), {"w": w, "b": b})
    hm = finish(onnx_to_graph(m))
    x = grid(rng, (12, *shape), 2.0**-6, 2.0)
    want = np.moveaxis(_ort(onnx_mods, m, x), 1, -1)
    channels_last = hm.graph.tensors["x"].shape != shape  # as the ONNX frontend chose
    got = hm.predict(np.moveaxis(x, 1, -1) if channels_last else x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_onnx_layernorm(onnx_mods: tuple[Any, Any, Any]) -> None:
    from nnfab.frontends.onnx import onnx_to_graph

    helper = onnx_mods[1]
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1,
                              epsilon=1e-5)]
    m = _onnx_model(onnx_mods, nodes, (3, 7), (3, 7),
                    {"g": rng.normal(1, 0.3, 7), "b": rng.normal(0, 0.3, 7)})
    hm = finish(onnx_to_graph(m))
    x = rng.normal(0, 1.2, (32, 3, 7))
    np.testing.assert_allclose(hm.predict(x), _ort(onnx_mods, m, x), atol=LN_TOL, rtol=0)
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=1)]
    bad = _onnx_model(onnx_mods, nodes, (3, 7), (3, 7),
                      {"g": np.ones((3, 7)), "b": np.zeros((3, 7))})
    with pytest.raises(UnsupportedLayerError, match=r"axis=1 is not supported.*last axis"):
        onnx_to_graph(bad)
