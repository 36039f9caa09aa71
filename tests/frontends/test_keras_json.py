"""Keras 2 JSON + HDF5 frontend (no Keras needed): structure, attributes, weights, errors,
the shared example models, and a float64 reference forward pass written here."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from tests.paths import SHARED_MODELS

import nnfab
from nnfab.errors import FrontendError, UnsupportedLayerError
from nnfab.frontends.keras_json import graph_from_keras_h5, graph_from_keras_json
from nnfab.ir import Graph

MODELS = SHARED_MODELS / "keras"
needs_models = pytest.mark.skipif(
    not MODELS.is_dir(), reason=f"shared example models not found in {MODELS} (NNFAB_MODELS_DIR)"
)
WIDE = "ap_fixed<52,20>"  # 32 fractional bits: float weights round by < 2.4e-10


# ------------------------------------------------------------------ file writers
def write_weights(
    path: Path, weights: dict[str, dict[str, np.ndarray]], names: list[str],
    model_config: dict[str, Any] | None = None, version: str = "2.4.0",
) -> Path:
    """An HDF5 file in Keras 2's layout (whole model when ``model_config`` is given)."""
    with h5py.File(path, "w") as f:
        if model_config is not None:
            f.attrs["model_config"] = json.dumps(model_config).encode()
            f.attrs["keras_version"] = version.encode()
            g = f.create_group("model_weights")
        else:
            g = f
        g.attrs["layer_names"] = np.array([n.encode() for n in names])
        g.attrs["keras_version"] = version.encode()
        for name in names:
            lg = g.create_group(name)
            ws = weights.get(name, {})
            lg.attrs["weight_names"] = np.array([f"{name}/{k}:0".encode() for k in ws], dtype="S")
            for k, v in ws.items():
                lg.create_dataset(f"{name}/{k}:0", data=np.asarray(v, dtype=np.float32))
    return path


def layer(cls: str, name: str, inbound: list[str] | None = None, **config: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"class_name": cls, "name": name, "config": {"name": name, **config}}
    if inbound is not None:
        entry["inbound_nodes"] = [[[src, 0, 0, {}] for src in inbound]] if inbound else []
    return entry


def functional(layers: list[dict[str, Any]], inputs: list[str], outputs: list[str]) -> dict:
    return {
        "class_name": "Model",
        "keras_version": "2.4.0",
        "config": {
            "name": "m",
            "layers": layers,
            "input_layers": [[n, 0, 0] for n in inputs],
            "output_layers": [[n, 0, 0] for n in outputs],
        },
    }


def inp(name: str, *shape: int) -> dict[str, Any]:
    return layer("InputLayer", name, [], batch_input_shape=[None, *shape])


def f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32).astype(np.float64)


def convert(tmp_path: Path, model: dict, weights: dict[str, dict[str, np.ndarray]]) -> Graph:
    names = [e["name"] for e in model["config"]["layers"]]
    h5 = write_weights(tmp_path / "w.h5", weights, names)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(model))
    return graph_from_keras_json(path, h5)


def ops(graph: Graph) -> list[tuple[str, str]]:
    return [(n.name, n.op) for n in graph.nodes]


# ------------------------------------------------------ float64 reference pieces
def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def conv1d_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """TensorFlow 'same', stride 1: pad (k-1)//2 before and the rest after."""
    k = kernel.shape[0]
    before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
    xp = np.pad(x, [(0, 0), (before, after), (0, 0)])
    out = np.zeros((x.shape[0], x.shape[1], kernel.shape[2]))
    for t in range(x.shape[1]):
        out[:, t] = np.einsum("bkc,kcf->bf", xp[:, t : t + k], kernel) + bias
    return out


def grid_inputs(
    rng: np.random.Generator, shape: tuple[int, ...], frac: int, span: int
) -> np.ndarray:
    return rng.integers(-span, span, size=shape) * 2.0**-frac


