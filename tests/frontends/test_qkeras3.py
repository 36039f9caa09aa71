"""qkeras-v3 (QKeras for Keras 3): live models and ``.keras`` files against qkeras-v3 itself.

qkeras-v3 installs a top-level ``qkeras`` package, as HGQ2 does for its compatibility
layer, so ``scripts/setup.sh`` puts it in a directory of its own (``NNFAB_QKERAS3_DIR``,
default ``~/.cache/nnfab/qkeras3``); it is imported from there when the importable
``qkeras`` is not qkeras-v3.

Why the comparisons are bit for bit: every input lies on a small fixed-point grid and
every quantized weight is a dyadic number with few bits, so each product and partial
sum qkeras-v3 computes in float32 is exact (the widest case below needs 9 fraction
bits and 10 integer bits: 19 significant bits < float32's 24, whatever the summation
order), and its quantizers (power-of-two scalings, round-half-even, clip) are exact on
exact values. nnfab's accumulators and results are ``ap_fixed<40,16>`` (24 fraction
bits, |values| < 2**15): wider than every exact sum, so nnfab computes the same
exact values and the same roundings at the quantizers' casts.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

import nnfab  # noqa: E402
from nnfab.errors import FrontendError, UnsupportedLayerError  # noqa: E402
from nnfab.frontends.keras import keras_to_graph  # noqa: E402
from nnfab.frontends.loader import graph_from_file  # noqa: E402
from nnfab.frontends.qkeras3 import import_qkeras3, quantizer_spec  # noqa: E402
from nnfab.ir import FixedType, Graph, Overflow, Rounding  # noqa: E402

QKERAS3_DIR = Path(os.environ.get("NNFAB_QKERAS3_DIR",
                                  Path.home() / ".cache" / "nnfab" / "qkeras3"))
WIDE = "ap_fixed<40,16>"
N_SAMPLES = 300


def _import_qkeras3() -> tuple[Any, str]:
    """qkeras-v3's module (or None) and why it is missing."""
    side = f"{QKERAS3_DIR} holds no qkeras-v3"
    if "qkeras" not in sys.modules and (QKERAS3_DIR / "qkeras").is_dir():
        sys.path.insert(0, str(QKERAS3_DIR))
        try:  # the directory also holds the wheel's 'tests' package: keep it off sys.path
            import qkeras
        except ImportError as e:
            side = f"qkeras-v3 in {QKERAS3_DIR} does not import ({e})"
        finally:
            sys.path.remove(str(QKERAS3_DIR))
    try:
        import qkeras
    except ImportError as e:
        return None, f"qkeras-v3 is not importable ({e}); run scripts/setup.sh"
    if not hasattr(qkeras, "QDense"):
        return None, (f"the importable 'qkeras' ({qkeras.__file__}) is not qkeras-v3 (HGQ2's "
                      f"compatibility package?) and {side}; run scripts/setup.sh")
    return qkeras, ""


qk3, WHY_MISSING = _import_qkeras3()
needs_qkeras3 = pytest.mark.skipif(qk3 is None, reason=WHY_MISSING)
pytestmark = [
    pytest.mark.keras,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:'(delimitedList|parseString)' deprecated"),  # qkeras-v3
]


