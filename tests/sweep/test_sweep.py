"""Design-space sweeps: parsing, a small sweep on a 2-process LocalCluster, the Pareto front
against brute force, failing points, the cache, files and the CLI."""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import nnfab
from nnfab.demo.data import make_jet_like_data
from nnfab.errors import ConfigError
from nnfab.sweep import (
    SweepPoint,
    SweepResult,
    make_points,
    model_to_graph,
    pareto_mask,
    parse_int_list,
    parse_strategies,
    sweep,
)
from nnfab.sweep.cli import sweep as sweep_command
from nnfab.sweep.evaluate import class_labels
from tests.graphs import mlp_graph

JET = Path(nnfab.__file__).parent / "data" / "jet_tagger.keras"
STRICT = {"Model": {"ReuseFactorPolicy": "strict"}}


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def data():
    return make_jet_like_data(400, seed=3)


@pytest.fixture(scope="module")
def jet_graph():
    pytest.importorskip("keras")
    return model_to_graph(str(JET))


@pytest.fixture(scope="module")
def small(client, data, jet_graph):
    """Precision 8..10 x reuse 1, 3 x both strategies, strict reuse factors: Resource with
    reuse 3 does not fold fc1 (16 inputs) and fails."""
    x, y = data
    return sweep(jet_graph, x, y, precision="8..10", reuse=(1, 3), scheduler=client,
                 progress=False, hls_config=STRICT)


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize(("text", "expected"), [
    ("6..16", list(range(6, 17))),
    ("1,2,4,8", [1, 2, 4, 8]),
    ("8", [8]),
    ("6..12:3", [6, 9, 12]),
    ("8, 1,2..3,8", [1, 2, 3, 8]),
    (range(6, 9), [6, 7, 8]),
    ((4, np.int64(2)), [2, 4]),
    (5, [5]),
])
def test_parse_int_list(text, expected):
    assert parse_int_list(text, "--reuse") == expected


@pytest.mark.parametrize(("text", "needle"), [
    ("6..x", "'6..x' is not an integer or range"),
    ("16..6", "is empty"),
    ("1,,2", "empty value"),
    ("", "empty value"),
    ("0,1", "0 is below 1"),
    ("6..16:0", "step 0"),
    ((1.5, 2), "1.5 is not an integer"),
    (True, "not an integer"),
])
def test_parse_int_list_errors(text, needle):
    with pytest.raises(ConfigError) as e:
        parse_int_list(text, "--precision")
    msg = str(e.value)
    assert msg.startswith("--precision:")
    assert needle in msg
    assert "'6..16'" in msg  # says what is allowed


def test_parse_strategies():
    assert parse_strategies("latency, Resource,Latency") == ["Latency", "Resource"]
    with pytest.raises(ConfigError, match=r"--strategy: unknown strategy 'Fast'; allowed: "
                                          r"Latency, Resource"):
        parse_strategies("Latency,Fast", "--strategy")


def test_make_points_and_integer_bits():
    points = make_points("8..9", None, "1,2", "Latency,Resource")
    assert len(points) == 8
    assert {p.integer_bits for p in points} == {6}  # from the default ap_fixed<16,6>
    base = {"Model": {"Precision": "ap_fixed<12,4>"}}
    assert {p.integer_bits for p in make_points(8, None, 1, "Latency", base)} == {4}
    two = make_points(8, (2, 3), 1, "Latency")
    assert [p.type for p in two] == ["ap_fixed<8,2>", "ap_fixed<8,3>"]
    cfg = SweepPoint(10, 3, 4, "Resource").config(STRICT)
    assert cfg["Model"] == {"ReuseFactorPolicy": "strict", "Precision": "ap_fixed<10,3>",
                            "ReuseFactor": 4, "Strategy": "Resource"}
    assert STRICT == {"Model": {"ReuseFactorPolicy": "strict"}}  # base left alone


def test_labels():
    assert class_labels(np.eye(3)[[2, 0, 1]], 3).tolist() == [2, 0, 1]
    with pytest.raises(ConfigError, match="3 labels for 4 samples"):
        class_labels([0, 1, 2], 4)


def test_bad_arguments(data):
    x, y = data
    g = mlp_graph((16, 5))
    with pytest.raises(ConfigError, match="unknown keyword 'reuse_factor'"):
        sweep(g, x, y, reuse_factor=2)
    with pytest.raises(ConfigError, match="n_workers must be an integer >= 1"):
        sweep(g, x, y, n_workers=0)
    with pytest.raises(ConfigError, match=r"precision: range '9\.\.8' is empty"):
        sweep(g, x, y, precision="9..8")


