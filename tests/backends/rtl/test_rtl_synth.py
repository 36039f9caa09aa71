"""One real Yosys run (two tiny designs, in parallel child processes)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rtl_helpers import convert, mlp_graph, needs_yosys

from nnfab.backends.rtl import RTLProject, family_for_part
from nnfab.errors import ConfigError

pytestmark = needs_yosys


def test_family_for_part() -> None:
    assert family_for_part("xc7z020clg400-1") == "xc7"
    assert family_for_part("xcvu9p-flgb2104-2l-e") == "xcup"
    assert family_for_part("xcku115-flvb2104-2-e") == "xcu"
    assert family_for_part("xc7a35tcpg236-1") == "xc7"  # not in the table: by prefix
    with pytest.raises(ConfigError, match="family"):
        family_for_part("ep4ce22f17c6")


def test_synthesis_reports_resources_and_more_weights_cost_more(tmp_path: Path) -> None:
    config = {"Model": {"Precision": "ap_fixed<8,3>"}}
    small = convert(mlp_graph([4, 2], relu=False, seed=1, name="small"), config)
    large = convert(mlp_graph([4, 6], relu=False, seed=1, name="large"), config)
    projects = [RTLProject(small, tmp_path / "small"), RTLProject(large, tmp_path / "large")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda p: p.synthesize("xc7z020clg400-1"), projects))
    lo, hi = reports
    for report, project in zip(reports, projects, strict=True):
        assert report.result.family == "xc7"
        assert report.lut > 0 and report.carry > 0
        # registers: the input (4 x 8 bits), the outputs (8 bits each), the valid bits
        n_out = project.design.n_out
        assert report.ff == 4 * 8 + n_out * 8 + project.latency
        assert report.dsp == 0  # lut style: shift-and-add, no multiplier
        assert report.longest_path is not None and report.longest_path > 2
        assert report.log_file.is_file() and "synth_xilinx" in report.log_file.read_text()
        assert (project.output_dir / "synth" / "report.json").is_file()
        assert 0 < report.utilization["lut"] < 0.01
        assert report.fits is True
    assert hi.lut > lo.lut
    assert "LUT" in hi.table()


def test_longest_path_is_register_to_register(tmp_path: Path) -> None:
    """Registers cut the longest path: the same network pipelined every adder level has a
    path of a few cells, unpipelined one through a whole layer's adder tree."""
    model = convert(mlp_graph([8, 8, 4], seed=2, name="mlp"), {"Model": {"Precision":
                                                                        "ap_fixed<8,3>"}})
    flat = RTLProject(model, tmp_path / "flat").synthesize("xc7z020clg400-1")
    piped = RTLProject(model, tmp_path / "piped", adders_per_stage=1).synthesize(
        "xc7z020clg400-1")
    assert flat.longest_path is not None and piped.longest_path is not None
    assert 2 <= piped.longest_path < flat.longest_path / 2, (piped.longest_path,
                                                             flat.longest_path)
    assert piped.ff > flat.ff
