"""Bidirectional recurrent layers: Keras ``Bidirectional`` and PyTorch ``bidirectional=True``.

Each maps to a forward node, a backward node (``go_backwards``, with
``reverse_sequence`` when the sequence is returned) and a Concatenate / Merge. Oracles:
the frameworks in float32. Types are ap_fixed<32,12> and tables of 2**16 entries over
[-8, 8), as in test_torch_recurrent_trace.py: each lookup is off by at most one bin
(2**-12) times a slope <= 1, five steps keep the error well under 1e-3, while a
backward half in the wrong time order, or the wrong final state, moves outputs by more
than 0.05 (checked below by a deliberately wrong reading). C simulation == emulator
bit for bit for one bidirectional model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError

STEPS, FEATURES, UNITS = 5, 4, 6
WIDE = "ap_fixed<32,12>"
TABLES = {"TableSize": 1 << 16, "TableRange": 8}


def _config(*classes: str) -> dict[str, Any]:
    return {"Model": {"Precision": WIDE}, "LayerType": {c: dict(TABLES) for c in classes}}


def _inputs(batch: int = 32) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (batch, STEPS, FEATURES)).astype(np.float32)


# ------------------------------------------------------------------ PyTorch
torch = pytest.importorskip("torch")


class TorchBi(torch.nn.Module):
    def __init__(self, cls: type, read: str, layers: int = 1) -> None:
        super().__init__()
        self.rnn = cls(FEATURES, UNITS, num_layers=layers, batch_first=True,
                       bidirectional=True)
        self.read = read
        self.lstm = cls is torch.nn.LSTM

    def forward(self, x):
        out, h = self.rnn(x)
        h = h[0] if self.lstm else h
        if self.read == "last":
            return out[:, -1]
        if self.read == "states":
            return torch.cat([h[-2], h[-1]], dim=1)
        if self.read == "backward":
            return h[-1]
        return out


def _torch_model(cls: str, read: str, layers: int) -> tuple[Any, np.ndarray, np.ndarray]:
    torch.manual_seed(3)
    model = TorchBi(getattr(torch.nn, cls), read, layers).eval()
    x = _inputs()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    return model, x, want


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(("read", "layers"), [("sequence", 1), ("last", 2), ("states", 2),
                                              ("backward", 1)])
def test_torch_bidirectional_matches_torch(cls: str, read: str, layers: int) -> None:
    model, x, want = _torch_model(cls, read, layers)
    op = {"RNN": "SimpleRNN"}.get(cls, cls)
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(STEPS, FEATURES),
                                          hls_config=_config(op))
    ops = [n.op for n in hm.graph.nodes]
    backward = [n for n in hm.graph.nodes if n.op == op and n.attrs.get("go_backwards")]
    assert backward, ops
    got = hm.predict(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_torch_last_step_backward_half_is_its_first_step() -> None:
    """output[:, -1]'s backward half is not h_n[-1] (the test above would see a mix-up)."""
    _, _, last = _torch_model("GRU", "last", 1)
    _, _, states = _torch_model("GRU", "states", 1)
    np.testing.assert_allclose(last[:, :UNITS], states[:, :UNITS], atol=1e-6)
    assert np.abs(last[:, UNITS:] - states[:, UNITS:]).max() > 0.05


def test_torch_sequence_backward_is_in_input_order() -> None:
    """Without reverse_sequence the converted sequence would be far from PyTorch's."""
    model, x, want = _torch_model("LSTM", "sequence", 1)
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(STEPS, FEATURES),
                                          hls_config=_config("LSTM"))
    bwd = next(n for n in hm.graph.nodes if n.attrs.get("reverse_sequence"))
    got = hm.predict(x)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
    assert np.abs(got[:, ::-1, UNITS:] - want[:, :, UNITS:]).max() > 0.05, bwd.name


def test_torch_bidirectional_unsupported_reading_is_clear() -> None:
    class FirstLayerState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.GRU(FEATURES, UNITS, num_layers=2, batch_first=True,
                                    bidirectional=True)

        def forward(self, x):
            _, h = self.rnn(x)
            return h[0]

    with pytest.raises(UnsupportedLayerError, match=r"h_n\[-2\] and h_n\[-1\]"):
        nnfab.convert_from_pytorch_model(FirstLayerState().eval(),
                                         input_shape=(STEPS, FEATURES),
                                         hls_config=_config("GRU"))


# ------------------------------------------------------------------ Keras
def _keras() -> Any:
    return pytest.importorskip("keras")


def _keras_model(cls: str, merge: str, seq: bool, back: bool = False) -> Any:
    keras = _keras()
    keras.utils.set_random_seed(7)
    def half(backwards: bool, **name: str) -> Any:
        return getattr(keras.layers, cls)(UNITS, return_sequences=seq, go_backwards=backwards,
                                          bias_initializer="random_normal", **name)

    # go_backwards on the wrapped layer: Keras 3 needs the backward half given explicitly
    # (named backward_*, as Keras names the halves it makes)
    kw = {"backward_layer": half(False, name="backward_half")} if back else {}
    x = keras.Input((STEPS, FEATURES))
    y = keras.layers.Bidirectional(half(back), merge_mode=merge, name="bi", **kw)(x)
    return keras.Model(x, y)