# ------------------------------------------------------------------ the sweep
def test_small_sweep(small):
    t = small.table
    assert len(t) == 12 and small.stats["evaluated"] == 12 and small.stats["cached"] == 0
    ok = t[t["error"].isna()]
    assert len(ok) == 9
    assert ok["accuracy"].between(0, 1).all()
    assert (ok["DSP"] > 0).all() and (ok["latency"] > 0).all()
    # the estimate's II is the reuse factor; more reuse, fewer multipliers
    assert (ok["ii"] == ok["reuse"]).all()
    lat = ok[ok["strategy"] == "Latency"].set_index(["precision", "reuse"])["multipliers"]
    assert (lat.xs(3, level="reuse") < lat.xs(1, level="reuse")).all()
    assert set(t["type"]) == {"ap_fixed<8,6>", "ap_fixed<9,6>", "ap_fixed<10,6>"}


def test_failing_point_recorded(small):
    bad = small.failed
    assert len(bad) == 3
    assert set(bad["strategy"]) == {"Resource"} and set(bad["reuse"]) == {3}
    assert bad["error"].str.startswith("ConfigError: layer 'fc1'").all()
    assert bad["error"].str.contains("ReuseFactor 3").all()
    assert bad["accuracy"].isna().all()
    assert not small.pareto().index.isin(bad.index).any()


def test_accuracy_equals_direct_conversion(small, data):
    x, y = data
    row = small.table.query("precision == 10 and reuse == 3 and strategy == 'Latency'").iloc[0]
    cfg = {"Model": {"Precision": "ap_fixed<10,6>", "ReuseFactor": 3, "Strategy": "Latency"}}
    hm = nnfab.convert_from_keras_model(str(JET), hls_config=cfg)
    direct = float(np.mean(np.argmax(hm.predict(x), axis=1) == y))
    assert row["accuracy"] == direct
    assert row["DSP"] == hm.estimate().dsp


def _brute_force_front(rows: list[tuple[float, ...]], maximize: list[bool]) -> set[int]:
    """O(n^2): i is on the front unless some j is no worse everywhere and better once."""
    front = set()
    for i, a in enumerate(rows):
        dominated = False
        for j, b in enumerate(rows):
            if i == j:
                continue
            no_worse = all((bj >= aj) if mx else (bj <= aj)
                           for aj, bj, mx in zip(a, b, maximize, strict=True))
            better = any((bj > aj) if mx else (bj < aj)
                         for aj, bj, mx in zip(a, b, maximize, strict=True))
            if no_worse and better:
                dominated = True
                break
        if not dominated:
            front.add(i)
    return front


def test_pareto_front_equals_brute_force(small):
    t = small.table
    cols = ["accuracy", "DSP", "latency"]
    ok = t[t["error"].isna()]
    expected = {ok.index[k] for k in _brute_force_front(
        list(ok[cols].itertuples(index=False, name=None)), [True, False, False])}
    front = small.pareto(("accuracy:max", "LUT:min", "latency:min"))  # LUT -> DSP (no synth)
    assert set(front.index) == expected
    assert 0 < len(expected) < len(ok)
    front2 = small.pareto("accuracy:max,multipliers:min")
    expected2 = {ok.index[k] for k in _brute_force_front(
        list(ok[["accuracy", "multipliers"]].itertuples(index=False, name=None)),
        [True, False])}
    assert set(front2.index) == expected2


@pytest.mark.parametrize("seed", range(5))
def test_pareto_mask_random_with_ties(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 5, size=(60, 3)).astype(float)  # many ties and duplicates
    got = set(np.flatnonzero(pareto_mask(values)))
    assert got == _brute_force_front([tuple(r) for r in values], [False] * 3)


def test_pareto_objective_errors(small):
    with pytest.raises(ConfigError, match="no column 'area'"):
        small.pareto(("accuracy:max", "area:min"))
    with pytest.raises(ConfigError, match="direction must be one of min, max"):
        small.pareto("accuracy:best")


def test_cache_resume_and_rerun(client, data, tmp_path, caplog):
    x, y = data
    g = mlp_graph((16, 8, 5), seed=1)
    onehot = np.eye(5)[y]
    kwargs = dict(precision="8..9", reuse="1,2", strategy="Latency", cache_dir=tmp_path,
                  progress=False)
    first = sweep(g, x, onehot, scheduler=client, **kwargs)
    assert first.stats["evaluated"] == 4 and first.stats["cached"] == 0
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 4
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    # no cluster is reachable at this address: the second run must not need one
    with caplog.at_level(logging.INFO, logger="nnfab.sweep"):
        again = sweep(g, x, onehot, scheduler="tcp://127.0.0.1:9", **kwargs)
    assert again.stats["evaluated"] == 0 and again.table["cached"].all()
    assert "4 of 4 points from the cache" in caplog.text
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    pd.testing.assert_frame_equal(first.table.drop(columns="cached"),
                                  again.table.drop(columns="cached"))
    # an interrupted sweep: one point missing -> only that one is evaluated
    os.remove(files[0])
    resumed = sweep(g, x, onehot, scheduler=client, **kwargs)
    assert resumed.stats["evaluated"] == 1 and resumed.stats["cached"] == 3
    # other data is another point
    other = sweep(g, x[:200], y[:200], scheduler=client, **{**kwargs, "precision": 8,
                                                           "reuse": 1})
    assert other.stats["evaluated"] == 1


