"""Large data: predict_file on .npy/HDF5 in chunks, predict_dask, the CLI's streaming predict.

Every path must give hm.predict's outputs on the in-memory array bit for bit.
"""

from __future__ import annotations

import logging
import tracemalloc

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import nnfab.emulate.large as large
from nnfab.api import convert_graph
from nnfab.cli import cli
from nnfab.emulate.large import predict_dask
from nnfab.errors import ConfigError
from nnfab.model import NnfabModel
from tests.graphs import mlp_graph

CONFIG = {"Model": {"Precision": "ap_fixed<10,3>"}}  # narrow: some values overflow


def model() -> NnfabModel:
    return convert_graph(mlp_graph((16, 24, 5), seed=4, softmax=True), CONFIG)


def events(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 2.5, size=(n, 16)).astype(np.float32)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(
        a.view(np.uint64), b.view(np.uint64))


@pytest.fixture(scope="module")
def hm() -> NnfabModel:
    return model()


def test_npy_file_matches_in_memory_predict(tmp_path, hm):
    x = events(5000)
    np.save(tmp_path / "x.npy", x)
    expected = hm.predict(x, warn_overflow=False)
    report = hm.overflow_report()
    out = hm.predict_file(tmp_path / "x.npy", chunk_size=777, output=tmp_path / "y.npy",
                          warn_overflow=False)
    assert isinstance(out, np.memmap) and same_bits(out, expected)
    assert same_bits(np.load(tmp_path / "y.npy"), expected)
    assert hm.overflow_report() == report  # counts summed over the 7 chunks
    assert same_bits(hm.predict(str(tmp_path / "x.npy"), warn_overflow=False), expected)
    in_memory = hm.predict_file(tmp_path / "x.npy", chunk_size=5000, warn_overflow=False)
    assert not isinstance(in_memory, np.memmap) and same_bits(in_memory, expected)


def test_one_overflow_warning_per_layer_over_all_chunks(tmp_path, hm, caplog):
    x = events(3000, seed=1)
    np.save(tmp_path / "x.npy", x)
    with caplog.at_level(logging.WARNING, logger="nnfab.model"):
        hm.predict(x)
    whole = [r.getMessage() for r in caplog.records]
    assert whole  # the narrow types do overflow
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nnfab.model"):
        hm.predict_file(tmp_path / "x.npy", chunk_size=100)  # 30 chunks
    assert [r.getMessage() for r in caplog.records] == whole
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nnfab.model"):
        hm.predict_file(tmp_path / "x.npy", chunk_size=100, warn_overflow=False)
    assert not caplog.records


def test_hdf5_dataset_selection_and_errors(tmp_path, hm):
    x = events(1200, seed=2)
    expected = hm.predict(x, warn_overflow=False)
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f.create_dataset("events/features", data=x, chunks=(100, 16))
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["x"] = x
        f["labels"] = np.zeros(1200)
    assert same_bits(hm.predict_file(tmp_path / "one.h5", chunk_size=500), expected)
    assert same_bits(hm.predict_file(tmp_path / "two.h5", dataset="x", chunk_size=500),
                     expected)
    with pytest.raises(ConfigError, match=r"2 datasets.*dataset=.*labels, x"):
        hm.predict_file(tmp_path / "two.h5")
    with pytest.raises(ConfigError, match=r"no dataset 'features'; available: labels, x"):
        hm.predict_file(tmp_path / "two.h5", dataset="features")
    with pytest.raises(ConfigError, match=r"'labels': has shape \(1200,\).*\(N, 16\)"):
        hm.predict_file(tmp_path / "two.h5", dataset="labels")


def test_clear_errors(tmp_path, hm, monkeypatch):
    with pytest.raises(ConfigError, match="does not exist"):
        hm.predict_file(tmp_path / "missing.npy")
    np.save(tmp_path / "narrow.npy", np.zeros((10, 15), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"narrow.npy: has shape \(10, 15\).*\(N, 16\)"):
        hm.predict_file(tmp_path / "narrow.npy")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ConfigError, match=r"\.npy or HDF5"):
        hm.predict_file(tmp_path / "x.csv")
    np.save(tmp_path / "x.npy", events(50))
    with pytest.raises(ConfigError, match=r"dataset=.*HDF5"):
        hm.predict_file(tmp_path / "x.npy", dataset="x")
    with pytest.raises(ConfigError, match=r"ending in \.npy"):
        hm.predict_file(tmp_path / "x.npy", output=tmp_path / "y.csv")
    with pytest.raises(ConfigError, match="trace takes an array"):
        hm.trace(str(tmp_path / "x.npy"))
    with pytest.raises(ConfigError, match="is the input file"):
        hm.predict_file(tmp_path / "x.npy", output=tmp_path / "x.npy")
    assert np.load(tmp_path / "x.npy").shape == (50, 16)  # left alone
    with pytest.raises(ConfigError, match="chunk_size"):
        hm.predict_file(tmp_path / "x.npy", chunk_size=0)
    monkeypatch.setattr(large, "RETURN_LIMIT_BYTES", 1000)
    with pytest.raises(ConfigError, match="give output="):
        hm.predict_file(tmp_path / "x.npy")


