"""PyTorch frontend: structure, channels-first -> channels-last weights, the emulator with
wide types against PyTorch's own float64 forward pass, model files, and errors.

Tolerances (as in tests/test_keras_emulator.py): 40-bit types with 24 fractional bits and
round-to-nearest leave only roundings of ~2**-25 per weight/activation, amplified by the
weight sums of these small layers: far below ``LINEAR_TOL`` and far above nothing that a
wrong weight order, pad or axis could produce (those give O(0.1) errors). Sigmoid/tanh
tables add at most their step times the function's largest slope plus half an entry lsb;
softmax's exp table (step 8/1024, left bin edge) and reciprocal table (step R/1024 over
sums >= 1, evaluated at bin centres) bound the relative error, and inputs below the exp
table's range (-8) add at most exp(-8) absolutely.
"""

from __future__ import annotations

import copy
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.paths import SHARED_MODELS, missing  # noqa: E402

import nnfab  # noqa: E402
from nnfab.errors import FrontendError, UnsupportedLayerError  # noqa: E402
from nnfab.frontends.torch import (  # noqa: E402
    load_torch_model,
    nchw_to_nhwc,
    nhwc_to_nchw,
    torch_to_graph,
)

pytestmark = [
    # PyTorch's own notices about models these tests build on purpose.
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning"),
    pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax:UserWarning"),
]

WIDE = "ap_fixed<40,16,AP_RND_CONV,AP_SAT>"
LINEAR_TOL = 1e-4
SIGMOID_TOL = 0.25 * 16 / 1024 + 2.0**-17 + LINEAR_TOL
TANH_TOL = 1.0 * 8 / 1024 + 2.0**-16 + LINEAR_TOL


def softmax_ok(got: np.ndarray, expected: np.ndarray) -> bool:
    """Within the softmax tables' bound (section 4 of docs/semantics.md, default tables)."""
    n = expected.shape[-1]
    inv_range = 2 ** math.ceil(math.log2(max(n, 2)))
    rel = math.expm1(8 / 1024) + inv_range / 2048 + 2.0**-12
    return bool(np.all(np.abs(got - expected) <= rel * expected + math.exp(-8) + 2.0**-14))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ----------------------------------------------------------------- helpers
def reference(model: nn.Module, *xs: np.ndarray) -> list[np.ndarray]:
    """PyTorch's own forward pass in float64 (the float32 weights are exact in float64)."""
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        out = m(*[torch.from_numpy(x) for x in xs])
    outs = out if isinstance(out, tuple | list) else [out]
    return [o.numpy() for o in outs]


def convert(model: nn.Module, shape: Any) -> nnfab.NnfabModel:
    cfg = nnfab.config_from_pytorch_model(model, shape, default_precision=WIDE)
    return nnfab.convert_from_pytorch_model(model, shape, hls_config=cfg)


def run_both(model: nn.Module, shape: Any, *xs: np.ndarray) -> tuple[list, list, Any]:
    """(nnfab outputs, torch outputs in nnfab's layout, converted model)."""
    hm = convert(model, shape)
    meta = hm.graph.metadata
    feeds = [
        nchw_to_nhwc(x) if meta["input_layouts"][name] == "channels_last" else x
        for name, x in zip(hm.graph.inputs, xs, strict=True)
    ]
    got = hm.predict(feeds if len(feeds) > 1 else feeds[0])
    got = got if isinstance(got, list) else [got]
    expected = []
    for y, layout, name in zip(
        reference(model, *xs), meta["output_layouts"], hm.graph.outputs, strict=True
    ):
        y = nchw_to_nhwc(y) if layout == "channels_last" else y
        expected.append(y.reshape(y.shape[0], *hm.graph.tensors[name].shape))
    assert not any(sum(v.values()) for v in hm.overflow_report().values())
    return got, expected, hm


def assert_close(model: nn.Module, shape: Any, *xs: np.ndarray, tol: float = LINEAR_TOL) -> Any:
    got, expected, hm = run_both(model, shape, *xs)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        err = np.max(np.abs(g - e))
        assert err < tol, f"max error {err} exceeds {tol}"
    return hm


def normal(*shape: int, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, size=shape)


def randomize_bn(bn: nn.Module) -> None:
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)