# ------------------------------------------------------------------ helpers
def _randomize(model: Any, seed: int) -> None:
    """Weights spread over [-1.2, 1.2] (so that quantizers also clip some of them)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-1.2, 1.2, tuple(w.shape)).astype("float32"))


def _grid_inputs(shape: tuple[int, ...], frac: int, integer: int, seed: int) -> np.ndarray:
    """Random values of ``ap_fixed<frac + integer, integer>`` (every value exact in float32)."""
    rng = np.random.default_rng(seed)
    top = 2 ** (frac + integer - 1)
    x = rng.integers(-top, top, (N_SAMPLES, *shape)).astype(np.float64) * 2.0**-frac
    x[0], x[1] = (top - 1) * 2.0**-frac, -top * 2.0**-frac  # the extremes
    return x


def _convert(model_or_path: Any, input_type: str) -> Any:
    graph = keras_to_graph(model_or_path)
    cfg = {"Model": {"Precision": WIDE},
           "LayerName": {graph.inputs[0]: {"Precision": {"result": input_type}}}}
    return nnfab.convert_from_keras_model(model_or_path, cfg)


def _assert_bit_exact(model: Any, x: np.ndarray, input_type: str) -> Any:
    assert np.array_equal(FixedType.parse(input_type).quantize(x), x)
    converted = _convert(model, input_type)
    want = np.asarray(model.predict(x.astype(np.float32), verbose=0), dtype=np.float64)
    got = np.asarray(converted.predict(x, warn_overflow=False)).reshape(want.shape)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (
        f"{len(bad)} of {want.size} outputs differ from qkeras-v3, first at {bad[0].tolist()}: "
        f"nnfab {got[tuple(bad[0])]!r}, qkeras-v3 {want[tuple(bad[0])]!r}"
    )
    assert np.unique(want).size > 4  # the test exercises more than a few values
    return converted


def _assert_weights_are_qkeras(graph: Graph, model: Any) -> None:
    """Each converted weight equals qkeras-v3's own quantizer applied to the float weight."""
    for layer in model.layers:
        for attr, key in (("kernel", "kernel"), ("bias", "bias")):
            if attr == "kernel" and hasattr(layer, "depthwise_kernel"):
                attr = "depthwise_kernel"
            quantizer = getattr(layer, f"{attr.split('_')[0]}_quantizer_internal", None)
            if quantizer is None:
                continue
            want = np.asarray(quantizer(getattr(layer, attr)), dtype=np.float64)
            got = graph.node(layer.name).weights[key]
            assert np.array_equal(got.reshape(want.shape), want), (layer.name, attr)


def _node_summary(graph: Graph) -> list[tuple[Any, ...]]:
    return [(n.name, n.op, n.source_class, n.attrs, n.precision, graph.tensors[n.name].type)
            for n in graph.nodes]


def _sat(width: int, integer: int, signed: bool = True, sym: bool = False) -> FixedType:
    overflow = Overflow.SAT_SYM if sym else Overflow.SAT
    return FixedType(width, integer, signed, Rounding.RND_CONV, overflow)


# ------------------------------------------------------------------- models
def _dense_model() -> Any:
    q = qk3
    x = keras.Input((8,), name="x")
    h = q.QDense(6, kernel_quantizer=q.quantized_bits(6, 0, alpha=1),
                 bias_quantizer=q.quantized_bits(6, 0, alpha=1), name="fc1")(x)
    h = q.QActivation(q.quantized_relu(4, 2), name="relu1")(h)
    h = q.QDense(4, kernel_quantizer="quantized_bits(6,0,alpha=1)",
                 bias_quantizer="quantized_bits(6,0,alpha=1)",
                 activation="quantized_bits(8,3,alpha=1)", name="fc2")(h)
    model = keras.Model(x, h, name="qdense3")
    _randomize(model, 1)
    return model


def _conv_model() -> Any:
    q = qk3
    x = keras.Input((6, 6, 2), name="img")
    h = q.QConv2D(3, (3, 3), kernel_quantizer=q.quantized_bits(4, 0, alpha=1),
                  bias_quantizer=q.quantized_bits(4, 0, alpha=1),
                  activation=q.quantized_relu(3, 1), name="conv")(x)
    h = keras.layers.Flatten(name="flat")(h)
    h = q.QDense(4, kernel_quantizer=q.quantized_bits(6, 1, alpha=1),
                 bias_quantizer=q.quantized_bits(6, 1, alpha=1), name="fc")(h)
    h = q.QActivation(q.quantized_bits(6, 2, symmetric=1, alpha=1), name="out")(h)
    model = keras.Model(x, h, name="qconv")
    _randomize(model, 2)
    return model