# ================================================================= shared models
@needs_models
def test_keras_3layer_structure_and_weights() -> None:
    g = graph_from_keras_json(MODELS / "KERAS_3layer.json", MODELS / "KERAS_3layer_weights.h5")
    assert ops(g) == [
        ("input_1", "Input"),
        ("fc1_relu", "Dense"), ("fc1_relu_relu", "Activation"),
        ("fc2_relu", "Dense"), ("fc2_relu_relu", "Activation"),
        ("fc3_relu", "Dense"), ("fc3_relu_relu", "Activation"),
        ("output_softmax", "Dense"), ("output_softmax_softmax", "Softmax"),
    ]
    assert [g.tensors[n.name].shape for n in g.nodes] == [
        (16,), (64,), (64,), (32,), (32,), (32,), (32,), (5,), (5,)
    ]
    assert g.inputs == ["input_1"] and g.outputs == ["output_softmax_softmax"]
    assert all(g.tensors[n.name].type is None for n in g.nodes)
    assert {n.source_class for n in g.nodes} == {"InputLayer", "Dense", "Activation"}
    with h5py.File(MODELS / "KERAS_3layer_weights.h5") as f:
        for name in ("fc1_relu", "fc2_relu", "fc3_relu", "output_softmax"):
            node = g.node(name)
            assert np.array_equal(node.weights["kernel"], f[f"{name}/{name}/kernel:0"][()])
            assert np.array_equal(node.weights["bias"], f[f"{name}/{name}/bias:0"][()])
            assert node.weights["kernel"].dtype == np.float64


@needs_models
def test_keras_3layer_float_forward_matches_numpy() -> None:
    g = graph_from_keras_json(MODELS / "KERAS_3layer.json", MODELS / "KERAS_3layer_weights.h5")
    w = {n.name: n.weights for n in g.nodes if n.op == "Dense"}
    x = grid_inputs(np.random.default_rng(1), (64, 16), 10, 4 << 10)
    h = x
    for name in ("fc1_relu", "fc2_relu", "fc3_relu"):
        h = relu(h @ w[name]["kernel"] + w[name]["bias"])
    logits = h @ w["output_softmax"]["kernel"] + w["output_softmax"]["bias"]
    model = nnfab.convert_graph(g.copy(), {"Model": {"Precision": WIDE}})
    trace = model.trace(x)
    np.testing.assert_allclose(trace["output_softmax"], logits, rtol=0, atol=1e-6)
    # The softmax is a lookup table: close to the float softmax, not equal.
    np.testing.assert_allclose(trace["output_softmax_softmax"], softmax(logits), atol=0.02)


@needs_models
def test_conv1d_small_structure_pads_and_forward() -> None:
    g = graph_from_keras_json(
        MODELS / "KERAS_conv1d_small.json", MODELS / "KERAS_conv1d_small_weights.h5"
    )
    assert ops(g) == [
        ("input_1", "Input"),
        ("conv1_relu", "Conv1D"), ("conv1_relu_relu", "Activation"),
        ("conv2_relu", "Conv1D"), ("conv2_relu_relu", "Activation"),
        ("conv3_relu", "Conv1D"), ("conv3_relu_relu", "Activation"),
        ("flatten_1", "Flatten"),
        ("fc1_relu", "Dense"), ("fc1_relu_relu", "Activation"),
        ("output_softmax", "Dense"), ("output_softmax_softmax", "Softmax"),
    ]
    # kernel 4, 'same', stride 1: 3 padding cells, TensorFlow puts the odd one after.
    assert g.node("conv1_relu").attrs == {"strides": (1,), "pads": (1, 2)}
    assert g.tensors["conv3_relu"].shape == (10, 1) and g.tensors["flatten_1"].shape == (10,)
    with h5py.File(MODELS / "KERAS_conv1d_small_weights.h5") as f:
        assert np.array_equal(
            g.node("conv2_relu").weights["kernel"], f["conv2_relu/conv2_relu/kernel:0"][()]
        )
    w = {n.name: n.weights for n in g.nodes if n.weights}
    x = grid_inputs(np.random.default_rng(2), (32, 10, 4), 10, 4 << 10)
    h = x
    for name in ("conv1_relu", "conv2_relu", "conv3_relu"):
        h = relu(conv1d_same(h, w[name]["kernel"], w[name]["bias"]))
    h = relu(h.reshape(32, -1) @ w["fc1_relu"]["kernel"] + w["fc1_relu"]["bias"])
    logits = h @ w["output_softmax"]["kernel"] + w["output_softmax"]["bias"]
    trace = nnfab.convert_graph(g.copy(), {"Model": {"Precision": WIDE}}).trace(x)
    np.testing.assert_allclose(trace["output_softmax"], logits, rtol=0, atol=1e-6)


