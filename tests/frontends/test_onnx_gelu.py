"""ONNX gelu: the ``Gelu`` op (opset 20, exact and ``approximate="tanh"``) and the erf form
exporters write before opset 20 (``Div``, ``Erf``, ``Add``, ``Mul``, ``Mul``;
``frontends/onnx_gelu.py``), both as ``x * normal_cdf(x)``.

Oracle: onnxruntime on the same graph. Types are ``ap_fixed<32,12>`` (20 fractional bits).
The gate is a table of the normal CDF (bins of 2**-7 over [-4, 4), slope below 0.4, so its
error is below 2**-9 inside and 4e-5 outside, docs/semantics.md); the product is exact
before its cast, so the outputs are within |x| * 2**-9 + 2**-20 < 2e-2 for |x| < 8. A
gate off by one bin would move some outputs by more (checked against the table's own
bin: the traced gate equals the table entry of the traced input's bin).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import UnsupportedLayerError

WIDE = {"Model": {"Precision": "ap_fixed<32,12>"}}
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
SQRT2 = np.float32(math.sqrt(2.0))


def _model(nodes: list[Any], inits: dict[str, np.ndarray], opset: int) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    return m


def _dense() -> tuple[Any, dict[str, np.ndarray]]:
    from onnx import helper

    rng = np.random.default_rng(4)
    inits = {"w": rng.normal(size=(4, 6)).astype(np.float32),
             "b": rng.normal(size=6).astype(np.float32)}
    return helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc"), inits


def _erf_form(order: str) -> Any:
    """``h * (1 + erf(h / sqrt 2)) * 0.5`` with the two products in ``order``."""
    from onnx import helper

    fc, inits = _dense()
    inits.update(sqrt2=np.array(SQRT2), one=np.array(1, np.float32),
                 half=np.array(0.5, np.float32))
    nodes = [fc, helper.make_node("Div", ["h", "sqrt2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]), helper.make_node("Add", ["one", "e"], ["s"])]
    if order == "x*s then *0.5":
        nodes += [helper.make_node("Mul", ["h", "s"], ["p"]),
                  helper.make_node("Mul", ["p", "half"], ["y"])]
    elif order == "x*0.5 then *s":
        nodes += [helper.make_node("Mul", ["half", "h"], ["p"]),
                  helper.make_node("Mul", ["p", "s"], ["y"])]
    else:  # x * (s * 0.5)
        nodes += [helper.make_node("Mul", ["s", "half"], ["p"]),
                  helper.make_node("Mul", ["h", "p"], ["y"])]
    return _model(nodes, inits, 17)


def _gelu_op(approximate: str) -> Any:
    from onnx import helper

    fc, inits = _dense()
    return _model([fc, helper.make_node("Gelu", ["h"], ["y"], approximate=approximate)],
                  inits, 20)


def _check(m: Any, function: str) -> None:
    x = np.random.default_rng(7).uniform(-3, 3, (64, 4)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    hm = nnfab.convert_from_onnx_model(m, WIDE)
    gates = [n for n in hm.graph.nodes if n.op == "Activation"]
    assert [g.attrs["function"] for g in gates] == [function]
    assert not any(n.op in ("Erf",) for n in hm.graph.nodes)
    traces = hm.trace(x.astype(np.float64))
    h = traces["fc"]
    assert np.abs(h).max() > 4  # some inputs beyond the table's range
    np.testing.assert_allclose(traces[hm.graph.outputs[0]], want, atol=2e-2, rtol=0)
    # the gate is the table entry of the input's bin (centre -4 + (i + 1/2) / 128)
    i = np.clip(np.floor(h * 128) + 512, 0, 1023)
    u = -4 + (i + 0.5) / 128
    if function == "normal_cdf":
        f = np.vectorize(lambda v: (1 + math.erf(v / math.sqrt(2))) / 2)(u)
    else:
        f = (1 + np.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3))) / 2
    np.testing.assert_allclose(traces[gates[0].name], f, atol=2.0 ** -18, rtol=0)


@pytest.mark.parametrize("order", ["x*s then *0.5", "x*0.5 then *s", "x*(s*0.5)"])
def test_erf_form_is_fused_into_gelu(order: str) -> None:
    _check(_erf_form(order), "normal_cdf")


@pytest.mark.parametrize(("approximate", "function"), [("none", "normal_cdf"),
                                                       ("tanh", "normal_cdf_tanh")])
def test_gelu_op(approximate: str, function: str) -> None:
    _check(_gelu_op(approximate), function)


def test_torch_export_of_gelu_before_opset_20_converts() -> None:
    torch = pytest.importorskip("torch")
    import io

    torch.manual_seed(2)
    module = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.GELU()).eval()
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.randn(1, 4),), buf, opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    m = onnx.load_from_string(buf.getvalue())
    assert "Erf" in [n.op_type for n in m.graph.node]
    hm = nnfab.convert_from_onnx_model(m, WIDE)
    assert [n.attrs["function"] for n in hm.graph.nodes if n.op == "Activation"] == \
        ["normal_cdf"]
    x = np.random.default_rng(3).uniform(-3, 3, (32, 4)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(hm.predict(x.astype(np.float64)), want, atol=2e-2, rtol=0)


def test_erf_outside_the_gelu_form_is_refused() -> None:
    from onnx import helper

    fc, inits = _dense()
    m = _model([fc, helper.make_node("Erf", ["h"], ["y"])], inits, 17)
    with pytest.raises(UnsupportedLayerError, match="Erf"):
        nnfab.convert_from_onnx_model(m, WIDE)