def _po2_model() -> Any:
    q = qk3
    x = keras.Input((8,), name="x")
    h = q.QDense(6, kernel_quantizer=q.quantized_bits(4, 0, keep_negative=False, alpha=1),
                 bias_quantizer=q.quantized_po2(4), name="fc1")(x)
    h = q.QActivation(q.quantized_bits(5, 2, keep_negative=False, alpha=1), name="u")(h)
    h = q.QDense(4, kernel_quantizer=q.quantized_po2(4),
                 bias_quantizer=q.quantized_bits(6, 2, alpha=1), name="fc2")(h)
    h = q.QActivation(q.quantized_tanh(4), name="tanh")(h)
    model = keras.Model(x, h, name="qpo2")
    _randomize(model, 3)
    return model


def _conv1d_sigmoid_model() -> Any:
    q = qk3
    x = keras.Input((10, 2), name="seq")
    h = q.QConv1D(3, 3, kernel_quantizer=q.quantized_bits(5, 0, alpha=1),
                  bias_quantizer=q.quantized_bits(5, 0, alpha=1),
                  activation=q.quantized_sigmoid(4), name="c1")(x)
    model = keras.Model(x, h, name="qconv1d")
    _randomize(model, 4)
    return model


def _depthwise_model() -> Any:
    q = qk3
    x = keras.Input((5, 5, 2), name="img")
    h = q.QDepthwiseConv2D((3, 3), depthwise_quantizer=q.quantized_bits(4, 0, alpha=1),
                           bias_quantizer=q.quantized_bits(4, 0, alpha=1), name="dw")(x)
    h = q.QActivation("hard_sigmoid", name="hs")(h)  # QKeras' own: clip(x/2 + 1/2, 0, 1)
    model = keras.Model(x, h, name="qdepthwise")
    _randomize(model, 5)
    return model


def _binary_ternary_model() -> Any:
    q = qk3
    x = keras.Input((8,), name="x")
    h = q.QDense(5, kernel_quantizer=q.binary(alpha=1),
                 bias_quantizer=q.quantized_bits(4, 1, alpha=1), name="bin")(x)
    h = q.QActivation("relu", name="r")(h)
    h = q.QDense(3, kernel_quantizer=q.ternary(alpha=1),
                 bias_quantizer=q.quantized_bits(4, 1, alpha=1), name="ter")(h)
    h = q.QActivation(q.quantized_bits(6, 3, alpha=1), name="o")(h)
    model = keras.Model(x, h, name="qbinter")
    _randomize(model, 6)
    return model


# -------------------------------------------------------------------- tests
@needs_qkeras3
def test_qdense_types_weights_and_bit_exact() -> None:
    model = _dense_model()
    converted = _assert_bit_exact(model, _grid_inputs((8,), 5, 3, seed=10), "ap_fixed<8,3>")
    g = keras_to_graph(model)
    assert [(n.name, n.op, n.source_class) for n in g.nodes] == [
        ("x", "Input", "InputLayer"), ("fc1", "Dense", "QDense"),
        ("relu1", "Activation", "QActivation"), ("fc2", "Dense", "QDense"),
        ("fc2_quantized_bits", "Activation", "QActivation")]
    six_bits = FixedType(6, 1, True)  # quantized_bits(6,0): sign + 5 fraction bits
    for name in ("fc1", "fc2"):
        assert g.node(name).precision == {"weight": six_bits, "bias": six_bits}
        assert g.node(name).attrs["kernel_quantizer"] == "quantized_bits(6, 0, alpha=1)"
    assert g.node("relu1").attrs == {"function": "relu", "quantizer": "quantized_relu(4, 2)"}
    assert g.tensors["relu1"].type == _sat(4, 2, signed=False)
    assert g.tensors["fc2_quantized_bits"].type == _sat(8, 4)
    _assert_weights_are_qkeras(g, model)
    out = converted.graph.tensors[converted.graph.outputs[0]].type
    assert out == _sat(8, 4)  # the explicit types survive the configuration


