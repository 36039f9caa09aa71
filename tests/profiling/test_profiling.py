"""Profiling numbers and figures, checked against independent NumPy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

import nnfab
from nnfab.errors import ConfigError, NnfabError
from nnfab.ir import FixedType
from nnfab.profiling import (
    activation_profile,
    compare,
    compare_errors,
    float_outputs,
    numerical,
    type_range,
    weight_profile,
    wide_graph,
)
from nnfab.profiling.cli import profile
from tests.graphs import mlp_graph

W8, I8 = 8, 3  # ap_fixed<8,3>: step 2^-5, max 2^2 - 2^-5, min -2^2


def q8(x: np.ndarray) -> np.ndarray:
    """ap_fixed<8,3> with the default AP_TRN / AP_WRAP, written out independently."""
    f = W8 - I8
    m = np.floor(np.asarray(x, dtype=np.float64) * 2.0**f).astype(np.int64)
    m = (m + 2 ** (W8 - 1)) % 2**W8 - 2 ** (W8 - 1)
    return m / 2.0**f


def small_model(big_weight: float | None = 5.3) -> nnfab.NnfabModel:
    g = mlp_graph((4, 6, 3), seed=3)
    if big_weight is not None:
        g.node("fc1").weights["kernel"][0, 0] = big_weight  # does not fit ap_fixed<8,3>
    return nnfab.convert_graph(g, {"Model": {"Precision": "ap_fixed<8,3>", "ReuseFactor": 1}})


def numpy_forward(hm: nnfab.NnfabModel, x: np.ndarray) -> dict[str, np.ndarray]:
    g = hm.graph
    w1, b1 = g.node("fc1").weights["kernel"], g.node("fc1").weights["bias"]
    w2, b2 = g.node("fc2").weights["kernel"], g.node("fc2").weights["bias"]
    fc1 = x @ w1 + b1
    relu = np.maximum(fc1, 0)
    return {"input": x, "fc1": fc1, "fc1_relu": relu, "fc2": relu @ w2 + b2}


def nonzero_abs(a: np.ndarray) -> np.ndarray:
    a = np.abs(np.asarray(a, dtype=np.float64).ravel())
    return a[a != 0]


def ranges_on(ax) -> dict[str, tuple[float, float]]:
    return {p.get_gid()[len("range:"):]: (p.get_x(), p.get_x() + p.get_width())
            for p in ax.patches if (p.get_gid() or "").startswith("range:")}


def median_x(ax, gid: str) -> float:
    (line,) = [ln for ln in ax.lines if ln.get_gid() == gid]
    xs = np.asarray(line.get_xdata(), dtype=float)
    assert np.all(xs == xs[0])
    return float(xs[0])


# --------------------------------------------------------------------- numbers
@pytest.mark.parametrize(("spec", "width", "integer", "signed"), [
    ("ap_fixed<8,3>", 8, 3, True),
    ("ap_ufixed<8,3>", 8, 3, False),
    ("ap_fixed<16,6>", 16, 6, True),
    ("ap_fixed<6,-2>", 6, -2, True),
    ("ap_int<5>", 5, 5, True),
])
def test_type_range_from_width_and_integer_bits(spec, width, integer, signed) -> None:
    f = width - integer
    top = 2.0 ** (integer - 1) if signed else 2.0**integer
    assert type_range(spec) == (2.0**-f, top - 2.0**-f)
    assert type_range(FixedType.parse(spec)) == type_range(spec)


def test_type_range_of_ap_fixed_8_3_is_the_documented_one() -> None:
    assert type_range("ap_fixed<8,3>") == (2**-5, 2**2 - 2**-5)


def test_weight_profile_matches_numpy_float_and_quantized() -> None:
    hm = small_model()
    floats = {(p.layer, p.kind): p for p in weight_profile(hm)}
    quants = {(p.layer, p.kind): p for p in weight_profile(hm, quantized=True)}
    assert set(floats) == set(quants) == {("fc1", "kernel"), ("fc1", "bias"),
                                          ("fc2", "kernel"), ("fc2", "bias")}
    for (layer, kind), p in floats.items():
        w = np.asarray(hm.graph.node(layer).weights[kind], dtype=np.float64)
        for stage_p, values in ((p, w), (quants[(layer, kind)], q8(w))):
            mags = nonzero_abs(values)
            assert stage_p.size == w.size
            assert stage_p.min == values.min() and stage_p.max == values.max()
            assert stage_p.mean == pytest.approx(values.mean(), abs=1e-15)
            assert stage_p.abs_min == mags.min() and stage_p.abs_max == mags.max()
            assert stage_p.zeros == int(np.count_nonzero(values == 0))
            for q in (5, 25, 50, 75, 95):
                assert stage_p.percentiles[q] == pytest.approx(np.percentile(mags, q))
            assert stage_p.range == (2**-5, 4 - 2**-5)
            assert stage_p.type == "ap_fixed<8,3>"
    # the 5.3 weight is out of range before quantization and wraps to 5.28125 - 8
    assert floats[("fc1", "kernel")].overflow == 1
    assert floats[("fc1", "kernel")].max == pytest.approx(5.3)
    assert quants[("fc1", "kernel")].overflow == 0
    assert quants[("fc1", "kernel")].min == pytest.approx(5.28125 - 8)


def test_quantized_weights_are_the_emulators() -> None:
    hm = small_model()
    kernel = hm.emulator.kernels["fc1"].kernel
    p = next(p for p in weight_profile(hm, quantized=True) if p.label == "fc1 kernel")
    assert p.min == kernel.min() and p.max == kernel.max()
    assert p.percentiles[50] == pytest.approx(np.percentile(nonzero_abs(kernel), 50))


def test_activation_profiles_quantized_and_float() -> None:
    hm = small_model(big_weight=None)
    x = np.random.default_rng(1).normal(0, 1.5, size=(300, 4))
    traced = hm.trace(x)
    ref = numpy_forward(hm, x)
    quant = {p.layer: p for p in activation_profile(hm, x)}
    flt = {p.layer: p for p in activation_profile(hm, x, quantized=False)}
    assert list(quant) == ["input", "fc1", "fc1_relu", "fc2"] == list(flt)
    for name, p in quant.items():
        mags = nonzero_abs(traced[name])
        assert p.stage == "quantized" and p.abs_max == mags.max()
        assert p.percentiles[50] == pytest.approx(np.percentile(mags, 50))
        t = hm.graph.tensors[name].type
        assert p.range == type_range(t)
    # the float reference (wide-type emulator) is the float network to ~1e-5
    for name, p in flt.items():
        assert p.max == pytest.approx(ref[name].max(), abs=1e-4)
        assert p.min == pytest.approx(ref[name].min(), abs=1e-4)
        assert p.overflow == int(np.count_nonzero((ref[name] > 4 - 2**-5) | (ref[name] < -4)))
    assert flt["input"].overflow > 0  # N(0, 1.5) inputs reach past +-4


def test_wide_graph_leaves_the_model_alone() -> None:
    hm = small_model()
    before = {n.name: dict(n.precision) for n in hm.graph.nodes}
    wide = wide_graph(hm.graph)
    assert {n.name: dict(n.precision) for n in hm.graph.nodes} == before
    assert all(t.type == FixedType.parse("ap_fixed<8,3>") for t in hm.graph.tensors.values())
    assert wide.node("fc1").precision["accum"].frac == 2 * wide.node("fc1").precision[
        "weight"].frac


def test_compare_errors_without_model_against_numpy() -> None:
    hm = small_model(big_weight=None)
    x = np.random.default_rng(2).normal(size=(200, 4))
    errors = compare_errors(None, hm, x)
    traced = hm.trace(x)
    ref = numpy_forward(hm, x)
    assert set(errors) == set(ref)
    for name, (mean_abs, max_abs) in errors.items():
        diff = np.abs(ref[name] - traced[name])
        assert mean_abs == pytest.approx(diff.mean(), abs=1e-4)
        assert max_abs == pytest.approx(diff.max(), abs=1e-4)
    assert errors["fc2"][1] > 2**-6  # an 8-bit network is visibly off


def test_layer_selection_and_errors() -> None:
    hm = small_model()
    assert {p.layer for p in weight_profile(hm, layers=["fc2"])} == {"fc2"}
    with pytest.raises(ConfigError, match="fc9"):
        weight_profile(hm, layers=["fc9"])
    with pytest.raises(ConfigError, match="hls_model"):
        numerical(None, None)
    with pytest.raises(ConfigError, match="Keras model, a PyTorch module"):
        float_outputs(hm, np.zeros((2, 4)), model=object())
    with pytest.raises(NnfabError, match=r"expected shape \(batch, 4\)"):
        activation_profile(hm, np.zeros((2, 5)))


# --------------------------------------------------------------------- figures
def test_weights_figure_shades_type_ranges_and_carries_medians() -> None:
    hm = small_model()
    figs = numerical(None, hm)
    assert set(figs) == {"weights"}
    (ax,) = figs["weights"].axes
    shaded = ranges_on(ax)
    assert set(shaded) == {"fc1 kernel", "fc1 bias", "fc2 kernel", "fc2 bias"}
    lo, hi = math.log2(2.0 ** -(W8 - I8)), math.log2(2.0 ** (I8 - 1) - 2.0 ** -(W8 - I8))
    for span in shaded.values():
        assert span == pytest.approx((lo, hi), abs=1e-12)
    w = hm.graph.node("fc2").weights["kernel"]
    assert median_x(ax, "median:float:fc2 kernel") == pytest.approx(
        math.log2(np.median(nonzero_abs(w))))
    assert median_x(ax, "median:quantized:fc2 kernel") == pytest.approx(
        math.log2(np.median(nonzero_abs(q8(w)))))
    # the view holds the shaded range and the out-of-range 5.3 weight
    x0, x1 = ax.get_xlim()
    assert x0 <= lo and x1 >= math.log2(5.3)
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "fc1 kernel", "fc1 bias", "fc2 kernel", "fc2 bias"]
    assert any("1 out of range" in t.get_text() for t in ax.texts)


def test_activations_figure_per_layer_types() -> None:
    g = mlp_graph((4, 6, 3), seed=3)
    cfg = {"Model": {"Precision": "ap_fixed<8,3>", "ReuseFactor": 1},
           "LayerName": {"fc2": {"Precision": {"result": "ap_fixed<12,5>"}}}}
    hm = nnfab.convert_graph(g, cfg)
    x = np.random.default_rng(4).normal(size=(100, 4))
    figs = numerical(None, hm, x, layers=["fc1", "fc2"])
    assert set(figs) == {"weights", "activations"}
    (ax,) = figs["activations"].axes
    shaded = ranges_on(ax)
    assert set(shaded) == {"fc1", "fc2"}
    assert shaded["fc2"] == pytest.approx((-7.0, math.log2(16 - 2**-7)))
    assert shaded["fc1"] == pytest.approx((-5.0, math.log2(4 - 2**-5)))
    traced = hm.trace(x)
    assert median_x(ax, "median:quantized:fc2") == pytest.approx(
        math.log2(np.median(nonzero_abs(traced["fc2"]))))


def test_compare_figure_bars_are_the_errors() -> None:
    hm = small_model(big_weight=None)
    x = np.random.default_rng(5).normal(size=(150, 4))
    errors = compare_errors(None, hm, x)
    fig = compare(None, hm, x)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    bars = {p.get_gid(): p.get_height() for p in ax.patches if p.get_gid()}
    for name, (mean_abs, max_abs) in errors.items():
        assert bars[f"mean:{name}"] == pytest.approx(mean_abs)
        assert bars[f"max:{name}"] == pytest.approx(max_abs)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(errors)


# ------------------------------------------------------- framework references
@pytest.fixture(scope="module")
def jet():
    keras = pytest.importorskip("keras")
    from nnfab.demo.data import make_jet_like_data
    from nnfab.demo.run import demo_model_path

    model = keras.models.load_model(demo_model_path())
    hm = nnfab.convert_from_keras_model(model)
    x, _ = make_jet_like_data(400)
    return model, hm, x


def test_keras_reference_matched_by_layer_name(jet) -> None:
    import keras

    model, hm, x = jet
    errors = compare_errors(model, hm, x)
    # a Keras Dense with relu is fc1 -> fc1_relu in the IR: compared at fc1_relu
    assert set(errors) == {"input", "fc1_relu", "fc2_relu", "fc3_relu", "output_softmax"}
    traced = hm.trace(x)
    for layer, node in (("fc2", "fc2_relu"), ("output", "output_softmax")):
        sub = keras.Model(model.inputs, model.get_layer(layer).output)
        diff = np.abs(np.asarray(sub.predict(x, verbose=0), dtype=np.float64) - traced[node])
        assert errors[node] == pytest.approx((diff.mean(), diff.max()), rel=1e-6)
    fig = compare(model, hm, x)
    bars = {p.get_gid(): p.get_height() for p in fig.axes[0].patches if p.get_gid()}
    assert bars["max:fc3_relu"] == pytest.approx(errors["fc3_relu"][1])
    figs = numerical(model, hm, x)
    (ax,) = figs["activations"].axes
    float_rows = {ln.get_gid().split(":", 2)[2] for ln in ax.lines
                  if (ln.get_gid() or "").startswith("median:float:")}
    assert float_rows == set(errors)


def test_torch_reference_with_hooks_and_channels_last() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(48, 2))
    hm = nnfab.convert_from_pytorch_model(net, input_shape=(2, 6, 6))
    x = np.random.default_rng(6).normal(size=(30, 6, 6, 2))  # the emulator's layout
    errors = compare_errors(net, hm, x)
    # fx names the Sequential's children _0.._3; the flatten's element order differs
    # from the IR's (C,H,W vs H,W,C) and is left out
    assert set(errors) == {"input_1", "_0", "_1", "_3"}
    with torch.no_grad():
        conv = net[0](torch.as_tensor(np.moveaxis(x, -1, 1), dtype=torch.float32))
    conv = np.moveaxis(conv.double().numpy(), 1, -1)
    diff = np.abs(conv - hm.trace(x)["_0"])
    assert errors["_0"] == pytest.approx((diff.mean(), diff.max()), rel=1e-9)


# ------------------------------------------------------------------------ CLI
def test_cli_profile_project_dir(tmp_path) -> None:
    hm = small_model()
    prj = tmp_path / "prj"
    prj.mkdir()
    hm.save_ir(prj / "nnfab_model.json")
    np.save(tmp_path / "x.npy", np.random.default_rng(7).normal(size=(64, 4)))
    out = tmp_path / "figs"
    res = CliRunner().invoke(profile, [str(prj), "--data", str(tmp_path / "x.npy"),
                                       "-o", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("weights", "activations", "compare"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (out / f"{name}.svg").read_text()[:2000]
        assert f"wrote {out / name}.png" in res.output
    assert "wide-type emulator" in res.output


def test_cli_profile_weights_only_and_bad_dir(tmp_path) -> None:
    hm = small_model()
    hm.save_ir(tmp_path / "model.json")
    res = CliRunner().invoke(profile, [str(tmp_path / "model.json"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["weights.png", "weights.svg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(profile, [str(empty), "-o", str(tmp_path / "o2")])
    assert res.exit_code != 0
    assert "nnfab_model.json" in res.output
    np.save(tmp_path / "bad.npy", np.zeros((3, 7)))
    res = CliRunner().invoke(profile, [str(tmp_path / "model.json"), "--data",
                                       str(tmp_path / "bad.npy"), "-o", str(tmp_path / "o3")])
    assert res.exit_code != 0
    assert "expected shape (batch, 4)" in res.output


def test_cli_profile_keras_file(tmp_path) -> None:
    pytest.importorskip("keras")
    from nnfab.demo.data import make_jet_like_data
    from nnfab.demo.run import demo_model_path

    x, _ = make_jet_like_data(100)
    np.save(tmp_path / "x.npy", x)
    res = CliRunner().invoke(profile, [str(demo_model_path()), "--data", str(tmp_path / "x.npy"),
                                       "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "float reference: the Keras model" in res.output
    assert (tmp_path / "out" / "compare.png").stat().st_size > 1000


def test_compare_figure_marks_zero_errors() -> None:
    # with the reference's own wide types the emulator is the reference: no error at all
    hm = nnfab.convert_graph(mlp_graph((4, 6, 3), seed=3), {
        "Model": {"Precision": "ap_fixed<32,14,AP_RND_CONV,AP_SAT>", "ReuseFactor": 1}})
    x = np.round(np.random.default_rng(8).normal(size=(40, 4)), 3)
    errors = compare_errors(None, hm, x)
    assert errors and all(v == (0.0, 0.0) for v in errors.values())
    (ax,) = compare(None, hm, x).axes
    assert sum(t.get_text() == "0" for t in ax.texts) == 2 * len(errors)
    assert all(math.isnan(p.get_height()) for p in ax.patches if p.get_gid())
