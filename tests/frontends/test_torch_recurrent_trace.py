"""PyTorch models that call nn.RNN / nn.LSTM / nn.GRU inside forward(), traced by torch.fx.

The oracle is PyTorch itself, in float32. Types are ap_fixed<32,12> (20 fractional bits)
and the sigmoid/tanh tables have 2**16 entries over [-8, 8): each lookup is off by at
most one table bin, 2**-12 ~ 2.4e-4, times the function's slope (<= 1); five steps and a
Dense head of weights below 0.4 keep the output error well under 1e-3 (measured:
~2e-4), while a wrong gate order or a lost bias moves outputs by more than 0.05.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError

torch = pytest.importorskip("torch")

STEPS, FEATURES, UNITS = 5, 6, 8


class Head(torch.nn.Module):
    def __init__(self, cls: type, read: str, layers: int = 1) -> None:
        super().__init__()
        self.rnn = cls(FEATURES, UNITS, num_layers=layers, batch_first=True)
        self.fc = torch.nn.Linear(UNITS, 3)
        self.read = read
        self.lstm = cls is torch.nn.LSTM

    def forward(self, x):
        out, h = self.rnn(x)
        if self.read == "last":
            return self.fc(out[:, -1])
        if self.read == "state":
            return self.fc((h[0] if self.lstm else h)[-1])
        return self.fc(out)


def _convert(model: torch.nn.Module, cls: type) -> nnfab.NnfabModel:
    cfg = {"Model": {"Precision": "ap_fixed<32,12>"},
           "LayerType": {cls.__name__: {"TableSize": 1 << 16, "TableRange": 8}}}
    return nnfab.convert_from_pytorch_model(model, input_shape=(STEPS, FEATURES),
                                            hls_config=cfg)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(("read", "layers"), [("last", 1), ("state", 2), ("sequence", 2)])
def test_recurrent_module_in_forward_matches_torch(cls: str, read: str, layers: int) -> None:
    torch.manual_seed(1)
    module_cls = getattr(torch.nn, cls)
    model = Head(module_cls, read, layers).eval()
    x = np.random.default_rng(0).uniform(-1, 1, (40, STEPS, FEATURES)).astype(np.float32)
    want = model(torch.from_numpy(x)).detach().numpy()
    hm = _convert(model, module_cls)
    ops = [n.op for n in hm.graph.nodes]
    assert ops.count({"RNN": "SimpleRNN"}.get(cls, cls)) == layers
    got = hm.predict(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_cell_state_is_refused_with_what_is_supported() -> None:
    class CellState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.LSTM(FEATURES, UNITS, batch_first=True)

        def forward(self, x):
            _, (_, c) = self.rnn(x)
            return c[-1]

    with pytest.raises(UnsupportedLayerError, match=r"h_n\[-1\]"):
        _convert(CellState(), torch.nn.LSTM)


def test_sequence_and_last_step_of_one_module_is_refused() -> None:
    class Both(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.GRU(FEATURES, UNITS, batch_first=True)

        def forward(self, x):
            out, h = self.rnn(x)
            return out.flatten(1), h[-1]

    with pytest.raises(UnsupportedLayerError, match="one of them"):
        _convert(Both(), torch.nn.GRU)
