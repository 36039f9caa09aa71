"""The ECP5 clock-target rules for pixel-stream convolutions (``adders.py``): a
compressor chain counts ``COMPRESSOR_CHAIN_LEVELS["ecp5"]`` adder levels (its count-bit
LUTs, then its carry chain), and a window's padding mask one level in front of the
kernel (``SumBuilder.input_levels``). The stage arithmetic is checked by hand; a
convolution net generated for 150 MHz on ECP5 stays bit-exact (Verilator == emulator,
every output at its predicted cycle). benchmarks/bench_clock_target.py measures the
achieved Fmax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rtl_helpers import convert
from stream_nets import CONFIG, Net, check_stream, sim

from nnfab.backends.rtl import RtlOptions, generate
from nnfab.backends.rtl.adders import COMPRESSOR_CHAIN_LEVELS, SumBuilder, Term
from nnfab.backends.rtl.stream import StreamDesign
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig

ECP5_150 = {"clock_period": 1000.0 / 150.0, "family": "ecp5"}


def test_input_levels_shift_the_stages_of_the_adders() -> None:
    """Two levels per stage, one taken by the mask: the first adder fills stage 0, the
    next two levels stage 1, ...; a term made in stage 1 from registers is at level 1."""
    masked = SumBuilder(ModuleBuilder(), 2, input_levels=1)
    plain = SumBuilder(ModuleBuilder(), 2)
    assert [masked.stage_of(level) for level in range(6)] == [0, 0, 1, 1, 2, 2]
    assert [plain.stage_of(level) for level in range(6)] == [0, 0, 0, 1, 1, 2]
    assert [masked.level_at(stage) for stage in range(4)] == [0, 1, 3, 5]
    assert [plain.level_at(stage) for stage in range(4)] == [0, 2, 4, 6]
    for sb in (masked, plain):  # level_at inverts stage_of: the next adder, that stage
        assert all(sb.stage_of(sb.level_at(s) + 1) == s for s in range(1, 4))


def test_a_chain_counts_its_levels_in_the_compressor_depth() -> None:
    """Twelve leaf rows: two six-row groups of three chains each, then the second group
    after the first; every chain two levels on ECP5."""
    terms = [Term(Sig(f"x{k}", 8, True, -128, 127, 0), k % 3, k % 2 == 1, 0)
             for k in range(12)]
    one = SumBuilder.compress_depth(terms)
    assert COMPRESSOR_CHAIN_LEVELS["ecp5"] == 2
    assert SumBuilder.compress_depth(terms, chain_levels=2) == 2 * one
    assert one >= 3


def _conv_net(pads: tuple[int, int, int, int]) -> Net:
    net = Net("clocked", (6, 5, 3), seed=4)
    net.add("c1", "Conv2D", size=(3, 3), filters=6, pads=pads)
    net.add("r1", "Activation", function="relu")
    net.add("c2", "Conv2D", size=(3, 3), filters=4, pads=pads)
    return net


def _kernel_latency(pads: tuple[int, int, int, int], levels: int) -> int:
    model = convert(_conv_net(pads).graph(), CONFIG)
    design = generate(model.graph, RtlOptions("lut", levels, family="ecp5"))
    assert isinstance(design, StreamDesign)
    return next(m.latency for m in design.layers if m.node == "c1")


def test_the_padding_mask_takes_a_level_of_the_first_stage() -> None:
    """c1's 3x3x3 kernel: four levels per stage hold its sum and cast after a valid
    window in two stages; the mask of a padded window pushes it into a third."""
    assert _kernel_latency((0, 0, 0, 0), 4) == 2
    assert _kernel_latency((1, 1, 1, 1), 4) == 3


@sim
def test_padded_convolutions_for_150_mhz_on_ecp5_are_bit_exact(tmp_path: Path) -> None:
    model = convert(_conv_net((1, 1, 1, 1)).graph(), CONFIG)
    project = check_stream(model, tmp_path, "lut", batch=3, seed=2, pipeline=ECP5_150)
    assert project.design.options.family == "ecp5"
    assert project.design.options.adders_per_stage == 2
    x = np.zeros((1, 6, 5, 3))
    assert np.array_equal(project.simulate(x).outputs, model.predict(x))
