"""The new activations and maximum / minimum merges through Keras 3, PyTorch and ONNX.

Structure (the IR node and its attributes) and the emulator against the framework's own
float forward pass. Tolerances, with ``WIDE`` types (24 fractional bits, round to
nearest): inputs round by at most 2**-25, so piecewise-linear functions with exact
constants (hard_tanh, thresholded relu, maximum, minimum) are within ``LIN`` = 1e-5.
Constants cast to the default ``param`` type ``ap_fixed<18,4>`` (14 fractional bits)
round by 2**-15: times |x| <= 6 for prelu / selu, |x| <= 3 for hard_sigmoid. A table
with bin width ``step`` read at the bin centre errs by at most ``step/2 * max|f'|`` plus
half an entry's lsb (defaults: elu / celu / selu over [-8, 0) with step 2**-7, softplus
over [-8, 8) with 2**-6, softsign over [-16, 16) with 2**-5).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

WIDE = "ap_fixed<40,16,AP_RND_CONV,AP_SAT>"
CONFIG = {"Model": {"Precision": WIDE}}
XMAX = 6.0
LIN = 1e-5
PARAM = XMAX * 2.0**-15 + LIN
SELU_A = 1.6732632423543772848170429916717
SELU_S = 1.0507009873554804934193349852946
TOL = {
    "elu": 2.0**-8 + 2.0**-16,  # alpha <= 1: f' <= 1
    "celu": 2.0**-8 + 2.0**-16,  # f' = exp(x / alpha) <= 1
    "selu": SELU_S * SELU_A * 2.0**-8 + PARAM,
    "softplus": 2.0**-7 + 2.0**-14,
    "softsign": 2.0**-6 + 2.0**-16,
    "prelu": PARAM,
    "hard_sigmoid": 3 * 2.0**-15 + LIN,
    "hard_tanh": LIN,
    "thresholded_relu": LIN,
    "maximum": LIN,
    "minimum": LIN,
    "average": LIN,
}


def inputs(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-XMAX, XMAX, size=shape).astype(np.float32).astype(np.float64)


def check_outputs(hm: Any, got: list[np.ndarray], expected: list[np.ndarray]) -> None:
    """Each output within the tolerance of the function (or merge) that made it."""
    assert len(got) == len(expected) == len(hm.graph.outputs)
    for name, g, e in zip(hm.graph.outputs, got, expected, strict=True):
        node = hm.graph.node(name)
        kind = node.attrs.get("function", node.attrs.get("mode"))
        err = float(np.max(np.abs(g.reshape(e.shape) - e)))
        assert err <= TOL[kind], f"{name} ({kind}): max error {err} exceeds {TOL[kind]}"
        assert np.unique(np.round(e, 3)).size > 5, f"{name}: the inputs leave it nearly constant"
    assert not any(sum(v.values()) for v in hm.overflow_report().values())


# ------------------------------------------------------------------- Keras
@pytest.mark.keras
def test_keras_layers_and_activations() -> None:
    keras = pytest.importorskip("keras")
    L = keras.layers
    a, b = L.Input((4, 3), name="a"), L.Input((4, 3), name="b")
    outs = [
        L.ELU(alpha=0.7, name="elu")(a),
        L.PReLU(shared_axes=[1], name="prelu_c")(a),
        L.PReLU(name="prelu_e")(a),
        L.Maximum(name="maxi")([a, b]),
        L.Minimum(name="mini")([a, b]),
    ]
    for fn in ("elu", "selu", "softplus", "softsign", "hard_tanh", "celu", "hard_sigmoid"):
        outs.append(L.Activation(fn, name=f"act_{fn}")(a))
    model = keras.Model([a, b], outs)
    rng = np.random.default_rng(0)
    for name in ("prelu_c", "prelu_e"):
        layer = model.get_layer(name)
        layer.set_weights([rng.uniform(-0.8, 0.9, layer.get_weights()[0].shape)])
    hm = nnfab.convert_from_keras_model(model, hls_config=CONFIG)
    g = hm.graph
    assert g.node("prelu_c").weights["alpha"].shape == (3,)  # shared over axis 1
    assert g.node("prelu_e").weights["alpha"].shape == (4, 3)
    assert g.node("elu").attrs == {"function": "elu", "alpha": 0.7} | {
        k: v for k, v in g.node("elu").attrs.items() if k.startswith("table")}
    assert g.node("act_hard_sigmoid").attrs["slope"] == 1 / 6  # Keras 3: relu6(x + 3) / 6
    assert g.node("act_hard_tanh").attrs["min_val"] == -1.0
    assert g.node("maxi").attrs["mode"] == "maximum"
    xa, xb = inputs((500, 4, 3), 1), inputs((500, 4, 3), 2)
    expected = [np.asarray(y, dtype=np.float64) for y in model.predict([xa, xb], verbose=0)]
    got = hm.predict([xa, xb])
    check_outputs(hm, got, expected)


@pytest.mark.keras
def test_keras_dot_of_two_vectors() -> None:
    keras = pytest.importorskip("keras")
    L = keras.layers
    a, b = L.Input((5,), name="a"), L.Input((5,), name="b")
    model = keras.Model([a, b], [L.Dot(axes=1, name="dot")([a, b]),
                                 L.Dot(axes=-1, name="dot2")([b, b])])
    hm = nnfab.convert_from_keras_model(model, hls_config=CONFIG)
    assert [hm.graph.node(n).op for n in hm.graph.outputs] == ["Dot", "Dot"]
    xa, xb = inputs((300, 5), 7), inputs((300, 5), 8)
    expected = [np.asarray(y, dtype=np.float64) for y in model.predict([xa, xb], verbose=0)]
    for got, want in zip(hm.predict([xa, xb]), expected, strict=True):
        # Keras sums in float32: |sum| <= 5 * 36, five roundings of 2**-24 relative: < 1e-4
        assert float(np.max(np.abs(got - want))) <= 1e-4
    bad = keras.Model([a, b], L.Dot(axes=1, normalize=True, name="bad")([a, b]))
    with pytest.raises(UnsupportedLayerError, match=r"'bad'.*normalize"):
        nnfab.convert_from_keras_model(bad, hls_config=CONFIG)


# ----------------------------------------------------------------- PyTorch
def test_torch_modules_functions_and_methods() -> None:
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.celu = nn.CELU(2.0)
            self.selu = nn.SELU()
            self.softplus = nn.Softplus()
            self.softsign = nn.Softsign()
            self.hardtanh = nn.Hardtanh(-0.5, 2.0)
            self.threshold = nn.Threshold(0.25, 0.0)
            self.prelu = nn.PReLU(4)
            with torch.no_grad():
                self.prelu.weight.copy_(torch.tensor([0.3, -0.6, 0.05, 0.9]))

        def forward(self, x: Any, y: Any) -> Any:
            return (F.elu(x, 0.7), self.celu(x), self.selu(x), self.softplus(x),
                    self.softsign(x), self.hardtanh(x), self.threshold(x), self.prelu(x),
                    F.hardsigmoid(x), F.softsign(y), torch.maximum(x, y), torch.min(x, y),
                    x.minimum(y), torch.max(x, y))

    model = Net().eval()
    shape = [(4, 3), (4, 3)]
    cfg = nnfab.config_from_pytorch_model(model, shape, default_precision=WIDE)
    hm = nnfab.convert_from_pytorch_model(model, shape, hls_config=cfg)
    functions = [hm.graph.node(n).attrs.get("function", hm.graph.node(n).attrs.get("mode"))
                 for n in hm.graph.outputs]
    assert functions == ["elu", "celu", "selu", "softplus", "softsign", "hard_tanh",
                         "thresholded_relu", "prelu", "hard_sigmoid", "softsign", "maximum",
                         "minimum", "minimum", "maximum"]
    prelu = hm.graph.node(hm.graph.outputs[7])
    # PyTorch's channels are dim 1: rows of the (4, 3) sample, held as they are in the IR
    assert prelu.weights["alpha"].shape == (4, 3)
    assert np.allclose(prelu.weights["alpha"][:, 0], [0.3, -0.6, 0.05, 0.9])
    xs = [inputs((400, 4, 3), 3), inputs((400, 4, 3), 4)]
    with torch.no_grad():
        ref = model.double()(*[torch.from_numpy(x) for x in xs])
    check_outputs(hm, hm.predict(xs), [r.numpy() for r in ref])


def test_torch_prelu_after_conv_is_per_channel() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.PReLU(3)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.2, -0.5, 0.7]))
    shape = (2, 6, 6)
    cfg = nnfab.config_from_pytorch_model(model, shape, default_precision=WIDE)
    hm = nnfab.convert_from_pytorch_model(model, shape, hls_config=cfg)
    node = next(n for n in hm.graph.nodes if n.op == "Activation")
    assert node.weights["alpha"].tolist() == pytest.approx([0.2, -0.5, 0.7])
    x = inputs((50, 2, 6, 6), 5)
    with torch.no_grad():
        want = model.double()(torch.from_numpy(x)).numpy()
    got = np.moveaxis(hm.predict(np.moveaxis(x, 1, -1)), -1, 1)
    assert float(np.max(np.abs(got - want))) < 20 * 2.0**-15 + 1e-4  # |conv out| < 20


def test_torch_unsupported_arguments_are_named() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn

    for model, text in [(nn.Softplus(beta=2.0), "beta"), (nn.Threshold(0.5, 1.0), "value")]:
        with pytest.raises(UnsupportedLayerError, match=text):
            nnfab.convert_from_pytorch_model(model, (4,))


# -------------------------------------------------------------------- ONNX
def _onnx_model(nodes: list[Any], n_inputs: int, outputs: list[str], shape: list[Any],
                inits: list[Any] | None = None) -> Any:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes, "t",
        [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, shape)
         for i in range(n_inputs)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits or [])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _onnxruntime(m: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return [np.asarray(o, dtype=np.float64)
            for o in sess.run(None, {k: v.astype(np.float32) for k, v in feeds.items()})]


def test_onnx_operators_against_onnxruntime() -> None:
    from onnx import helper

    mk = helper.make_node
    nodes = [
        mk("Elu", ["x0"], ["elu"], alpha=0.7),
        mk("Celu", ["x0"], ["celu"], alpha=2.0),
        mk("Selu", ["x0"], ["selu"]),
        mk("Softplus", ["x0"], ["softplus"]),
        mk("Softsign", ["x0"], ["softsign"]),
        mk("ThresholdedRelu", ["x0"], ["thr"], alpha=0.25),
        mk("HardSigmoid", ["x0"], ["hsig"]),
        mk("Max", ["x0", "x1", "x2"], ["maxi"]),
        mk("Min", ["x0", "x1"], ["mini"]),
        mk("Mean", ["x0", "x1"], ["mean"]),
        mk("Clip", ["x0", "lo", "hi"], ["clip"]),
    ]
    outs = [n.output[0] for n in nodes]
    from onnx import numpy_helper

    bounds = [numpy_helper.from_array(np.array(v, dtype=np.float32), n)
              for n, v in (("lo", -0.75), ("hi", 2.5))]
    m = _onnx_model(nodes, 3, outs, ["N", 6], bounds)
    hm = nnfab.convert_from_onnx_model(m, hls_config=CONFIG)
    assert hm.graph.node(hm.graph.outputs[5]).attrs["theta"] == 0.25
    assert hm.graph.node(hm.graph.outputs[6]).attrs["slope"] == pytest.approx(0.2)
    assert hm.graph.node(hm.graph.outputs[10]).attrs == {"function": "hard_tanh",
                                                         "min_val": -0.75, "max_val": 2.5}
    xs = [inputs((400, 6), 10 + i) for i in range(3)]
    expected = _onnxruntime(m, {f"x{i}": x for i, x in enumerate(xs)})
    check_outputs(hm, hm.predict(xs), expected)


def test_onnx_prelu_channels_first() -> None:
    from onnx import helper, numpy_helper

    slope = np.array([0.2, -0.5, 0.7], dtype=np.float32).reshape(3, 1, 1)
    m = _onnx_model([helper.make_node("PRelu", ["x0", "slope"], ["y"])], 1, ["y"],
                    ["N", 3, 2, 2], [numpy_helper.from_array(slope, "slope")])
    hm = nnfab.convert_from_onnx_model(m, hls_config=CONFIG)
    node = hm.graph.node(hm.graph.outputs[0])
    x = inputs((100, 3, 2, 2), 20)
    want = _onnxruntime(m, {"x0": x})[0]
    layout_first = node.weights["alpha"].size > 3  # held as ONNX order: per element
    got = hm.predict(x if layout_first else np.moveaxis(x, 1, -1))
    got = got.reshape(want.shape) if layout_first else np.moveaxis(got, -1, 1)
    assert float(np.max(np.abs(got - want))) <= TOL["prelu"]


def test_onnx_constant_operand_of_max_is_rejected() -> None:
    from onnx import helper, numpy_helper

    zero = numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero")
    m = _onnx_model([helper.make_node("Max", ["x0", "zero"], ["y"])], 1, ["y"], ["N", 4], [zero])
    with pytest.raises(UnsupportedLayerError, match=r"Max.*constant"):
        nnfab.convert_from_onnx_model(m, hls_config=CONFIG)


def test_selu_constants_agree_with_the_frameworks() -> None:
    from nnfab.ir.activation_rules import SELU_ALPHA, SELU_SCALE

    torch = pytest.importorskip("torch")
    x = torch.tensor([-1.0], dtype=torch.float64)
    assert math.isclose(float(torch.nn.functional.selu(x)), SELU_SCALE * SELU_ALPHA *
                        math.expm1(-1.0), rel_tol=1e-12)


# ------------------------------------------------------- Keras 2 JSON (no TensorFlow)
def _k2_layer(cls: str, name: str, inbound: list[str], **config: Any) -> dict[str, Any]:
    return {"class_name": cls, "name": name, "config": {"name": name, **config},
            "inbound_nodes": [[[src, 0, 0, {}] for src in inbound]] if inbound else []}


def test_keras2_json_thresholded_relu_elu_hard_sigmoid_and_extrema(tmp_path: Any) -> None:
    import json

    h5py = pytest.importorskip("h5py")
    from nnfab.frontends.keras_json import graph_from_keras_json

    layers = [
        _k2_layer("InputLayer", "a", [], batch_input_shape=[None, 5]),
        _k2_layer("InputLayer", "b", [], batch_input_shape=[None, 5]),
        _k2_layer("ThresholdedReLU", "thr", ["a"], theta=0.5),
        _k2_layer("ELU", "elu", ["a"], alpha=0.4),
        _k2_layer("Activation", "hsig", ["a"], activation="hard_sigmoid"),
        _k2_layer("Maximum", "maxi", ["a", "b"]),
        _k2_layer("Minimum", "mini", ["thr", "b"]),
        _k2_layer("PReLU", "pre", ["a"], shared_axes=None),
    ]
    outs = ["elu", "hsig", "maxi", "mini", "pre"]
    model = {"class_name": "Model", "keras_version": "2.4.0",
             "config": {"name": "m", "layers": layers,
                        "input_layers": [["a", 0, 0], ["b", 0, 0]],
                        "output_layers": [[n, 0, 0] for n in outs]}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(model))
    alpha = np.array([0.25, -0.5, 0.0, 0.75, 1.5], dtype=np.float32)
    with h5py.File(tmp_path / "w.h5", "w") as f:  # Keras 2's weights layout
        f.attrs["layer_names"] = np.array([e["name"].encode() for e in layers])
        f.attrs["keras_version"] = b"2.4.0"
        for e in layers:
            lg = f.create_group(e["name"])
            names = ["pre/alpha:0"] if e["name"] == "pre" else []
            lg.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            if names:
                lg.create_dataset(names[0], data=alpha)
    g = graph_from_keras_json(path, tmp_path / "w.h5")
    assert g.node("thr").attrs == {"function": "thresholded_relu", "theta": 0.5}
    assert g.node("elu").attrs["alpha"] == 0.4
    assert g.node("hsig").attrs["slope"] == 0.2  # Keras 2: clip(0.2 x + 0.5, 0, 1)
    assert (g.node("maxi").attrs["mode"], g.node("mini").attrs["mode"]) == ("maximum",
                                                                            "minimum")
    hm = nnfab.convert_graph(g, CONFIG)
    xa, xb = inputs((300, 5), 30), inputs((300, 5), 31)
    thr = np.where(xa > 0.5, xa, 0.0)
    want = [np.where(xa > 0, xa, 0.4 * np.expm1(xa)), np.clip(0.2 * xa + 0.5, 0, 1),
            np.maximum(xa, xb), np.minimum(thr, xb), np.where(xa >= 0, xa, alpha * xa)]
    check_outputs(hm, hm.predict([xa, xb]), want)
