"""The two forms of a compressor row (``adders._ColumnCounts``) are the same logic.

nnfab's Verilator builds define ``NNFAB_FAST_SIM`` and simulate each chain's row as
word-wide full adders; synthesis sees the bit-by-bit popcount form. Yosys proves
every chain wire and register of a layer module equal in the two reads
(``equiv_make`` matches them by name), so the simulations that check ``lut`` designs
against the emulator also check the netlist synthesis maps.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.backends.rtl.rtl_helpers import convert, mlp_graph, needs_yosys

from nnfab.backends.rtl import RTLProject
from nnfab.backends.rtl.adders import SumBuilder
from nnfab.tools.verilator import FAST_SIM_DEFINE

pytestmark = needs_yosys


def _prove_equal(module_file: Path, top: str, work: Path) -> subprocess.CompletedProcess:
    script = work / f"{top}_equiv.ys"
    script.write_text("\n".join([
        f"read_verilog -D{FAST_SIM_DEFINE} {module_file}",
        f"rename {top} fast",
        f"read_verilog {module_file}",
        f"rename {top} gate",
        "proc", "opt_clean",
        "equiv_make fast gate both",
        "hierarchy -top both",
        "equiv_simple -seq 2",
        "equiv_induct",
        "equiv_status -assert",
    ]) + "\n")
    return subprocess.run([sys.executable, "-m", "nnfab.tools.yosys", str(script)],
                          capture_output=True, text=True, check=False)


def _layer_modules(project: RTLProject) -> list[Path]:
    files = [f for f in project.write() if "_fc" in f.stem]
    assert files, "the project has no Dense layer modules"
    return sorted(files)


CASES = {
    # signed inputs and weights, relu between layers, an unsigned accumulator row
    "signed": ({"Model": {"Precision": "ap_fixed<8,3>"}}, None),
    # narrow wrapping accumulator: rows cut at the modulus, negative terms inverted
    "wrapping": ({"Model": {"Precision": "ap_fixed<8,3>"},
                  "LayerName": {"fc0": {"Precision": {"accum": "ap_fixed<13,3,AP_TRN,AP_WRAP>"}}}},
                 None),
    # four adder levels per stage: the chains of one sum cross a stage boundary, and
    # each chain reads the registered operands of its own stage
    "pipelined": ({"Model": {"Precision": "ap_fixed<8,3>"}}, 4),
    # two levels per stage: sums too long for six-row groups take groups of four
    "groups_of_four": ({"Model": {"Precision": "ap_fixed<8,3>"}}, 2),
}
SIZES = {"groups_of_four": [16, 8, 3]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_sim_rows_equal_the_synthesized_rows(case: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config, levels = CASES[case]
    sizes = SIZES.get(case, [12, 6, 3])
    model = convert(mlp_graph(sizes, seed=5, zero_fraction=0.2), config)
    group_sizes: list[int] = []
    compress = SumBuilder.compress

    def spy(self: SumBuilder, *args: object, group_size: int = 6) -> object:
        group_sizes.append(group_size)
        return compress(self, *args, group_size=group_size)

    monkeypatch.setattr(SumBuilder, "compress", spy)
    project = RTLProject(model, tmp_path / "prj", style="lut", adders_per_stage=levels)
    assert (4 in group_sizes) == (levels is not None)  # groups of four: pipelined only
    modules = _layer_modules(project)
    assert "_n1 = " in modules[0].read_text()  # the first layer's sums use word rows
    if levels:
        assert any("_d1" in f.read_text() for f in modules)  # registered operands
    for module_file in modules:
        top = module_file.stem
        result = _prove_equal(module_file, top, tmp_path)
        assert result.returncode == 0, f"{top}: Yosys did not prove the forms equal\n" + (
            result.stdout[-3000:] + result.stderr[-2000:])
        assert "0 are unproven" in result.stdout and "successfully proven" in result.stdout


def test_a_wrong_fast_row_is_caught(tmp_path: Path) -> None:
    """Swapping count bits 1 and 2 in the fast form must fail the proof."""
    model = convert(mlp_graph([12, 6, 3], seed=5), {"Model": {"Precision": "ap_fixed<8,3>"}})
    project = RTLProject(model, tmp_path / "prj", style="lut")
    module_file = _layer_modules(project)[0]
    lines = module_file.read_text().splitlines()
    swapped = 0
    fast = False
    for k, line in enumerate(lines):
        if line.startswith("`ifdef"):
            fast = True
        elif line.startswith(("`else", "`endif")):
            fast = False
        elif fast and " - ~{" in line and "_n1[" in line:
            lines[k] = line.replace("_n1[", "_n2[", 1)
            swapped += 1
            break
    assert swapped == 1
    broken = tmp_path / module_file.name
    broken.write_text("\n".join(lines) + "\n")
    result = _prove_equal(broken, module_file.stem, tmp_path)
    assert result.returncode != 0