@needs_qkeras3
def test_qconv2d_types_weights_and_bit_exact() -> None:
    model = _conv_model()
    _assert_bit_exact(model, _grid_inputs((6, 6, 2), 4, 2, seed=11), "ap_fixed<6,2>")
    g = keras_to_graph(model)
    assert [(n.name, n.op) for n in g.nodes] == [
        ("img", "Input"), ("conv", "Conv2D"), ("conv_quantized_relu", "Activation"),
        ("flat", "Flatten"), ("fc", "Dense"), ("out", "Activation")]
    assert g.node("conv").precision == {"weight": FixedType(4, 1), "bias": FixedType(4, 1)}
    assert g.tensors["conv_quantized_relu"].type == _sat(3, 1, signed=False)
    assert g.node("fc").precision == {"weight": FixedType(6, 2), "bias": FixedType(6, 2)}
    assert g.tensors["out"].type == _sat(6, 3, sym=True)
    _assert_weights_are_qkeras(g, model)


@needs_qkeras3
def test_keep_negative_po2_tanh_types_and_bit_exact() -> None:
    model = _po2_model()
    _assert_bit_exact(model, _grid_inputs((8,), 5, 3, seed=12), "ap_fixed<8,3>")
    g = keras_to_graph(model)
    fc1, fc2 = g.node("fc1"), g.node("fc2")
    assert fc1.precision["weight"] == FixedType(4, 0, False)  # 4 fraction bits, no sign
    assert g.tensors["u"].type == _sat(5, 2, signed=False)
    assert g.tensors["tanh"].type == _sat(4, 1)
    assert fc2.precision["bias"] == FixedType(6, 3)
    # po2 weights: the narrowest type holding the values present, here +-2**-4 .. +-1
    for node, key in ((fc1, "bias"), (fc2, "weight")):
        values = node.weights["bias" if key == "bias" else "kernel"]
        t = node.precision[key]
        assert np.array_equal(t.quantize(values), values), (node.name, key, t)
        magnitudes = np.abs(values)
        assert np.array_equal(np.exp2(np.round(np.log2(magnitudes))), magnitudes)
    _assert_weights_are_qkeras(g, model)


@needs_qkeras3
def test_conv1d_depthwise_binary_ternary_bit_exact() -> None:
    model = _conv1d_sigmoid_model()
    _assert_bit_exact(model, _grid_inputs((10, 2), 4, 2, seed=14), "ap_fixed<6,2>")
    g = keras_to_graph(model)
    assert g.node("c1").precision == {"weight": FixedType(5, 1), "bias": FixedType(5, 1)}
    assert g.tensors["c1_quantized_sigmoid"].type == _sat(4, 0, signed=False)
    _assert_weights_are_qkeras(g, model)

    model = _depthwise_model()
    _assert_bit_exact(model, _grid_inputs((5, 5, 2), 4, 2, seed=15), "ap_fixed<6,2>")
    g = keras_to_graph(model)
    assert g.node("dw").precision == {"weight": FixedType(4, 1), "bias": FixedType(4, 1)}
    assert g.node("hs").attrs == {"function": "hard_sigmoid", "slope": 0.5, "offset": 0.5}
    _assert_weights_are_qkeras(g, model)

    model = _binary_ternary_model()
    _assert_bit_exact(model, _grid_inputs((8,), 5, 3, seed=16), "ap_fixed<8,3>")
    g = keras_to_graph(model)
    assert g.node("bin").precision["weight"] == FixedType(2, 2)  # +-1
    assert g.node("ter").precision["weight"] == FixedType(2, 2)  # -1, 0, 1
    assert set(np.unique(g.node("ter").weights["kernel"])) == {-1.0, 0.0, 1.0}
    assert g.node("r").attrs == {"function": "relu"}
    _assert_weights_are_qkeras(g, model)


