"""GarNet / GarNetStack (simplified, ``input_format='xn'``) from live Keras models and from
Keras 2 JSON + HDF5 files.

Oracles: the Keras layer of ``garnet_reference.py`` (written from the published layer's
definition) and a float64 NumPy forward pass written here. The NumPy pass runs twice: with
``exp(-d**2)`` itself (it must match Keras to float32 precision: the reading of the
layer is right) and with the edge-weight table's rule (bins of 2**-7 over [-4, 4), the
value at the bin centre; it must match nnfab with wide types to 1e-6: the IR computes the
layer). The difference between the two is the table's own error, at most
``max|d/dd exp(-d**2)| * step / 2 = 0.86 * 2**-8``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nnfab
from nnfab.errors import BackendError, FrontendError, UnsupportedLayerError
from nnfab.frontends.keras_json import graph_from_keras_json

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

sys.path.insert(0, str(Path(__file__).parent))
from garnet_reference import GarNet, GarNetStack  # noqa: E402

V, F = 12, 4
TABLE_STEP, TABLE_HALF, TABLE_SIZE = 2.0**-7, 4.0, 1024


def wide(*means: str) -> dict[str, Any]:
    """Wide types: the table entries (edge weights, tanh) and 1/count scales to 32 bits."""
    table = {"Precision": {"table": "ap_fixed<34,2,AP_RND_CONV,AP_SAT>"}}
    scale = {"Precision": {"scale": "ap_ufixed<32,1,AP_RND_CONV,AP_SAT>"}}
    return {"Model": {"Precision": "ap_fixed<44,14>"},
            "LayerType": {"Activation": table, "GlobalPooling1D": scale},
            "LayerName": {name: scale for name in means}}


def centre(d: np.ndarray) -> np.ndarray:
    """The centre of d's bin in the default tables (gaussian, tanh: 2**-7 over [-4, 4))."""
    i = np.clip(np.floor(d / TABLE_STEP) + TABLE_SIZE // 2, 0, TABLE_SIZE - 1)
    return (i - TABLE_SIZE // 2 + 0.5) * TABLE_STEP


def table_exp(d: np.ndarray) -> np.ndarray:
    """The edge-weight table's rule: the entry of d's bin, exp(-c**2) at its centre c."""
    return np.exp(-centre(d) ** 2)


def ternary(w: np.ndarray) -> np.ndarray:
    return np.where(w > 0.5, 1.0, np.where(w < -0.5, -1.0, 0.0))


def numpy_garnet(x: np.ndarray, n: np.ndarray, blocks: list[dict[str, np.ndarray]],
                 collapse: str | None, mean_by_nvert: bool, act: str | None,
                 edge=lambda d: np.exp(-d * d), tanh=np.tanh) -> np.ndarray:
    """The simplified GarNet in float64 (batch first)."""
    v = x.shape[1]
    c = np.clip(np.floor(n.reshape(-1)), 0, v)
    mask = (np.arange(v)[None, :] < c[:, None]).astype(np.float64)[..., None]
    for w in blocks:
        f = x @ w["FLR_kernel"] + w["FLR_bias"]
        e = mask * edge(x @ w["S_kernel"] + w["S_bias"])
        prod = e[:, :, :, None] * f[:, :, None, :]
        if mean_by_nvert:
            agg = prod.sum(axis=1) / np.maximum(c, 1)[:, None, None]
        else:
            agg = prod.mean(axis=1)
        upd = (e[:, :, :, None] * agg[:, None, :, :]).reshape(x.shape[0], v, -1)
        y = upd @ w["Fout_kernel"] + w["Fout_bias"]
        x = mask * (np.maximum(y, 0) if act == "relu" else tanh(y) if act == "tanh" else y)
    if collapse == "mean":
        return x.sum(axis=1) / np.maximum(c, 1)[:, None] if mean_by_nvert else x.mean(axis=1)
    if collapse == "sum":
        return x.sum(axis=1)
    if collapse == "max":
        return x.max(axis=1)
    return x


def samples(count: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features on a 2**-8 grid (padding vertices zero, as real data has them) and counts
    covering 0 and V."""
    rng = np.random.default_rng(seed)
    n = rng.integers(0, V + 1, size=(count, 1))
    n[:2, 0] = (0, V)
    x = np.round(rng.normal(0, 1, (count, V, F)) * 256) / 256
    return x * (np.arange(V)[None, :, None] < n[:, :, None]), n.astype(np.float64)


def block_weights(layer: Any, stack: bool) -> list[dict[str, np.ndarray]]:
    by_name = {w.path.split("/")[-1]: np.asarray(w.numpy(), dtype=np.float64)
               for w in layer.weights}
    blocks = []
    for i in range(len(layer.blocks)):
        tag = str(i) if stack else ""
        blocks.append({k: by_name[f"{k.split('_')[0]}{tag}_{k.split('_')[1]}"]
                       for k in ("FLR_kernel", "FLR_bias", "S_kernel", "S_bias",
                                 "Fout_kernel", "Fout_bias")})
    return blocks


def live_model(layer: Any) -> Any:
    x = keras.Input((V, F), name="x")
    n = keras.Input((1,), name="n", dtype="int32")
    model = keras.Model([x, n], layer([x, n]))
    rng = np.random.default_rng(3)
    for w in layer.weights:  # a scale that keeps the edge weights away from 0 and 1
        w.assign(rng.normal(0, 0.7, tuple(w.shape)))
    return model


@pytest.mark.parametrize(("collapse", "mean_by_nvert", "act"), [
    ("mean", False, None), ("mean", True, "relu"), ("sum", False, "tanh"),
    ("max", True, None), (None, False, "relu")])
def test_garnet_matches_keras_and_the_rule(collapse: str | None, mean_by_nvert: bool,
                                           act: str | None) -> None:
    layer = GarNet(4, 6, 5, simplified=True, collapse=collapse, mean_by_nvert=mean_by_nvert,
                   output_activation=act, name="gar")
    model = live_model(layer)
    x, n = samples()
    blocks = block_weights(layer, stack=False)
    keras_out = np.asarray(model.predict([x, n.astype(np.int32)], verbose=0), np.float64)
    exact = numpy_garnet(x, n, blocks, collapse, mean_by_nvert, act)
    rows = n[:, 0] > 0 if mean_by_nvert else slice(None)  # Keras: 0 / 0 = NaN at count 0
    np.testing.assert_allclose(keras_out[rows], exact[rows],
                               atol=2e-5 * max(1, np.abs(exact).max()))
    means = ["gar_mean", "gar"] if mean_by_nvert else []
    hm = nnfab.convert_from_keras_model(model, hls_config=wide(*means))
    got = hm.predict([x, n])
    tabled = numpy_garnet(x, n, blocks, collapse, mean_by_nvert, act, edge=table_exp,
                          tanh=lambda y: np.tanh(centre(y)))
    np.testing.assert_allclose(got, tabled, atol=1e-6, rtol=0)
    assert 0 < np.abs(tabled - exact).max() < 0.05  # the table's own error, carried on
    assert hm.graph.tensors["n"].type.is_integer  # the count input gets an integer type
    if collapse is None:  # padding vertices are zero
        pad = np.arange(V)[None, :] >= n
        assert np.all(got[pad] == 0) and np.count_nonzero(got[~pad]) > 0


def test_garnet_stack_chains_blocks() -> None:
    layer = GarNetStack([3, 4], [5, 3], [4, 2], simplified=True, collapse="mean",
                        output_activation="relu", name="stack")
    model = live_model(layer)
    x, n = samples(200, seed=5)
    keras_out = np.asarray(model.predict([x, n.astype(np.int32)], verbose=0), np.float64)
    blocks = block_weights(layer, stack=True)
    np.testing.assert_allclose(keras_out, numpy_garnet(x, n, blocks, "mean", False, "relu"),
                               atol=2e-5)
    hm = nnfab.convert_from_keras_model(model, hls_config=wide())
    names = [nd.name for nd in hm.graph.nodes]
    assert "stack_b0_Fout" in names and "stack_b1_Fout" in names and names[-1] == "stack"
    np.testing.assert_allclose(
        hm.predict([x, n]), numpy_garnet(x, n, blocks, "mean", False, "relu", edge=table_exp),
        atol=1e-6, rtol=0)


def test_quantize_transforms_ternarizes_flr_and_fout() -> None:
    layer = GarNet(3, 4, 4, simplified=True, collapse="sum", quantize_transforms=True,
                   name="gar")
    model = live_model(layer)
    for w in layer.weights:  # keep clear of the ternary threshold (|w| = 0.5)
        v = w.numpy()
        w.assign(np.where(np.abs(np.abs(v) - 0.5) < 0.02, v * 1.2, v))
    blocks = block_weights(layer, stack=False)
    for key in ("FLR_kernel", "FLR_bias", "Fout_kernel"):
        blocks[0][key] = ternary(blocks[0][key])
    assert {-1.0, 0.0, 1.0} <= set(np.unique(blocks[0]["Fout_kernel"]))
    hm = nnfab.convert_from_keras_model(model, hls_config=wide())
    x, n = samples(100, seed=7)
    np.testing.assert_allclose(
        hm.predict([x, n]), numpy_garnet(x, n, blocks, "sum", False, None, edge=table_exp),
        atol=1e-6, rtol=0)


# ------------------------------------------------------------------ model files
def _json_model(config: dict[str, Any]) -> dict[str, Any]:
    def entry(cls: str, name: str, inbound: list[str], **cfg: Any) -> dict[str, Any]:
        return {"class_name": cls, "name": name, "config": {"name": name, **cfg},
                "inbound_nodes": [[[src, 0, 0, {}] for src in inbound]] if inbound else []}

    layers = [entry("InputLayer", "x", [], batch_input_shape=[None, V, F]),
              entry("InputLayer", "n", [], batch_input_shape=[None, 1], dtype="int32"),
              entry("GarNet", "gar", ["x", "n"], **config)]
    return {"class_name": "Model", "keras_version": "2.4.0",
            "config": {"name": "m", "layers": layers, "input_layers": [["x", 0, 0], ["n", 0, 0]],
                       "output_layers": [["gar", 0, 0]]}}


def _write(tmp_path: Path, config: dict[str, Any], weights: dict[str, np.ndarray]) -> Path:
    import h5py

    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.attrs["layer_names"] = np.array([b"x", b"n", b"gar"])
        f.attrs["keras_version"] = b"2.4.0"
        for name in ("x", "n"):
            f.create_group(name).attrs["weight_names"] = np.array([], dtype="S")
        g = f.create_group("gar")
        paths = [f"gar/{sub}/{k}:0" for k in weights for sub in [k.split("_")[0]]]
        g.attrs["weight_names"] = np.array([p.encode() for p in paths])
        for p, v in zip(paths, weights.values(), strict=True):
            g.create_dataset(p, data=np.asarray(v, dtype=np.float32))
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_json_model(config)))
    return path


GARNET_CONFIG = {"n_aggregators": 3, "n_filters": 4, "n_propagate": 5, "simplified": True,
                 "collapse": "mean", "input_format": "xn", "output_activation": None,
                 "mean_by_nvert": True, "quantize_transforms": False}


def _file_weights(seed: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"FLR_kernel": (F, 5), "FLR_bias": (5,), "S_kernel": (F, 3), "S_bias": (3,),
              "Fout_kernel": (15, 4), "Fout_bias": (4,)}
    return {k: rng.normal(0, 0.7, s).astype(np.float32).astype(np.float64)
            for k, s in shapes.items()}


def test_garnet_from_a_keras2_json_and_h5(tmp_path: Path) -> None:
    weights = _file_weights()
    path = _write(tmp_path, GARNET_CONFIG, weights)
    graph = graph_from_keras_json(path, tmp_path / "w.h5")
    hm = nnfab.convert_graph(graph, wide("gar_mean", "gar"))
    x, n = samples(150, seed=9)
    want = numpy_garnet(x, n, [weights], "mean", True, None, edge=table_exp)
    np.testing.assert_allclose(hm.predict([x, n]), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("change", "match"), [
    ({"simplified": False}, "simplified"),
    ({"input_format": "x"}, "input_format"),
    ({"collapse": "median"}, "collapse"),
    ({"total_bits": 8, "int_bits": 2}, "total_bits"),
    ({"n_filters": [4]}, "n_filters"),
])
def test_unsupported_garnet_options_are_named(tmp_path: Path, change: dict[str, Any],
                                               match: str) -> None:
    path = _write(tmp_path, {**GARNET_CONFIG, **change}, _file_weights())
    with pytest.raises(UnsupportedLayerError, match=rf"layer 'gar' \(GarNet\).*{match}"):
        graph_from_keras_json(path, tmp_path / "w.h5")


def test_missing_and_misshaped_weights_are_named(tmp_path: Path) -> None:
    weights = _file_weights()
    del weights["S_bias"]
    path = _write(tmp_path, GARNET_CONFIG, weights)
    with pytest.raises(FrontendError, match="weight 'S_bias' is missing"):
        graph_from_keras_json(path, tmp_path / "w.h5")
    weights = _file_weights()
    weights["Fout_kernel"] = weights["Fout_kernel"][:-1]
    path = _write(tmp_path, GARNET_CONFIG, weights)
    with pytest.raises(FrontendError, match=r"'Fout_kernel' has shape \(14, 4\), expected"):
        graph_from_keras_json(path, tmp_path / "w.h5")


def _narrow(tmp_path: Path) -> Any:
    path = _write(tmp_path, {**GARNET_CONFIG, "output_activation": "relu"}, _file_weights())
    cfg = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
           "LayerName": {"gar_edge": {"Precision": {"table": "ap_ufixed<8,0,AP_RND,AP_SAT>"},
                                      "TableSize": 256},
                         "gar_products": {"Precision": {"result": "ap_fixed<10,3,AP_RND>"}},
                         "gar_mean": {"Precision": {"scale": "ap_ufixed<6,0,AP_RND,AP_SAT>"}}}}
    return nnfab.convert_graph(graph_from_keras_json(path, tmp_path / "w.h5"), cfg)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_garnet_csim_matches_emulator(tmp_path: Path) -> None:
    from nnfab.backends.hls import CSimLibrary

    hm = _narrow(tmp_path)
    x, n = samples(400, seed=11)
    n[:6, 0] = (-2, 0.5, 13, 40, 1.75, V)  # counts out of range and fractional: clipped
    want = hm.predict([x, n])
    np.testing.assert_array_equal(CSimLibrary(hm, cache_dir=tmp_path).predict([x, n]), want)
    assert np.count_nonzero(want) > want.size // 3


@pytest.mark.verilator
def test_garnet_verilog_matches_emulator(tmp_path: Path) -> None:
    """Two inputs on one bus (features ap_fixed<12,5>, count ap_int): Verilator == emulator."""
    from nnfab.tools.verilator import verilator_available

    if not verilator_available():
        pytest.skip("verilator not installed")
    hm = _narrow(tmp_path)
    x, n = samples(300, seed=11)
    n[:6, 0] = (-2, 0.5, 13, 40, 1.75, V)
    prj = hm.to_rtl(tmp_path / "rtl")
    result = prj.simulate([x, n])
    np.testing.assert_array_equal(np.asarray(result), hm.predict([x, n]))
    # the bus type holds ap_fixed<12,5> (7 fractional bits) and ap_int<6> (5 magnitude bits)
    assert str(prj.design.in_type).startswith("ap_fixed<13,6")
    with pytest.raises(BackendError, match=r"2 inputs \['x', 'n'\]"):
        prj.simulate(x)


@pytest.mark.verilator
def test_cli_rtl_simulates_both_inputs_from_an_npz(tmp_path: Path) -> None:
    """``nnfab rtl PROJECT -s inputs.npz``: one array per input, by name or in order."""
    from click.testing import CliRunner

    from nnfab.cli import cli
    from nnfab.tools.verilator import verilator_available

    if not verilator_available():
        pytest.skip("verilator not installed")
    root = tmp_path / "prj"
    root.mkdir()
    _narrow(tmp_path).save_ir(root / "nnfab_model.json")
    x, n = samples(40, seed=13)
    np.savez(tmp_path / "named.npz", n=n, x=x)
    np.savez(tmp_path / "ordered.npz", x, n)
    for name in ("named", "ordered"):
        res = CliRunner().invoke(cli, ["rtl", str(root), "-o", str(tmp_path / "out"), "-s",
                                       str(tmp_path / f"{name}.npz")])
        assert res.exit_code == 0, res.output
        assert "40 samples" in res.output and "bit-exact with the emulator: yes" in res.output
