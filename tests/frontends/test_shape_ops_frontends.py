"""Shape layers and separable convolutions through Keras, PyTorch and ONNX: the emulator
against the framework itself.

These layers only move values, so with inputs (and weights) on the fixed-point grid and
types that hold every value, the emulator must equal the framework's float32 output
exactly (np.array_equal, no tolerance): every value is a small dyadic rational, which
float32 holds exactly and sums exactly.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import FrontendError, UnsupportedLayerError

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Raised inside Keras' own saving code on NumPy 2, not by nnfab.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

EXACT = {"Model": {"Precision": "ap_fixed<24,10>"}}
"""Holds every value below exactly (inputs: multiples of 1/8 in [-8, 8); sums of few
products of such values with weights that are multiples of 1/4)."""


def grid(shape: tuple[int, ...], seed: int = 0, step: float = 1 / 8, n: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(-n, n, size=shape) * step


def ops(model: nnfab.NnfabModel) -> list[str]:
    return [n.op for n in model.graph.nodes]


# ===================================================================== Keras
@pytest.fixture(scope="module")
def keras() -> Any:
    return pytest.importorskip("keras")


def _keras_grid_weights(model: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.integers(-4, 5, size=w.shape) / 4 for w in layer.get_weights()])


@pytest.mark.keras
def test_keras_shape_layers_equal_keras_exactly(keras: Any) -> None:
    L = keras.layers
    inp = keras.Input((6, 5, 3))
    x = L.ZeroPadding2D(((1, 2), (0, 1)))(inp)
    x = L.Cropping2D(((2, 0), (1, 1)))(x)
    x = L.UpSampling2D((2, 3))(x)
    x = L.Permute((2, 1, 3))(x)
    x = L.Reshape((-1, 3))(x)
    x = L.ZeroPadding1D((0, 2))(x)
    x = L.Cropping1D((3, 1))(x)
    x = L.UpSampling1D(2)(x)
    y = L.Permute((2, 1))(x)
    model = keras.Model(inp, y)
    hm = nnfab.convert_from_keras_model(model, EXACT)
    assert ops(hm) == ["Input", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Permute",
                       "Reshape", "ZeroPadding1D", "Cropping1D", "UpSampling1D", "Permute"]
    node = {n.op + str(i): n for i, n in enumerate(hm.graph.nodes)}
    assert node["ZeroPadding2D1"].attrs["pads"] == (1, 2, 0, 1)
    assert node["Cropping2D2"].attrs["crops"] == (2, 0, 1, 1)
    assert node["UpSampling2D3"].attrs["size"] == (2, 3)
    assert node["Permute4"].attrs["perm"] == (1, 0, 2)
    x = grid((16, 6, 5, 3))
    want = np.asarray(model.predict(x, verbose=0))
    got = hm.predict(x)
    assert got.shape == want.shape and np.array_equal(got, want)


def _separable_model(keras: Any, rank: int, **kwargs: Any) -> Any:
    L = keras.layers
    shape = (9, 3) if rank == 1 else (7, 6, 3)
    cls = L.SeparableConv1D if rank == 1 else L.SeparableConv2D
    inp = keras.Input(shape)
    model = keras.Model(inp, cls(4, 3, name="sep", **kwargs)(inp))
    _keras_grid_weights(model, seed=rank)
    return model


@pytest.mark.keras
@pytest.mark.parametrize(("rank", "kwargs"), [
    (2, {"depth_multiplier": 1, "padding": "same", "activation": "relu"}),
    (2, {"depth_multiplier": 2, "strides": 2}),
    (1, {"depth_multiplier": 3, "padding": "same", "use_bias": False}),
    (1, {"depth_multiplier": 1, "strides": 2}),
])
def test_keras_separable_conv_is_depthwise_then_pointwise(keras: Any, rank: int,
                                                          kwargs: dict[str, Any]) -> None:
    model = _separable_model(keras, rank, **kwargs)
    hm = nnfab.convert_from_keras_model(model, EXACT)
    nodes = hm.graph.nodes
    mult = kwargs["depth_multiplier"]
    assert [n.name for n in nodes[1:3]] == ["sep_depthwise", "sep_pointwise"]
    assert [n.op for n in nodes[1:3]] == [f"DepthwiseConv{rank}D", f"Conv{rank}D"]
    assert nodes[1].attrs["depth_multiplier"] == mult
    assert not np.any(nodes[1].weights["bias"])
    assert hm.graph.tensors["sep_depthwise"].shape[-1] == 3 * mult
    assert nodes[2].weights["kernel"].shape == (1,) * rank + (3 * mult, 4)
    if kwargs.get("activation") == "relu":
        assert nodes[-1].op == "Activation" and nodes[-1].inputs == ["sep_pointwise"]
    x = grid((12, *model.input_shape[1:]), seed=3)
    want = np.asarray(model.predict(x, verbose=0))
    assert np.array_equal(hm.predict(x), want)


@pytest.mark.keras
def test_keras_separable_precision_under_node_names_or_layer_type(keras: Any) -> None:
    model = _separable_model(keras, 2, padding="same")
    config = {"Model": {"Precision": "ap_fixed<24,10>"},
              "LayerType": {"SeparableConv2D": {"Precision": {"weight": "ap_fixed<8,3>"}}},
              "LayerName": {"sep_depthwise": {"Precision": {"result": "ap_fixed<6,2,AP_RND,"
                                                                      "AP_SAT>"}}}}
    hm = nnfab.convert_from_keras_model(model, config)
    assert str(hm.graph.tensors["sep_depthwise"].type) == "ap_fixed<6,2,AP_RND,AP_SAT>"
    assert str(hm.graph.tensors["sep_pointwise"].type) == "ap_fixed<24,10>"
    for name in ("sep_depthwise", "sep_pointwise"):
        assert str(hm.graph.node(name).precision["weight"]) == "ap_fixed<8,3>"
    # the narrow depthwise result really is a rounding point: outputs differ from Keras
    x = grid((12, 7, 6, 3), seed=4)
    assert not np.array_equal(hm.predict(x), np.asarray(model.predict(x, verbose=0)))
    assert hm.overflow_report()["sep_depthwise"]["result"] > 0


@pytest.mark.keras
def test_keras_errors_name_layer_and_allowed_values(keras: Any) -> None:
    L = keras.layers
    cases = [
        (L.UpSampling2D(2, interpolation="bilinear", name="up"), (4, 4, 2),
         ["'up'", "interpolation='bilinear'", "'nearest'"]),
        (L.SeparableConv2D(2, 3, dilation_rate=2, name="sep"), (8, 8, 2),
         ["'sep'", "dilation_rate", "1 on every axis"]),
        (L.ZeroPadding2D(1, data_format="channels_first", name="zp"), (2, 4, 4),
         ["'zp'", "data_format", "channels_last"]),
    ]
    for layer, shape, needles in cases:
        inp = keras.Input(shape)
        model = keras.Model(inp, layer(inp))
        with pytest.raises(UnsupportedLayerError) as e:
            nnfab.convert_from_keras_model(model)
        for needle in needles:
            assert needle in str(e.value)


@pytest.mark.keras
def test_keras_file_path_gives_the_same_graph(keras: Any, tmp_path: Any) -> None:
    from nnfab.frontends.loader import graph_from_keras_source

    L = keras.layers
    inp = keras.Input((5, 4, 2))
    x = L.ZeroPadding2D(1)(inp)
    x = L.SeparableConv2D(3, 3, depth_multiplier=2, name="sep")(x)
    x = L.UpSampling2D(2)(x)
    x = L.Cropping2D(((1, 0), (0, 2)))(x)
    model = keras.Model(inp, L.Permute((3, 1, 2))(x))
    path = tmp_path / "m.keras"
    model.save(path)
    live, read = graph_from_keras_source(model), graph_from_keras_source(str(path))
    assert [(n.name, n.op, n.attrs) for n in live.nodes] == [
        (n.name, n.op, n.attrs) for n in read.nodes]


# =================================================================== PyTorch
@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch")


def _torch_run(torch: Any, module: Any, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.tensor(x, dtype=torch.float32)).numpy().astype(np.float64)


def _grid_params(torch: Any, module: Any) -> None:
    gen = np.random.default_rng(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.tensor(gen.integers(-4, 5, size=tuple(p.shape)) / 4))


def _check_torch(torch: Any, module: Any, shape: tuple[int, ...]) -> nnfab.NnfabModel:
    from nnfab.frontends.torch import nchw_to_nhwc, nhwc_to_nchw

    module.eval()
    _grid_params(torch, module)
    hm = nnfab.convert_from_pytorch_model(module, shape, EXACT)
    x = grid((10, *shape), seed=2)
    meta = hm.graph.metadata
    feed = nchw_to_nhwc(x) if meta["input_layouts"]["x"] == "channels_last" else x
    got = hm.predict(feed)
    if meta["output_layouts"][0] == "channels_last":
        got = nhwc_to_nchw(got)
    want = _torch_run(torch, module, x)
    assert got.shape == want.shape and np.array_equal(got, want)
    return hm


def test_torch_padding_and_upsampling_equal_torch_exactly(torch: Any) -> None:
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.zp = nn.ZeroPad2d((1, 0, 2, 1))
            self.cp = nn.ConstantPad2d(1, 0.0)
            self.up = nn.Upsample(scale_factor=2)
            self.up2 = nn.UpsamplingNearest2d(scale_factor=(1, 2))

        def forward(self, x: Any) -> Any:
            y = self.cp(self.zp(x))
            y = F.pad(y, (0, 2), value=0.0)
            y = F.interpolate(y, scale_factor=(3, 1), mode="nearest")
            return self.up2(self.up(y))

    hm = _check_torch(torch, Net(), (2, 4, 3))
    assert ops(hm) == ["Input", "ZeroPadding2D", "ZeroPadding2D", "ZeroPadding2D",
                       "UpSampling2D", "UpSampling2D", "UpSampling2D"]
    assert [n.attrs.get("pads") for n in hm.graph.nodes[1:4]] == [
        (2, 1, 1, 0), (1, 1, 1, 1), (0, 0, 0, 2)]
    assert [n.attrs["size"] for n in hm.graph.nodes[4:]] == [(3, 1), (2, 2), (1, 2)]


def test_torch_1d_padding_and_interpolate_by_size(torch: Any) -> None:
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pad = nn.ZeroPad1d((2, 1))
            self.cpad = nn.ConstantPad1d((0, 3), 0.0)
            self.conv = nn.Conv1d(3, 2, 3)

        def forward(self, x: Any) -> Any:
            y = self.conv(self.cpad(self.pad(x)))
            return F.interpolate(y, size=2 * y.shape[-1], mode="nearest-exact")

    hm = _check_torch(torch, Net(), (3, 6))
    assert ops(hm) == ["Input", "ZeroPadding1D", "ZeroPadding1D", "Conv1D", "UpSampling1D"]


def test_torch_negative_pads_crop(torch: Any) -> None:
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.crop = nn.ZeroPad2d((-1, 0, 0, -2))

        def forward(self, x: Any) -> Any:
            return F.pad(self.crop(x), (0, -1, -1, -1))

    hm = _check_torch(torch, Net(), (2, 6, 5))
    assert ops(hm) == ["Input", "Cropping2D", "Cropping2D"]
    assert [n.attrs["crops"] for n in hm.graph.nodes[1:]] == [(0, 2, 1, 0), (1, 1, 0, 1)]
    with pytest.raises(UnsupportedLayerError, match=r"all >= 0 \(padding\) or all <= 0"):
        nnfab.convert_from_pytorch_model(nn.ZeroPad2d((1, -1, 0, 0)).eval(), (2, 4, 4))


def test_torch_permutes_relabel_or_become_permute_nodes(torch: Any) -> None:
    nn = torch.nn

    class Seq(nn.Module):  # (N, L, C) -> Conv1d -> Linear over channels: no data moves
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(4, 3, 3)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: Any) -> Any:
            return self.fc(torch.transpose(self.conv(x.permute(0, 2, 1)), 1, 2))

    hm = _check_torch(torch, Seq(), (7, 4))
    assert ops(hm) == ["Input", "Conv1D", "Dense"]
    assert hm.graph.metadata["input_layouts"]["x"] == "unchanged"

    class Swap(nn.Module):  # H and W swapped between two convolutions: a real permutation
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(2, 3, 1)
            self.c2 = nn.Conv2d(3, 2, (3, 1))

        def forward(self, x: Any) -> Any:
            return self.c2(torch.permute(self.c1(x), (0, 1, 3, 2)))

    hm = _check_torch(torch, Swap(), (2, 4, 5))
    assert ops(hm) == ["Input", "Conv2D", "Permute", "Conv2D"]
    assert hm.graph.nodes[2].attrs["perm"] == (1, 0, 2)


def test_torch_errors_name_node_and_allowed_values(torch: Any) -> None:
    nn, F = torch.nn, torch.nn.functional

    class Fn(nn.Module):
        def __init__(self, fn: Any) -> None:
            super().__init__()
            self.fn = fn

        def forward(self, x: Any) -> Any:
            return self.fn(x)

    cases = [
        (lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect"), ["mode='reflect'", "'constant'"]),
        (lambda x: F.pad(x, (1, 1), value=1.0), ["value=1.0", "0 (zero padding)"]),
        (lambda x: F.pad(x, (1, 1, 1, 1, 1, 1)), ["spatial axes only"]),
        (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), ["mode='bilinear'"]),
        (lambda x: F.interpolate(x, scale_factor=1.5), ["integer scale factors"]),
        (lambda x: x.permute(1, 0, 2, 3), ["dims", "batch"]),
    ]
    for fn, needles in cases:
        with pytest.raises((UnsupportedLayerError, FrontendError)) as e:
            nnfab.convert_from_pytorch_model(Fn(fn).eval(), (2, 4, 4))
        for needle in needles:
            assert needle in str(e.value), str(e.value)


# ====================================================================== ONNX
@pytest.fixture(scope="module")
def onnx() -> Any:
    return pytest.importorskip("onnx")


def _onnx_model(onnx: Any, nodes: list[Any], inits: dict[str, np.ndarray], in_shape: tuple,
                opset: int = 17) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    arrays = [numpy_helper.from_array(v, k) for k, v in inits.items()]
    graph = helper.make_graph(
        nodes, "shapes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])], arrays)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def _check_onnx(m: Any, in_shape: tuple) -> nnfab.NnfabModel:
    ort = pytest.importorskip("onnxruntime")
    x = grid((8, *in_shape), seed=6).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    hm = nnfab.convert_from_onnx_model(m, EXACT)
    meta = hm.graph.metadata
    feed = np.moveaxis(x, 1, -1) if meta["input_layouts"]["x"] == "channels_last" else x
    got = hm.predict(feed.astype(np.float64))
    if meta["output_layouts"][0] == "channels_last":
        got = np.moveaxis(got, -1, 1)
    assert got.shape == want.shape and np.array_equal(got, want.astype(np.float64))
    return hm


def _i64(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _conv_w(c_out: int, c_in: int, *k: int) -> np.ndarray:
    return (np.random.default_rng(2).integers(-4, 5, size=(c_out, c_in, *k)) / 4).astype(
        np.float32)


def test_onnx_pad_slice_resize_transpose_equal_onnxruntime(onnx: Any) -> None:
    from onnx import helper

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1"),
        helper.make_node("Pad", ["c", "pads"], ["p"], name="pad"),
        helper.make_node("Pad", ["p", "crop"], ["q"], name="negpad"),
        helper.make_node("Slice", ["q", "st", "en", "ax"], ["s"], name="slice"),
        helper.make_node("Resize", ["s", "", "sc"], ["r"], name="resize", mode="nearest"),
        helper.make_node("Resize", ["r", "", "", "sz"], ["r2"], name="resize2", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Transpose", ["r2"], ["t"], name="swap", perm=[0, 1, 3, 2]),
        helper.make_node("Conv", ["t", "w2"], ["y"], name="conv2"),
    ]
    inits = {"w1": _conv_w(3, 2, 1, 1), "w2": _conv_w(2, 3, 1, 1),
             "pads": _i64(0, 0, 1, 2, 0, 0, 0, 1), "crop": _i64(0, 0, 0, -1, 0, 0, -1, 0),
             "st": _i64(1, 0), "en": _i64(-1, 2**62), "ax": _i64(2, 3),
             "sc": np.asarray([1, 1, 2, 3], dtype=np.float32),
             "sz": _i64(8, 3, 8, 42)}
    # (N, 2, 4, 5) -> pad (5, 8) -> crop (4, 7) -> slice (2, 7) -> (4, 21) -> (8, 42) -> swap
    hm = _check_onnx(_onnx_model(onnx, nodes, inits, (2, 4, 5)), (2, 4, 5))
    assert ops(hm) == ["Input", "Conv2D", "ZeroPadding2D", "Cropping2D", "Cropping2D",
                       "UpSampling2D", "UpSampling2D", "Permute", "Conv2D"]
    node = hm.graph.nodes
    assert node[2].attrs["pads"] == (1, 0, 2, 1) and node[3].attrs["crops"] == (0, 1, 1, 0)
    assert node[4].attrs["crops"] == (1, 1, 0, 0) and node[6].attrs["size"] == (2, 2)


def test_onnx_upsample_opset9_and_1d_pad(onnx: Any) -> None:
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Upsample", ["c", "sc"], ["u"], name="up", mode="nearest"),
             helper.make_node("Pad", ["u"], ["y"], name="pad", pads=[0, 0, 2, 0, 0, 1])]
    inits = {"w": _conv_w(2, 3, 1), "sc": np.asarray([1, 1, 3], dtype=np.float32)}
    hm = _check_onnx(_onnx_model(onnx, nodes, inits, (3, 5), opset=9), (3, 5))
    assert ops(hm) == ["Input", "Conv1D", "UpSampling1D", "ZeroPadding1D"]


@pytest.mark.parametrize(("node", "inits", "needles"), [
    (("Pad", ["x", "pads"], {"mode": "reflect"}), {"pads": _i64(0, 0, 1, 1, 0, 0, 1, 1)},
     ["'pad'", "mode='reflect'"]),
    (("Pad", ["x", "pads"], {}), {"pads": _i64(0, 1, 0, 0, 0, 0, 0, 0)},
     ["spatial axes only"]),
    (("Pad", ["x", "pads"], {}), {"pads": _i64(0, 0, 1, -1, 0, 0, 0, 0)},
     ["all >= 0 (padding) or all <= 0"]),
    (("Slice", ["x", "st", "en", "ax", "stp"], {}),
     {"st": _i64(3), "en": _i64(0), "ax": _i64(2), "stp": _i64(-1)}, ["steps", "positive"]),
    (("Resize", ["x", "", "sc"], {"mode": "linear"}),
     {"sc": np.asarray([1, 1, 2, 2], dtype=np.float32)}, ["mode='linear'", "'nearest'"]),
    (("Resize", ["x", "", "sc"], {"mode": "nearest"}),
     {"sc": np.asarray([1, 1, 1.5, 2], dtype=np.float32)}, ["integers >= 1"]),
    (("Resize", ["x", "", "sc"], {"mode": "nearest", "coordinate_transformation_mode":
                                  "align_corners"}),
     {"sc": np.asarray([1, 1, 2, 2], dtype=np.float32)}, ["align_corners", "o // scale"]),
])
def test_onnx_errors_name_node_and_allowed_values(onnx: Any, node: tuple, inits: dict,
                                                  needles: list[str]) -> None:
    from onnx import helper

    op, inputs, attrs = node
    proto = helper.make_node(op, inputs, ["y"], name=op.lower(), **attrs)
    m = _onnx_model(onnx, [proto], inits, (2, 4, 4))
    with pytest.raises(UnsupportedLayerError) as e:
        nnfab.convert_from_onnx_model(m)
    for needle in needles:
        assert needle in str(e.value), str(e.value)


@pytest.mark.keras
@pytest.mark.parametrize("multiplier", [1, 2])
def test_keras_depthwise_conv1d_equals_keras(keras: Any, multiplier: int) -> None:
    inp = keras.Input((8, 3))
    layer = keras.layers.DepthwiseConv1D(3, depth_multiplier=multiplier, padding="same",
                                         name="dw")
    model = keras.Model(inp, layer(inp))
    _keras_grid_weights(model, seed=5)
    hm = nnfab.convert_from_keras_model(model, EXACT)
    assert ops(hm) == ["Input", "DepthwiseConv1D"]
    assert hm.graph.nodes[1].attrs["depth_multiplier"] == multiplier
    x = grid((10, 8, 3), seed=7)
    assert np.array_equal(hm.predict(x), np.asarray(model.predict(x, verbose=0)))


def test_onnx_merge_of_differently_laid_out_inputs_gets_a_permute(onnx: Any) -> None:
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Transpose", ["c"], ["t"], name="swap", perm=[0, 1, 3, 2]),
             helper.make_node("Add", ["c", "t"], ["y"], name="add")]
    hm = _check_onnx(_onnx_model(onnx, nodes, {"w": _conv_w(2, 2, 1, 1)}, (2, 4, 4)), (2, 4, 4))
    assert ops(hm) == ["Input", "Conv2D", "Permute", "Merge"]
