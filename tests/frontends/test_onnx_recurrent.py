"""ONNX RNN / LSTM / GRU nodes (nnfab.frontends.onnx_recurrent), checked against onnxruntime.

Models are small batch_first torch modules exported with ``torch.onnx.export`` (the
legacy exporter: Transpose to sequence first, layout=0 nodes, Squeeze / Transpose /
Gather after), or hand-built layout=1 graphs. Types are ap_fixed<32,12> (20 fractional
bits) and the sigmoid/tanh tables have 2**16 entries over [-8, 8): each lookup is off by
at most one table bin (~2.4e-4) times the function's slope (<= 1), so five steps keep the
error well under 1e-3, while a wrong gate order or a lost bias moves outputs by > 0.05.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

STEPS, FEATURES, UNITS = 5, 4, 6
IR_OP = {"RNN": "SimpleRNN", "LSTM": "LSTM", "GRU": "GRU"}


class Net(torch.nn.Module):
    def __init__(self, cls: str, layers: int, read: str, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = getattr(torch.nn, cls)(FEATURES, UNITS, num_layers=layers, batch_first=True,
                                          bidirectional=bidirectional)
        self.read = read
        self.lstm = cls == "LSTM"

    def forward(self, x):
        out, h = self.rnn(x)
        if self.read == "last":
            return out[:, -1]
        if self.read == "state":
            return (h[0] if self.lstm else h)[-1]
        return out


def _export(model: torch.nn.Module) -> onnx.ModelProto:
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, STEPS, FEATURES), f, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return onnx.load_from_string(f.getvalue())


def _config(op: str) -> dict:
    return {"Model": {"Precision": "ap_fixed<32,12>"},
            "LayerType": {op: {"TableSize": 1 << 16, "TableRange": 8}}}


def _compare(model: onnx.ModelProto, cls: str, x: np.ndarray, count: int,
             oracle: onnx.ModelProto | None = None) -> None:
    sess = ort.InferenceSession((oracle or model).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    hm = nnfab.convert_from_onnx_model(model, _config(IR_OP[cls]))
    ops = [n.op for n in hm.graph.nodes]
    assert ops.count(IR_OP[cls]) == count, ops
    got = hm.predict(x)
    assert got.reshape(want.shape).shape == want.shape
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-3, rtol=0)


def _x(n: int = 30) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, STEPS, FEATURES)).astype(np.float32)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(("read", "layers"),
                         [("sequence", 1), ("last", 1), ("state", 1), ("sequence", 2),
                          ("last", 2), ("state", 2)])
def test_torch_export_matches_onnxruntime(cls: str, read: str, layers: int) -> None:
    torch.manual_seed(3)
    model = _export(Net(cls, layers, read).eval())
    assert any(n.op_type == cls for n in model.graph.node)
    _compare(model, cls, _x(), layers)


def _layout1(cls: str, *, lbr: int = 1, direction: str = "forward", sequence: bool = True,
             extra: dict | None = None, inputs: int = 4, peephole: bool = False,
             layout: int = 1) -> onnx.ModelProto:
    """A hand-built opset-14 layout=1 graph: X (N, T, F) -> Y (N, T, 1, H) or Y_h (N, 1, H).

    ``layout=0``: the same computation with a sequence-first node between Transposes
    (onnxruntime runs only that form: it is the oracle).
    """
    h = onnx.helper
    g = {"RNN": 1, "LSTM": 4, "GRU": 3}[cls]
    d = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(7)
    w = rng.uniform(-0.6, 0.6, (d, g * UNITS, FEATURES)).astype(np.float32)
    r = rng.uniform(-0.6, 0.6, (d, g * UNITS, UNITS)).astype(np.float32)
    b = rng.uniform(-0.6, 0.6, (d, 2 * g * UNITS)).astype(np.float32)
    inits = [onnx.numpy_helper.from_array(w, "W"), onnx.numpy_helper.from_array(r, "R"),
             onnx.numpy_helper.from_array(b, "B")]
    names = ["x", "W", "R", "B"]
    if inputs > 4:
        names += ["", "h0"]
        inits.append(onnx.numpy_helper.from_array(
            np.full((1, 1, UNITS), 0.5, np.float32), "h0"))
    if peephole:
        names += ["", "", "", "P"]
        inits.append(onnx.numpy_helper.from_array(np.zeros((1, 3 * UNITS), np.float32), "P"))
    attrs = {"hidden_size": UNITS, "layout": layout, "direction": direction, **(extra or {})}
    if cls == "GRU":
        attrs["linear_before_reset"] = lbr
    out = "y" if layout else "y0"
    outs = [out, ""] if sequence else ["", out]
    nodes = [h.make_node(cls, names, outs, **attrs)]
    if not layout:
        nodes.insert(0, h.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]))
        nodes[1].input[0] = "xt"
        perm = [2, 0, 1, 3] if sequence else [1, 0, 2]
        nodes.append(h.make_node("Transpose", ["y0"], ["y"], perm=perm))
    shape = [None, STEPS, d, UNITS] if sequence else [None, d, UNITS]
    graph = h.make_graph(
        nodes, "rec", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                 [None, STEPS, FEATURES])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 14)])


@pytest.mark.parametrize(("cls", "lbr"), [("RNN", 0), ("LSTM", 0), ("GRU", 0), ("GRU", 1)])
@pytest.mark.parametrize("sequence", [True, False])
def test_layout1_matches_onnxruntime(cls: str, lbr: int, sequence: bool) -> None:
    _compare(_layout1(cls, lbr=lbr, sequence=sequence), cls, _x(), 1,
             _layout1(cls, lbr=lbr, sequence=sequence, layout=0))


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
def test_reverse_direction_matches_onnxruntime(cls: str) -> None:
    for seq in (True, False):
        _compare(_layout1(cls, direction="reverse", sequence=seq), cls, _x(), 1,
                 _layout1(cls, direction="reverse", sequence=seq, layout=0))


def test_gru_reset_before_and_after_differ() -> None:
    """linear_before_reset is read: the two forms give different outputs."""
    x = _x(5)
    a = nnfab.convert_from_onnx_model(_layout1("GRU", lbr=0), _config("GRU")).predict(x)
    b = nnfab.convert_from_onnx_model(_layout1("GRU", lbr=1), _config("GRU")).predict(x)
    assert np.max(np.abs(a - b)) > 1e-2


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers", [1, 2])
def test_torch_bidirectional_sequence_matches_onnxruntime(cls: str, layers: int) -> None:
    torch.manual_seed(5)
    model = _export(Net(cls, layers, "sequence", bidirectional=True).eval())
    _compare(model, cls, _x(), 2 * layers)


@pytest.mark.parametrize("cls", ["LSTM", "GRU"])
@pytest.mark.parametrize("sequence", [True, False])
def test_layout1_bidirectional_matches_onnxruntime(cls: str, sequence: bool) -> None:
    kw = {"direction": "bidirectional", "sequence": sequence}
    _compare(_layout1(cls, **kw), cls, _x(), 2, _layout1(cls, layout=0, **kw))


def test_bidirectional_last_step_is_refused() -> None:
    model = _export(Net("LSTM", 1, "last", bidirectional=True).eval())
    with pytest.raises(UnsupportedLayerError, match="bidirectional"):
        nnfab.convert_from_onnx_model(model, _config("LSTM"))


class SeqFirstNet(torch.nn.Module):
    """A module without ``batch_first``: x is (T, N, F); a dense head on every step."""

    def __init__(self, cls: str, layers: int, read: str, bidirectional: bool = False) -> None:
        super().__init__()
        self.rnn = getattr(torch.nn, cls)(FEATURES, UNITS, num_layers=layers,
                                          bidirectional=bidirectional)
        self.head = torch.nn.Linear(UNITS * (2 if bidirectional else 1), 3)
        self.read, self.lstm = read, cls == "LSTM"

    def forward(self, x):
        out, h = self.rnn(x)
        if self.read == "state":  # (layers * D, N, H): the last layer's state, (N, H)
            return (h[0] if self.lstm else h)[-1]
        if self.read == "last":
            return self.head(out[-1])  # the last step, (N, 3)
        return torch.relu(self.head(out))  # (T, N, 3)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(("read", "layers", "bidirectional"),
                         [("sequence", 1, False), ("sequence", 2, False), ("last", 1, False),
                          ("state", 2, False), ("sequence", 1, True)])
def test_sequence_first_torch_export_is_read_batch_first(cls: str, read: str, layers: int,
                                                         bidirectional: bool) -> None:
    """(T, N, F) inputs and (T, N, ...) outputs with a symbolic N on axis 1 are declared
    batch first: nnfab takes (N, T, F) and gives (N, T, ...), equal to onnxruntime's
    outputs transposed."""
    torch.manual_seed(11)
    net = SeqFirstNet(cls, layers, read, bidirectional).eval()
    f = io.BytesIO()
    seq_out = read == "sequence"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(STEPS, 2, FEATURES), f, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {1: "N"}, "y": {1 if seq_out else 0: "N"}})
    model = onnx.load_from_string(f.getvalue())
    x = _x()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": np.ascontiguousarray(x.transpose(1, 0, 2))})[0]
    if seq_out:
        want = want.transpose(1, 0, 2)
    hm = nnfab.convert_from_onnx_model(model, _config(IR_OP[cls]))
    ops = [n.op for n in hm.graph.nodes]
    assert ops.count(IR_OP[cls]) == layers * (2 if bidirectional else 1), ops
    assert "Permute" not in ops
    got = hm.predict(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
    with torch.no_grad():  # the module itself agrees (the oracle is not the export alone)
        ref = net(torch.from_numpy(x.transpose(1, 0, 2))).numpy()
    np.testing.assert_allclose(got, ref.transpose(1, 0, 2) if seq_out else ref, atol=1e-3,
                               rtol=0)


def test_sequence_first_input_is_refused() -> None:
    """A layout=0 node whose X is the graph input itself: the batch axis is axis 1."""
    model = _layout1("GRU", layout=0)
    model.graph.node[0].op_type = "Identity"  # X (T, N, F) read as it comes
    del model.graph.node[0].attribute[:]
    with pytest.raises(UnsupportedLayerError, match="layout"):
        nnfab.convert_from_onnx_model(model, _config("GRU"))


def test_nonzero_initial_state_is_refused() -> None:
    with pytest.raises(UnsupportedLayerError, match="initial_h"):
        nnfab.convert_from_onnx_model(_layout1("GRU", inputs=6), _config("GRU"))


def test_peephole_is_refused() -> None:
    with pytest.raises(UnsupportedLayerError, match="peephole"):
        nnfab.convert_from_onnx_model(_layout1("LSTM", peephole=True), _config("LSTM"))


def test_clip_and_activations_are_refused() -> None:
    with pytest.raises(UnsupportedLayerError, match="clip"):
        nnfab.convert_from_onnx_model(_layout1("LSTM", extra={"clip": 3.0}), _config("LSTM"))
    with pytest.raises(UnsupportedLayerError, match="activations"):
        nnfab.convert_from_onnx_model(_layout1("RNN", extra={"activations": ["Relu"]}),
                                      _config("SimpleRNN"))