@needs_qkeras3
@pytest.mark.parametrize("build", [_dense_model, _conv_model, _po2_model])
def test_keras_file_matches_live_model(build: Any, tmp_path: Path) -> None:
    model = build()
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    live, loaded = keras_to_graph(model), graph_from_file(path)  # the CLI's path
    assert _node_summary(loaded) == _node_summary(live)
    for a, b in zip(live.nodes, loaded.nodes, strict=True):
        assert a.weights.keys() == b.weights.keys()
        for key in a.weights:
            assert np.array_equal(a.weights[key], b.weights[key]), (a.name, key)
    shape = tuple(live.tensors[live.inputs[0]].shape)
    x = _grid_inputs(shape, 4, 2, seed=13)
    want = _convert(model, "ap_fixed<6,2>").predict(x, warn_overflow=False)
    got = _convert(path, "ap_fixed<6,2>").predict(x, warn_overflow=False)
    assert np.array_equal(got, want)
    assert np.array_equal(np.reshape(got, (N_SAMPLES, -1)),
                          np.reshape(model.predict(x.astype(np.float32), verbose=0),
                                     (N_SAMPLES, -1)))


@needs_qkeras3
def test_reloaded_hard_sigmoid_is_refused(tmp_path: Path) -> None:
    """qkeras-v3 saves QActivation("hard_sigmoid") by name; Keras reloads its own function."""
    model = _depthwise_model()
    path = tmp_path / "hs.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    x = _grid_inputs((5, 5, 2), 4, 2, seed=17).astype(np.float32)
    assert not np.array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(UnsupportedLayerError, match=r"layer 'hs' \(QActivation\).*Keras' own"):
        graph_from_file(path)


@needs_qkeras3
def test_unsupported_qkeras3_models_are_refused() -> None:
    q = qk3
    x = keras.Input((4,))
    # qkeras-v3 turns alpha=None on a kernel quantizer into the trained scale 'auto_po2'
    auto = keras.Model(x, q.QDense(2, kernel_quantizer=q.quantized_bits(4, 0), name="d")(x))
    with pytest.raises(UnsupportedLayerError, match=r"layer 'd' \(QDense\).*auto_po2"):
        keras_to_graph(auto)
    img = keras.Input((4, 4, 1))
    pool = keras.Model(img, q.QAveragePooling2D(name="p")(img))
    with pytest.raises(UnsupportedLayerError, match=r"QAveragePooling2D.*supported qkeras layers"):
        keras_to_graph(pool)
    hard = keras.Model(x, q.QDense(2, kernel_quantizer=q.quantized_bits(4, 0, alpha=1),
                                   activation=keras.activations.hard_sigmoid, name="h")(x))
    with pytest.raises(UnsupportedLayerError, match="Keras' own hard_sigmoid"):
        keras_to_graph(hard)


def test_quantizer_spec_keeps_the_table_parameters() -> None:
    where = "layer 'd' (QDense) kernel_quantizer"
    serialized = {"module": "qkeras.quantizers", "class_name": "quantized_bits",
                  "config": {"bits": 6, "integer": np.int64(0), "alpha": 1,
                             "post_training_scale": None},
                  "registered_name": "qkeras>quantized_bits"}
    assert quantizer_spec(serialized, where) == {
        "class_name": "quantized_bits", "config": {"bits": 6, "integer": 0, "alpha": 1}}
    serialized["config"]["post_training_scale"] = [0.5]
    with pytest.raises(UnsupportedLayerError, match="post_training_scale"):
        quantizer_spec(serialized, where)
    assert quantizer_spec("quantized_relu(4,2)", where) == "quantized_relu(4,2)"
    assert quantizer_spec(None, where) is None


def test_hgq_compatibility_qkeras_is_not_taken_for_qkeras3(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("qkeras")  # HGQ2's 'qkeras' has quantizers but no QDense
    fake.__file__ = "/site-packages/qkeras/__init__.py"
    monkeypatch.setitem(sys.modules, "qkeras", fake)
    with pytest.raises(FrontendError, match=r"is not qkeras-v3.*pip install --no-deps qkeras-v3"):
        import_qkeras3()
