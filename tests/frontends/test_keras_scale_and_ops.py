"""Keras ``Rescaling``, ``Normalization``, ``Identity``, ``RepeatVector``, global pooling
with ``keepdims``,
the gated activations (silu / swish, hard_silu / hard_swish, gelu) and the ``keras.ops``
arithmetic of functional models (``x * 2.0``, ``x + y``, ...).

Oracle: Keras' own float outputs. Types are ``ap_fixed<32,12>`` (20 fractional bits).
Scale/shift/pool/arithmetic paths: each cast is off by less than 2**-20 and the weights
are below 1 with at most 16 terms per sum, so the outputs agree within 1e-4 (a wrong
scale or offset moves them by more than 1e-2). hard_silu's slope 1/6 is cast to the
``param`` type (14 fractional bits): off by at most |x|**2 * 2**-15 < 1e-2 for |x| < 16.
silu's sigmoid gate is a table whose error is below 2**-8, so silu is off by at most
|x| * 2**-8 < 0.05 for |x| < 12; gelu's normal CDF gate (bins of 2**-7, slope below 0.4)
is off by less than 2**-9, so gelu is too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from keras_prelude import KERAS_MARKS, WIDE, L, keras
from ladder import uniform_weights

import nnfab
from nnfab.errors import UnsupportedLayerError

pytestmark = KERAS_MARKS


def _check(model: Any, atol: float, tmp_path: Path | None = None) -> nnfab.NnfabModel:
    x = np.random.default_rng(2).uniform(-2, 2, (32, *model.input_shape[1:])).astype(
        np.float32)
    want = model.predict(x, verbose=0)
    sources: list[Any] = [model]
    if tmp_path is not None:
        model.save(tmp_path / "m.keras")
        sources.append(tmp_path / "m.keras")
    for source in sources:
        hm = nnfab.convert_from_keras_model(source, hls_config=WIDE)
        got = hm.predict(x.astype(np.float64))
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)
    return hm


def test_rescaling_normalization_identity(tmp_path: Path) -> None:
    inp = keras.Input((5, 3), name="x")
    y = L.Rescaling(0.5, offset=-0.25, name="rescale")(inp)
    y = L.Rescaling([1.0, 2.0, -1.5], name="per_channel")(y)
    y = L.Normalization(mean=[0.1, -0.2, 0.3], variance=[4.0, 0.25, 2.0], name="norm")(y)
    y = L.Identity(name="same")(y)
    model = keras.Model(inp, L.Dense(2, name="head")(L.Flatten()(y)))
    uniform_weights(model, 1, trainable_only=True)
    hm = _check(model, 1e-4, tmp_path)
    norm = hm.graph.node("norm")
    assert norm.op == "BatchNormalization"
    np.testing.assert_allclose(norm.weights["scale"], [0.5, 2.0, 2.0**-0.5])
    assert "same" not in [n.name for n in hm.graph.nodes]  # a pass-through, removed


def test_normalization_floors_the_deviation_at_keras_epsilon() -> None:
    inp = keras.Input((2,), name="x")
    model = keras.Model(inp, L.Normalization(mean=[0.0, 0.0], variance=[1e-16, 9.0],
                                                  name="n")(inp))
    hm = nnfab.convert_from_keras_model(model)
    np.testing.assert_allclose(hm.graph.node("n").weights["scale"], [1e7, 1 / 3])


def test_normalization_adapted_to_data() -> None:
    inp = keras.Input((4,), name="x")
    norm = L.Normalization(name="norm")
    norm.adapt(np.random.default_rng(0).normal(3.0, 2.0, (200, 4)).astype(np.float32))
    model = keras.Model(inp, L.Dense(3, name="head")(norm(inp)))
    uniform_weights(model, 2, trainable_only=True)
    hm = _check(model, 1e-4)
    assert hm.graph.node("norm").op == "BatchNormalization"


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("rank", [1, 2])
def test_global_pooling_with_keepdims(rank: int, keepdims: bool) -> None:
    shape = (6, 3) if rank == 1 else (5, 5, 3)
    conv = L.Conv1D if rank == 1 else L.Conv2D
    pool = L.GlobalAveragePooling1D if rank == 1 else L.GlobalMaxPooling2D
    inp = keras.Input(shape, name="x")
    y = pool(keepdims=keepdims, name="pool")(conv(4, 3, name="conv")(inp))
    model = keras.Model(inp, L.Dense(2, name="head")(L.Flatten(name="flat")(y)))
    uniform_weights(model, 3, trainable_only=True)
    hm = _check(model, 1e-4)
    assert hm.graph.node("pool").op == ("Reshape" if keepdims else f"GlobalPooling{rank}D")


@pytest.mark.parametrize(("activation", "gate", "atol"), [
    ("silu", "sigmoid", 0.05), ("swish", "sigmoid", 0.05),
    ("hard_silu", "hard_sigmoid", 1e-2), ("hard_swish", "hard_sigmoid", 1e-2),
    ("gelu", "normal_cdf", 0.05),
])
def test_gated_activations(activation: str, gate: str, atol: float) -> None:
    inp = keras.Input((6,), name="x")
    y = L.Dense(8, activation=activation, name="fc")(inp)
    y = L.Activation(activation, name="act")(L.Dense(8, name="fc2")(y))
    model = keras.Model(inp, L.Dense(2, name="head")(y))
    rng = np.random.default_rng(4)
    for layer in model.layers:  # large enough for the hard gate to saturate at +-3
        layer.set_weights([rng.uniform(-2, 2, w.shape) for w in layer.get_weights()])
    hm = _check(model, atol)
    gates = [n for n in hm.graph.nodes if n.name.endswith("_gate")]
    assert [g.attrs["function"] for g in gates] == [gate, gate]
    assert hm.graph.node("act").op == "Merge"


def test_arithmetic_operations(tmp_path: Path) -> None:
    inp = keras.Input((5,), name="x")
    a = L.Dense(5, name="a")(inp)
    b = L.Dense(5, name="b")(inp)
    y = (a * 2.0 + b) - 0.5 * (1.0 - a * b) / 4
    model = keras.Model(inp, L.Dense(3, name="head")(y - b))
    uniform_weights(model, 5, trainable_only=True)
    hm = _check(model, 1e-4, tmp_path)
    merges = sorted(n.attrs["mode"] for n in hm.graph.nodes if n.op == "Merge")
    assert merges == ["add", "multiply", "subtract", "subtract"]
    assert sum(n.op == "BatchNormalization" for n in hm.graph.nodes) == 4


@pytest.mark.parametrize(("build", "needle"), [
    (lambda a, b: a / b, "a tensor and a number"),
    (lambda a, b: a + b[:, :1], "equal shapes"),
    (lambda a, b: 2.0 / a, "a tensor divided by a nonzero number"),
])
def test_unsupported_arithmetic_names_the_operation(build: Any, needle: str) -> None:
    inp = keras.Input((5,), name="x")
    a, b = L.Dense(5, name="a")(inp), L.Dense(5, name="b")(inp)
    model = keras.Model(inp, build(a, b))
    with pytest.raises(UnsupportedLayerError) as e:
        nnfab.convert_from_keras_model(model)
    assert needle in str(e.value), str(e.value)


def test_repeat_vector() -> None:
    inp = keras.Input((4,), name="x")
    y = L.RepeatVector(3, name="rep")(L.Dense(5, name="fc")(inp))  # (N, 3, 5)
    model = keras.Model(inp, L.Dense(2, name="head")(y))
    uniform_weights(model, 6, trainable_only=True)
    hm = _check(model, 1e-4)
    rep = hm.graph.node("rep")
    assert (rep.op, rep.attrs["size"]) == ("UpSampling1D", (3,))
