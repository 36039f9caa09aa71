"""ONNX graphs that move a batch axis of size 1 (PyTorch's export of nn.MultiheadAttention):
the frontend's retry with a new leading batch axis (``nnfab.frontends.onnx_batch``).

- The rewritten ONNX model computes the same outputs as the original under onnxruntime
  (bit for bit: the same ops on the same values, only a leading axis of size 1 more).
- The converted model matches PyTorch within the softmax's own error (measured on the
  traced scores, as in test_torch_attention.py), C simulation and Verilator == emulator.
- A dynamic batch axis keeps the original error (naming the Transpose).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tests.frontends.test_torch_attention import (  # noqa: E402
    FEATURES,
    STEPS,
    WIDE,
    _mha,
    _softmax_bound,
    grid,
)

import nnfab  # noqa: E402
from nnfab.errors import UnsupportedLayerError  # noqa: E402
from nnfab.frontends.onnx_batch import rewrite_batch_axis  # noqa: E402

NARROW = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
          "LayerType": {"Softmax": {"Precision": {"result": "ap_ufixed<10,1,AP_RND,AP_SAT>"},
                                    "TableSize": 256}}}


def _export(tmp_path: Path, dynamic: bool = False) -> tuple[torch.nn.Module, Path]:
    model = _mha()
    path = tmp_path / ("mha_dynamic.onnx" if dynamic else "mha.onnx")
    axes = {"x": {0: "n"}, "y": {0: "n"}} if dynamic else None
    torch.onnx.export(model, (torch.zeros(1, STEPS, FEATURES),), str(path), opset_version=17,
                      input_names=["x"], output_names=["y"], dynamic_axes=axes, dynamo=False)
    return model, path


def _run(path_or_model: object, x: np.ndarray) -> np.ndarray:
    data = path_or_model.SerializeToString() if hasattr(path_or_model, "SerializeToString") \
        else str(path_or_model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i:i + 1].astype(np.float32)})[0]
                           for i in range(len(x))])


def test_rewrite_keeps_the_outputs(tmp_path: Path) -> None:
    _, path = _export(tmp_path)
    original = onnx.load(str(path))
    rewritten = rewrite_batch_axis(onnx, original)
    onnx.checker.check_model(rewritten)
    assert not any(n.op_type in ("Shape", "Gemm") for n in rewritten.graph.node)
    x = grid(np.random.default_rng(1), (8, STEPS, FEATURES))
    np.testing.assert_array_equal(_run(rewritten, x), _run(path, x))


def test_multihead_attention_export_matches_torch(tmp_path: Path) -> None:
    model, path = _export(tmp_path)
    hm = nnfab.convert_from_onnx_model(str(path), hls_config=WIDE)
    ops = [n.op for n in hm.graph.nodes]
    assert ops.count("MatMul") == 2 and ops.count("Slice") == 3 and "Softmax" in ops
    x = grid(np.random.default_rng(7), (40, STEPS, FEATURES))
    want = model(torch.from_numpy(x)).detach().numpy()
    w_out = np.abs(model.fc.weight.detach().numpy()) @ np.abs(
        model.mha.out_proj.weight.detach().numpy())
    got = np.asarray(hm.predict(x))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=_softmax_bound(hm, x, w_out))


def test_dynamic_batch_keeps_the_transpose_error(tmp_path: Path) -> None:
    _, path = _export(tmp_path, dynamic=True)
    with pytest.raises(UnsupportedLayerError, match=r"Transpose.*moves the batch axis"):
        nnfab.convert_from_onnx_model(str(path))


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_exported_attention_csim_and_verilog_match_emulator(tmp_path: Path) -> None:
    from nnfab.backends.hls import CSimLibrary
    from nnfab.tools.verilator import verilator_available

    _, path = _export(tmp_path)
    hm = nnfab.convert_from_onnx_model(str(path), hls_config=NARROW)
    x = grid(np.random.default_rng(4), (64, STEPS, FEATURES), 2)
    want = np.asarray(hm.predict(x))
    assert np.count_nonzero(want) > want.size // 2
    np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path / "csim").predict(x), want)
    if verilator_available():
        result = hm.to_rtl(tmp_path / "rtl", style="dsp", pipeline=None).simulate(x[:24])
        np.testing.assert_array_equal(np.asarray(result), want[:24])