# ---------------------------------------------------------- MLP structure
class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(10, 16)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(16, 8, bias=False)
        self.act = nn.LeakyReLU(0.1)
        self.skip = nn.Identity()
        self.fc3 = nn.Linear(8, 4)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: Any) -> Any:
        x = self.drop(self.relu(self.fc1(x)))
        x = self.skip(self.act(self.fc2(x)))
        return self.softmax(self.fc3(x))


def test_mlp_structure_names_weights_and_layout() -> None:
    model = Mlp()
    g = torch_to_graph(model, (10,))
    assert [(n.name, n.op, n.source_class) for n in g.nodes] == [
        ("x", "Input", "Input"),
        ("fc1", "Dense", "Linear"),
        ("relu", "Activation", "ReLU"),
        ("drop", "Dropout", "Dropout"),
        ("fc2", "Dense", "Linear"),
        ("act", "Activation", "LeakyReLU"),
        ("skip", "Dropout", "Identity"),
        ("fc3", "Dense", "Linear"),
        ("softmax", "Softmax", "Softmax"),
    ]
    assert g.inputs == ["x"] and g.outputs == ["softmax"]
    assert g.node("act").attrs == {"function": "leaky_relu", "alpha": pytest.approx(0.1)}
    assert g.node("softmax").attrs == {"axis": -1}
    w = model.fc1.weight.detach().numpy().astype(np.float64)
    assert np.array_equal(g.node("fc1").weights["kernel"], w.T)
    assert np.array_equal(g.node("fc1").weights["bias"], model.fc1.bias.detach().numpy())
    assert np.array_equal(g.node("fc2").weights["bias"], np.zeros(8))
    assert g.metadata["input_layouts"] == {"x": "unchanged"}
    assert g.metadata["source"] == "pytorch"
    assert model.training  # the caller's mode is restored


def test_mlp_against_torch() -> None:
    got, expected, _ = run_both(Mlp(), (10,), normal(256, 10, scale=2.0))
    assert softmax_ok(got[0], expected[0])


def test_bare_layer_is_one_node() -> None:
    g = torch_to_graph(nn.Linear(3, 2), (3,))
    assert [(n.name, n.op) for n in g.nodes] == [("input_1", "Input"), ("linear", "Dense")]


# ------------------------------------------------------------- 2-D CNNs
class Cnn2d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU6()
        self.conv2 = nn.Conv2d(4, 5, (2, 4), padding="same")
        self.conv3 = nn.Conv2d(5, 5, (3, 2), padding=(1, 0), bias=False)
        self.dw = nn.Conv2d(5, 10, 3, stride=(1, 2), padding="valid", groups=5)
        self.mp = nn.MaxPool2d(2, padding=1)
        self.ap1 = nn.AvgPool2d(2, stride=1)
        self.ap2 = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(10, 3)

    def forward(self, x: Any) -> Any:
        x = self.act(self.bn(self.conv1(x)))
        x = self.conv3(self.conv2(x))
        x = self.mp(self.dw(x))
        x = self.ap2(self.ap1(x))
        return self.fc(torch.flatten(self.gap(x), 1))


def test_cnn_2d_against_torch() -> None:
    model = Cnn2d()
    randomize_bn(model.bn)
    hm = assert_close(model, (3, 19, 22), normal(64, 3, 19, 22))
    g = torch_to_graph(model, (3, 19, 22))
    assert g.metadata["input_layouts"] == {"x": "channels_last"}
    assert g.tensors["x"].shape == (19, 22, 3)
    assert g.node("conv2").attrs["pads"] == (0, 1, 1, 2)  # PyTorch 'same': odd cell after
    assert g.node("conv3").attrs["pads"] == (1, 1, 0, 0)
    dw = g.node("dw")
    assert (dw.op, dw.attrs["depth_multiplier"], dw.attrs["strides"]) == (
        "DepthwiseConv2D",
        2,
        (1, 2),
    )
    assert g.node("ap2").attrs == {
        "mode": "avg",
        "pool_size": (3, 3),
        "strides": (2, 2),
        "pads": (1, 1, 1, 1),
    }
    assert g.node("gap").op == "GlobalPooling2D"
    assert "bn" not in [n.name for n in hm.graph.nodes]  # folded into conv1


