"""Compiled C simulation (generated HLS C++ + nnfab's ap_fixed.h, g++) == emulator, bit for bit.

The emulator is itself tested against Fraction arithmetic (tests/emulate); here every
output of the C++ must equal it exactly (np.array_equal), on random inputs and on
inputs built to hit rounding ties, saturation and wrap-around.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hls_helpers import (
    ACTIVATIONS_CONFIG,
    GXX,
    activations_graph,
    cnn_graph,
    edge_inputs,
    mlp_graph,
    needs_gxx,
)

import nnfab
from nnfab.backends.hls import CSimLibrary, write_project
from nnfab.backends.hls import csim as csim_module
from nnfab.errors import BackendError
from nnfab.ir import FixedType

pytestmark = needs_gxx


def assert_same(got: Any, want: Any) -> None:
    got_list = got if isinstance(got, list) else [got]
    want_list = want if isinstance(want, list) else [want]
    assert len(got_list) == len(want_list)
    for k, (g, w) in enumerate(zip(got_list, want_list, strict=True)):
        assert g.shape == w.shape, f"output {k}: shape {g.shape} != {w.shape}"
        bad = np.argwhere(g != w)
        assert bad.size == 0, (
            f"output {k}: {len(bad)} of {g.size} values differ, first at {bad[0]}: "
            f"C++ {g[tuple(bad[0])]!r} emulator {w[tuple(bad[0])]!r}"
        )


MLP_CONFIGS: dict[str, dict[str, Any]] = {
    # relu fused into the Dense (its result type holds the accumulator exactly)
    "fused_relu": {
        "Model": {"Precision": "ap_fixed<16,6>"},
        "LayerName": {"fc1": {"Precision": {"accum": "ap_fixed<32,12>",
                                            "result": "ap_fixed<32,12>"}}},
    },
    # products rounded into a narrow accumulator that wraps; saturating, symmetric results
    "rounding_wrapping": {
        "Model": {"Precision": "ap_fixed<10,4,AP_RND_CONV,AP_SAT_SYM>"},
        "LayerName": {
            "x": {"Precision": {"result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
            "fc1": {"Precision": {"accum": "ap_fixed<12,3,AP_RND>"}},
            "fc2": {"Precision": {"accum": "ap_fixed<14,4,AP_RND_INF>", "weight": "ap_fixed<6,2>"}},
            "fc3": {"Precision": {"accum": "ap_fixed<16,5,AP_TRN_ZERO>"}},
        },
    },
    # unsigned and zero-saturating types, small tables, a saturating softmax sum
    "unsigned_tables": {
        "Model": {"Precision": "ap_fixed<14,6,AP_RND_MIN_INF,AP_SAT_ZERO>"},
        "LayerName": {
            "relu1": {"Precision": {"result": "ap_ufixed<8,4,AP_RND_ZERO,AP_SAT>"}},
            "softmax": {"TableSize": 128, "TableRange": 4, "InvTableSize": 256,
                        "Precision": {"exp_sum": "ap_ufixed<10,2,AP_RND,AP_SAT>",
                                      "result": "ap_ufixed<9,1,AP_RND_CONV,AP_SAT>"}},
        },
    },
}


@pytest.mark.parametrize("name", sorted(MLP_CONFIGS))
def test_dense_relu_softmax_match_emulator(name: str, csim_cache: Path) -> None:
    model = nnfab.convert_graph(mlp_graph((12, 10, 8, 6), seed=3), MLP_CONFIGS[name])
    if name == "fused_relu":
        assert model.graph.node("fc1").attrs.get("activation") == "relu"
    lib = CSimLibrary(model, cache_dir=csim_cache)
    x_type = model.graph.tensors["x"].type
    assert x_type is not None
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.normal(0.0, 3.0, (1500, 12)),
        edge_inputs(x_type, (12,), 1500, seed=11),
    ])
    assert_same(lib.predict(x), model.predict(x))
    if name == "rounding_wrapping":  # the edge inputs must really drive the corner cases
        overflows = model.overflow_report()
        assert overflows["fc1"]["accum"] > 0 and overflows["x"]["result"] > 0


def test_mlp_16_64_32_32_5(csim_cache: Path) -> None:
    model = nnfab.convert_graph(mlp_graph((16, 64, 32, 32, 5), seed=0))
    lib = CSimLibrary(model, cache_dir=csim_cache)
    build = lib.compile()
    assert build.compiled
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 2, (20000, 16)), edge_inputs(
        model.graph.tensors["x"].type, (16,), 2000, seed=5)])
    assert_same(lib.predict(x), model.predict(x))
    # single samples and batches of one go through the same entry point
    assert_same(lib.predict(x[3]), model.predict(x[3:4]))


def test_activations_odd_names_multi_output(csim_cache: Path) -> None:
    model = nnfab.convert_graph(activations_graph(), ACTIVATIONS_CONFIG)
    lib = CSimLibrary(model, cache_dir=csim_cache)
    rng = np.random.default_rng(1)
    x_type = model.graph.tensors["in put"].type
    x = np.concatenate([rng.normal(0, 4, (1500, 3, 8)), edge_inputs(x_type, (3, 8), 1500)])
    got, want = lib.predict(x), model.predict(x)
    assert isinstance(got, list) and len(got) == len(model.graph.outputs)
    assert_same(got, want)
    assert_same(lib.predict({"in put": x[:10]}), model.predict(x[:10]))


CNN_CONFIG: dict[str, Any] = {
    "Model": {"Precision": "ap_fixed<14,6,AP_RND_CONV,AP_SAT>"},
    "LayerName": {
        "img": {"Precision": {"result": "ap_fixed<9,3,AP_RND_INF,AP_SAT_SYM>"}},
        "c2": {"Precision": {"accum": "ap_fixed<16,4,AP_RND>", "result": "ap_fixed<10,3>"}},
        "bn": {"Precision": {"result": "ap_fixed<8,2,AP_RND_ZERO,AP_SAT>"}},
        "mul": {"Precision": {"result": "ap_fixed<8,1,AP_TRN_ZERO,AP_SAT_ZERO>"}},
        "ap": {"Precision": {"scale": "ap_ufixed<6,0,AP_RND_CONV,AP_SAT>",
                             "result": "ap_fixed<12,4,AP_RND_MIN_INF>"}},
    },
}


def test_cnn_layers_match_emulator(csim_cache: Path) -> None:
    """Conv1D/2D, depthwise, batch norm, padded pooling, global pooling, merges, concat."""
    model = nnfab.convert_graph(cnn_graph(), CNN_CONFIG)
    lib = CSimLibrary(model, cache_dir=csim_cache)
    x_type = model.graph.tensors["img"].type
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 2, (600, 7, 6, 3)), edge_inputs(x_type, (7, 6, 3), 600)])
    got = lib.trace(x)
    want = model.trace(x)
    assert list(got) == list(want)
    for name in want:
        assert_same(got[name], want[name])
    assert_same(lib.predict(x), model.predict(x))
    report = model.overflow_report()
    assert report["img"]["result"] > 0 and report["c2"]["accum"] > 0


def test_second_compile_runs_no_compiler(csim_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = mlp_graph((4, 3), seed=9, softmax=False)
    first = CSimLibrary(nnfab.convert_graph(graph.copy()), cache_dir=csim_cache).compile()
    assert first.compiled and first.library.is_file()

    def no_compiler(*args: object, **kwargs: object) -> float:
        raise AssertionError("the compiler ran although the sources did not change")

    monkeypatch.setattr(csim_module, "run", no_compiler)
    second = CSimLibrary(nnfab.convert_graph(graph.copy()), cache_dir=csim_cache).compile()
    assert not second.compiled and second.library == first.library
    # a changed weight changes the sources, hence the key
    changed = graph.copy()
    changed.node("fc1").weights["bias"][0] += 1.0
    with pytest.raises(AssertionError, match="compiler ran"):
        CSimLibrary(nnfab.convert_graph(changed), cache_dir=csim_cache).compile()


WARNING_FLAGS = ["-Wall", "-Wextra", "-Werror", "-pedantic"]


def test_generated_code_compiles_warning_free(tmp_path: Path) -> None:
    """Every layer template, the testbench and the bridge: c++14 -O2 and c++17, -Werror."""
    inc = ["-Ifirmware", "-Ifirmware/ap_types"]
    jobs = []
    for name, graph, config in [("acts", activations_graph(), ACTIVATIONS_CONFIG),
                                ("cnn", cnn_graph(), CNN_CONFIG)]:
        root = write_project(nnfab.convert_graph(graph, config), tmp_path / name)
        jobs += [  # c++14 with optimization (optimizer warnings), c++17 front end
            ([GXX, "-std=c++14", "-O2", *WARNING_FLAGS, *inc, "-c", "csim/bridge.cpp", "-o",
              "b.o"], root),
            ([GXX, "-std=c++17", "-fsyntax-only", *WARNING_FLAGS, *inc, "csim/bridge.cpp",
              "tb/myproject_test.cpp"], root),
        ]
    procs = [subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for cmd, root in jobs]
    for (cmd, _), proc in zip(jobs, procs, strict=True):
        _, err = proc.communicate()
        assert proc.returncode == 0 and not err, f"{' '.join(map(str, cmd))}:\n{err[:4000]}"


def test_testbench_checks_emulator_outputs_exactly(tmp_path: Path) -> None:
    model = nnfab.convert_graph(mlp_graph((6, 5, 4), seed=2))
    x = np.random.default_rng(4).normal(0, 3, (40, 6))
    root = write_project(model, tmp_path / "prj", tb_input=x, tb_output=model.predict(x))
    exe = root / "tb.exe"
    subprocess.run(
        [GXX, "-std=c++14", "-O1", *WARNING_FLAGS, "-Ifirmware/ap_types", "tb/myproject_test.cpp",
         "firmware/myproject.cpp", "-o", str(exe)],
        cwd=root, check=True, capture_output=True, text=True,
    )
    ok = subprocess.run([str(exe)], cwd=root, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    assert "40 sample(s) run, 160 value(s) compared, 0 mismatch(es)" in ok.stdout
    logged = np.loadtxt(root / "tb_data/csim_results.log")
    assert np.array_equal(logged, model.predict(x))
    # one wrong expected value must fail the testbench
    path = root / "tb_data/tb_output_predictions.dat"
    lines = path.read_text().splitlines()
    first = lines[0].split()
    first[2] = repr(float(first[2]) + 2.0**-10)
    lines[0] = " ".join(first)
    path.write_text("\n".join(lines) + "\n")
    bad = subprocess.run([str(exe)], cwd=root, capture_output=True, text=True)
    assert bad.returncode == 1 and "1 mismatch(es)" in bad.stdout


def test_types_beyond_128_bits_are_rejected() -> None:
    model = nnfab.convert_graph(
        mlp_graph((3, 2), softmax=False),
        {"Model": {"Precision": "ap_fixed<16,6>"},
         "LayerName": {"fc1": {"Precision": {"accum": "ap_fixed<130,40>"}}}},
    )
    with pytest.raises(BackendError, match=r"'fc1'.*130 bits.*128"):
        CSimLibrary(model)


def test_bad_inputs_are_rejected(csim_cache: Path) -> None:
    model = nnfab.convert_graph(mlp_graph((4, 3), seed=9, softmax=False))
    lib = CSimLibrary(model, cache_dir=csim_cache)
    with pytest.raises(BackendError, match="non-finite"):
        lib.predict(np.array([[0.0, np.nan, 1.0, 2.0]]))
    with pytest.raises(BackendError, match=r"expected shape \(batch, 4\)"):
        lib.predict(np.zeros((2, 5)))
    with pytest.raises(BackendError, match="1 input"):
        lib.predict([np.zeros((2, 4)), np.zeros((2, 4))])
    assert lib.predict(np.zeros((0, 4))).shape == (0, 3)


def test_fixed_type_spelling_round_trips() -> None:
    from nnfab.backends.hls import cpp_type

    for spec in ["ap_fixed<16,6>", "ap_ufixed<8,0,AP_RND,AP_SAT>", "ap_fixed<5,-2,AP_RND_CONV>",
                 "ap_int<8>", "ap_uint<4>", "ap_fixed<12,20,AP_TRN,AP_SAT_SYM>"]:
        t = FixedType.parse(spec)
        assert FixedType.parse(cpp_type(t)) == t
    assert cpp_type(FixedType.parse("ap_int<8>")) == "ap_fixed<8,8>"
