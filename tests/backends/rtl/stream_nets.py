"""Shared by the pixel-stream stage tests (upsampling, permute): a small IR graph
builder, the Verilator marker, and the check that Verilator == emulator with every
output at the cycle the schedule predicts.

Expected values come from the emulator (``model.predict``), never from the RTL.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rtl_helpers import needs_verilator, sample_inputs

from nnfab.backends.rtl import RTLProject
from nnfab.backends.rtl.stream import StreamDesign
from nnfab.backends.rtl.stream_harness import simulate_stream
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node
from nnfab.ir.ops import OPS

IN_T = "ap_fixed<8,3,AP_RND_CONV,AP_SAT>"
CONFIG = {
    "Model": {"Precision": "ap_fixed<10,4,AP_RND,AP_SAT>"},
    "LayerName": {"inp": {"Precision": {"result": IN_T}}},
}


def sim(fn: Any) -> Any:
    """Mark a test that runs Verilator (skipped without it)."""
    for mark in needs_verilator:
        fn = mark(fn)
    return fn


class Net:
    """A small IR graph built layer by layer (shapes inferred, random weights)."""

    def __init__(self, name: str, shape: tuple[int, ...], seed: int = 0) -> None:
        self.g = Graph(name=name)
        self.g.add_node(Node("inp", "Input", [], attrs={"shape": shape}), shape)
        self.rng = np.random.default_rng(seed)
        self.last = "inp"

    def add(self, name: str, op: str, inputs: list[str] | None = None, **attrs: Any) -> str:
        inputs = inputs or [self.last]
        shapes = [self.g.tensors[t].shape for t in inputs]
        weights = {}
        if op in ("Conv1D", "Conv2D"):
            size, filters = attrs.pop("size"), attrs.pop("filters")
            fan_in = math.prod(size) * shapes[0][-1]
            weights = {"kernel": self.rng.normal(size=(*size, shapes[0][-1], filters))
                       / math.sqrt(fan_in), "bias": self.rng.normal(size=filters) * 0.3}
        elif op == "Dense":
            units = attrs.pop("units")
            weights = {"kernel": self.rng.normal(size=(shapes[0][-1], units))
                       / math.sqrt(shapes[0][-1]), "bias": self.rng.normal(size=units) * 0.3}
        node = Node(name, op, inputs, attrs=attrs, weights=weights)
        self.g.add_node(node, OPS[op].infer_shape(node, shapes))
        self.last = name
        return name

    def graph(self) -> Graph:
        self.g.outputs = [self.last]
        return self.g


def images(model: Any, batch: int, seed: int) -> np.ndarray:
    """Random values over and beyond the input range, a quarter of them edge values."""
    t = model.graph.tensors["inp"].type
    shape = model.graph.tensors["inp"].shape
    return sample_inputs(t, math.prod(shape), batch, seed=seed).reshape(batch, *shape)


def check_stream(model: Any, tmp_path: Path, style: str, interval: int = 1, *,
                 batch: int = 4, seed: int = 1, gaps: bool = True,
                 image_gap: int | None = None, whole_image_ii: bool = False,
                 pipeline: Any = None) -> RTLProject:
    """Verilator == emulator; measured latency, cycles per image and every output's
    cycle == predicted; with idle cycles inside / between images (``image_gap`` idle
    cycles in the second run, ``interval + 1`` by default) and slower pacing.
    ``whole_image_ii``: the design takes one image per ``pixels * interval`` cycles, and
    a faster pace than ``interval`` is refused. ``pipeline``: ``RTLProject``'s clock
    target."""
    project = RTLProject(model, tmp_path, style=style, pipeline=pipeline)
    design = project.design
    assert isinstance(design, StreamDesign)
    assert design.pixel_interval == interval
    if whole_image_ii:
        assert design.ii == project.ii == design.pixels_per_image * interval
    x = images(model, batch, seed)
    expected = model.predict(x)
    result = project.simulate(x)  # back to back, one pixel every `interval` cycles
    assert np.array_equal(result.outputs, expected)
    assert result.latency == design.latency and result.latency_first == design.latency_first
    assert np.all(result.timing.cycles_per_image() == design.ii)
    t = result.timing
    assert t.item_cycles.tolist() == design.schedule(t.pixel_cycles.tolist())
    if gaps:
        second = interval + 1 if image_gap is None else image_gap
        for gap, idle, pace in ((3, 2, interval), (0, second, interval), (2, 1, interval + 1)):
            run = simulate_stream(design, project.write(), x, project.output_dir, gap=gap,
                                  image_gap=idle, interval=pace)
            assert np.array_equal(run.outputs, expected), (gap, idle, pace)
            t = run.timing
            assert t.item_cycles.tolist() == design.schedule(t.pixel_cycles.tolist())
    if whole_image_ii and interval > 1:
        with pytest.raises(BackendError, match="interval"):
            project.simulate(x[:1], interval=interval - 1)
    return project
