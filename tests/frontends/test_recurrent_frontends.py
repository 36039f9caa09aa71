"""Keras and PyTorch SimpleRNN / LSTM / GRU vs nnfab with wide types (the float oracle).

Tolerance, argued from the types (all data types ``ap_fixed<32,12,AP_RND_CONV,AP_SAT>``,
2^-20 resolution; tables of 2^18 entries over [-8, 8): step 2^-14, entries of 30/31
fractional bits):

- a sigmoid/tanh lookup is the function at the bin centre: off by at most
  max|f'| * step / 2 <= 2^-15 (tanh; sigmoid 2^-17), plus half an entry lsb. The test
  asserts every pre-activation and cell state stays inside [-8, 8) (from the weights),
  so no lookup clips.
- every other cast (weights, pre-activations, states) is off by <= 2^-21 each; the
  framework's float32 arithmetic adds ~1e-6.
- per step the new state differs locally by at most ``E = 8 * 2^-15 + 1e-5`` (at most
  six lookups lie on the path from the inputs of a step to h, each weighted by <= 1);
  a state error is amplified per step by at most ``L = 1 + (T + 1) * |U|`` where
  ``|U|`` is the largest column sum of |recurrent_kernel| (each gate's sensitivity to
  h is <= 1 times |U|; the cell state, |c| <= T, multiplies the forget gate's).
  After T steps: ``|error| <= E * (1 + L + ... + L^(T-1))``.

Recurrent kernels are scaled down so that L stays small and the bound is tight enough to
catch a wrong gate order (which changes outputs by > 0.05).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import FrontendError, UnsupportedLayerError

STEPS, FEATURES, UNITS = 4, 3, 4
WIDE = "ap_fixed<32,12,AP_RND_CONV,AP_SAT>"
TABLES = {"table": "ap_fixed<32,2,AP_RND_CONV,AP_SAT>",
          "recurrent_table": "ap_ufixed<32,1,AP_RND_CONV,AP_SAT>"}
RECURRENT = ("SimpleRNN", "LSTM", "GRU")


def _config(classes: tuple[str, ...]) -> dict[str, Any]:
    return {"Model": {"Precision": WIDE},
            "LayerType": {c: {"Precision": {k: v for k, v in TABLES.items()
                                            if c != "SimpleRNN" or k == "table"}}
                          for c in classes}}


def _widen_tables(hm: Any) -> None:
    for node in hm.graph.nodes:
        if node.op in RECURRENT:
            node.attrs.update(table_size=2**18, table_range=8.0,
                              recurrent_table_size=2**18, recurrent_table_range=8.0)
    hm.compile()


def _bound(kernel: np.ndarray, rec: np.ndarray, bias: np.ndarray, steps: int) -> float:
    col_u = float(np.abs(rec).sum(axis=0).max())
    reach = float((np.abs(kernel).sum(axis=0) + np.abs(rec).sum(axis=0)
                   + np.abs(bias).reshape(-1, kernel.shape[1]).sum(axis=0)).max())
    assert reach < 8 and steps < 8, "inputs of the tables must stay inside [-8, 8)"
    e = 8 * 2.0**-15 + 1e-5
    lip = 1 + (steps + 1) * col_u
    return e * sum(lip**k for k in range(steps))


def _x(seed: int, batch: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, STEPS, FEATURES))


# ------------------------------------------------------------------ Keras
keras = pytest.importorskip("keras")


def _keras_layer(op: str, seq: bool, back: bool, reset_after: bool) -> Any:
    kw: dict[str, Any] = {"return_sequences": seq, "go_backwards": back}
    if op == "GRU":
        kw["reset_after"] = reset_after
    return getattr(keras.layers, op)(UNITS, **kw)


def _scale_keras(layer: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kernel, rec, bias = (np.asarray(w) for w in layer.get_weights())
    kernel = kernel * 0.5
    rec = rec * (0.15 / np.abs(rec).sum(axis=0).max())
    bias = rng.uniform(-0.2, 0.2, bias.shape).astype(bias.dtype)
    layer.set_weights([kernel, rec, bias])
    return kernel, rec, bias


KERAS_CASES = [
    ("SimpleRNN", False, False, True),
    ("SimpleRNN", True, True, True),
    ("LSTM", False, False, True),
    ("LSTM", True, False, True),
    ("LSTM", True, True, True),
    ("LSTM", False, True, True),
    ("GRU", True, False, True),
    ("GRU", False, True, True),
    ("GRU", True, False, False),
    ("GRU", False, True, False),
]


@pytest.mark.parametrize("op,seq,back,reset_after", KERAS_CASES)
def test_keras_matches_float_model(op: str, seq: bool, back: bool, reset_after: bool) -> None:
    keras.utils.set_random_seed(1)
    layer = _keras_layer(op, seq, back, reset_after)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), layer])
    kernel, rec, bias = _scale_keras(layer, 2)
    hm = nnfab.convert_from_keras_model(model, hls_config=_config((op,)))
    _widen_tables(hm)
    node = hm.graph.nodes[-1]
    assert node.op == op and node.attrs["go_backwards"] is back
    x = _x(3)
    expected = np.asarray(model.predict(x.astype("float32"), verbose=0), dtype=np.float64)
    actual = hm.predict(x)
    assert actual.shape == expected.shape
    err = float(np.abs(actual - expected).max())
    assert err <= _bound(kernel, rec, bias, STEPS), err


def test_keras_without_bias_unrolled() -> None:
    keras.utils.set_random_seed(16)
    layer = keras.layers.GRU(UNITS, use_bias=False, unroll=True, return_sequences=True)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), layer])
    kernel, rec = (np.asarray(w) for w in layer.get_weights())
    rec = rec * (0.15 / np.abs(rec).sum(axis=0).max())
    layer.set_weights([kernel, rec])
    hm = nnfab.convert_from_keras_model(model, hls_config=_config(("GRU",)))
    _widen_tables(hm)
    assert not np.any(hm.graph.nodes[-1].weights["bias"])
    x = _x(17)
    err = np.abs(hm.predict(x) - model.predict(x.astype("float32"), verbose=0)).max()
    assert err <= _bound(kernel, rec, np.zeros((2, kernel.shape[1])), STEPS)


def test_keras_stacked_with_dense_head() -> None:
    """LSTM(return_sequences) -> GRU -> Dense: layers chain through the IR."""
    keras.utils.set_random_seed(4)
    lstm = keras.layers.LSTM(UNITS, return_sequences=True)
    gru = keras.layers.GRU(3)
    dense = keras.layers.Dense(2)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), lstm, gru, dense])
    _scale_keras(lstm, 5)
    _scale_keras(gru, 6)
    hm = nnfab.convert_from_keras_model(model, hls_config=_config(("LSTM", "GRU")))
    _widen_tables(hm)
    assert [n.op for n in hm.graph.nodes] == ["Input", "LSTM", "GRU", "Dense"]
    x = _x(7)
    expected = model.predict(x.astype("float32"), verbose=0)
    # two chained bounds and the dense head (|kernel| column sums < 2): a loose 1e-2
    assert np.abs(hm.predict(x) - expected).max() < 1e-2


def test_keras_unsupported_settings_are_clear() -> None:
    inp = keras.Input((STEPS, FEATURES))
    model = keras.Model(inp, keras.layers.LSTM(2, recurrent_activation="hard_sigmoid")(inp))
    with pytest.raises(UnsupportedLayerError,
                       match=r"recurrent_activation='hard_sigmoid' is not supported; "
                             r"allowed: 'sigmoid', 'tanh'"):
        nnfab.convert_from_keras_model(model)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), keras.layers.Bidirectional(
        keras.layers.RNN(keras.layers.LSTMCell(2)))])
    with pytest.raises(UnsupportedLayerError, match=r"RNN"):
        nnfab.convert_from_keras_model(model)
    out = keras.layers.LSTM(2, return_state=True)(inp)
    with pytest.raises(UnsupportedLayerError, match=r"has 3 outputs; only single-output"):
        nnfab.convert_from_keras_model(keras.Model(inp, out[0]))
    model = keras.Sequential([keras.Input((None, FEATURES)), keras.layers.GRU(2)])
    with pytest.raises(FrontendError, match="give the model's inputs a fixed shape"):
        nnfab.convert_from_keras_model(model)


# ------------------------------------------------------------------ PyTorch
def _torch_graph(module: Any, last_only: bool) -> Any:
    from nnfab.frontends.torch_recurrent import recurrent_nodes
    from nnfab.ir import Graph, Node, infer_shapes

    g = Graph("torch_rnn")
    g.add_node(Node("x", "Input", [], attrs={"shape": (STEPS, FEATURES)}), (STEPS, FEATURES))
    for node in recurrent_nodes(module, "rnn", "x", last_only=last_only):
        g.add_node(node, (1,))
    g.outputs = [g.nodes[-1].name]
    infer_shapes(g)
    return g


TORCH_CASES = [("RNN", 1, False), ("LSTM", 1, True), ("LSTM", 2, False), ("GRU", 1, False),
               ("GRU", 2, True)]


@pytest.mark.parametrize("cls,layers,last_only", TORCH_CASES)
def test_torch_matches_float_module(cls: str, layers: int, last_only: bool) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = getattr(torch.nn, cls)(FEATURES, UNITS, num_layers=layers, batch_first=True).eval()
    with torch.no_grad():  # scale as for Keras: |W_hh| column sums 0.15, small biases
        for k in range(layers):
            w = getattr(module, f"weight_hh_l{k}")
            w.mul_(0.15 / w.abs().sum(dim=1).max())
            for b in (getattr(module, f"bias_ih_l{k}"), getattr(module, f"bias_hh_l{k}")):
                b.mul_(0.5)
    op = {"RNN": "SimpleRNN", "LSTM": "LSTM", "GRU": "GRU"}[cls]
    hm = nnfab.convert_graph(_torch_graph(module, last_only), _config((op,)))
    _widen_tables(hm)
    x = _x(11)
    with torch.no_grad():
        out = module(torch.tensor(x, dtype=torch.float32))[0].double().numpy()
    expected = out[:, -1] if last_only else out
    actual = hm.predict(x)
    assert actual.shape == expected.shape
    bound = 0.0
    for node in hm.graph.nodes[1:]:  # a stacked layer adds its own bound (inputs |x| <= 1)
        w = node.weights
        bound += _bound(w["kernel"], w["recurrent_kernel"], w["bias"], STEPS)
    assert np.abs(actual - expected).max() <= bound


def test_torch_unsupported_settings_are_clear() -> None:
    torch = pytest.importorskip("torch")
    from nnfab.frontends.torch_recurrent import recurrent_nodes

    with pytest.raises(UnsupportedLayerError, match=r"batch_first=False is not supported"):
        recurrent_nodes(torch.nn.LSTM(3, 2), "lstm", "x")
    with pytest.raises(UnsupportedLayerError, match=r"nonlinearity='relu'.*allowed: 'tanh'"):
        recurrent_nodes(torch.nn.RNN(3, 2, nonlinearity="relu", batch_first=True), "rnn", "x")
    with pytest.raises(UnsupportedLayerError, match=r"bidirectional=True"):
        recurrent_nodes(torch.nn.GRU(3, 2, bidirectional=True, batch_first=True), "gru", "x")


def test_keras_time_distributed_dense() -> None:
    keras.utils.set_random_seed(8)
    model = keras.Sequential([
        keras.Input((STEPS, FEATURES)),
        keras.layers.GRU(UNITS, return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(2, activation="relu")),
    ])
    _scale_keras(model.layers[0], 9)
    hm = nnfab.convert_from_keras_model(model, hls_config=_config(("GRU",)))
    _widen_tables(hm)
    assert [n.op for n in hm.graph.nodes] == ["Input", "GRU", "Dense", "Activation"]
    x = _x(10)
    expected = model.predict(x.astype("float32"), verbose=0)
    assert expected.shape == (16, STEPS, 2)
    assert np.abs(hm.predict(x) - expected).max() < 1e-2
    inp = keras.Input((STEPS, 4, FEATURES))
    bad = keras.Model(inp, keras.layers.TimeDistributed(keras.layers.Flatten())(inp))
    with pytest.raises(UnsupportedLayerError, match=r"layer='Flatten' is not supported; "
                                                    r"allowed: Dense"):
        nnfab.convert_from_keras_model(bad)


def test_keras_legacy_h5_file(tmp_path: Any) -> None:
    """The file reader (keras_json) maps the same layers: LSTM + GRU(reset_after=False)."""
    from nnfab.frontends.keras_json import graph_from_keras_h5

    keras.utils.set_random_seed(12)
    lstm = keras.layers.LSTM(UNITS, return_sequences=True, go_backwards=True)
    gru = keras.layers.GRU(UNITS, reset_after=False)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), lstm, gru])
    k1, r1, b1 = _scale_keras(lstm, 13)
    k2, r2, b2 = _scale_keras(gru, 14)
    path = tmp_path / "rnn.h5"
    model.save(path)
    graph = graph_from_keras_h5(path)
    assert [n.op for n in graph.nodes] == ["Input", "LSTM", "GRU"]
    assert graph.nodes[1].attrs["go_backwards"] and not graph.nodes[2].attrs["reset_after"]
    hm = nnfab.convert_graph(graph, _config(("LSTM", "GRU")))
    _widen_tables(hm)
    x = _x(15)
    expected = model.predict(x.astype("float32"), verbose=0)
    # the first layer's bound, propagated through the second (|error| of its input adds
    # at most |kernel| column sum times it per step: bounded by a second _bound)
    bound = _bound(k1, r1, b1, STEPS) * (1 + float(np.abs(k2).sum(axis=0).max()) * STEPS) \
        + _bound(k2, r2, b2, STEPS)
    assert np.abs(hm.predict(x) - expected).max() <= bound
