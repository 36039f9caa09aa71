"""Keras 3 frontend: structure, attributes, weights, a float64 reference forward pass
over the IR written here (independent of nnfab.emulate), errors, and model files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends.keras import keras_to_graph, load_keras_model
from nnfab.ir import Graph, Node

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
L = keras.layers

pytestmark = [
    pytest.mark.keras,
    # Raised inside Keras' own saving code on NumPy 2, not by nnfab.
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


# ------------------------------------------------------ float64 reference
def _pad(x: np.ndarray, pads: tuple[int, ...], value: float) -> np.ndarray:
    widths = [(0, 0)] + [(pads[2 * i], pads[2 * i + 1]) for i in range(len(pads) // 2)] + [(0, 0)]
    return np.pad(x, widths, constant_values=value)


def _as_2d(x: np.ndarray, node: Node) -> tuple[np.ndarray, tuple[int, int], tuple[int, ...]]:
    """1-D data as 2-D with height 1, so one loop nest serves both."""
    strides, pads = node.attrs["strides"], node.attrs["pads"]
    if x.ndim == 3:
        return x[:, None], (1, strides[0]), (0, 0, *pads)
    return x, tuple(strides), tuple(pads)


def _windows(xp: np.ndarray, kh: int, kw: int, strides: tuple[int, int]):
    """Yield (i, j, window) over output positions; window is (B, kh, kw, C)."""
    oh = (xp.shape[1] - kh) // strides[0] + 1
    ow = (xp.shape[2] - kw) // strides[1] + 1
    for i in range(oh):
        for j in range(ow):
            r, c = i * strides[0], j * strides[1]
            yield i, j, oh, ow, xp[:, r : r + kh, c : c + kw, :]


def _conv(node: Node, x: np.ndarray) -> np.ndarray:
    w = node.weights["kernel"]
    one_d = x.ndim == 3
    x2, strides, pads = _as_2d(x, node)
    w2 = w[None] if one_d else w
    kh, kw = w2.shape[:2]
    depthwise = node.op.startswith("Depthwise")
    n_out = w2.shape[2] * w2.shape[3] if depthwise else w2.shape[3]
    out = None
    for i, j, oh, ow, win in _windows(_pad(x2, pads, 0.0), kh, kw, strides):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, n_out))
        for b in range(x.shape[0]):
            for a in range(kh):
                for c in range(kw):
                    if depthwise:  # output channel ch*M + m
                        prod = win[b, a, c, :, None] * w2[a, c]
                        out[b, i, j] += prod.reshape(-1)
                    else:
                        out[b, i, j] += win[b, a, c] @ w2[a, c]
    out = out + node.weights["bias"]
    return out[:, 0] if one_d else out


def _pool(node: Node, x: np.ndarray) -> np.ndarray:
    x2, strides, pads = _as_2d(x, node)
    size = node.attrs["pool_size"]
    kh, kw = (1, size[0]) if x.ndim == 3 else size
    # Keras ignores padded cells (as the IR does): NaN padding and nan-aware reductions.
    reduce = np.nanmax if node.attrs["mode"] == "max" else np.nanmean
    out = None
    for i, j, oh, ow, win in _windows(_pad(x2, pads, np.nan), kh, kw, strides):
        if out is None:
            out = np.zeros((x.shape[0], oh, ow, x.shape[-1]))
        out[:, i, j] = reduce(win, axis=(1, 2))
    return out[:, 0] if x.ndim == 3 else out


def _activation(node: Node, x: np.ndarray) -> np.ndarray:
    a = node.attrs
    f = a["function"]
    if f == "linear":
        return x
    if f == "relu":
        y = np.maximum(x, 0.0)
        return np.minimum(y, a["max_value"]) if "max_value" in a else y
    if f == "leaky_relu":
        return np.where(x >= 0, x, a["alpha"] * x)
    if f == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if f == "tanh":
        return np.tanh(x)
    if f == "hard_sigmoid":
        return np.clip(a["slope"] * x + a["offset"], 0.0, 1.0)
    raise AssertionError(f"no reference for activation {f!r}")


def _softmax(node: Node, x: np.ndarray) -> np.ndarray:
    assert node.attrs["axis"] == -1
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _merge(node: Node, xs: list[np.ndarray]) -> np.ndarray:
    mode = node.attrs["mode"]
    if mode == "add":
        return np.sum(xs, axis=0)
    if mode == "subtract":
        return xs[0] - xs[1]
    if mode == "multiply":
        return np.prod(xs, axis=0)
    return np.mean(xs, axis=0)


def run_ir(graph: Graph, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """Plain float64 forward pass over the IR (batch-first arrays)."""
    values: dict[str, np.ndarray] = dict(zip(graph.inputs, feeds, strict=True))
    for n in graph.nodes:
        xs = [values[t] for t in n.inputs]
        op = n.op
        if op == "Input":
            assert values[n.name].shape[1:] == n.attrs["shape"]
            continue
        if op == "Dense":
            y = xs[0] @ n.weights["kernel"] + n.weights["bias"]
        elif op in ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D"):
            y = _conv(n, xs[0])
        elif op in ("Pooling1D", "Pooling2D"):
            y = _pool(n, xs[0])
        elif op in ("GlobalPooling1D", "GlobalPooling2D"):
            axes = tuple(range(1, xs[0].ndim - 1))
            y = xs[0].max(axis=axes) if n.attrs["mode"] == "max" else xs[0].mean(axis=axes)
        elif op == "BatchNormalization":
            y = xs[0] * n.weights["scale"] + n.weights["bias"]
        elif op == "Activation":
            y = _activation(n, xs[0])
        elif op == "Softmax":
            y = _softmax(n, xs[0])
        elif op == "Merge":
            y = _merge(n, xs)
        elif op == "Concatenate":
            y = np.concatenate(xs, axis=n.attrs["axis"] + 1)
        elif op in ("Flatten", "Reshape"):
            y = xs[0].reshape(xs[0].shape[0], *graph.tensors[n.name].shape)
        elif op == "Dropout":
            y = xs[0]
        else:
            raise AssertionError(f"no reference for op {op!r}")
        assert y.shape[1:] == graph.tensors[n.name].shape, n.name
        values[n.name] = y
    return [values[t] for t in graph.outputs]


# ---------------------------------------------------------------- helpers
def numpy(value: Any) -> np.ndarray:
    """A Keras variable or eager tensor as float64 (``.numpy()``: no NumPy 2 warning)."""
    return np.array(value.numpy(), dtype=np.float64)


def randomize(model: Any, seed: int) -> None:
    """Non-trivial weights everywhere (Keras initializes biases and BN stats trivially)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        name = v.path.split("/")[-1]
        shape = tuple(v.shape)
        if name == "moving_variance":
            v.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            v.assign(rng.uniform(-0.6, 0.6, shape).astype("float32"))


