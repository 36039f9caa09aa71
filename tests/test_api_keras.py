"""End to end from Keras: the shipped jet tagger, float vs emulator, public API."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import nnfab  # noqa: E402
from nnfab.demo.data import make_jet_like_data  # noqa: E402
from nnfab.demo.run import demo_model_path  # noqa: E402
from nnfab.frontends.keras import load_keras_model  # noqa: E402


@pytest.fixture(scope="module")
def jet():
    model = load_keras_model(demo_model_path())
    x, y = make_jet_like_data(3000, seed=7)
    logits_model = keras.Model(model.inputs, model.get_layer("output").output)
    # Keras fuses softmax into the Dense layer: rebuild the pre-softmax logits by hand.
    dense = model.get_layer("output")
    penultimate = keras.Model(model.inputs, dense.input)
    h = np.asarray(penultimate.predict(x, verbose=0), dtype=np.float64)
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in dense.get_weights())
    del logits_model
    return model, x, y, h @ kernel + bias, np.asarray(model.predict(x, verbose=0), np.float64)


def test_wide_types_match_float_logits_within_the_quantization_bound(jet) -> None:
    model, x, _, logits, _ = jet
    wide = "ap_fixed<48,16,AP_RND_CONV,AP_SAT>"
    cfg = nnfab.config_from_keras_model(model, default_precision=wide)
    hm = nnfab.convert_from_keras_model(model, hls_config=cfg)
    trace = hm.trace(x)
    # Each of ~4 layers adds at most (n_in + 2) half-lsb errors, amplified by |W| row sums;
    # 2**-32 * 1e4 is far above that bound and far below any real mismatch.
    assert np.max(np.abs(trace["output"] - logits)) < 1e4 * 2.0**-32


def test_wide_types_softmax_within_table_bound(jet) -> None:
    model, x, _, _, probs = jet
    cfg = nnfab.config_from_keras_model(model, default_precision="ap_fixed<48,16,AP_RND_CONV>")
    hm = nnfab.convert_from_keras_model(model, hls_config=cfg)
    y = hm.predict(x)
    # exp table: argument step 8/1024 -> factor e**(8/1024); reciprocal table: step 8/1024 over
    # sums >= 1 -> relative error <= 4/1024; table entries: 2**-17. Relative bound on each p_i:
    rel = math.expm1(8 / 1024) + 4 / 1024 + 2 * 2.0**-17
    assert np.all(np.abs(y - probs) <= rel * np.maximum(probs, 0) + 2 * rel + 2.0**-10)


def test_default_types_keep_accuracy_and_softmax_not_constant(jet) -> None:
    model, x, y, _, probs = jet
    hm = nnfab.convert_from_keras_model(model)
    out = hm.predict(x)
    assert out.shape == (len(x), 5)
    assert len(np.unique(out[:, 0])) > 100
    float_acc = np.mean(np.argmax(probs, 1) == y)
    fixed_acc = np.mean(np.argmax(out, 1) == y)
    assert fixed_acc > float_acc - 0.02
    assert np.mean(np.argmax(probs, 1) == np.argmax(out, 1)) > 0.97


def test_predict_equals_trace_and_handles_single_sample(jet) -> None:
    model, x, *_ = jet
    hm = nnfab.convert_from_keras_model(model)
    y = hm.predict(x[:50])
    assert np.array_equal(hm.trace(x[:50])["output_softmax"], y)
    assert np.array_equal(hm.predict(x[3]), y[3:4])
    with pytest.raises(nnfab.NnfabError, match="expected shape"):
        hm.predict(np.zeros((4, 15)))


def test_model_path_and_names(jet, tmp_path) -> None:
    hm = nnfab.convert_from_keras_model(str(demo_model_path()))
    assert [n.name for n in hm.graph.nodes] == [
        "input", "fc1", "fc1_relu", "fc2", "fc2_relu", "fc3", "fc3_relu", "output",
        "output_softmax"]
    hm.save_ir(tmp_path / "m.json")
    again = nnfab.NnfabModel(nnfab.Graph.load(tmp_path / "m.json"), {})
    x = jet[1][:100]
    assert np.array_equal(again.predict(x), hm.predict(x))


def test_csim_engine_equals_emulator_and_bad_engine(jet, tmp_path) -> None:
    model, x, *_ = jet
    hm = nnfab.convert_from_keras_model(model, output_dir=tmp_path / "prj")
    assert np.array_equal(hm.predict(x[:500], engine="csim"), hm.predict(x[:500]))
    traced = hm.trace(x[:20], engine="csim")
    assert np.array_equal(traced["fc2_relu"], hm.trace(x[:20])["fc2_relu"])
    with pytest.raises(nnfab.ConfigError, match="csim"):
        hm.predict(x, engine="vivado")
    root = hm.write(tb_input=x[:5])
    assert (root / "firmware").is_dir()
    assert (root / "tb_data" / "tb_output_predictions.dat").exists()
