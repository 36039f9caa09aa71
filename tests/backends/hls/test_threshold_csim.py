"""MultiThreshold: C simulation == emulator, bit for bit (io_parallel and io_stream).

Thresholds off the input grid, on it, and outside its range; levels that the result type
rounds and saturates; shared, per-channel and per-element threshold rows. The emulator is
checked against Fraction arithmetic in tests/frontends/test_onnx_idioms.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hls_helpers import needs_gxx

import nnfab
from nnfab.backends.hls.threshold import threshold_grid
from nnfab.errors import BackendError
from nnfab.ir import FixedType, Graph, Node, infer_shapes

X_TYPE = "ap_fixed<8,3>"  # grid 1/32, range [-4, 4 - 1/32]


def threshold_graph(per_element: bool = True) -> Graph:
    rng = np.random.default_rng(3)
    g = Graph("thr")
    g.add_node(Node("x", "Input", [], attrs={"shape": (6, 3)}), (6, 3))
    per_channel = np.sort(rng.uniform(-3, 3, (3, 4)), axis=1)
    per_channel[0, 0] = 0.5  # on the grid: x == t counts
    per_channel[1, 3] = 100.0  # never reached
    per_channel[2, 0] = -100.0  # always reached
    g.add_node(Node("mt_c", "MultiThreshold", ["x"], attrs={"out_scale": 1.3, "out_bias": -2.0},
                    weights={"thresholds": per_channel}), (6, 3))
    g.add_node(Node("mt_s", "MultiThreshold", ["mt_c"], attrs={"out_scale": 0.5},
                    weights={"thresholds": np.array([[-1.0, 0.1, 1.7]])}), (6, 3))
    outputs = ["mt_s"]
    if per_element:
        g.add_node(Node("mt_e", "MultiThreshold", ["x"], attrs={"out_scale": -0.75},
                        weights={"thresholds": rng.uniform(-4.5, 4.5, (18, 2))}), (6, 3))
        outputs.append("mt_e")
    g.outputs = outputs
    infer_shapes(g)
    return g


CONFIG = {"Model": {"Precision": "ap_fixed<16,6>"},
          "LayerName": {"x": {"Precision": {"result": X_TYPE}},
                        # levels -2, -0.7, 0.6, 1.9, 3.2: rounded and saturated
                        "mt_c": {"Precision": {"result": "ap_fixed<5,2,AP_RND,AP_SAT>"}}}}


def test_thresholds_move_onto_the_input_grid() -> None:
    x_type = FixedType.parse(X_TYPE)
    values, t_type = threshold_grid(np.array([0.5, 0.51, -0.51, 100.0, -100.0]), x_type)
    assert values.tolist() == [0.5, 0.53125, -0.5, 4.0, -4.0]  # ceil to 1/32, clipped
    assert t_type.frac == x_type.frac and t_type.max >= 4.0 and t_type.min <= -4.0


def _inputs(n: int) -> np.ndarray:
    rng = np.random.default_rng(9)
    x = rng.integers(-128, 128, (n, 6, 3)) / 32.0  # every value of ap_fixed<8,3>
    x[0, 0, 0] = 0.5  # exactly the on-grid threshold of channel 0
    return x


@needs_gxx
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_multithreshold_csim_matches_emulator(io_type: str) -> None:
    config = {**CONFIG, "Model": {**CONFIG["Model"], "IOType": io_type}}
    model = nnfab.convert_graph(threshold_graph(io_type == "io_parallel"), config)
    x = _inputs(300)
    got, want = model.predict(x, engine="csim"), model.predict(x, warn_overflow=False)
    got = got if isinstance(got, list) else [got]
    want = want if isinstance(want, list) else [want]
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w), np.argwhere(g != w)[:3]
    # ap_fixed<5,2,AP_RND,AP_SAT> (step 1/8, max 1.875): -0.7 -> -0.75, 0.6 -> 0.625,
    # 1.9 rounds to 1.875 and 3.2 saturates there
    levels = np.unique(model.trace(x, warn_overflow=False)["mt_c"])
    assert levels.tolist() == [-2.0, -0.75, 0.625, 1.875]


def test_per_element_thresholds_need_io_parallel(tmp_path: Path) -> None:
    config = {**CONFIG, "Model": {**CONFIG["Model"], "IOType": "io_stream"}}
    model = nnfab.convert_graph(threshold_graph(True), config, output_dir=tmp_path / "prj")
    with pytest.raises(BackendError, match=r"'mt_e'.*io_parallel"):
        model.write()
