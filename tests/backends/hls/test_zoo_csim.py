"""Embedding, Conv1D/2DTranspose, LayerNormalization: C simulation == emulator, bit for bit.

The emulator is tested against integer references in tests/emulate/test_zoo.py. One graph
holds every layer (indices -> Embedding -> Conv1DTranspose -> LayerNormalization, and
Embedding -> Reshape -> Conv2DTranspose), so each type configuration is one compilation.
Also: io_stream rejects the ops clearly (the Verilog: tests/backends/rtl/test_zoo_rtl.py,
test_layernorm_rtl.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hls_helpers import needs_gxx
from tests.graphs import ZOO_NARROW_CONFIG

import nnfab
from nnfab.backends.hls import CSimLibrary
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node, infer_shapes

STEPS, VOCAB, DIM = 5, 11, 4


def zoo_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("zoo")
    g.add_node(Node("idx", "Input", [], attrs={"shape": (STEPS,)}), (STEPS,))
    g.add_node(Node("emb", "Embedding", ["idx"],
                    weights={"embeddings": rng.normal(0, 1.5, (VOCAB, DIM))}), (1,))
    g.add_node(Node("ct1", "Conv1DTranspose", ["emb"],
                    attrs={"strides": (2,), "pads": (1, 0), "output_padding": (1,)},
                    weights={"kernel": rng.normal(0, 0.8, (3, DIM, 3)),
                             "bias": rng.normal(0, 0.5, 3)}), (1,))
    g.add_node(Node("ln", "LayerNormalization", ["ct1"],
                    attrs={"epsilon": 1e-3, "table_bits": 4},
                    weights={"gamma": rng.normal(1, 0.4, 3), "beta": rng.normal(0, 0.4, 3)}),
               (1,))
    g.add_node(Node("img", "Reshape", ["emb"], attrs={"target_shape": (STEPS, DIM, 1)}), (1,))
    g.add_node(Node("ct2", "Conv2DTranspose", ["img"],
                    attrs={"strides": (1, 2), "pads": (0, 1, 1, 0)},
                    weights={"kernel": rng.normal(0, 0.8, (2, 3, 1, 2)),
                             "bias": rng.normal(0, 0.5, 2)}), (1,))
    g.outputs = ["ln", "ct2"]
    infer_shapes(g)
    return g


CONFIGS: dict[str, dict[str, Any]] = {
    "narrow": ZOO_NARROW_CONFIG,
    "defaults": {"Model": {"Precision": "ap_fixed<16,6>"}},
}


@needs_gxx
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_zoo_csim_matches_emulator(name: str, csim_cache: Path) -> None:
    model = nnfab.convert_graph(zoo_graph(), CONFIGS[name])
    lib = CSimLibrary(model, cache_dir=csim_cache)
    rng = np.random.default_rng(5)
    x = rng.integers(-3, VOCAB + 3, (400, STEPS)).astype(np.float64)
    x[0] = [0, VOCAB - 1, -1, VOCAB, 31]
    got, want = lib.predict(x), model.predict(x)
    assert isinstance(got, list) and len(got) == 2
    for layer, g, w in zip(("ln", "ct2"), got, want, strict=True):
        assert g.shape == w.shape, layer
        bad = np.argwhere(g != w)
        assert bad.size == 0, (
            f"{layer}: {len(bad)} of {g.size} values differ, first at {bad[0]}: "
            f"C++ {g[tuple(bad[0])]!r} emulator {w[tuple(bad[0])]!r}"
        )
    if name == "narrow":  # the inputs must reach the corner cases
        report = model.overflow_report()
        assert report["emb"]["index"] > 0 and report["ct1"]["accum"] > 0
        assert report["ln"]["norm"] > 0 and report["ln"]["var"] > 0


def test_io_stream_rejects_zoo_layers(tmp_path: Path) -> None:
    model = nnfab.convert_graph(zoo_graph(), {"Model": {"Precision": "ap_fixed<16,6>",
                                                        "IOType": "io_stream"}},
                                output_dir=tmp_path / "prj")
    with pytest.raises(BackendError, match=r"layer 'emb': op 'Embedding' is not supported "
                                           r"with io_stream.*use io_parallel"):
        model.write()

