"""Keras float models vs the emulator with wide types: agreement within the types' bound.

With 40-bit types (24 fractional bits, round-to-nearest) the only differences from float
are the weight/activation roundings (~2**-25 each, amplified by the weights) and, for
sigmoid/tanh/softmax, the lookup tables, whose error is bounded by the table step times
the function's largest slope plus half an entry lsb.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import nnfab  # noqa: E402

WIDE = "ap_fixed<40,16,AP_RND_CONV,AP_SAT>"
LINEAR_TOL = 1e-4  # >> the 2**-24 roundings times weight sums; << any real mismatch
SIGMOID_TOL = 0.25 * 16 / 1024 + 2.0**-17 + LINEAR_TOL
TANH_TOL = 1.0 * 8 / 1024 + 2.0**-16 + LINEAR_TOL


def _compare(model: keras.Model, x: np.ndarray, tol: float) -> None:
    cfg = nnfab.config_from_keras_model(model, default_precision=WIDE)
    hm = nnfab.convert_from_keras_model(model, hls_config=cfg)
    expected = np.asarray(model(x, training=False), dtype=np.float64)
    got = hm.predict(x)
    assert got.shape == expected.shape
    err = np.max(np.abs(got - expected))
    assert err < tol, f"max error {err} exceeds {tol}"
    assert not any(sum(v.values()) for v in hm.overflow_report().values())


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(1)


def test_cnn_2d_same_valid_strides_pooling_batchnorm() -> None:
    inp = keras.Input((11, 10, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(5, (2, 3), padding="valid")(x)
    x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.DepthwiseConv2D(2, depth_multiplier=2, padding="same")(x)
    x = keras.layers.AveragePooling2D(2, strides=1)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3)(x))
    bn = model.layers[2]
    bn.set_weights([w + np.random.default_rng(0).uniform(0.1, 0.5, w.shape)
                    for w in bn.get_weights()])
    _compare(model, np.random.default_rng(2).normal(size=(64, 11, 10, 3)), LINEAR_TOL)


def test_conv_1d_pooling_and_global_max() -> None:
    inp = keras.Input((20, 4))
    x = keras.layers.Conv1D(6, 5, strides=2, padding="same", activation="relu")(inp)
    x = keras.layers.AveragePooling1D(3, padding="same")(x)
    x = keras.layers.Conv1D(3, 2)(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    model = keras.Model(inp, x)
    _compare(model, np.random.default_rng(3).normal(size=(64, 20, 4)), LINEAR_TOL)


def test_merges_concat_flatten_reshape() -> None:
    a, b = keras.Input((6,)), keras.Input((6,))
    s = keras.layers.Add()([keras.layers.Dense(6)(a), b])
    d = keras.layers.Subtract()([s, b])
    m = keras.layers.Multiply()([d, keras.layers.Dense(6)(b)])
    v = keras.layers.Average()([m, s])
    c = keras.layers.Concatenate()([v, a])
    r = keras.layers.Reshape((3, 4))(c)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(r))
    model = keras.Model([a, b], out)
    rng = np.random.default_rng(4)
    xa, xb = rng.normal(size=(64, 6)), rng.normal(size=(64, 6))
    cfg = nnfab.config_from_keras_model(model, default_precision=WIDE)
    hm = nnfab.convert_from_keras_model(model, hls_config=cfg)
    expected = np.asarray(model([xa, xb], training=False), dtype=np.float64)
    assert np.max(np.abs(hm.predict([xa, xb]) - expected)) < LINEAR_TOL


@pytest.mark.parametrize(("act", "tol"), [("sigmoid", SIGMOID_TOL), ("tanh", TANH_TOL),
                                          ("hard_sigmoid", LINEAR_TOL), ("relu6", LINEAR_TOL),
                                          ("leaky_relu", LINEAR_TOL)])
def test_activations(act: str, tol: float) -> None:
    inp = keras.Input((8,))
    x = keras.layers.Dense(16)(inp)
    x = keras.layers.Activation(act)(x)
    model = keras.Model(inp, x)
    x_in = np.random.default_rng(5).normal(0, 2, size=(256, 8))
    _compare(model, x_in, tol)
