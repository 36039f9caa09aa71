"""Write QKeras reference outputs for nnfab's bit-exactness tests.

Run with the Python of the QKeras venv (see setup.sh), never with nnfab's own:

    .venv-qkeras/bin/python scripts/qkeras_oracle/make_outputs.py OUT_DIR \
        [--models-dir ../shared/models]

For every case it writes into OUT_DIR:
- ``<case>.json`` + ``<case>_weights.h5`` (architecture + weights) and ``<case>.h5``
  (the whole model), for the models built here; the shared ``qkeras_3layer`` model
  is read from ``--models-dir`` and only its outputs are written;
- ``<case>.npz``: ``x`` (the inputs, all values of ``input_type`` or random values of
  it plus edge cases) and ``layer:<name>`` (every layer's output, float32 as QKeras
  computed it);
- ``manifest.json``: per case the files, the input type (an ap_fixed spelling that
  holds every input exactly), and which layers must match bit for bit (``exact``) or
  within a tolerance (``approx``, float layers).

Weights and inputs come from seeded NumPy generators, so two runs write the same
numbers. This script imports TensorFlow and QKeras, never nnfab.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from qkeras import (
    QGRU,
    QLSTM,
    QActivation,
    QBatchNormalization,
    QConv1D,
    QConv2D,
    QDense,
    QDepthwiseConv2D,
    QSimpleRNN,
)
from qkeras.utils import _add_supported_quantized_objects
from tensorflow import keras
from tensorflow.python.ops import array_ops as _array_ops
from tensorflow.python.util import nest as _nest

# QKeras 0.9's QSimpleRNN and QGRU call two TensorFlow names that TF 2.14 moved.
if not hasattr(_nest, "is_sequence"):
    _nest.is_sequence = _nest.is_nested
if not hasattr(_array_ops, "unstack"):
    _array_ops.unstack = tf.unstack

L = keras.layers
SEED = 20240611


# ------------------------------------------------------------------ inputs
def grid_values(width: int, integer: int) -> np.ndarray:
    """Every value of the signed type <width, integer>, ascending."""
    frac = width - integer
    return np.arange(-(2 ** (width - 1)), 2 ** (width - 1), dtype=np.float64) * 2.0**-frac


def random_inputs(
    rng: np.random.Generator, shape: tuple[int, ...], width: int, integer: int, n: int
) -> np.ndarray:
    """``n`` random samples on the grid of <width, integer>, then edge-case rows."""
    frac = width - integer
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    x = rng.integers(lo, hi + 1, size=(n, *shape)).astype(np.float64)
    edges = [
        np.full(shape, 0.0),
        np.full(shape, float(hi)),
        np.full(shape, float(lo)),
        np.where(np.arange(int(np.prod(shape))).reshape(shape) % 2 == 0, hi, lo).astype(float),
        np.full(shape, 1.0),
        np.full(shape, -1.0),
    ]
    return np.concatenate([x, np.stack(edges)]) * 2.0**-frac


def type_text(width: int, integer: int) -> str:
    return f"ap_fixed<{width},{integer}>"


# ----------------------------------------------------------------- weights
def set_weights(model: keras.Model, rng: np.random.Generator) -> None:
    """Deterministic weights: uniform floats, some exactly on rounding ties."""
    for layer in model.layers:
        new = []
        for w in layer.get_weights():
            name_hint = w.shape
            v = rng.uniform(-1.1, 1.1, size=name_hint).astype(np.float32)
            # A tenth of the values sit exactly half-way between two steps of 2**-4.
            ties = rng.random(size=name_hint) < 0.1
            v = np.where(ties, (np.round(v * 16) + 0.5) / 16, v).astype(np.float32)
            new.append(v)
        if isinstance(layer, (L.BatchNormalization, QBatchNormalization)) and new:
            gamma, beta, mean, var = new
            new = [gamma + 1.5, beta, mean, np.abs(var) + 0.5]
        if new:
            layer.set_weights(new)


# ------------------------------------------------------------------- models
def build_qdense_mix() -> keras.Model:
    x_in = keras.Input((10,), name="x")
    x = QDense(12, kernel_quantizer="quantized_bits(4,1,alpha=1)",
               bias_quantizer="quantized_bits(8,3,alpha=1)", name="d1")(x_in)
    x = QActivation("quantized_relu(4,2)", name="a1")(x)
    x = QDense(8, kernel_quantizer="quantized_bits(3,0,symmetric=1,alpha=1)",
               bias_quantizer="quantized_bits(5,2,alpha=1)",
               activation="quantized_bits(6,2,alpha=1)", name="d2")(x)
    x = QDense(8, kernel_quantizer="ternary(alpha=1,threshold=0.5)",
               bias_quantizer="binary(alpha=1)", activation="quantized_tanh(5)", name="d3")(x)
    x = QDense(6, kernel_quantizer="binary(alpha=1)",
               bias_quantizer="quantized_bits(6,2,keep_negative=False,alpha=1)",
               activation="quantized_relu(5,1)", name="d4")(x)
    x = QDense(6, kernel_quantizer="quantized_bits(5,1,keep_negative=False,alpha=1)",
               bias_quantizer="quantized_bits(6,1,symmetric=1,alpha=1)",
               activation="quantized_sigmoid(4)", name="d5")(x)
    x = QDense(5, kernel_quantizer="quantized_po2(4)", bias_quantizer="quantized_po2(5,1)",
               name="d6")(x)
    x = QActivation("quantized_bits(8,3,alpha=1)", name="a6")(x)
    x = QDense(4, kernel_quantizer="binary(use_01=True,alpha=0.5)",
               bias_quantizer="ternary(alpha=2)", name="d7")(x)
    x = QActivation("quantized_tanh(4,symmetric=True)", name="a7")(x)
    return keras.Model(x_in, x, name="qdense_mix")


def build_qconv1d() -> keras.Model:
    x_in = keras.Input((16, 3), name="x")
    x = QConv1D(4, 3, padding="same", kernel_quantizer="quantized_bits(5,0,alpha=1)",
                bias_quantizer="quantized_bits(6,2,alpha=1)",
                activation="quantized_relu(6,1)", name="c1")(x_in)
    x = QConv1D(3, 4, strides=2, padding="same", kernel_quantizer="quantized_bits(4,1,alpha=1)",
                bias_quantizer="quantized_bits(6,2,alpha=1)", name="c2")(x)
    x = QActivation("quantized_bits(8,3,alpha=1)", name="a2")(x)
    x = QConv1D(2, 3, strides=2, padding="valid", kernel_quantizer="quantized_bits(4,1,alpha=1)",
                use_bias=False, activation="quantized_relu(6,2)", name="c3")(x)
    x = L.Flatten(name="flat")(x)
    x = QDense(3, kernel_quantizer="quantized_bits(6,0,alpha=1)",
               bias_quantizer="quantized_bits(6,0,alpha=1)", name="out")(x)
    return keras.Model(x_in, x, name="qconv1d")


def build_qconv2d() -> keras.Model:
    x_in = keras.Input((9, 9, 2), name="x")
    x = QConv2D(3, (3, 3), strides=(2, 2), padding="same",
                kernel_quantizer="quantized_bits(4,0,alpha=1)",
                bias_quantizer="quantized_bits(6,2,alpha=1)", name="c1")(x_in)
    x = QActivation("quantized_relu(5,2)", name="a1")(x)
    x = QDepthwiseConv2D((3, 3), padding="same", depth_multiplier=2,
                         depthwise_quantizer="quantized_bits(4,1,alpha=1)",
                         bias_quantizer="quantized_bits(6,2,alpha=1)",
                         activation="quantized_relu(4,1)", name="dw")(x)
    x = L.MaxPooling2D(2, padding="same", name="pool")(x)
    x = QConv2D(2, (2, 2), padding="valid", kernel_quantizer="quantized_bits(5,1,alpha=1)",
                bias_quantizer="quantized_bits(5,1,alpha=1)",
                activation="quantized_bits(7,3,alpha=1)", name="c2")(x)
    x = L.Flatten(name="flat")(x)
    x = QDense(4, kernel_quantizer="quantized_bits(5,1,alpha=1)",
               bias_quantizer="quantized_bits(5,1,alpha=1)", name="out")(x)
    return keras.Model(x_in, x, name="qconv2d")


ACTIVATIONS = {
    "relu_4_0": "quantized_relu(4,0)",
    "relu_6_2": "quantized_relu(6,2)",
    "relu_3_1": "quantized_relu(3,1)",
    "bits_5_1": "quantized_bits(5,1,alpha=1)",
    "bits_5_1_sym": "quantized_bits(5,1,symmetric=1,alpha=1)",
    "bits_4_2_unsigned": "quantized_bits(4,2,keep_negative=False,alpha=1)",
    "bits_8_3": "quantized_bits(8,3,alpha=1)",
    "bits_2_0": "quantized_bits(2,0,alpha=1)",
    "tanh_4": "quantized_tanh(4)",
    "tanh_5_sym": "quantized_tanh(5,symmetric=True)",
    "sigmoid_5": "quantized_sigmoid(5)",
    "sigmoid_3": "quantized_sigmoid(3)",
    "hard_sigmoid": "hard_sigmoid",
}


def build_qactivations() -> keras.Model:
    x_in = keras.Input((64,), name="x")
    outs = [QActivation(text, name=name)(x_in) for name, text in ACTIVATIONS.items()]
    return keras.Model(x_in, outs, name="qactivations")


def build_qleaky() -> keras.Model:
    x_in = keras.Input((64,), name="x")
    outs = [
        QActivation("quantized_relu(4,1,negative_slope=0.25)", name="leaky_4_1")(x_in),
        QActivation("quantized_relu(6,0,0,0.5)", name="leaky_6_0")(x_in),
    ]
    return keras.Model(x_in, outs, name="qleaky")


def build_keras2_float() -> keras.Model:
    x_in = keras.Input((8, 8, 3), name="x")
    a = L.Conv2D(4, (3, 3), strides=(2, 2), padding="same", name="conv_s2")(x_in)
    a = L.BatchNormalization(name="bn")(a)
    a = L.ReLU(max_value=6.0, name="relu6")(a)
    b = L.DepthwiseConv2D((3, 3), padding="same", depth_multiplier=1, name="dw")(a)
    b = L.LeakyReLU(alpha=0.125, name="leaky")(b)
    c = L.Conv2D(4, (1, 1), activation="relu", name="pw")(a)
    s = L.Add(name="add")([b, c])
    m = L.Concatenate(name="cat")([s, a])
    p = L.MaxPooling2D((2, 2), padding="same", name="maxpool")(m)
    q_ = L.AveragePooling2D((3, 3), strides=(1, 1), padding="same", name="avgpool")(m)
    g = L.GlobalAveragePooling2D(name="gap")(q_)
    f = L.Flatten(name="flat")(p)
    f = L.Dropout(0.5, name="drop")(f)
    d = L.Dense(6, activation="relu", name="fc")(f)
    d = L.Concatenate(name="cat2")([d, g])
    r = L.Reshape((7, 2), name="reshape")(d)
    r = L.Conv1D(3, 2, padding="valid", name="conv1d")(r)
    r = L.Flatten(name="flat2")(r)
    r = L.Subtract(name="sub")([r, L.Dense(18, name="fc_b")(r)])
    out = L.Dense(4, name="logits")(r)
    out = L.Activation("softmax", name="softmax")(out)
    return keras.Model(x_in, out, name="keras2_float")


def build_qbn() -> keras.Model:
    x_in = keras.Input((6,), name="x")
    x = QDense(5, kernel_quantizer="quantized_bits(6,1,alpha=1)",
               bias_quantizer="quantized_bits(6,1,alpha=1)", name="d1")(x_in)
    x = QBatchNormalization(name="qbn")(x)
    x = QActivation("quantized_relu(8,3)", name="a1")(x)
    return keras.Model(x_in, x, name="qbn")


K6 = "quantized_bits(6,0,alpha=1)"
B8 = "quantized_bits(8,2,alpha=1)"


def build_qlstm() -> keras.Model:
    """Two QLSTMs: quantized_tanh / QKeras' hard_sigmoid, state quantizers, sequences."""
    x_in = keras.Input((8, 3), name="x")
    x = QLSTM(5, return_sequences=True, kernel_quantizer=K6, recurrent_quantizer=K6,
              bias_quantizer=B8, state_quantizer="quantized_bits(8,2,alpha=1)",
              activation="quantized_tanh(8)", name="lstm1")(x_in)
    x = QActivation("quantized_bits(8,1,alpha=1)", name="a1")(x)
    x = QLSTM(4, kernel_quantizer=K6, recurrent_quantizer="quantized_bits(5,0,alpha=1)",
              bias_quantizer=B8, state_quantizer="quantized_bits(7,1,alpha=1)",
              activation="quantized_tanh(6)", recurrent_activation="quantized_sigmoid(6)",
              go_backwards=True, name="lstm2")(x)
    x = QDense(3, kernel_quantizer=K6, bias_quantizer=B8, name="out")(x)
    return keras.Model(x_in, x, name="qlstm")