def keras_outputs(model: Any, feeds: list[np.ndarray]) -> list[np.ndarray]:
    out = model(feeds if len(feeds) > 1 else feeds[0], training=False)
    out = out if isinstance(out, list | tuple) else [out]
    return [numpy(o) for o in out]


def check_forward(model: Any, graph: Graph, seed: int, scale: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    feeds = [rng.uniform(-scale, scale, (3, *t.shape[1:])) for t in model.inputs]
    ref = run_ir(graph, feeds)
    got = keras_outputs(model, [f.astype("float32") for f in feeds])
    assert len(ref) == len(got)
    for r, k in zip(ref, got, strict=True):
        assert r.shape == k.shape
        np.testing.assert_allclose(r, k, rtol=0, atol=1e-5)


def ops(graph: Graph) -> list[tuple[str, str]]:
    return [(n.name, n.op) for n in graph.nodes]


def assert_untyped(graph: Graph) -> None:
    for n in graph.nodes:
        assert graph.tensors[n.name].type is None
        assert n.precision == {}
        for w in n.weights.values():
            assert w.dtype == np.float64


# ----------------------------------------------------------------- models
@pytest.fixture(scope="module")
def mlp() -> Any:
    model = keras.Sequential(
        [
            keras.Input((10,), name="input"),
            L.Dense(8, activation="relu", name="fc1"),
            L.BatchNormalization(name="bn"),
            L.Dense(6, use_bias=False, activation="tanh", name="fc2"),
            L.Dropout(0.5, name="drop"),
            L.Dense(5, activation="sigmoid", name="fc3"),
            L.GaussianNoise(0.3, name="noise"),
            L.Dense(4, activation="relu6", name="fc4"),
            L.Dense(3, name="fc5"),
            L.Softmax(name="probs"),
        ],
        name="my mlp",
    )
    randomize(model, 1)
    return model


@pytest.fixture(scope="module")
def cnn2d() -> Any:
    x = keras.Input((9, 7, 3), name="image")
    y = L.Conv2D(4, (3, 2), strides=2, padding="same", activation="relu", name="conv")(x)
    y = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(y)
    y = L.MaxPooling2D(2, padding="same", name="maxpool")(y)
    y = L.AveragePooling2D(2, strides=1, padding="same", name="avgpool")(y)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(max_value=4.0, name="relu4")(y)
    a = L.GlobalMaxPooling2D(name="gmax")(y)
    b = L.Flatten(name="flat")(y)
    b = L.Dense(8, name="fc")(b)
    c = L.GlobalAveragePooling2D(name="gavg")(y)
    y = L.Add(name="add")([a, b, c])
    y = L.Conv2D(2, 1, name="pointwise")(L.Reshape((2, 4, 1), name="reshape")(y))
    z = L.Conv2D(3, (2, 2), padding="valid", name="valid_conv")(x)
    z = L.AveragePooling2D((3, 2), name="avg_valid")(z)
    return _built(keras.Model(x, [y, z], name="cnn2d"), 2)


@pytest.fixture(scope="module")
def cnn1d() -> Any:
    x = keras.Input((11, 2), name="signal")
    y = L.Conv1D(3, 4, strides=3, padding="same", activation="leaky_relu", name="conv")(x)
    y = L.Conv1D(3, 3, padding="causal", name="causal")(y)
    y = L.DepthwiseConv1D(2, depth_multiplier=2, padding="same", activation="tanh", name="dw")(y)
    y = L.MaxPooling1D(2, padding="same", name="maxpool")(y)
    y = L.AveragePooling1D(2, strides=1, padding="same", name="avgpool")(y)
    y = L.SpatialDropout1D(0.2, name="sdrop")(y)
    a = L.GlobalAveragePooling1D(name="gavg")(y)
    b = L.GlobalMaxPooling1D(name="gmax")(y)
    y = L.Multiply(name="mul")([a, b])
    z = L.Conv1D(2, 3, strides=2, name="strided_valid")(x)
    z = L.AveragePooling1D(3, strides=2, name="avg_valid")(z)
    z = L.Flatten(name="flat")(z)
    return _built(keras.Model(x, [y, z], name="cnn1d"), 3)


@pytest.fixture(scope="module")
def merges() -> Any:
    a = keras.Input((6,), name="in_a")
    b = keras.Input((6,), name="in_b")
    da = L.Dense(6, name="da")(a)
    db = L.Dense(6, name="db")(b)
    add = L.Add(name="add")([da, db])
    sub = L.Subtract(name="sub")([da, db])
    mul = L.Multiply(name="mul")([add, sub])
    avg = L.Average(name="avg")([a, b, mul])
    cat = L.Concatenate(name="cat")([avg, a, sub])
    ra = L.Reshape((2, 3), name="ra")(add)
    rb = L.Reshape((-1, 3), name="rb")(b)
    cat_rows = L.Concatenate(axis=1, name="cat_rows")([ra, rb])
    cat_cols = L.Concatenate(axis=-1, name="cat_cols")([ra, rb])
    cat_neg = L.Concatenate(axis=-2, name="cat_neg")([ra, rb, ra])
    out2 = L.Flatten(name="flat")(cat_cols)
    model = keras.Model([a, b], [cat, cat_rows, out2, cat_neg], name="merges")
    return _built(model, 4)


@pytest.fixture(scope="module")
def activations() -> Any:
    x = keras.Input((16,), name="x")
    outs = [
        L.Activation(name, name=f"act_{name}")(x)
        for name in (
            "linear",
            "relu",
            "relu6",
            "leaky_relu",
            "sigmoid",
            "tanh",
            "hard_sigmoid",
            "softmax",
        )
    ]
    outs += [
        L.ReLU(name="relu_plain")(x),
        L.ReLU(max_value=2.5, name="relu_max")(x),
        L.ReLU(negative_slope=0.05, name="relu_leaky")(x),
        L.LeakyReLU(negative_slope=0.25, name="leaky")(x),
        L.LeakyReLU(name="leaky_default")(x),
        L.Softmax(axis=-1, name="softmax_layer")(x),
    ]
    return _built(keras.Model(x, outs, name="activations"), 5)


def _built(model: Any, seed: int) -> Any:
    randomize(model, seed)
    return model


@pytest.fixture(scope="module")
def graphs(mlp: Any, cnn2d: Any, cnn1d: Any, merges: Any, activations: Any) -> dict[str, Graph]:
    return {
        "mlp": keras_to_graph(mlp),
        "cnn2d": keras_to_graph(cnn2d),
        "cnn1d": keras_to_graph(cnn1d),
        "merges": keras_to_graph(merges),
        "activations": keras_to_graph(activations),
    }


# ------------------------------------------------------------------ tests
def test_mlp_structure_and_weights(mlp: Any, graphs: dict[str, Graph]) -> None:
    g = graphs["mlp"]
    assert g.name == "my_mlp"
    assert g.inputs == ["input"] and g.outputs == ["probs"]
    assert ops(g) == [
        ("input", "Input"),
        ("fc1", "Dense"),
        ("fc1_relu", "Activation"),
        ("bn", "BatchNormalization"),
        ("fc2", "Dense"),
        ("fc2_tanh", "Activation"),
        ("drop", "Dropout"),
        ("fc3", "Dense"),
        ("fc3_sigmoid", "Activation"),
        ("noise", "Dropout"),
        ("fc4", "Dense"),
        ("fc4_relu6", "Activation"),
        ("fc5", "Dense"),
        ("probs", "Softmax"),
    ]
    assert g.node("input").attrs == {"shape": (10,)}
    assert g.node("fc1").source_class == "Dense"
    assert g.node("fc1_relu").source_class == "Activation"
    assert g.node("noise").source_class == "GaussianNoise"
    assert g.node("fc1_relu").attrs == {"function": "relu"}
    assert g.node("fc4_relu6").attrs == {"function": "relu", "max_value": 6.0}
    assert g.node("probs").attrs == {"axis": -1}
    assert [g.tensors[n.name].shape for n in g.nodes][-3:] == [(4,), (3,), (3,)]
    assert_untyped(g)

    fc1 = mlp.get_layer("fc1")
    np.testing.assert_array_equal(g.node("fc1").weights["kernel"], numpy(fc1.kernel))
    np.testing.assert_array_equal(g.node("fc1").weights["bias"], numpy(fc1.bias))
    assert g.node("fc1").weights["kernel"].shape == (10, 8)
    np.testing.assert_array_equal(g.node("fc2").weights["bias"], np.zeros(6))

    bn = mlp.get_layer("bn")
    gamma, beta, mean, var = (
        numpy(v) for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
    )
    scale = gamma / np.sqrt(var + 1e-3)  # Keras' default epsilon
    np.testing.assert_allclose(g.node("bn").weights["scale"], scale, rtol=1e-12)
    np.testing.assert_allclose(g.node("bn").weights["bias"], beta - mean * scale, rtol=1e-12)


def test_mlp_forward(mlp: Any, graphs: dict[str, Graph]) -> None:
    check_forward(mlp, graphs["mlp"], seed=10, scale=2.0)


def test_cnn2d_attrs(cnn2d: Any, graphs: dict[str, Graph]) -> None:
    g = graphs["cnn2d"]
    conv = g.node("conv")
    # H: n=9, k=3, s=2 -> 5 outputs need 2*4+3=11 rows: pad 2 -> (1, 1).
    # W: n=7, k=2, s=2 -> 4 outputs need 2*3+2=8 columns: pad 1 -> (0, 1).
    assert conv.attrs == {"strides": (2, 2), "pads": (1, 1, 0, 1)}
    assert g.tensors["conv"].shape == (5, 4, 4)
    assert conv.weights["kernel"].shape == (3, 2, 3, 4)
    np.testing.assert_array_equal(conv.weights["kernel"], numpy(cnn2d.get_layer("conv").kernel))
    assert g.node("conv_relu").inputs == ["conv"]
    dw = g.node("dw")
    assert dw.op == "DepthwiseConv2D"
    assert dw.attrs == {"strides": (1, 1), "pads": (1, 1, 1, 1), "depth_multiplier": 2}
    assert dw.weights["kernel"].shape == (3, 3, 4, 2)
    assert g.tensors["dw"].shape == (5, 4, 8)
    assert g.node("maxpool").attrs == {
        "mode": "max",
        "pool_size": (2, 2),
        "strides": (2, 2),
        "pads": (0, 1, 0, 0),
    }
    assert g.node("avgpool").attrs == {
        "mode": "avg",
        "pool_size": (2, 2),
        "strides": (1, 1),
        "pads": (0, 1, 0, 1),
        "count_include_pad": False,  # TensorFlow averages the real inputs only
    }
    assert g.node("gmax").op == "GlobalPooling2D" and g.node("gmax").attrs == {"mode": "max"}
    assert g.node("gavg").attrs == {"mode": "avg"}
    assert g.node("add").op == "Merge" and g.node("add").inputs == ["gmax", "fc", "gavg"]
    assert g.node("reshape").attrs == {"target_shape": (2, 4, 1)}
    assert g.node("valid_conv").attrs == {"strides": (1, 1), "pads": (0, 0, 0, 0)}
    assert g.node("avg_valid").attrs["strides"] == (3, 2)
    assert g.node("relu4").attrs == {"function": "relu", "max_value": 4.0}
    assert g.outputs == ["pointwise", "avg_valid"]
    assert_untyped(g)


def test_cnn2d_forward(cnn2d: Any, graphs: dict[str, Graph]) -> None:
    check_forward(cnn2d, graphs["cnn2d"], seed=11)


def test_cnn1d_attrs(graphs: dict[str, Graph]) -> None:
    g = graphs["cnn1d"]
    # n=11, k=4, s=3 -> 4 outputs need 3*3+4=13: pad 2 -> (1, 1).
    assert g.node("conv").attrs == {"strides": (3,), "pads": (1, 1)}
    assert g.node("conv").op == "Conv1D"
    assert g.node("conv_leaky_relu").attrs == {"function": "leaky_relu", "alpha": 0.2}
    assert g.node("causal").attrs == {"strides": (1,), "pads": (2, 0)}
    assert g.node("dw").op == "DepthwiseConv1D"
    # k=2, s=1: pad 1 -> (0, 1).
    assert g.node("dw").attrs == {"strides": (1,), "pads": (0, 1), "depth_multiplier": 2}
    assert g.node("dw").weights["kernel"].shape == (2, 3, 2)
    assert g.tensors["dw"].shape == (4, 6)
    assert g.node("maxpool").attrs["pads"] == (0, 0)
    assert g.node("avgpool").attrs["pads"] == (0, 1)
    assert g.node("gavg").op == "GlobalPooling1D"
    assert g.node("mul").attrs == {"mode": "multiply"}
    assert g.node("sdrop").op == "Dropout"
    assert g.tensors["strided_valid"].shape == (5, 2)
    assert g.tensors["flat"].shape == (4,)


def test_cnn1d_forward(cnn1d: Any, graphs: dict[str, Graph]) -> None:
    check_forward(cnn1d, graphs["cnn1d"], seed=12)


def test_merges(graphs: dict[str, Graph]) -> None:
    g = graphs["merges"]
    assert g.inputs == ["in_a", "in_b"]
    assert g.outputs == ["cat", "cat_rows", "flat", "cat_neg"]
    modes = {n: g.node(n).attrs["mode"] for n in ("add", "sub", "mul", "avg")}
    assert modes == {"add": "add", "sub": "subtract", "mul": "multiply", "avg": "average"}
    assert g.node("sub").inputs == ["da", "db"]
    assert g.node("avg").inputs == ["in_a", "in_b", "mul"]
    assert g.node("cat").attrs == {"axis": 0}
    assert g.node("cat_rows").attrs == {"axis": 0}
    assert g.node("cat_cols").attrs == {"axis": 1}
    assert g.node("cat_neg").attrs == {"axis": 0}
    assert g.node("rb").attrs == {"target_shape": (2, 3)}
    assert g.tensors["cat"].shape == (18,)
    assert g.tensors["cat_rows"].shape == (4, 3)
    assert g.tensors["cat_cols"].shape == (2, 6)
    assert g.tensors["cat_neg"].shape == (6, 3)


def test_merges_forward(merges: Any, graphs: dict[str, Graph]) -> None:
    check_forward(merges, graphs["merges"], seed=13)


def test_activation_attrs(graphs: dict[str, Graph]) -> None:
    g = graphs["activations"]
    attrs = {n.name: (n.op, n.attrs) for n in g.nodes if n.op != "Input"}
    assert attrs["act_linear"] == ("Activation", {"function": "linear"})
    assert attrs["act_relu6"] == ("Activation", {"function": "relu", "max_value": 6.0})
    assert attrs["act_softmax"] == ("Softmax", {"axis": -1})
    assert attrs["act_hard_sigmoid"][1]["function"] == "hard_sigmoid"
    assert attrs["relu_plain"] == ("Activation", {"function": "relu"})
    assert attrs["relu_max"] == ("Activation", {"function": "relu", "max_value": 2.5})
    assert attrs["relu_leaky"] == ("Activation", {"function": "leaky_relu", "alpha": 0.05})
    assert attrs["leaky"] == ("Activation", {"function": "leaky_relu", "alpha": 0.25})
    assert g.node("act_relu").source_class == "Activation"
    assert g.node("leaky").source_class == "LeakyReLU"
    assert g.node("relu_max").source_class == "ReLU"


def test_activation_forward(activations: Any, graphs: dict[str, Graph]) -> None:
    # +-5 reaches both flat parts of hard_sigmoid (|x| >= 3 in Keras 3) and relu6.
    check_forward(activations, graphs["activations"], seed=14, scale=7.0)


def test_hard_sigmoid_is_keras_3(graphs: dict[str, Graph]) -> None:
    x = np.array([-4.0, -3.0, -1.5, 0.0, 0.75, 3.0, 4.0], dtype="float32")
    keras_y = numpy(keras.activations.hard_sigmoid(x))
    # Keras 3: relu6(x + 3) / 6, written here independently.
    np.testing.assert_allclose(keras_y, np.clip(x + 3.0, 0, 6) / 6, atol=1e-7)
    node = graphs["activations"].node("act_hard_sigmoid")
    np.testing.assert_allclose(_activation(node, x.astype(np.float64)), keras_y, atol=1e-7)


def test_legacy_leaky_relu_alpha() -> None:
    with pytest.warns(UserWarning, match="alpha"):
        layer = L.LeakyReLU(alpha=0.125, name="old_leaky")
    x = keras.Input((3,), name="x")
    g = keras_to_graph(keras.Model(x, layer(x)))
    assert g.node("old_leaky").attrs == {"function": "leaky_relu", "alpha": 0.125}


def test_split_activation_name_collision() -> None:
    x = keras.Input((3,), name="x")
    y = L.Dense(2, activation="relu", name="fc")(x)
    y = L.Activation("sigmoid", name="fc_relu")(y)
    g = keras_to_graph(keras.Model(x, y))
    assert ops(g) == [
        ("x", "Input"),
        ("fc", "Dense"),
        ("fc_relu_1", "Activation"),
        ("fc_relu", "Activation"),
    ]
    assert g.node("fc_relu").inputs == ["fc_relu_1"]


def test_sequential_built_by_calling() -> None:
    model = keras.Sequential([L.Dense(2, name="d")], name="lazy")
    model(np.zeros((1, 4), dtype="float32"))
    g = keras_to_graph(model)
    assert [n.op for n in g.nodes] == ["Input", "Dense"]
    assert g.tensors["d"].shape == (2,)


# ----------------------------------------------------------------- errors
def _model(*layers: Any, shape: tuple[int, ...] = (6, 6, 2)) -> Any:
    x = keras.Input(shape, name="x")
    y = x
    for layer in layers:
        y = layer(y)
    return keras.Model(x, y)


def test_unsupported_layer_names_layer_class_and_list() -> None:
    model = _model(L.UnitNormalization(name="unit"), shape=(4, 3))
    with pytest.raises(UnsupportedLayerError) as err:
        keras_to_graph(model)
    msg = str(err.value)
    assert "'unit'" in msg and "'UnitNormalization'" in msg and "supported:" in msg
    assert "Conv2D" in msg


@pytest.mark.parametrize(
    ("layer", "attr"),
    [
        (lambda: L.Conv2D(2, 3, dilation_rate=2, name="bad"), "dilation_rate"),
        (lambda: L.Conv2D(2, 1, data_format="channels_first", name="bad"), "data_format"),
        (lambda: L.Conv2D(2, 3, groups=2, name="bad"), "groups"),
        (lambda: L.MaxPooling2D(2, data_format="channels_first", name="bad"), "data_format"),
        (lambda: L.BatchNormalization(axis=1, name="bad"), "axis"),
        (lambda: L.ReLU(threshold=0.5, name="bad"), "threshold"),
        (lambda: L.ReLU(max_value=3.0, negative_slope=0.1, name="bad"), "negative_slope"),
        (lambda: L.Softmax(axis=1, name="bad"), "axis"),
        (lambda: L.Activation("exponential", name="bad"), "activation='exponential'"),
        (lambda: L.Conv2D(2, 3, activation="mish", name="bad"), "activation='mish'"),
    ],
)
def test_unsupported_attribute(layer: Any, attr: str) -> None:
    with pytest.raises(UnsupportedLayerError, match="'bad'") as err:
        keras_to_graph(_model(layer()))
    assert attr in str(err.value)


def test_shared_layer_is_rejected() -> None:
    dense = L.Dense(3, name="shared")
    x = keras.Input((3,), name="x")
    with pytest.raises(UnsupportedLayerError, match=r"'shared'.*more than once"):
        keras_to_graph(keras.Model(x, dense(dense(x))))


def test_unknown_dimension_is_rejected() -> None:
    with pytest.raises(FrontendError, match="unknown non-batch size"):
        keras_to_graph(_model(L.Dense(2), shape=(None, 3)))


def test_not_a_model_and_unbuilt_model() -> None:
    with pytest.raises(FrontendError, match=r"expected a keras\.Model"):
        keras_to_graph(42)
    with pytest.raises(FrontendError, match="no defined inputs"):
        keras_to_graph(keras.Sequential([L.Dense(2)]))


def test_keras_ops_operation_is_rejected() -> None:
    x = keras.Input((3,), name="x")
    with pytest.raises(UnsupportedLayerError, match="not a Keras layer"):
        keras_to_graph(keras.Model(x, keras.ops.sqrt(x)))


# ------------------------------------------------------------ model files
def _same_graph(a: Graph, b: Graph) -> None:
    assert ops(a) == ops(b)
    assert a.inputs == b.inputs and a.outputs == b.outputs
    for na, nb in zip(a.nodes, b.nodes, strict=True):
        assert na.attrs == nb.attrs and na.inputs == nb.inputs
        assert na.weights.keys() == nb.weights.keys()
        for k in na.weights:
            np.testing.assert_array_equal(na.weights[k], nb.weights[k])


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_model_file_roundtrip(suffix: str, tmp_path: Path, mlp: Any, graphs: dict) -> None:
    path = tmp_path / f"mlp{suffix}"
    mlp.save(path)
    loaded = keras_to_graph(str(path))
    _same_graph(loaded, graphs["mlp"])
    assert loaded.inputs == ["input"]
    assert isinstance(load_keras_model(path), keras.Model)


def test_functional_file_roundtrip(tmp_path: Path, merges: Any, graphs: dict) -> None:
    path = tmp_path / "merges.keras"
    merges.save(path)
    _same_graph(keras_to_graph(path), graphs["merges"])


def test_load_errors(tmp_path: Path, mlp: Any) -> None:
    with pytest.raises(FrontendError, match="does not exist"):
        load_keras_model(tmp_path / "missing.keras")
    json_file = tmp_path / "model.json"
    json_file.write_text("{}")
    with pytest.raises(FrontendError, match=r"suffix '\.json'"):
        load_keras_model(json_file)
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    with pytest.raises(FrontendError, match=r"not a \.keras archive"):
        keras_to_graph(fake)
    fake_h5 = tmp_path / "fake.h5"
    fake_h5.write_bytes(b"\x00" * 64)
    with pytest.raises(FrontendError, match="not an HDF5 file"):
        load_keras_model(fake_h5)
    weights = tmp_path / "mlp.weights.h5"
    mlp.save_weights(weights)
    with pytest.raises(FrontendError, match="weights-only"):
        load_keras_model(weights)
    with pytest.raises(FrontendError, match="directory"):
        load_keras_model(tmp_path)


def test_import_without_keras() -> None:
    code = (
        "import sys\n"
        "sys.modules['keras'] = None\n"
        "import nnfab.frontends\n"
        "from nnfab.errors import FrontendError\n"
        "try:\n"
        "    nnfab.frontends.keras_to_graph(object())\n"
        "except FrontendError as e:\n"
        "    assert 'pip install' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_shape_mismatch_with_keras_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnfab.frontends import keras_mapping

    def wrong_reshape(call: keras_mapping.LayerCall) -> list[Node]:
        return [call.node("Reshape", {"target_shape": tuple(reversed(call.get("target_shape")))})]

    monkeypatch.setitem(keras_mapping.CONVERTERS, "Reshape", wrong_reshape)
    model = _model(L.Reshape((2, 3), name="r"), shape=(6,))
    with pytest.raises(FrontendError, match=r"layer 'r': nnfab infers output shape \(3, 2\)"):
        keras_to_graph(model)


# ------------------------------------------- one layer table for both paths
def _identical_graphs(live: Graph, read: Graph) -> None:
    """Same nodes, ops, attrs, weights (bit for bit), shapes, types and source classes."""
    assert live.name == read.name
    assert live.inputs == read.inputs and live.outputs == read.outputs
    assert ops(live) == ops(read)
    for a, b in zip(live.nodes, read.nodes, strict=True):
        assert a.inputs == b.inputs, a.name
        assert a.attrs == b.attrs, a.name
        assert a.source_class == b.source_class, a.name
        assert a.precision == b.precision == {}, a.name
        assert a.weights.keys() == b.weights.keys(), a.name
        for k in a.weights:
            assert a.weights[k].dtype == b.weights[k].dtype == np.float64
            np.testing.assert_array_equal(a.weights[k], b.weights[k], err_msg=f"{a.name}.{k}")
    assert {t: (v.shape, v.type) for t, v in live.tensors.items()} == {
        t: (v.shape, v.type) for t, v in read.tensors.items()
    }


@pytest.mark.parametrize("fixture", ["mlp", "cnn2d", "cnn1d", "merges", "activations"])
def test_live_and_file_paths_give_identical_graphs(
    fixture: str, request: pytest.FixtureRequest, graphs: dict[str, Graph], tmp_path: Path
) -> None:
    """The live model and its saved JSON + HDF5 weights go through the same layer table."""
    from nnfab.frontends.keras_json import graph_from_keras_h5, graph_from_keras_json

    model = request.getfixturevalue(fixture)
    h5 = tmp_path / f"{fixture}.h5"
    model.save(h5)  # Keras 3's legacy HDF5: model_config + model_weights
    live = graphs[fixture]
    _identical_graphs(live, graph_from_keras_h5(h5))
    _identical_graphs(live, graph_from_keras_json(model.to_json(), h5))


def test_identical_graphs_cover_the_layer_kinds(graphs: dict[str, Graph]) -> None:
    """The models above exercise every kind of layer the equality test claims."""
    seen = {n.op for g in graphs.values() for n in g.nodes}
    assert {
        "Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "Pooling1D",
        "Pooling2D", "GlobalPooling1D", "GlobalPooling2D", "BatchNormalization", "Activation",
        "Softmax", "Merge", "Concatenate", "Flatten", "Reshape", "Dropout",
    } <= seen


def test_custom_activation_named_like_a_builtin_is_rejected() -> None:
    """Its config only says 'relu': the live path checks the function itself."""

    def relu(x: Any) -> Any:
        return x * 2.0

    with pytest.raises(UnsupportedLayerError, match=r"'bad'.*activation='relu'.*not a Keras"):
        keras_to_graph(_model(L.Dense(2, activation=relu, name="bad"), shape=(3,)))
