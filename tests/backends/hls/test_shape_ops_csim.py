"""ZeroPadding, Cropping, UpSampling, Permute and Slice (1-D and 2-D) in the generated C++:
g++ C simulation == emulator, bit for bit, in io_parallel and io_stream (one model, two
compiles). The emulator is checked against an independent reference in
tests/emulate/test_shape_ops.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hls_helpers import edge_inputs, needs_gxx
from test_csim import assert_same

import nnfab
from nnfab.backends.hls import CSimLibrary, render_project
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node, infer_shapes

pytestmark = needs_gxx

CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {
        "img": {"Precision": {"result": "ap_fixed<8,3,AP_RND_CONV,AP_SAT>"}},
        # narrower, rounding and saturating: the only cast of the rearranged values
        "up2": {"Precision": {"result": "ap_fixed<6,2,AP_RND,AP_SAT>"}},
        "crop1": {"Precision": {"result": "ap_ufixed<5,2,AP_TRN,AP_WRAP>"}},
    },
}


def shape_graph() -> Graph:
    """img (5, 4, 3) -> pad2 -> conv -> crop2 -> up2 -> perm3 -> reshape (L, C) -> pad1 ->
    up1 -> crop1 -> perm2."""
    rng = np.random.default_rng(0)
    g = Graph("shapes")

    def add(name: str, op: str, src: str, **attrs: object) -> None:
        weights = {}
        if op == "Conv2D":
            weights = {"kernel": rng.normal(0, 0.5, (2, 2, 3, 4)), "bias": rng.normal(0, 0.2, 4)}
        g.add_node(Node(name, op, [src], attrs=dict(attrs), weights=weights), ())

    g.add_node(Node("img", "Input", [], attrs={"shape": (5, 4, 3)}), (5, 4, 3))
    add("pad2", "ZeroPadding2D", "img", pads=(1, 2, 0, 1))
    add("conv", "Conv2D", "pad2", strides=(1, 1), pads=(0, 0, 0, 0))
    add("crop2", "Cropping2D", "conv", crops=(1, 0, 0, 1))
    add("up2", "UpSampling2D", "crop2", size=(2, 3))
    add("perm3", "Permute", "up2", perm=(2, 0, 1))
    add("flat", "Reshape", "perm3", target_shape=(-1, 6))
    add("pad1", "ZeroPadding1D", "flat", pads=(2, 1))
    add("up1", "UpSampling1D", "pad1", size=(2,))
    add("crop1", "Cropping1D", "up1", crops=(3, 2))
    add("perm2", "Permute", "crop1", perm=(1, 0))
    add("sl", "Slice", "perm3", begin=(1, 3, 2), size=(2, 8, 5))
    g.outputs = ["perm2", "up2", "sl"]
    infer_shapes(g)
    return g


@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_shape_ops_match_emulator(io_type: str, csim_cache: Path) -> None:
    model = nnfab.convert_graph(shape_graph(), CONFIG, io_type=io_type)
    assert model.graph.tensors["perm3"].shape == (4, 12, 9)
    lib = CSimLibrary(model, cache_dir=csim_cache)
    x_type = model.graph.tensors["img"].type
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 3, (200, 5, 4, 3)), edge_inputs(x_type, (5, 4, 3), 200)])
    got, want = lib.trace(x), model.trace(x)
    assert list(got) == list(want)
    for name in want:
        assert_same(got[name], want[name])
    assert_same(lib.predict(x), model.predict(x))
    report = model.overflow_report()
    assert report["up2"]["result"] > 0 and report["crop1"]["result"] > 0
    top = lib.project.files["firmware/myproject.cpp"]
    parameters = lib.project.files["firmware/parameters.h"]
    assert '#include "nnfab/nnfab_shape.h"' in parameters
    if io_type == "io_stream":
        assert "nnfab::rearrange_stream<" in top
    else:
        assert "nnfab::rearrange<" in top


def test_permute_of_more_than_four_axes_is_a_clear_error() -> None:
    g = Graph("g")
    g.add_node(Node("x", "Input", [], attrs={"shape": (2, 2, 2, 2, 2)}), (2, 2, 2, 2, 2))
    g.add_node(Node("p5", "Permute", ["x"], attrs={"perm": (4, 3, 2, 1, 0)}), ())
    g.outputs = ["p5"]
    infer_shapes(g)
    model = nnfab.convert_graph(g)
    with pytest.raises(BackendError, match=r"'p5'.*at most 4 axes"):
        render_project(model.graph)


def test_keras_separable_conv_matches_emulator(csim_cache: Path) -> None:
    """SeparableConv2D (depthwise then pointwise, depth_multiplier 2) with ZeroPadding2D
    and UpSampling2D from Keras: C simulation == emulator."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    inp = keras.Input((5, 5, 2))
    x = L.ZeroPadding2D(1)(inp)
    x = L.SeparableConv2D(3, 3, depth_multiplier=2, activation="relu", name="sep")(x)
    model = keras.Model(inp, L.UpSampling2D(2)(x))
    config = {"Model": {"Precision": "ap_fixed<12,5,AP_RND,AP_SAT>"},
              "LayerName": {"sep_depthwise": {"Precision": {"result": "ap_fixed<8,3,AP_RND>"}}}}
    hm = nnfab.convert_from_keras_model(model, config)
    assert [n.op for n in hm.graph.nodes] == ["Input", "ZeroPadding2D", "DepthwiseConv2D",
                                              "Conv2D", "Activation", "UpSampling2D"]
    lib = CSimLibrary(hm, cache_dir=csim_cache)
    x = np.random.default_rng(3).normal(0, 2, (150, 5, 5, 2))
    got, want = lib.trace(x), hm.trace(x)
    for name in want:
        assert_same(got[name], want[name])
    assert hm.overflow_report()["sep_depthwise"]["result"] > 0