def test_several_outputs_get_one_file_each(tmp_path):
    g = mlp_graph((16, 8, 5), seed=7)
    g.outputs = ["fc1", "fc2"]
    hm2 = convert_graph(g, CONFIG)
    x = events(1000, seed=8)
    expected = hm2.predict(x, warn_overflow=False)
    np.save(tmp_path / "x.npy", x)
    outs = hm2.predict_file(tmp_path / "x.npy", output=tmp_path / "y.npy", chunk_size=300,
                            warn_overflow=False)
    assert [o.shape for o in outs] == [(1000, 8), (1000, 5)]
    for name, out, exp in zip(("fc1", "fc2"), outs, expected, strict=True):
        assert same_bits(out, exp) and same_bits(np.load(tmp_path / f"y_{name}.npy"), exp)
    da = pytest.importorskip("dask.array")
    lazy = predict_dask(hm2, da.from_array(x, chunks=250))
    for out, exp in zip(lazy, expected, strict=True):
        assert same_bits(out.compute(scheduler="synchronous"), exp)


def test_empty_file_gives_empty_outputs(tmp_path, hm):
    np.save(tmp_path / "x.npy", np.zeros((0, 16), dtype=np.float32))
    out = hm.predict_file(tmp_path / "x.npy", output=tmp_path / "y.npy")
    assert out.shape == (0, 5)


def write_events(path, n: int) -> int:
    """``n`` events written to an .npy file in pieces; returns the file size."""
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 16))
    for start in range(0, n, 100_000):
        x[start : start + 100_000] = events(min(100_000, n - start), seed=start)
    x.flush()
    del x
    return path.stat().st_size


def traced_peak(hm: NnfabModel, path, output) -> int:
    tracemalloc.start()
    try:
        hm.predict_file(path, output=output, chunk_size=4096, warn_overflow=False,
                        progress=False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_on_a_large_memmapped_file(tmp_path, hm):
    big = write_events(tmp_path / "big.npy", 400_000)  # 26 MB of float32 input
    write_events(tmp_path / "small.npy", 50_000)
    hm.compile()
    peak_small = traced_peak(hm, tmp_path / "small.npy", tmp_path / "y_small.npy")
    peak = traced_peak(hm, tmp_path / "big.npy", tmp_path / "y.npy")
    # bounded by the chunk, not the file: 8x the samples, (almost) the same peak
    assert peak < big / 4, f"peak {peak / 2**20:.1f} MiB, file {big / 2**20:.0f} MiB"
    assert peak < 1.25 * peak_small + 2**20, (peak, peak_small)
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    piece = np.load(tmp_path / "big.npy", mmap_mode="r")[-3000:]
    assert same_bits(y[-3000:], hm.predict(piece, warn_overflow=False))


# ---------------------------------------------------------------------- dask
@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_dask_matches_in_memory_predict(hm, scheduler):
    da = pytest.importorskip("dask.array")
    x = events(2500, seed=3)
    expected = hm.predict(x, warn_overflow=False)
    lazy = predict_dask(hm, da.from_array(x, chunks=(600, 8)))  # features split: rechunked
    assert lazy.shape == (2500, 5) and lazy.chunks[0] == (600, 600, 600, 600, 100)
    assert same_bits(lazy.compute(scheduler=scheduler), expected)


def test_dask_errors(hm):
    da = pytest.importorskip("dask.array")
    with pytest.raises(ConfigError, match=r"\(N, 16\)"):
        predict_dask(hm, da.zeros((10, 15), chunks=5))
    with pytest.raises(ConfigError, match=r"dask\.array\.Array"):
        predict_dask(hm, np.zeros((10, 16)))


def test_dask_distributed_local_cluster(hm):
    distributed = pytest.importorskip("dask.distributed")
    da = pytest.importorskip("dask.array")
    x = events(2000, seed=5)
    expected = hm.predict(x, warn_overflow=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        out = client.compute(predict_dask(hm, da.from_array(x, chunks=500))).result()
    assert same_bits(out, expected)  # the emulator was pickled to a worker process


# ----------------------------------------------------------------------- CLI
def test_cli_streams_npy_and_hdf5(tmp_path, hm):
    hm.save_ir(tmp_path / "nnfab_model.json")
    x = events(900, seed=6)
    expected = hm.predict(x, warn_overflow=False)
    np.save(tmp_path / "x.npy", x)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["a"] = x
        f["b"] = x[:, :3]
    runner = CliRunner()
    res = runner.invoke(cli, ["predict", str(tmp_path), "-i", str(tmp_path / "x.npy"), "-o",
                              str(tmp_path / "y.npy"), "--chunk-size", "200"])
    assert res.exit_code == 0, res.output
    assert same_bits(np.load(tmp_path / "y.npy"), expected)
    res = runner.invoke(cli, ["predict", str(tmp_path), "-i", str(tmp_path / "x.h5"),
                              "--dataset", "a", "-o", str(tmp_path / "y2.npy")])
    assert res.exit_code == 0, res.output
    assert same_bits(np.load(tmp_path / "y2.npy"), expected)
    res = runner.invoke(cli, ["predict", str(tmp_path), "-i", str(tmp_path / "x.h5"),
                              "--dataset", "c"])
    assert isinstance(res.exception, ConfigError) and "available: a, b" in str(res.exception)