def build_qgru() -> keras.Model:
    """QGRU with reset_after false and true, and a QSimpleRNN head."""
    x_in = keras.Input((7, 4), name="x")
    x = QGRU(5, return_sequences=True, reset_after=False, kernel_quantizer=K6,
             recurrent_quantizer=K6, bias_quantizer=B8,
             state_quantizer="quantized_bits(8,2,alpha=1)", activation="quantized_tanh(7)",
             recurrent_activation="quantized_sigmoid(6)", name="gru1")(x_in)
    x = QActivation("quantized_bits(8,1,alpha=1)", name="a1")(x)
    x = QGRU(4, return_sequences=True, reset_after=True, kernel_quantizer=K6,
             recurrent_quantizer=K6, bias_quantizer=B8,
             state_quantizer="quantized_bits(8,1,alpha=1)", activation="quantized_tanh(8)",
             name="gru2")(x)
    x = QActivation("quantized_bits(8,1,alpha=1)", name="a2")(x)
    x = QSimpleRNN(3, kernel_quantizer=K6, recurrent_quantizer=K6, bias_quantizer=B8,
                   state_quantizer="quantized_bits(8,1,alpha=1)",
                   activation="quantized_tanh(8)", name="rnn")(x)
    return keras.Model(x_in, x, name="qgru")


