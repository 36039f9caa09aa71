"""Where Yosys puts a pixel-stream buffer (``verilog.pixel_buffer_memory``): under a
clock target a transposer's or upsampler's buffer of up to ``DISTRIBUTED_BUFFER_PIXELS``
pixels is LUT RAM on ECP5, without one it is left to Yosys (a block RAM, whose read
without its output register caps the clock near 130 MHz). One ``synth_ecp5`` run per
case, of the buffer module alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rtl_helpers import needs_yosys

from nnfab.backends.rtl.permute_stream import Transpose, transpose_wrapper_text
from nnfab.backends.rtl.upsample_stream import Upsampling, upsample_wrapper_text
from nnfab.backends.rtl.verilog import DISTRIBUTED_BUFFER_PIXELS

pytestmark = needs_yosys


def ecp5_cells(text: str, top: str, work: Path) -> dict[str, int]:
    """Cell counts of ``synth_ecp5`` of one module."""
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{top}.v").write_text(text)
    (work / "synth.ys").write_text("\n".join([
        f"read_verilog {work / f'{top}.v'}",
        f"synth_ecp5 -top {top}",
        f"tee -q -o {work / 'stat.json'} stat -json",
    ]) + "\n")
    subprocess.run([sys.executable, "-m", "nnfab.tools.yosys", str(work / "synth.ys")],
                   check=True, capture_output=True)
    design = json.loads((work / "stat.json").read_text())["design"]
    return {k.lstrip("\\"): int(v) for k, v in design["num_cells_by_type"].items()}


@pytest.mark.parametrize("kind", ["transpose", "upsample"])
def test_a_timed_buffer_is_lut_ram_and_an_untimed_one_a_block_ram(kind: str,
                                                                  tmp_path: Path) -> None:
    depth, pw = DISTRIBUTED_BUFFER_PIXELS, 30
    cells = {}
    for timed in (False, True):
        if kind == "transpose":
            text = transpose_wrapper_text("pix_buf", Transpose("p", 6, 5, 3), pw, depth, 1, timed)
        else:
            text = upsample_wrapper_text("pix_buf", Upsampling("u", "UpSampling2D", 6, 6, 3, 2, 2),
                                         pw, depth, 1, timed)
        cells[timed] = ecp5_cells(text, "pix_buf", tmp_path / str(timed))
    assert cells[False].get("DP16KD", 0) >= 1
    assert cells[False].get("TRELLIS_DPR16X4", 0) == 0
    assert cells[True].get("DP16KD", 0) == 0
    # 64 pixels x 30 bits in 16 x 4 bit cells
    assert cells[True].get("TRELLIS_DPR16X4", 0) == (depth // 16) * -(-pw // 4)


def test_a_deeper_timed_buffer_stays_in_block_ram(tmp_path: Path) -> None:
    text = transpose_wrapper_text("pix_buf", Transpose("p", 10, 10, 2), 16,
                                  2 * DISTRIBUTED_BUFFER_PIXELS, 1, True)
    assert "ram_style" not in text
    cells = ecp5_cells(text, "pix_buf", tmp_path)
    assert cells.get("DP16KD", 0) >= 1