@needs_models
def test_qkeras_3layer_structure() -> None:
    g = graph_from_keras_json(MODELS / "qkeras_3layer.json", MODELS / "qkeras_3layer_weights.h5")
    assert ops(g) == [
        ("fc1_input", "Input"), ("fc1", "Dense"), ("relu1", "Activation"),
        ("fc2", "Dense"), ("relu2", "Activation"), ("fc3", "Dense"), ("relu3", "Activation"),
        ("output", "Dense"), ("softmax", "Softmax"),
    ]
    assert g.node("fc1").source_class == "QDense"
    assert g.node("relu1").source_class == "QActivation"
    assert g.outputs == ["softmax"]
    assert g.metadata["layer_outputs"]["relu3"] == "relu3"


# ============================================================ hand-written files
def test_sequential_without_input_layer_and_old_list_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    k1, b1, k2, b2 = f32(rng, 4, 3), f32(rng, 3), f32(rng, 3, 2), f32(rng, 2)
    layers = [
        layer("Dense", "a", units=3, activation="relu", use_bias=True,
              batch_input_shape=[None, 4]),
        layer("Dropout", "drop", rate=0.5),
        layer("Dense", "b", units=2, activation="linear"),
    ]
    h5 = write_weights(tmp_path / "w.h5", {"a": {"kernel": k1, "bias": b1},
                                           "b": {"kernel": k2, "bias": b2}},
                       ["a", "drop", "b"])
    for config in ({"name": "seq", "layers": layers}, layers):  # Keras >= 2.2, Keras <= 2.1
        g = graph_from_keras_json({"class_name": "Sequential", "config": config}, h5)
        assert ops(g) == [("a_input", "Input"), ("a", "Dense"), ("a_relu", "Activation"),
                          ("drop", "Dropout"), ("b", "Dense")]
        assert g.node("drop").inputs == ["a_relu"]
        assert g.tensors["b"].shape == (2,)
        assert np.array_equal(g.node("b").weights["kernel"], k2)


def test_functional_graph_merge_concat_multiple_outputs_any_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    layers = [  # deliberately not in topological order
        layer("Concatenate", "cat", ["add", "y"], axis=-1),
        layer("Add", "add", ["d1", "d2"]),
        layer("Dense", "d2", ["y"], units=3, activation="tanh"),
        layer("Dense", "d1", ["x"], units=3, activation="sigmoid", use_bias=False),
        inp("x", 5),
        inp("y", 3),
        layer("Subtract", "sub", ["d1", "y"]),
        layer("Multiply", "mul", ["d1", "d2"]),
        layer("Average", "avg", ["mul", "sub"]),
    ]
    weights = {"d1": {"kernel": f32(rng, 5, 3)},
               "d2": {"kernel": f32(rng, 3, 3), "bias": f32(rng, 3)}}
    g = convert(tmp_path, functional(layers, ["x", "y"], ["cat", "avg"]), weights)
    assert g.inputs == ["x", "y"] and g.outputs == ["cat", "avg"]
    order = [n.name for n in g.nodes]
    for n in g.nodes:
        assert all(order.index(t) < order.index(n.name) for t in n.inputs)
    assert g.node("add").attrs == {"mode": "add"} and g.node("add").inputs == ["d1_sigmoid",
                                                                              "d2_tanh"]
    assert g.node("sub").attrs == {"mode": "subtract"}
    assert g.node("mul").attrs == {"mode": "multiply"}
    assert g.node("avg").attrs == {"mode": "average"}
    assert g.node("cat").attrs == {"axis": 0} and g.tensors["cat"].shape == (6,)
    assert np.array_equal(g.node("d1").weights["bias"], np.zeros(3))