@pytest.mark.timeout(180)
def test_repeated_sweeps_of_the_same_data(client, data):
    """The same graph and data scattered sweep after sweep on one client: content-hashed
    scatter keys made about one sweep in 60 hang forever (a fresh key each time does not)."""
    x, y = data
    g = mlp_graph((16, 8, 5), seed=2)
    for _ in range(80):
        r = sweep(g, x[:64], y[:64], precision=8, reuse=1, strategy="Latency",
                  scheduler=client, progress=False)
        assert r.stats["evaluated"] == 1 and r.stats["failed"] == 0, r.table["error"].tolist()


def test_save_and_plot(small, tmp_path):
    csv = small.save(tmp_path / "t.csv")
    back = pd.read_csv(csv)
    assert len(back) == 12 and back["accuracy"].sum() == pytest.approx(
        small.table["accuracy"].sum())
    pq = small.save(tmp_path / "t.parquet")
    assert pd.read_parquet(pq)["error"].notna().sum() == 3
    with pytest.raises(ConfigError, match=r"unknown table format '\.xlsx'; allowed suffixes"):
        small.save(tmp_path / "t.xlsx")
    png = small.plot(tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(small, SweepResult) and "12 points" in repr(small)


# ------------------------------------------------------------------ the CLI
def test_cli(client, data, tmp_path):
    x, y = data
    np.save(tmp_path / "X.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "out"
    args = [str(JET), "--data", f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}", "--precision",
            "9..10", "--reuse", "2", "--strategy", "Latency", "--scheduler",
            client.scheduler.address, "--no-progress", "-o", str(out)]
    r = CliRunner().invoke(sweep_command, args)
    assert r.exit_code == 0, r.output
    assert "2 points: 2 evaluated" in r.output and "Pareto front" in r.output
    for name in ("table.csv", "pareto.csv", "sweep.png"):
        assert (out / name).stat().st_size > 0
    assert len(pd.read_csv(out / "table.csv")) == 2
    r = CliRunner().invoke(sweep_command, args)
    assert "0 evaluated, 2 from the cache" in r.output


@pytest.mark.parametrize(("option", "value", "needle"), [
    ("--precision", "6..", "'6..' is not an integer or range"),
    ("--reuse", "0..4", "0 is below 1"),
    ("--strategy", "Latency,Pipeline", "unknown strategy 'Pipeline'; allowed: Latency, "
                                       "Resource"),
    ("--scheduler", "localhost:8786", "is not a scheduler address"),
    ("--data", "X.npy", "two .npy files"),
])
def test_cli_errors(tmp_path, option, value, needle):
    np.save(tmp_path / "X.npy", np.zeros((2, 16)))
    np.save(tmp_path / "y.npy", np.zeros(2))
    args = [str(JET), "--data", f"{tmp_path / 'X.npy'},{tmp_path / 'y.npy'}", option, value]
    r = CliRunner().invoke(sweep_command, args)
    assert r.exit_code == 2
    assert f"'{option}'" in r.output and needle in r.output


# ------------------------------------------------------------------ synthesis
@pytest.mark.slow
def test_synth_points(client, tmp_path):
    pytest.importorskip("pyosys")
    g = mlp_graph((4, 3, 2))
    x = np.random.default_rng(0).normal(size=(50, 4))
    y = np.zeros(50, dtype=int)
    r = sweep(g, x, y, precision=8, integer_bits=3, reuse=(1, 2), strategy="Latency",
              synth=True, scheduler=client, progress=False)
    t = r.table.set_index("reuse")
    assert t["error"].isna().all(), t["error"].tolist()
    assert (t["LUT"] > 0).all() and (t["FF"] > 0).all()
    assert t.loc[2, "rtl_ii"] == 2 and t.loc[1, "rtl_ii"] == 1
    front = r.pareto(("accuracy:max", "LUT:min", "rtl_latency:min"))
    assert set(front.index) <= {0, 1} and len(front) >= 1


def test_all_pairs_order(small):
    """Points come back in the order of the space, whatever order they finished in."""
    t = small.table
    expected = list(itertools.product(["Latency", "Resource"], [1, 3], [8, 9, 10]))
    assert list(t[["strategy", "reuse", "precision"]].itertuples(index=False,
                                                                 name=None)) == expected