def test_conv_kernels_are_permuted_to_channels_last() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, (2, 3)), nn.Conv2d(3, 6, 2, groups=3))
    g = torch_to_graph(model, (2, 5, 6))
    w = model[0].weight.detach().numpy()
    k = g.node("_0").weights["kernel"]
    assert k.shape == (2, 3, 2, 3)
    for f, c, i, j in np.ndindex(*w.shape):
        assert k[i, j, c, f] == w[f, c, i, j]
    w = model[1].weight.detach().numpy()  # (C*M, 1, kh, kw), output channel c*M + m
    k = g.node("_1").weights["kernel"]
    assert k.shape == (2, 2, 3, 2)
    for c, m, i, j in np.ndindex(3, 2, 2, 2):
        assert k[i, j, c, m] == w[c * 2 + m, 0, i, j]


class FlattenHead(nn.Module):
    def __init__(self, view: bool) -> None:
        super().__init__()
        self.view = view
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(3 * 4 * 5, 4)

    def forward(self, x: Any) -> Any:
        x = F.relu(self.conv(x))
        x = x.view(x.size(0), -1) if self.view else x.reshape(x.shape[0], -1)
        return self.fc(x)


@pytest.mark.parametrize("view", [True, False])
def test_flatten_of_feature_map_permutes_the_next_linear(view: bool) -> None:
    model = FlattenHead(view)
    g = torch_to_graph(model, (2, 6, 7))
    w = model.fc.weight.detach().numpy()
    k = g.node("fc").weights["kernel"]
    for h, x, c in np.ndindex(4, 5, 3):  # IR flattens (h, w, c); PyTorch (c, h, w)
        assert np.array_equal(k[(h * 5 + x) * 3 + c], w[:, c * 20 + h * 5 + x])
    assert assert_close(model, (2, 6, 7), normal(64, 2, 6, 7))


class FlattenNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 2, 2)
        self.bn = nn.BatchNorm1d(2 * 4)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: Any) -> Any:
        return self.fc(self.bn(torch.flatten(self.conv(x), 1)))


def test_batchnorm_after_flatten_of_feature_map_permutes_its_scales() -> None:
    model = FlattenNorm()
    randomize_bn(model.bn)
    g = torch_to_graph(model, (3, 5))
    mean, var, gamma, beta = (
        t.detach().numpy().astype(np.float64)
        for t in (model.bn.running_mean, model.bn.running_var, model.bn.weight, model.bn.bias)
    )
    for t, c in np.ndindex(4, 2):  # IR (length, channel); PyTorch feature c * 4 + t
        f = c * 4 + t
        expected = beta[f] - mean[f] * gamma[f] / math.sqrt(var[f] + 1e-5)
        assert g.node("bn").weights["bias"][t * 2 + c] == pytest.approx(expected, rel=1e-12)
    assert_close(model, (3, 5), normal(64, 3, 5))


# ------------------------------------------------------------- 1-D CNNs
class Cnn1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 5, stride=2, padding=2)
        self.bn = nn.BatchNorm1d(6)
        self.pool = nn.MaxPool1d(2)
        self.dw = nn.Conv1d(6, 6, 3, padding="same", groups=6)
        self.ap = nn.AvgPool1d(2, padding=1, count_include_pad=False)
        self.gap = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x: Any) -> Any:
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        x = self.ap(self.dw(x))
        return torch.sigmoid(self.fc(self.gap(x).squeeze(-1)))


def test_cnn_1d_against_torch() -> None:
    model = Cnn1d()
    randomize_bn(model.bn)
    hm = assert_close(model, (4, 30), normal(64, 4, 30), tol=SIGMOID_TOL)
    ops = [n.op for n in hm.graph.nodes]
    assert ops == [
        "Input",
        "Conv1D",
        "Activation",
        "Pooling1D",
        "DepthwiseConv1D",
        "Pooling1D",
        "GlobalPooling1D",
        "Dense",
        "Activation",
    ]