@pytest.mark.parametrize(
    ("size", "k", "s", "pads", "out"),
    [
        (7, 3, 2, (1, 1), 4),  # total (4-1)*2+3-7 = 2
        (8, 3, 2, (0, 1), 4),  # total 1: the odd cell goes after
        (8, 4, 1, (1, 2), 8),  # total 3
        (5, 1, 2, (0, 0), 3),
    ],
)
def test_conv2d_same_padding(
    tmp_path: Path, size: int, k: int, s: int, pads: tuple[int, int], out: int
) -> None:
    rng = np.random.default_rng(5)
    layers = [
        inp("x", size, size + 1, 2),
        layer("Conv2D", "c", ["x"], filters=3, kernel_size=[k, 1], strides=[s, 1],
              padding="same", dilation_rate=[1, 1], activation="linear", use_bias=True,
              data_format="channels_last"),
    ]
    weights = {"c": {"kernel": f32(rng, k, 1, 2, 3), "bias": f32(rng, 3)}}
    g = convert(tmp_path, functional(layers, ["x"], ["c"]), weights)
    assert g.node("c").attrs == {"strides": (s, 1), "pads": (*pads, 0, 0)}
    assert g.tensors["c"].shape == (out, size + 1, 3)


def test_depthwise_pooling_batchnorm_reshape(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    gamma, beta, mean = f32(rng, 4), f32(rng, 4), f32(rng, 4)
    var = (np.abs(f32(rng, 4)) + 0.5).astype(np.float32).astype(np.float64)
    layers = [
        inp("x", 6, 6, 2),
        layer("DepthwiseConv2D", "dw", ["x"], kernel_size=[3, 3], strides=[1, 1],
              padding="valid", depth_multiplier=2, activation="relu6", use_bias=True),
        layer("BatchNormalization", "bn", ["dw"], axis=-1, epsilon=0.01, center=True,
              scale=True),
        layer("MaxPooling2D", "mp", ["bn"], pool_size=[2, 2], strides=None, padding="valid"),
        layer("AveragePooling2D", "ap", ["bn"], pool_size=[3, 3], strides=[1, 1],
              padding="same"),
        layer("GlobalAveragePooling2D", "gap", ["ap"]),
        layer("Flatten", "fl", ["mp"]),
        layer("Reshape", "rs", ["fl"], target_shape=[-1, 4]),
    ]
    weights = {
        "dw": {"depthwise_kernel": f32(rng, 3, 3, 2, 2), "bias": f32(rng, 4)},
        "bn": {"gamma": gamma, "beta": beta, "moving_mean": mean, "moving_variance": var},
    }
    g = convert(tmp_path, functional(layers, ["x"], ["rs", "gap"]), weights)
    dw = g.node("dw")
    assert dw.op == "DepthwiseConv2D" and dw.attrs["depth_multiplier"] == 2
    assert dw.weights["kernel"].shape == (3, 3, 2, 2) and g.tensors["dw"].shape == (4, 4, 4)
    assert g.node("dw_relu6").attrs == {"function": "relu", "max_value": 6.0}
    bn = g.node("bn")
    scale = gamma / np.sqrt(var + 0.01)
    np.testing.assert_allclose(bn.weights["scale"], scale, rtol=1e-15)
    np.testing.assert_allclose(bn.weights["bias"], beta - mean * scale, rtol=1e-14, atol=1e-15)
    assert g.node("mp").attrs == {"mode": "max", "pool_size": (2, 2), "strides": (2, 2),
                                  "pads": (0, 0, 0, 0)}
    assert g.node("ap").attrs == {"mode": "avg", "pool_size": (3, 3), "strides": (1, 1),
                                  "pads": (1, 1, 1, 1), "count_include_pad": False}
    assert g.tensors["mp"].shape == (2, 2, 4) and g.tensors["gap"].shape == (4,)
    assert g.node("rs").attrs == {"target_shape": (4, 4)}


def test_activations_keras2_and_keras3_hard_sigmoid(tmp_path: Path) -> None:
    layers = [
        inp("x", 3),
        layer("Activation", "hs", ["x"], activation="hard_sigmoid"),
        layer("LeakyReLU", "lr", ["hs"], alpha=0.25),
        layer("ReLU", "r", ["lr"], max_value=None, negative_slope=0.0, threshold=0.0),
        layer("Softmax", "sm", ["r"], axis=-1),
        layer("Activation", "act_lin", ["sm"], activation={"class_name": "function",
                                                            "config": "linear"}),
    ]
    model = functional(layers, ["x"], ["act_lin"])
    g = convert(tmp_path, model, {})
    assert g.node("hs").attrs == {"function": "hard_sigmoid", "slope": 0.2, "offset": 0.5}
    assert g.node("lr").attrs == {"function": "leaky_relu", "alpha": 0.25}
    assert g.node("r").attrs == {"function": "relu"}
    assert g.node("sm").op == "Softmax" and g.node("sm").attrs == {"axis": -1}
    assert g.node("act_lin").attrs == {"function": "linear"}
    model["keras_version"] = "3.3.3"
    g3 = convert(tmp_path, model, {})
    assert g3.node("hs").attrs["slope"] == pytest.approx(1 / 6, abs=0)


def test_whole_model_h5_equals_pair(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    layers = [inp("x", 4), layer("Dense", "d", ["x"], units=2, activation="softmax")]
    model = functional(layers, ["x"], ["d"])
    weights = {"d": {"kernel": f32(rng, 4, 2), "bias": f32(rng, 2)}}
    whole = write_weights(tmp_path / "whole.h5", weights, ["x", "d"], model_config=model)
    g1 = graph_from_keras_h5(whole)
    g2 = graph_from_keras_json(json.dumps(model), whole)  # JSON text + a whole-model file
    for g in (g1, g2):
        assert ops(g) == [("x", "Input"), ("d", "Dense"), ("d_softmax", "Softmax")]
        assert np.array_equal(g.node("d").weights["kernel"], weights["d"]["kernel"])
    assert g1.metadata["keras_version"] == "2.4.0"


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras3_legacy_h5_matches_keras(tmp_path: Path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    L = keras.layers
    x_in = keras.Input((6, 5, 2))
    y = L.Conv2D(3, 3, strides=2, padding="same", activation="relu", name="c")(x_in)
    y = L.DepthwiseConv2D(2, name="dw")(y)
    y = L.Flatten(name="f")(y)
    y = L.Dense(4, name="d")(y)
    model = keras.Model(x_in, y)
    path = tmp_path / "k3.h5"
    model.save(path)
    g = graph_from_keras_h5(path)
    assert [n.op for n in g.nodes] == [
        "Input", "Conv2D", "Activation", "DepthwiseConv2D", "Flatten", "Dense"
    ]
    x = grid_inputs(np.random.default_rng(8), (16, 6, 5, 2), 8, 2 << 8)
    want = np.asarray(model.predict(x.astype(np.float32), verbose=0), dtype=np.float64)
    got = nnfab.convert_graph(g, {"Model": {"Precision": WIDE}}).predict(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)  # Keras runs in float32


# ====================================================================== errors
def test_unsupported_layer_names_layer_class_and_list(tmp_path: Path) -> None:
    layers = [inp("x", 3, 2), layer("GroupNormalization", "gn", ["x"], groups=2)]
    with pytest.raises(UnsupportedLayerError) as e:
        convert(tmp_path, functional(layers, ["x"], ["gn"]), {})
    text = str(e.value)
    assert "'gn'" in text and "'GroupNormalization'" in text and "Dense" in text
    assert "QDense" in text


def test_unsupported_activation_and_attributes(tmp_path: Path) -> None:
    cases = [
        (layer("Activation", "a", ["x"], activation="mish"), "activation='mish'"),
        (layer("Conv1D", "c", ["x"], filters=1, kernel_size=[2], dilation_rate=[2]),
         "dilation_rate"),
        (layer("Conv1D", "c", ["x"], filters=1, kernel_size=[2], data_format="channels_first"),
         "data_format"),
        (layer("Softmax", "s", ["x"], axis=1), "axis"),
        (layer("ReLU", "r", ["x"], threshold=0.5), "threshold"),
    ]
    rng = np.random.default_rng(9)
    for entry, needle in cases:
        model = functional([inp("x", 4, 3), entry], ["x"], [entry["name"]])
        weights = {"c": {"kernel": f32(rng, 2, 3, 1), "bias": f32(rng, 1)}}
        with pytest.raises(UnsupportedLayerError, match=needle) as e:
            convert(tmp_path, model, weights)
        assert repr(entry["name"]) in str(e.value)


def test_shared_layer_and_missing_weights(tmp_path: Path) -> None:
    shared = layer("Dense", "d", ["x"], units=2)
    shared["inbound_nodes"].append([["x", 0, 0, {}]])
    with pytest.raises(UnsupportedLayerError, match="shared layers"):
        convert(tmp_path, functional([inp("x", 2), shared], ["x"], ["d"]), {})
    lone = layer("Dense", "d", ["x"], units=2)
    with pytest.raises(FrontendError, match="weight 'kernel' not found"):
        convert(tmp_path, functional([inp("x", 2), lone], ["x"], ["d"]), {})


def test_file_errors(tmp_path: Path) -> None:
    weights_only = write_weights(tmp_path / "w.h5", {}, ["x"])
    with pytest.raises(FrontendError, match="weights-only"):
        graph_from_keras_h5(weights_only)
    with pytest.raises(FrontendError, match="does not exist"):
        graph_from_keras_h5(tmp_path / "missing.h5")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FrontendError, match="not valid JSON"):
        graph_from_keras_json(tmp_path / "bad.json", weights_only)
    with pytest.raises(FrontendError, match="not a Keras model"):
        graph_from_keras_json({"class_name": "Dense", "config": {}}, weights_only)
    unknown = functional([inp("x", None), layer("Dense", "d", ["x"], units=1)],  # type: ignore[arg-type]
                         ["x"], ["d"])
    with pytest.raises(FrontendError, match="unknown or invalid"):
        graph_from_keras_json(unknown, weights_only)


def test_loader_routes_json_and_h5(tmp_path: Path) -> None:
    from nnfab.frontends.loader import graph_from_file

    rng = np.random.default_rng(10)
    model = functional([inp("x", 3), layer("Dense", "d", ["x"], units=1)], ["x"], ["d"])
    weights = {"d": {"kernel": f32(rng, 3, 1), "bias": f32(rng, 1)}}
    whole = write_weights(tmp_path / "m.h5", weights, ["x", "d"], model_config=model)
    (tmp_path / "m.json").write_text(json.dumps(model))
    assert ops(graph_from_file(whole)) == [("x", "Input"), ("d", "Dense")]
    assert ops(graph_from_file(tmp_path / "m.json", whole)) == [("x", "Input"), ("d", "Dense")]
    assert math.prod(graph_from_file(whole).tensors["d"].shape) == 1
