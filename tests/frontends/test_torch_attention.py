"""PyTorch attention written with ``@`` / ``torch.matmul``, ``transpose`` and ``softmax``
(how jet transformers are usually coded), and arithmetic with Python numbers.

- Scalars: ``x * c``, ``c * x``, ``x / c``, ``x + c``, ``c - x`` on a 2**-6 grid with
  power-of-two ``c`` are exact in the wide types: equal to PyTorch's float32 result.
- Attention: against the forward pass within the softmax's own error (measured on the
  traced scores) carried through the value and output projections; C simulation and
  Verilator == emulator, bit for bit.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import nnfab  # noqa: E402
from nnfab.errors import UnsupportedLayerError  # noqa: E402

WIDE = {"Model": {"Precision": "ap_fixed<32,12>"}}
STEPS, FEATURES, HEADS = 5, 8, 2


def grid(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return (np.round(rng.normal(0, scale, shape) * 64) / 64).astype(np.float32)


class Scalars(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(0.25 - (2.0 * (x * 0.5) / 4.0 + 1.5))


class Attention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.d = FEATURES // HEADS
        self.q, self.k, self.v, self.o = (torch.nn.Linear(FEATURES, FEATURES) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        q = self.q(x).view(n, STEPS, HEADS, self.d).transpose(1, 2)
        k = self.k(x).view(n, STEPS, HEADS, self.d).transpose(1, 2)
        v = self.v(x).view(n, STEPS, HEADS, self.d).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d)
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.o(context.transpose(1, 2).reshape(n, STEPS, FEATURES))


def _attention() -> Attention:
    torch.manual_seed(0)
    model = Attention().eval()
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(grid(rng, tuple(p.shape), 0.5)))
    return model


def test_python_numbers_become_a_scale_and_bias() -> None:
    model = Scalars().eval()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(6,), hls_config=WIDE)
    assert {n.op for n in hm.graph.nodes} <= {"Input", "BatchNormalization", "Activation"}
    x = grid(np.random.default_rng(2), (50, 6), 4)
    want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(hm.predict(x), want)
    assert np.count_nonzero(want) > 5


def test_division_of_a_number_by_a_tensor_is_refused() -> None:
    class Bad(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 1.0 / x

    with pytest.raises(UnsupportedLayerError, match=r"a tensor divided by a nonzero number"):
        nnfab.convert_from_pytorch_model(Bad(), input_shape=(4,))


def test_attention_matches_torch() -> None:
    model = _attention()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(STEPS, FEATURES), hls_config=WIDE)
    ops = [n.op for n in hm.graph.nodes]
    assert ops.count("MatMul") == 2 and ops.count("Softmax") == 1
    x = grid(np.random.default_rng(3), (40, STEPS, FEATURES))
    want = model(torch.from_numpy(x)).detach().numpy()
    trace = hm.trace(x)
    softmax = next(n.name for n in hm.graph.nodes if n.op == "Softmax")
    p = trace[softmax]
    scores = trace[hm.graph.node(softmax).inputs[0]]
    p_float = np.exp(scores - scores.max(-1, keepdims=True))
    p_float /= p_float.sum(-1, keepdims=True)
    dp = float(np.abs(p - p_float).max())
    assert dp < 1e-2
    context = next(n for n in hm.graph.nodes if n.op == "MatMul" and n.inputs[0] == softmax)
    v_max = float(np.abs(trace[context.inputs[1]]).max())  # the values the weights mix
    w_o = np.abs(model.o.weight.detach().numpy()).sum(axis=1).max()
    bound = dp * STEPS * v_max * w_o + 1e-4
    np.testing.assert_allclose(hm.predict(x), want, rtol=0, atol=bound)


def _narrow():
    cfg = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
           "LayerType": {"Softmax": {"Precision": {"result": "ap_ufixed<10,1,AP_RND,AP_SAT>"},
                                     "TableSize": 256}}}
    return nnfab.convert_from_pytorch_model(_attention(), input_shape=(STEPS, FEATURES),
                                            hls_config=cfg)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_attention_csim_matches_emulator(tmp_path: Path) -> None:
    from nnfab.backends.hls import CSimLibrary

    hm = _narrow()
    x = grid(np.random.default_rng(4), (64, STEPS, FEATURES), 2)
    want = hm.predict(x)
    np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path).predict(x), want)
    assert np.count_nonzero(want) > want.size // 2


@pytest.mark.verilator
def test_attention_verilog_matches_emulator(tmp_path: Path) -> None:
    from nnfab.tools.verilator import verilator_available

    if not verilator_available():
        pytest.skip("verilator is not available")
    hm = _narrow()
    x = grid(np.random.default_rng(5), (100, STEPS, FEATURES), 2)
    result = hm.to_rtl(tmp_path / "rtl", style="dsp", pipeline=None).simulate(x)
    np.testing.assert_array_equal(np.asarray(result), hm.predict(x))
