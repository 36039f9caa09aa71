"""The same network written in Keras and in PyTorch (weights copied across), and the
PyTorch one exported to ONNX, becomes the same IR (ops, attributes, weights, types)
and gives identical emulator outputs.

For the CNN, PyTorch flattens (C, H, W) and Keras (H, W, C): the PyTorch Linear weight
is the Keras kernel with its rows reordered, and the PyTorch frontend must undo exactly
that reordering.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

import nnfab  # noqa: E402
from nnfab.frontends.torch import nchw_to_nhwc  # noqa: E402

pytestmark = pytest.mark.keras

PRECISIONS = ["ap_fixed<16,6>", "ap_fixed<40,16,AP_RND_CONV,AP_SAT>"]


def _tensor(a: np.ndarray) -> Any:
    return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))


def _mlp_pair() -> tuple[Any, Any]:
    keras.utils.set_random_seed(3)
    inp = keras.Input((16,))
    x = keras.layers.Dense(32, activation="relu")(inp)
    x = keras.layers.Dense(16, activation="relu")(x)
    out = keras.layers.Dense(5, activation="softmax")(x)
    kmodel = keras.Model(inp, out)
    tmodel = torch.nn.Sequential(
        torch.nn.Linear(16, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 5),
        torch.nn.Softmax(dim=1),
    )
    dense = [layer for layer in kmodel.layers if isinstance(layer, keras.layers.Dense)]
    linear = [m for m in tmodel if isinstance(m, torch.nn.Linear)]
    for d, lin in zip(dense, linear, strict=True):
        kernel, bias = (np.asarray(w) for w in d.get_weights())
        lin.weight, lin.bias = _tensor(kernel.T), _tensor(bias)
    return kmodel, tmodel


def _cnn_pair() -> tuple[Any, Any]:
    keras.utils.set_random_seed(4)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    kmodel = keras.Model(inp, keras.layers.Dense(5)(x))
    tmodel = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 5),
    )
    conv, dense = kmodel.layers[1], kmodel.layers[-1]
    kernel, bias = (np.asarray(w) for w in conv.get_weights())  # (kh, kw, C, F)
    tmodel[0].weight, tmodel[0].bias = _tensor(kernel.transpose(3, 2, 0, 1)), _tensor(bias)
    kernel, bias = (np.asarray(w) for w in dense.get_weights())  # rows in (h, w, c) order
    weight = np.empty((5, 64), dtype=np.float32)
    for h, w, c in np.ndindex(4, 4, 4):
        weight[:, c * 16 + h * 4 + w] = kernel[(h * 4 + w) * 4 + c]
    tmodel[4].weight, tmodel[4].bias = _tensor(weight), _tensor(bias)
    return kmodel, tmodel


def _signature(graph: nnfab.Graph) -> list[tuple[Any, ...]]:
    """Everything but the names."""
    rows = []
    for n in graph.nodes:
        weights = {k: v.tolist() for k, v in sorted(n.weights.items())}
        rows.append(
            (
                n.op,
                n.attrs,
                weights,
                {k: str(v) for k, v in n.precision.items()},
                str(graph.tensors[n.name].type),
                graph.tensors[n.name].shape,
            )
        )
    return rows


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    ("pair", "shape", "x"),
    [
        (_mlp_pair, (16,), np.random.default_rng(5).normal(0, 2, size=(300, 16))),
        (_cnn_pair, (3, 8, 8), np.random.default_rng(6).normal(size=(100, 3, 8, 8))),
    ],
    ids=["mlp", "cnn"],
)
def test_keras_pytorch_and_onnx_give_the_same_ir_and_outputs(
    pair: Any, shape: tuple[int, ...], x: np.ndarray, precision: str, tmp_path: Any
) -> None:
    kmodel, tmodel = pair()
    kcfg = nnfab.config_from_keras_model(kmodel, default_precision=precision)
    tcfg = nnfab.config_from_pytorch_model(tmodel, shape, default_precision=precision)
    assert kcfg == tcfg
    khm = nnfab.convert_from_keras_model(kmodel, hls_config=kcfg)
    thm = nnfab.convert_from_pytorch_model(tmodel, shape, hls_config=tcfg)
    assert _signature(khm.graph) == _signature(thm.graph)
    x_keras = nchw_to_nhwc(x)
    y_keras = khm.predict(x_keras)
    y_torch = thm.predict(x_keras)  # the IR, and so predict, is channels-last
    assert np.array_equal(y_keras, y_torch)
    # The PyTorch model exported to ONNX: the same IR and outputs once more.
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tmodel.eval(), (torch.zeros(1, *shape),), str(path),
                          input_names=["x"], dynamo=False)
    ocfg = nnfab.config_from_onnx_model(path, default_precision=precision)
    ohm = nnfab.convert_from_onnx_model(path, hls_config=ocfg)
    assert _signature(ohm.graph) == _signature(thm.graph)
    assert np.array_equal(ohm.predict(x_keras), y_torch)
    assert len(np.unique(y_torch)) > 50  # not a degenerate (saturated or constant) output
    # Both frameworks agree on the float answer too (a check of the weight copying).
    y_float = tmodel.eval()(torch.from_numpy(x).float()).detach().numpy()
    k_float = np.asarray(kmodel(x_keras, training=False))
    assert np.max(np.abs(y_float - k_float)) < 1e-5
