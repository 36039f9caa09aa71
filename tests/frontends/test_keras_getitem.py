"""Keras 3 ``x[key]`` in functional models (the ``GetItem`` operation): an IR ``Slice``
(+ ``Reshape`` when integers drop axes), live and from a saved ``.keras`` file.

Oracle: Keras' own float outputs. Types are ``ap_fixed<32,12>`` (20 fractional bits):
each of the at most three casts on a path is off by less than 2**-20 and the weights
are below 1 with at most 24 terms per sum, so the outputs agree within 1e-4, while a
slice one element off moves them by more than 1e-2.
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


def sequence_model() -> Any:
    """(N, 9, 6): a window of steps, a feature range, the last step, one feature, every
    other step from 1."""
    inp = keras.Input((9, 6), name="x")
    h = L.Dense(5, activation="relu", name="proj")(inp)  # (N, 9, 5)
    window = L.Flatten(name="flat")(h[:, 2:6, 1:4])  # (N, 12)
    last = h[:, -1]  # (N, 5)
    feature = h[..., 3]  # (N, 9)
    odd = L.Flatten(name="flat_odd")(h[:, 1::2, ::3])  # (N, 4 * 2)
    out = L.Concatenate(name="cat")([window, last, feature, odd])
    return keras.Model(inp, L.Dense(4, name="head")(out), name="seq")


def image_model() -> Any:
    """A conv feature map: a channel range, then a spatial window of it, then a row."""
    inp = keras.Input((7, 7, 2), name="x")
    y = L.Conv2D(6, 3, name="conv")(inp)  # (N, 5, 5, 6)
    y = y[..., 1:4][:, 1:, :3]  # (N, 4, 3, 3)
    row = y[:, 2]  # (N, 3, 3)
    return keras.Model(inp, L.Dense(2, name="head")(row), name="img")


@pytest.mark.parametrize(("build", "slices"), [
    (sequence_model, [{"begin": (2, 1), "size": (4, 3)}, {"begin": (8, 0), "size": (1, 5)},
                      {"begin": (0, 3), "size": (9, 1)},
                      {"begin": (1, 0), "size": (4, 2), "step": (2, 3)}]),
    (image_model, [{"begin": (0, 0, 1), "size": (5, 5, 3)}, {"begin": (1, 0, 0),
                                                             "size": (4, 3, 3)},
                   {"begin": (2, 0, 0), "size": (1, 3, 3)}]),
])
def test_getitem_equals_keras(build: Any, slices: list[dict], tmp_path: Path) -> None:
    keras.utils.set_random_seed(3)
    model = build()
    uniform_weights(model, 1)
    shape = model.input_shape[1:]
    x = np.random.default_rng(2).uniform(-2, 2, (32, *shape)).astype(np.float32)
    want = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    for source in (model, path):
        hm = nnfab.convert_from_keras_model(source, hls_config=WIDE)
        assert [n.attrs for n in hm.graph.nodes if n.op == "Slice"] == slices
        got = hm.predict(x.astype(np.float64))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


class _Index:
    def __getitem__(self, key: Any) -> Any:
        return key


@pytest.mark.parametrize(("key", "needle"), [
    (_Index()[0:2, :], "the batch axis kept whole"),
    (_Index()[:, ::-1], "slices with positive steps"),
    (_Index()[:, None], "no None / newaxis"),
    (_Index()[:, 0, 1], "at least one sample axis left"),
    (_Index()[:, 3:3], "non-empty ranges"),
])
def test_unsupported_keys_name_the_operation(key: Any, needle: str) -> None:
    inp = keras.Input((4, 3), name="x")
    model = keras.Model(inp, L.Dense(2, name="d")(inp)[key])
    with pytest.raises(UnsupportedLayerError) as e:
        nnfab.convert_from_keras_model(model)
    assert needle in str(e.value) and "GetItem" in str(e.value), str(e.value)


def test_a_key_that_keeps_everything_is_no_slice() -> None:
    inp = keras.Input((4, 3), name="x")
    model = keras.Model(inp, L.Dense(2, name="d")(inp)[:, :, ...])
    uniform_weights(model, 2)
    hm = nnfab.convert_from_keras_model(model, hls_config=WIDE)
    assert "Slice" not in [n.op for n in hm.graph.nodes]
    x = np.random.default_rng(3).uniform(-2, 2, (8, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(hm.predict(x.astype(np.float64)), model.predict(x, verbose=0),
                               atol=1e-4, rtol=0)