@pytest.mark.parametrize("cls", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize(("merge", "seq"), [("concat", True), ("concat", False),
                                            ("sum", True), ("ave", False), ("mul", True)])
def test_keras_bidirectional_matches_keras(cls: str, merge: str,
                                           seq: bool) -> None:
    model = _keras_model(cls, merge, seq)
    x = _inputs()
    want = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    hm = nnfab.convert_from_keras_model(model, hls_config=_config(cls))
    ops = [n.op for n in hm.graph.nodes]
    assert ops.count(cls) == 2 and ops[-1] == ("Concatenate" if merge == "concat" else "Merge")
    got = hm.predict(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_keras_bidirectional_go_backwards_inner() -> None:
    """A wrapped layer with go_backwards=True: its 'backward' half reads forwards."""
    model = _keras_model("GRU", "concat", True, back=True)
    x = _inputs()
    want = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    hm = nnfab.convert_from_keras_model(model, hls_config=_config("GRU"))
    np.testing.assert_allclose(hm.predict(x), want, atol=1e-3, rtol=0)
    # the backward sequence must be flipped back: reading it unflipped is far off
    assert np.abs(hm.predict(x)[:, ::-1, UNITS:] - want[:, :, UNITS:]).max() > 0.05


def test_keras_bidirectional_merge_none_is_refused() -> None:
    from nnfab.frontends.keras_recurrent import convert_bidirectional

    class Call:  # the converter reads merge_mode first
        def get(self, key: str, default: Any = None) -> Any:
            return None if key == "merge_mode" else default

        def unsupported(self, attr: str, value: Any, allowed: str) -> Exception:
            return UnsupportedLayerError(f"layer 'bi' (Bidirectional): {attr}={value!r}; "
                                         f"allowed: {allowed}")

    with pytest.raises(UnsupportedLayerError, match=r"'bi'.*merge_mode=None.*'concat'"):
        convert_bidirectional(Call())  # type: ignore[arg-type]


def test_wrapped_weight_name() -> None:
    from nnfab.frontends.keras_recurrent import wrapped_weight_name

    assert wrapped_weight_name("m/bi/forward_gru/gru_cell/kernel", "bi") == "forward/kernel"
    assert wrapped_weight_name("bi/backward_lstm/lstm_cell/bias:0", "bi") == "backward/bias"
    assert wrapped_weight_name("m/forward_dense/kernel", "forward_dense") == "kernel"
    assert wrapped_weight_name("dense/dense/bias", "dense") == "bias"


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_bidirectional_csim_matches_emulator(tmp_path: Path) -> None:
    """C simulation == emulator, bit for bit: a bidirectional LSTM returning its sequence."""
    from nnfab.backends.hls import CSimLibrary

    model = _keras_model("LSTM", "concat", True)
    cfg = {"Model": {"Precision": "ap_fixed<14,5,AP_RND_CONV,AP_SAT>"},
           "LayerType": {"LSTM": {"TableSize": 256, "TableRange": 8}}}
    hm = nnfab.convert_from_keras_model(model, hls_config=cfg)
    assert any(n.attrs.get("reverse_sequence") for n in hm.graph.nodes)
    x = np.concatenate([_inputs(64), 3 * _inputs(64)])
    got, want = CSimLibrary(hm, cache_dir=tmp_path).predict(x), hm.predict(x)
    assert got.shape == want.shape == (128, STEPS, 2 * UNITS)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("keras2_config", [False, True])
def test_keras_h5_reader_bidirectional(tmp_path: Path, keras2_config: bool) -> None:
    """The model-file reader (``model.save('m.h5')``) maps Bidirectional the same way.

    ``keras2_config``: the config without ``backward_layer``, as Keras 2 writes it (the
    backward half is then the wrapped layer with go_backwards flipped).
    """
    import json

    import h5py

    from nnfab.frontends import keras_json

    model = _keras_model("GRU", "sum", True)
    path = tmp_path / "bi.h5"
    model.save(path)
    if keras2_config:
        with h5py.File(path, "r+") as f:
            config = json.loads(keras_json._attr_text(f.attrs["model_config"]))
            layer = next(x for x in config["config"]["layers"] if x["class_name"] ==
                         "Bidirectional")
            assert layer["config"].pop("backward_layer")["config"]["go_backwards"] is True
            f.attrs["model_config"] = json.dumps(config)
    graph = keras_json.graph_from_keras_h5(path)
    x = _inputs()
    want = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    hm = nnfab.convert_graph(graph, _config("GRU"))
    assert [n.op for n in hm.graph.nodes].count("GRU") == 2
    np.testing.assert_allclose(hm.predict(x), want, atol=1e-3, rtol=0)