class Branches1d(nn.Module):
    """Feature maps combined channel-wise and length-wise, a channel softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(3, 4, 3, padding=1)
        self.b = nn.Conv1d(3, 2, 3, padding=1)
        self.c = nn.Conv1d(3, 6, 1)

    def forward(self, x: Any) -> Any:
        ab = torch.cat([self.a(x), self.b(x)], dim=1)  # channels: IR axis -1
        s = (ab + self.c(x)) * torch.tanh(ab) - ab
        long = torch.cat((s, s.relu()), 2)  # length: IR axis 0
        return F.softmax(long, dim=1), torch.mean(s, dim=-1), long.flatten(1)


def test_channel_concat_softmax_and_feature_map_outputs() -> None:
    model = Branches1d()
    x = normal(64, 3, 9)
    got, expected, hm = run_both(model, (3, 9), x)
    g = hm.graph
    assert g.node("cat").attrs == {"axis": 1}
    assert g.node("cat_1").attrs == {"axis": 0}
    assert g.metadata["output_layouts"] == ["channels_last", "unchanged", "permuted"]
    assert softmax_ok(got[0], expected[0])
    assert np.max(np.abs(got[1] - expected[1])) < TANH_TOL * 3
    # A flattened feature map as an output: the metadata maps it back to PyTorch's order.
    index = np.array(g.metadata["torch_output_index"][g.outputs[2]])
    flat_torch = reference(model, x)[2]
    assert np.max(np.abs(got[2] - flat_torch[:, index])) < TANH_TOL * 3
    assert g.tensors[g.outputs[0]].shape == (18, 6)


# ------------------------------------------------- functional forms, inputs
class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fa = nn.Linear(6, 6)
        self.fb = nn.Linear(6, 6)
        self.fc = nn.Linear(12, 3)

    def forward(self, a: Any, b: Any) -> Any:
        h = F.relu(self.fa(a))
        k = torch.relu(self.fb(b))
        s = h + k
        d = torch.sub(s, b.relu())
        m = d * F.leaky_relu(k, 0.2)
        c = torch.cat([m, F.relu6(a)], dim=1)
        r = c.view(c.size(0), 3, 4).reshape(-1, 12)
        logits = self.fc(torch.flatten(r, 1))
        hs = F.hardsigmoid(logits)
        t = logits.tanh()
        sg = logits.sigmoid() + torch.sigmoid(logits)
        return logits, F.softmax(logits, dim=-1), hs, t, sg


def test_functional_forms_and_two_inputs() -> None:
    model = Functional()
    xa, xb = normal(128, 6, seed=2, scale=2), normal(128, 6, seed=3, scale=2)
    got, expected, hm = run_both(model, [(6,), (6,)], xa, xb)
    assert hm.graph.inputs == ["a", "b"]
    tols = [LINEAR_TOL, None, LINEAR_TOL, TANH_TOL, 2 * SIGMOID_TOL]
    for g_, e_, tol in zip(got, expected, tols, strict=True):
        if tol is None:
            assert softmax_ok(g_, e_)
        else:
            assert np.max(np.abs(g_ - e_)) < tol
    graph = torch_to_graph(model, [(6,), (6,)])
    ops = {n.name: (n.op, n.source_class, n.attrs) for n in graph.nodes}
    assert ops["add"] == ("Merge", "add", {"mode": "add"})
    assert ops["sub"] == ("Merge", "sub", {"mode": "subtract"})
    assert ops["mul"] == ("Merge", "mul", {"mode": "multiply"})
    assert ops["relu6"] == ("Activation", "relu6", {"function": "relu", "max_value": 6.0})
    assert ops["hardsigmoid"][2] == {"function": "hard_sigmoid", "slope": 1 / 6, "offset": 0.5}
    assert ops["cat"][:2] == ("Concatenate", "cat")


class Act(nn.Module):
    def __init__(self, act: Any) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.act = act

    def forward(self, x: Any) -> Any:
        return self.act(self.fc(x))


ACTIVATIONS = [
    (nn.ReLU(), "relu", LINEAR_TOL),
    (F.relu, "relu", LINEAR_TOL),
    (nn.ReLU6(), "relu", LINEAR_TOL),
    (nn.LeakyReLU(0.05), "leaky_relu", LINEAR_TOL),
    (F.leaky_relu, "leaky_relu", LINEAR_TOL),
    (nn.Sigmoid(), "sigmoid", SIGMOID_TOL),
    (torch.sigmoid, "sigmoid", SIGMOID_TOL),
    (nn.Tanh(), "tanh", TANH_TOL),
    (torch.tanh, "tanh", TANH_TOL),
    (nn.Hardsigmoid(), "hard_sigmoid", LINEAR_TOL),
    (F.hardsigmoid, "hard_sigmoid", LINEAR_TOL),
]


@pytest.mark.parametrize(("act", "function", "tol"), ACTIVATIONS)
def test_activations_as_modules_and_functions(act: Any, function: str, tol: float) -> None:
    model = Act(act)
    hm = assert_close(model, (8,), normal(256, 8, scale=3), tol=tol)
    assert hm.graph.nodes[-1].attrs["function"] == function


class InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 5)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Any) -> Any:
        y = self.fc(x)
        self.relu(y)  # result unused: y itself was changed
        z = self.fc(x)
        z.sigmoid_()
        w = self.fc(x)
        F.leaky_relu(w, 0.5, inplace=True)
        return y + z + w


def test_in_place_ops_change_later_reads() -> None:
    assert_close(InPlace(), (5,), normal(64, 5), tol=SIGMOID_TOL)


class GlobalForms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.amp = nn.AdaptiveMaxPool2d((1, 1))

    def forward(self, x: Any) -> Any:
        y = self.conv(x)
        pooled = torch.cat([self.amp(y), F.adaptive_avg_pool2d(y, 1)], dim=1)  # (6, 1, 1)
        return (
            y.mean((2, 3)) + torch.flatten(self.amp(y), 1),
            F.max_pool2d(y, 2, 1),
            torch.flatten(pooled, 1),
        )


def test_global_mean_adaptive_max_and_functional_pool() -> None:
    hm = assert_close(GlobalForms(), (2, 7, 6), normal(64, 2, 7, 6))
    assert [n.op for n in hm.graph.nodes].count("GlobalPooling2D") == 4
    assert hm.graph.metadata["output_layouts"] == ["unchanged", "channels_last", "unchanged"]


# ---------------------------------------------------------------- files
def test_shared_two_layer_model_file() -> None:
    path = SHARED_MODELS / "pytorch" / "two_layer_model.pt"
    if not path.exists():
        missing(f"{path} (../shared/models)")
    model = load_torch_model(path)
    g = torch_to_graph(path, (10,))
    assert [n.op for n in g.nodes] == ["Input", "Dense", "Activation", "Dense", "Activation"]
    assert [n.source_class for n in g.nodes[1:]] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    assert_close(model, (10,), normal(256, 10), tol=SIGMOID_TOL)


def test_whole_module_file_round_trip(tmp_path: Path) -> None:
    model = Mlp()
    path = tmp_path / "mlp.pth"
    torch.save(model, path)
    g = torch_to_graph(str(path), (10,))
    assert np.array_equal(
        g.node("fc3").weights["kernel"], torch_to_graph(model, (10,)).node("fc3").weights["kernel"]
    )


def test_state_dict_file_needs_the_class(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(Mlp().state_dict(), path)
    with pytest.raises(FrontendError, match=r"state dict.*load_state_dict"):
        torch_to_graph(path, (10,))


def test_pickled_module_whose_class_is_gone(tmp_path: Path) -> None:
    mod = types.ModuleType("nnfab_test_vanishing_models")
    sys.modules[mod.__name__] = mod
    try:
        exec(
            "import torch\nclass Gone(torch.nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n"
            "        self.fc = torch.nn.Linear(2, 2)\n"
            "    def forward(self, x):\n        return self.fc(x)\n",
            mod.__dict__,
        )
        path = tmp_path / "gone.pt"
        torch.save(mod.Gone(), path)
    finally:
        del sys.modules[mod.__name__]
    with pytest.raises(FrontendError, match="class cannot be found"):
        load_torch_model(path)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FrontendError, match="does not exist"):
        torch_to_graph(tmp_path / "nope.pt", (3,))
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(FrontendError, match="suffix"):
        torch_to_graph(other, (3,))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(FrontendError, match="could not load"):
        torch_to_graph(junk, (3,))


# ---------------------------------------------------------------- errors
def _conv_model(**kwargs: Any) -> nn.Module:
    return nn.Sequential(nn.Conv2d(4, 4, 3, **kwargs))


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        (_conv_model(dilation=2), r"'_0' \(Conv2d\): dilation=\(2, 2\)"),
        (_conv_model(groups=2), r"'_0' \(Conv2d\): groups=2 .*depthwise"),
        (_conv_model(padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
        (nn.Sequential(nn.AvgPool2d(2, padding=1)), "count_include_pad=True"),
        (nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), "ceil_mode=True"),
        (nn.Sequential(nn.AdaptiveAvgPool2d(2)), "output_size=2"),
    ],
)
def test_unsupported_attributes(model: nn.Module, pattern: str) -> None:
    with pytest.raises(UnsupportedLayerError, match=pattern):
        torch_to_graph(model, (4, 8, 8))


def test_unsupported_module_and_function_name_node_type_and_list() -> None:
    with pytest.raises(UnsupportedLayerError) as e:
        torch_to_graph(nn.Sequential(nn.Linear(3, 3), nn.Mish()), (3,))
    msg = str(e.value)
    assert "'_1' (module Mish) is not supported" in msg
    assert "Linear" in msg and "softmax" in msg and "view" in msg

    class Exp(nn.Module):
        def forward(self, x: Any) -> Any:
            return torch.exp(x)

    with pytest.raises(UnsupportedLayerError, match=r"'exp' \(function torch.exp\)"):
        torch_to_graph(Exp(), (3,))


def test_subclass_of_a_supported_module_is_refused() -> None:
    class MyLinear(nn.Linear):
        pass

    with pytest.raises(UnsupportedLayerError, match="MyLinear"):
        torch_to_graph(nn.Sequential(MyLinear(3, 3)), (3,))


class AddConstant(nn.Module):
    def forward(self, x: Any) -> Any:
        return x + 1.0


class Branchy(nn.Module):
    def forward(self, x: Any) -> Any:
        if x.sum() > 0:
            return x
        return -x


class FoldsBatch(nn.Module):
    def forward(self, x: Any) -> Any:
        return x.view(-1)


class TrainingDropout(nn.Module):
    def forward(self, x: Any) -> Any:
        return F.dropout(x, 0.5)


class LinearOnFeatureMap(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Any) -> Any:
        return self.fc(self.conv(x))


def test_linear_on_a_feature_map_and_a_constant_added() -> None:
    """A Linear over the last axis of a conv output (channels-last inside nnfab) reads a
    Permute back to PyTorch's order; ``x + 1.0`` is a bias."""
    hm = assert_close(LinearOnFeatureMap().eval(), (2, 4, 4), normal(20, 2, 4, 4))
    assert "Permute" in [n.op for n in hm.graph.nodes]
    assert_close(AddConstant().eval(), (3,), normal(20, 3))


