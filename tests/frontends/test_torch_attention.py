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
        y = torch.sub(torch.add(x, 0.25, alpha=4.0), 0.5, alpha=2.0)  # x + 1 - 1
        y = torch.add(0.5, y, alpha=2.0) / 2.0  # 0.5 + 2 y, halved
        return torch.relu(0.25 - (2.0 * (y * 0.5) / 4.0 + 1.5))


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
    bound = _softmax_bound(hm, x, np.abs(model.o.weight.detach().numpy()))
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


# ------------------------------------------------------- nn.MultiheadAttention
class Mha(torch.nn.Module):
    def __init__(self, **options: object) -> None:
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(FEATURES, HEADS, batch_first=True, **options)
        self.fc = torch.nn.Linear(FEATURES, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.mha(x, x, x)
        return self.fc(out)


def _mha(**options: object) -> Mha:
    torch.manual_seed(0)
    model = Mha(**options).eval()
    rng = np.random.default_rng(6)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(grid(rng, tuple(p.shape), 0.5)))
    return model


def _softmax_bound(hm: nnfab.NnfabModel, x: np.ndarray, w_out: np.ndarray) -> float:
    """The softmax's measured error carried through the values and the projections."""
    trace = hm.trace(x)
    softmax = next(n.name for n in hm.graph.nodes if n.op == "Softmax")
    scores = trace[hm.graph.node(softmax).inputs[0]]
    p_float = np.exp(scores - scores.max(-1, keepdims=True))
    p_float /= p_float.sum(-1, keepdims=True)
    dp = float(np.abs(trace[softmax] - p_float).max())
    assert dp < 1e-2
    context = next(n for n in hm.graph.nodes if n.op == "MatMul" and n.inputs[0] == softmax)
    v_max = float(np.abs(trace[context.inputs[1]]).max())
    return dp * STEPS * v_max * float(np.abs(w_out).sum(axis=1).max()) + 1e-4


def test_multihead_attention_module_matches_torch() -> None:
    model = _mha()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(STEPS, FEATURES), hls_config=WIDE)
    ops = [n.op for n in hm.graph.nodes]
    assert ops.count("MatMul") == 2 and ops.count("Dense") == 5
    x = grid(np.random.default_rng(7), (40, STEPS, FEATURES))
    want = model(torch.from_numpy(x)).detach().numpy()
    w_out = np.abs(model.fc.weight.detach().numpy()) @ np.abs(
        model.mha.out_proj.weight.detach().numpy())
    np.testing.assert_allclose(hm.predict(x), want, rtol=0, atol=_softmax_bound(hm, x, w_out))


@pytest.mark.parametrize(("options", "call", "match"), [
    ({"batch_first": False}, None, "batch_first=False"),
    ({"add_bias_kv": True}, None, "add_bias_kv"),
    ({}, "mask", "attn_mask"),
    ({}, "weights", r"output \[1\]"),
])
def test_multihead_attention_refusals_are_named(options: dict, call: str | None,
                                                match: str) -> None:
    class Bad(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            kwargs = {"batch_first": True, **options}
            self.mha = torch.nn.MultiheadAttention(FEATURES, HEADS, **kwargs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if call == "mask":
                return self.mha(x, x, x, attn_mask=torch.zeros(STEPS, STEPS))[0]
            if call == "weights":
                return self.mha(x, x, x)[1]
            return self.mha(x, x, x)[0]

    with pytest.raises(UnsupportedLayerError, match=rf"'mha' \(MultiheadAttention\).*{match}"):
        nnfab.convert_from_pytorch_model(Bad().eval(), input_shape=(STEPS, FEATURES))


@pytest.mark.verilator
def test_multihead_attention_module_verilog_and_csim(tmp_path: Path) -> None:
    from nnfab.backends.hls import CSimLibrary
    from nnfab.tools.verilator import verilator_available

    cfg = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
           "LayerType": {"Softmax": {"Precision": {"result": "ap_ufixed<10,1,AP_RND,AP_SAT>"},
                                     "TableSize": 256}}}
    hm = nnfab.convert_from_pytorch_model(_mha(), input_shape=(STEPS, FEATURES), hls_config=cfg)
    x = grid(np.random.default_rng(8), (100, STEPS, FEATURES), 2)
    want = hm.predict(x)
    if shutil.which("g++") is not None:
        np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path / "cs").predict(x), want)
    if not verilator_available():
        pytest.skip("verilator is not available")
    result = hm.to_rtl(tmp_path / "rtl", style="dsp", pipeline=None).simulate(x)
    np.testing.assert_array_equal(np.asarray(result), want)


def test_onnx_export_of_the_attention_equals_the_pytorch_path(tmp_path: Path) -> None:
    """The same model through ``torch.onnx.export`` and the ONNX frontend (Transposes and
    Reshapes into heads, MatMul of activations, the merge back before ``o``) gives the
    PyTorch frontend's outputs bit for bit: both map to the same arithmetic."""
    pytest.importorskip("onnx")
    model = _attention()
    path = tmp_path / "attention.onnx"
    torch.onnx.export(model, (torch.zeros(2, STEPS, FEATURES),), str(path), dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    cfg = {"Model": {"Precision": "ap_fixed<18,8>"}}
    via_onnx = nnfab.convert_from_onnx_model(str(path), hls_config=cfg)
    via_torch = nnfab.convert_from_pytorch_model(model, input_shape=(STEPS, FEATURES),
                                                 hls_config=cfg)
    assert [n.op for n in via_onnx.graph.nodes].count("MatMul") == 2
    x = grid(np.random.default_rng(9), (60, STEPS, FEATURES), 2)
    got = via_onnx.predict(x)
    np.testing.assert_array_equal(got, via_torch.predict(x))
    assert np.count_nonzero(got) > got.size // 2