# --------------------------------------------------------------- running
def layer_outputs(model: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    layers = [lyr for lyr in model.layers if not isinstance(lyr, L.InputLayer)]
    probe = keras.Model(model.inputs, [lyr.output for lyr in layers])
    values = probe.predict(x.astype(np.float32), batch_size=4096, verbose=0)
    if not isinstance(values, list):
        values = [values]
    return {f"layer:{lyr.name}": np.asarray(v) for lyr, v in zip(layers, values, strict=True)}


def save_model_files(model: keras.Model, out: Path, case: str) -> dict[str, str]:
    (out / f"{case}.json").write_text(model.to_json())
    model.save_weights(str(out / f"{case}_weights.h5"))
    model.save(str(out / f"{case}.h5"), save_format="h5")
    return {"json": f"{case}.json", "weights": f"{case}_weights.h5", "h5": f"{case}.h5"}


def write_case(
    out: Path, manifest: dict[str, Any], case: str, model: keras.Model, x: np.ndarray,
    input_type: str, files: dict[str, str], exact: list[str], approx: list[str],
) -> None:
    outputs = layer_outputs(model, x)
    np.savez_compressed(out / f"{case}.npz", x=x, **outputs)
    manifest["cases"][case] = {
        **files, "npz": f"{case}.npz", "input_type": input_type, "exact": exact,
        "approx": approx,
    }
    print(f"{case}: {x.shape[0]} samples, {len(outputs)} layer outputs", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--models-dir", type=Path,
        default=Path(__file__).resolve().parents[3] / "shared" / "models",
    )
    args = parser.parse_args(argv)
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    import qkeras

    manifest: dict[str, Any] = {
        "tensorflow": tf.__version__, "qkeras": qkeras.__version__, "seed": SEED, "cases": {},
    }

    # The shared jet tagger trained with QKeras (Sequential JSON + weights).
    keras_dir = args.models_dir / "keras"
    co: dict[str, Any] = {}
    _add_supported_quantized_objects(co)
    model = keras.models.model_from_json(
        (keras_dir / "qkeras_3layer.json").read_text(), custom_objects=co
    )
    model.load_weights(str(keras_dir / "qkeras_3layer_weights.h5"))
    x = random_inputs(rng, (16,), 12, 4, 2000)
    names = [lyr.name for lyr in model.layers]
    write_case(out, manifest, "qkeras_3layer", model, x, type_text(12, 4),
               {"json": str(keras_dir / "qkeras_3layer.json"),
                "weights": str(keras_dir / "qkeras_3layer_weights.h5")},
               exact=[n for n in names if n != "softmax"], approx=[])

    builders = [
        ("qdense_mix", build_qdense_mix, (10,), (10, 3)),
        ("qconv1d", build_qconv1d, (16, 3), (9, 3)),
        ("qconv2d", build_qconv2d, (9, 9, 2), (8, 3)),
    ]
    for case, build, shape, (width, integer) in builders:
        model = build()
        set_weights(model, rng)
        files = save_model_files(model, out, case)
        x = random_inputs(rng, shape, width, integer, 1000)
        names = [lyr.name for lyr in model.layers if not isinstance(lyr, L.InputLayer)]
        write_case(out, manifest, case, model, x, type_text(width, integer), files,
                   exact=names, approx=[])

    # Activation quantizers on every value of the input type (ties, saturation, zero).
    model = build_qactivations()
    files = save_model_files(model, out, "qactivations")
    x = grid_values(14, 5).reshape(-1, 64)
    write_case(out, manifest, "qactivations", model, x, type_text(14, 5), files,
               exact=list(ACTIVATIONS), approx=[])
    # Leaky quantized relu: exact for inputs >= -2**integer (see docs/frontends.md).
    model = build_qleaky()
    files = save_model_files(model, out, "qleaky")
    x = grid_values(12, 1).reshape(-1, 64)
    write_case(out, manifest, "qleaky", model, x, type_text(12, 1), files,
               exact=["leaky_4_1", "leaky_6_0"], approx=[])

    # Float Keras 2 layers: nnfab with wide types must agree within float32 error.
    model = build_keras2_float()
    set_weights(model, rng)
    files = save_model_files(model, out, "keras2_float")
    x = random_inputs(rng, (8, 8, 3), 10, 3, 200)
    names = [lyr.name for lyr in model.layers if not isinstance(lyr, L.InputLayer)]
    write_case(out, manifest, "keras2_float", model, x, type_text(10, 3), files,
               exact=[], approx=[n for n in names if n not in ("softmax", "drop")])

    # QBatchNormalization runs in float inside QKeras: compared within a tolerance.
    model = build_qbn()
    set_weights(model, rng)
    files = save_model_files(model, out, "qbn")
    x = random_inputs(rng, (6,), 10, 3, 500)
    write_case(out, manifest, "qbn", model, x, type_text(10, 3), files,
               exact=["d1"], approx=["qbn"])

    # QKeras recurrent layers: float arithmetic that is exact for these widths.
    for case, build, shape in (("qlstm", build_qlstm, (8, 3)), ("qgru", build_qgru, (7, 4))):
        model = build()
        set_weights(model, rng)
        files = save_model_files(model, out, case)
        x = random_inputs(rng, shape, 8, 3, 600)
        names = [lyr.name for lyr in model.layers if not isinstance(lyr, L.InputLayer)]
        write_case(out, manifest, case, model, x, type_text(8, 3), files, exact=names,
                   approx=[])

    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {len(manifest['cases'])} cases to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
