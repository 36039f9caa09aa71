"""PyTorch ``hardswish`` / ``silu`` / ``gelu`` (``x * gate(x)``: an ``Activation`` node
``<node>_gate`` and a multiply) and ``amax`` over the spatial dims (global max pooling).

Oracles: PyTorch itself, and for the wiring the product rule of ``docs/semantics.md``
computed here from the traced gate. Types are ``ap_fixed<32,12>`` (20 fractional bits).
hardswish's slope 1/6 is cast to the ``param`` type (14 fractional bits): the gate is off
by at most |x| * 2**-15, the output by |x|**2 * 2**-15 + 2**-20 < 1e-2 for |x| < 16. The
sigmoid gate is a table whose error is below 2**-8 (docs/semantics.md), so silu is off by
at most |x| * 2**-8 < 0.05; gelu's normal CDF table (bins of 2**-7, slope below 0.4) is off
by less than 2**-9 inside [-4, 4) and 4e-5 outside, so gelu is too; the product of x and
the gate is exact before its cast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import nnfab

torch = pytest.importorskip("torch")
WIDE = {"Model": {"Precision": "ap_fixed<32,12>"}}
F = torch.nn.functional


class Gated(torch.nn.Module):
    def __init__(self, gate: Any, keepdim: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 6, 3)
        self.gate = gate
        self.keepdim = keepdim
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x: Any) -> Any:
        y = self.gate(self.conv(x))
        pooled = y.amax(dim=(2, 3), keepdim=self.keepdim) if self.keepdim else torch.amax(
            y, dim=(-1, -2))
        return self.fc(pooled.flatten(1)), y


@pytest.mark.parametrize(("gate", "function", "atol"), [
    (F.hardswish, "hard_sigmoid", 1e-2), (torch.nn.Hardswish(), "hard_sigmoid", 1e-2),
    (F.silu, "sigmoid", 0.05), (torch.nn.SiLU(), "sigmoid", 0.05),
    (F.gelu, "normal_cdf", 0.05), (torch.nn.GELU(), "normal_cdf", 0.05),
    (torch.nn.GELU(approximate="tanh"), "normal_cdf_tanh", 0.05),
])
@pytest.mark.parametrize("keepdim", [False, True])
def test_gates_and_amax_equal_pytorch(gate: Any, function: str, atol: float,
                                      keepdim: bool) -> None:
    torch.manual_seed(3)
    model = Gated(gate, keepdim).eval()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(2, 7, 7), hls_config=WIDE)
    nodes = {n.op: n for n in hm.graph.nodes}
    assert nodes["GlobalPooling2D"].attrs["mode"] == "max"
    gate_node = next(n for n in hm.graph.nodes if n.name.endswith("_gate"))
    assert gate_node.attrs["function"] == function
    x = np.random.default_rng(1).uniform(-4, 4, (16, 2, 7, 7)).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(x))]
    traces = hm.trace(np.moveaxis(x, 1, -1).astype(np.float64))
    head, feature = (traces[t] for t in hm.graph.outputs)
    assert np.abs(want[1]).max() > 3  # beyond the hard gate's saturation at +-3
    np.testing.assert_allclose(head, want[0], atol=atol * 10, rtol=0)
    np.testing.assert_allclose(feature, np.moveaxis(want[1], 1, -1), atol=atol, rtol=0)
    # the multiply: floor(x * gate * 2**20) / 2**20, exact in float64 (51 bits)
    product = next(n for n in hm.graph.nodes if n.op == "Merge")
    xs, gs = (traces[t] for t in product.inputs)
    np.testing.assert_array_equal(traces[product.name],
                                  np.floor(xs * gs * 2.0**20) / 2.0**20)


class Squares(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x: Any) -> Any:
        h = self.fc(x)
        return torch.cat([h ** 2, torch.square(h), h.pow(2)], dim=1)


def test_squares_are_exact_products() -> None:
    """x ** 2, torch.square, .pow(2): x * x, the product exact before its cast."""
    torch.manual_seed(5)
    model = Squares().eval()
    hm = nnfab.convert_from_pytorch_model(model, input_shape=(4,), hls_config=WIDE)
    merges = [n for n in hm.graph.nodes if n.op == "Merge"]
    assert len(merges) == 3 and all(n.inputs == ["fc", "fc"] for n in merges)
    x = np.random.default_rng(2).uniform(-3, 3, (32, 4)).astype(np.float32)
    traces = hm.trace(x.astype(np.float64))
    h = traces["fc"]
    for n in merges:
        np.testing.assert_array_equal(traces[n.name], np.floor(h * h * 2.0**20) / 2.0**20)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(traces[hm.graph.outputs[0]], want, atol=1e-4, rtol=0)


def test_other_exponents_are_refused() -> None:
    class Cube(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            return x ** 3

    with pytest.raises(nnfab.errors.UnsupportedLayerError, match=r"exponent=3.*2 \(a square\)"):
        nnfab.convert_from_pytorch_model(Cube(), input_shape=(4,))