class SoftmaxOverLength(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 1)

    def forward(self, x: Any) -> Any:
        return F.softmax(self.conv(x), dim=2)


class ConvAfterView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2 * 4 * 4)
        self.conv = nn.Conv2d(2, 2, 3)

    def forward(self, x: Any) -> Any:
        return self.conv(self.fc(x).view(-1, 2, 4, 4))


@pytest.mark.parametrize(
    ("model", "shape", "error", "pattern"),
    [
        (Branchy(), (3,), FrontendError, "could not trace Branchy.*torch.fx.wrap"),
        (FoldsBatch(), (3,), FrontendError, "batch"),
        (TrainingDropout(), (3,), UnsupportedLayerError, "training=True"),
        (ConvAfterView(), (4,), FrontendError, "'conv' .*transpose"),
        (SoftmaxOverLength(), (2, 5), UnsupportedLayerError, r"dim=2 .*\(\[1\]\)"),
        (Mlp(), (11,), FrontendError, "failed on random inputs"),
        (Mlp(), [(10,), (10,)], FrontendError, "takes 1 input"),
        (Mlp(), "10", FrontendError, "input_shape"),
        (Mlp(), (0,), FrontendError, "positive ints"),
    ],
)
def test_model_errors(model: nn.Module, shape: Any, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        torch_to_graph(model, shape)


def test_not_a_module() -> None:
    with pytest.raises(FrontendError, match=r"expected a torch\.nn\.Module"):
        torch_to_graph(object(), (3,))


# ------------------------------------------------------------ layouts
def test_layout_helpers() -> None:
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    y = nchw_to_nhwc(x)
    assert y.shape == (2, 4, 5, 3) and y[1, 2, 3, 0] == x[1, 0, 2, 3]
    assert np.array_equal(nhwc_to_nchw(y), x)
    assert nchw_to_nhwc(np.zeros((2, 3, 7))).shape == (2, 7, 3)
    assert nchw_to_nhwc(np.zeros((2, 3))).shape == (2, 3)


def test_sequence_input_into_linear_keeps_pytorch_layout() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    g = torch_to_graph(model, (5, 4))
    assert g.metadata["input_layouts"] == {"input_1": "unchanged"}
    assert g.tensors["_1"].shape == (5, 3)
    assert_close(model, (5, 4), normal(32, 5, 4))


def test_hls4ml_style_shape_with_leading_none() -> None:
    g = torch_to_graph(nn.Linear(3, 2), (None, 3))
    assert g.tensors["input_1"].shape == (3,)
