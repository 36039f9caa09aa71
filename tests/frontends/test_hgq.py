"""HGQ2 frontend: nnfab's emulator against HGQ's own Keras forward pass (inference mode).

HGQ's arithmetic is fixed point (float32 holding exact values for these small types), so
the comparisons are ``np.array_equal``; inputs lie on the first quantizer's grid or are
cast by it. Per-element data quantizers are checked against their documented bound.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
hgq = pytest.importorskip("hgq")

from hgq.config import QuantizerConfig  # noqa: E402  (after importorskip)
from hgq.layers import (  # noqa: E402
    QAdd,
    QBatchNormalization,
    QConv1D,
    QConv2D,
    QDense,
    QEinsumDense,
    QGlobalMaxPooling1D,
    QMaximum,
    QMaxPooling2D,
    QMinimum,
    QMultiply,
)
from hgq.quantizer import Quantizer  # noqa: E402

import nnfab  # noqa: E402
from nnfab.errors import UnsupportedLayerError  # noqa: E402
from nnfab.frontends.hgq import hgq_to_graph  # noqa: E402
from nnfab.ir.types import FixedType  # noqa: E402

pytestmark = [
    pytest.mark.keras,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def _iq(i: int, f: int, k: int = 1, rnd: str = "RND", ovf: str = "SAT") -> QuantizerConfig:
    """A per-tensor data quantizer ``fixed<k+i+f, k+i>``."""
    return QuantizerConfig("kif", "datalane", k0=k, i0=i, f0=f, round_mode=rnd,
                           overflow_mode=ovf)


def _randomize_weight_bits(layer: Any, seed: int) -> None:
    """Per-element kernel bit widths (KBI: b in 2..7, i in -1..2), as after HGQ training."""
    rng = np.random.default_rng(seed)
    inner = layer.kq.quantizer
    inner._b.assign(rng.integers(2, 8, inner._b.shape).astype("float32"))
    inner._i.assign(rng.integers(-1, 3, inner._i.shape).astype("float32"))


def _hgq(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x.astype(np.float32), training=False), dtype=np.float64)


def _nnfab(model: Any, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    hm = nnfab.convert_graph(hgq_to_graph(model), None, output_dir=tmp_path / "prj")
    return np.asarray(hm.predict(x), dtype=np.float64)


def _grid(shape: tuple[int, ...], lo: float, hi: float, f: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(lo, hi, shape) * 2.0**f) / 2.0**f


def test_mlp_bit_exact_with_per_element_weights(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    inp = keras.Input((8,))
    fc1 = QDense(6, activation="relu", name="fc1", iq_conf=_iq(2, 3))
    fc2 = QDense(4, name="fc2")  # default data quantizer: WRAP, trained i -> wraps here
    model = keras.Model(inp, fc2(fc1(inp)))
    _randomize_weight_bits(fc1, 0)
    _randomize_weight_bits(fc2, 1)
    x = _grid((300, 8), -6.0, 6.0, 3)  # beyond the iq range: saturation at the input
    ref = _hgq(model, x)
    graph = hgq_to_graph(model)
    # The kernel is HGQ's quantized kernel; its type holds every element's type.
    kernel = graph.node("fc1").weights["kernel"]
    assert np.array_equal(kernel, np.asarray(fc1.qkernel, dtype=np.float64))
    w_type = graph.node("fc1").precision["weight"]
    assert np.array_equal(w_type.quantize(kernel), kernel)
    assert graph.tensors["fc1_iq"].type == FixedType.parse("ap_fixed<6,3,AP_RND,AP_SAT>")
    assert np.array_equal(_nnfab(model, x, tmp_path), ref)
    assert np.any(ref != 0)


def test_trained_model_per_tensor_data_quantizers(tmp_path: Path) -> None:
    """A model after a few epochs of HGQ training, float32 inputs off every grid."""
    from hgq.config import QuantizerConfigScope

    keras.utils.set_random_seed(5)
    with QuantizerConfigScope(place="datalane", homogeneous_axis=None, heterogeneous_axis=()):
        inp = keras.Input((8,))
        hidden = QDense(12, activation="relu", name="fc1")(inp)
        out = QDense(3, name="fc2")(hidden)
    model = keras.Model(inp, out)
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    model.fit(x, rng.normal(size=(256, 3)).astype(np.float32), epochs=2, batch_size=64,
              verbose=0)
    x_test = rng.normal(size=(500, 8)).astype(np.float32).astype(np.float64)
    assert np.array_equal(_nnfab(model, x_test, tmp_path), _hgq(model, x_test))


def test_saved_keras_file(tmp_path: Path) -> None:
    keras.utils.set_random_seed(2)
    inp = keras.Input((5,))
    out = QDense(3, name="fc", iq_conf=_iq(1, 4, rnd="RND_CONV"))(inp)
    model = keras.Model(inp, out)
    path = tmp_path / "m.keras"
    model.save(path)
    x = _grid((100, 5), -2.0, 2.0, 4)
    hm = nnfab.convert_graph(hgq_to_graph(path), None, output_dir=tmp_path / "prj")
    assert np.array_equal(hm.predict(x), _hgq(model, x))
    # the public converter and `nnfab convert` take HGQ files and models as they are
    from nnfab.frontends.keras import _mentions_hgq

    assert _mentions_hgq(path)
    for source in (path, model):
        hm = nnfab.convert_from_keras_model(source, output_dir=tmp_path / "prj2")
        assert np.array_equal(hm.predict(x), _hgq(model, x))
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    assert not _mentions_hgq(tmp_path / "plain.keras")


def test_cnn_batchnorm_merges_bit_exact(tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 2))
    c1 = QConv2D(3, 3, padding="same", strides=2, activation="relu", name="c1",
                 iq_conf=_iq(2, 2))
    x = c1(inp)
    bn = QBatchNormalization(name="bn")
    y = bn(x)
    s = QAdd(name="add")([x, y])
    p = QMultiply(name="mul")([s, y])
    flat = keras.layers.Flatten()(p)
    out = QDense(2, name="fc")(flat)
    model = keras.Model(inp, [out, p, y])  # exact merge / batchnorm outputs compared too
    _randomize_weight_bits(c1, 4)
    bn.moving_mean.assign(np.array([0.3, -0.2, 0.1], np.float32))
    bn.moving_variance.assign(np.array([0.5, 2.0, 1.3], np.float32))
    x_in = _grid((60, 6, 6, 2), -4.0, 4.0, 2)
    hm = nnfab.convert_graph(hgq_to_graph(model), None, output_dir=tmp_path / "prj")
    refs = model(x_in.astype(np.float32), training=False)
    for got, ref in zip(hm.predict(x_in), refs, strict=True):
        assert np.array_equal(got, np.asarray(ref, dtype=np.float64))
        assert np.any(np.asarray(ref) != 0)


def test_max_pooling_and_max_min_merges_bit_exact(tmp_path: Path) -> None:
    keras.utils.set_random_seed(6)
    inp = keras.Input((8, 8, 2))
    pooled = QMaxPooling2D(2, name="pool", iq_conf=_iq(2, 3))(inp)
    conv = QConv2D(2, 3, padding="same", name="c")(pooled)
    hi = QMaximum(name="mx")([pooled, conv])
    lo = QMinimum(name="mn", iq_confs=_iq(1, 1, rnd="TRN"))([pooled, conv])
    seq = keras.layers.Reshape((16, 4))(keras.layers.Concatenate()([hi, lo]))
    out = QGlobalMaxPooling1D(name="gmax")(seq)
    model = keras.Model(inp, out)
    x = _grid((50, 8, 8, 2), -5.0, 5.0, 4)
    ref = _hgq(model, x)
    assert np.array_equal(_nnfab(model, x, tmp_path), ref)
    assert len(np.unique(ref)) > 10
    graph = hgq_to_graph(model)
    concat = next(n for n in graph.nodes if n.op == "Concatenate")
    assert graph.tensors[concat.name].type == FixedType.parse("ap_fixed<9,3>")  # <9,3> and <3,2>


def test_conv1d_bit_exact(tmp_path: Path) -> None:
    keras.utils.set_random_seed(4)
    inp = keras.Input((10, 3))
    conv = QConv1D(4, 3, strides=2, padding="same", activation="relu", name="c",
                   iq_conf=_iq(1, 3, rnd="TRN"))
    model = keras.Model(inp, conv(inp))
    _randomize_weight_bits(conv, 5)  # the exact relu output is the model's output
    x = _grid((80, 10, 3), -3.0, 3.0, 5)  # finer than the iq grid: TRN rounds
    assert np.array_equal(_nnfab(model, x, tmp_path), _hgq(model, x))


@pytest.mark.parametrize("rnd", ["TRN", "RND", "RND_CONV", "TRN_ZERO", "RND_ZERO",
                                 "RND_MIN_INF", "RND_INF", "S_RND"])
@pytest.mark.parametrize(("ovf", "k"), [("SAT", 1), ("SAT_SYM", 1), ("WRAP", 1), ("SAT", 0),
                                        ("WRAP", 0)])
def test_quantizer_modes_on_every_value(rnd: str, ovf: str, k: int, tmp_path: Path) -> None:
    """A standalone Quantizer layer on a fine grid: ties, saturation / wrap, zero."""
    inp = keras.Input((1,))
    out = Quantizer(_iq(1, 2, k=k, rnd=rnd, ovf=ovf), name="q")(inp)
    model = keras.Model(inp, out)
    x = (np.arange(-12 * 8, 12 * 8 + 1) / 16.0).reshape(-1, 1)  # steps of 1/16 over [-6, 6]
    ref = _hgq(model, x)
    assert np.array_equal(_nnfab(model, x, tmp_path), ref)
    assert len(np.unique(ref)) > 4


def test_per_element_input_quantizer_is_bit_exact(tmp_path: Path) -> None:
    """Per-element data bits: an ElementCast, each element in its own type, bit for bit
    (also where the coarsest element rounds and a zero-width one gives 0)."""
    inp = keras.Input((5,))
    q = Quantizer(QuantizerConfig("kif", "datalane", k0=1, i0=2, f0=3, overflow_mode="SAT",
                                  homogeneous_axis=(0,)), name="q")
    model = keras.Model(inp, q(inp))
    f = np.array([1.0, 3.0, 2.0, 0.0, -3.0], np.float32)  # the last: zero width
    q.quantizer._f.assign(f.reshape(1, 5))
    x = _grid((500, 5), -5.5, 5.5, 6)  # beyond the range: saturation too
    graph = hgq_to_graph(model)
    assert graph.node("q").op == "ElementCast"
    got, ref = _nnfab(model, x, tmp_path), _hgq(model, x)
    assert np.array_equal(got, ref)
    assert np.any(got[:, 3] != x[:, 3]) and np.all(got[:, 4] == 0)


def test_unsupported_hgq_layer_names_layer_and_supported() -> None:
    inp = keras.Input((4,))
    out = QEinsumDense("bi,ij->bj", output_shape=3, name="ein")(inp)
    model = keras.Model(inp, out)
    with pytest.raises(UnsupportedLayerError) as e:
        hgq_to_graph(model)
    text = str(e.value)
    assert "'ein'" in text and "QEinsumDense" in text and "QDense" in text and "QAdd" in text


def test_unsupported_overflow_mode_is_named() -> None:
    inp = keras.Input((2,))
    out = Quantizer(_iq(1, 2, ovf="WRAP_SM"), name="qs")(inp)
    with pytest.raises(UnsupportedLayerError, match=r"'qs'.*WRAP_SM.*allowed: WRAP, SAT"):
        hgq_to_graph(keras.Model(inp, out))



def test_float_activation_warns(caplog: pytest.LogCaptureFixture) -> None:
    """HGQ computes tanh in float: nnfab maps it to its table and says it is not bit-exact."""
    inp = keras.Input((3,))
    out = QDense(2, activation="tanh", name="ft", iq_conf=_iq(1, 2))(inp)
    with caplog.at_level(logging.WARNING, logger="nnfab.frontends.hgq"):
        graph = hgq_to_graph(keras.Model(inp, out))
    assert graph.node("ft_tanh").attrs["function"] == "tanh"
    assert "'ft' (QDense)" in caplog.text and "not bit-exact" in caplog.text
    assert graph.tensors["ft_tanh"].type is None  # left to the configuration
