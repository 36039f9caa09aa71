"""The popcount functions of the compressor trees: the full-adder body that synthesis
sees and the ``$countones`` body of nnfab's Verilator builds agree on all 64 inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.backends.rtl.rtl_helpers import needs_verilator

from nnfab.backends.rtl.adders import _popcount_functions
from nnfab.backends.rtl.verilog import ModuleBuilder
from nnfab.tools.verilator import FAST_SIM_DEFINE, find_verilator

pytestmark = needs_verilator


def _bodies(fast: bool) -> tuple[list[str], dict[int, str]]:
    """The generated functions with only one branch of the ``ifdef`` kept."""
    mb = ModuleBuilder()
    names = _popcount_functions(mb)
    keep, lines = True, []
    for line in mb.functions:
        if line.startswith("`ifdef"):
            keep = fast
        elif line.startswith("`else"):
            keep = not fast
        elif line.startswith("`endif"):
            keep = True
        elif keep:
            lines.append(line)
    suffix = "_fast" if fast else "_gate"
    renamed = [line.replace(names[1], names[1] + suffix).replace(names[2], names[2] + suffix)
               for line in lines]
    return renamed, {m: n + suffix for m, n in names.items()}


def test_both_bodies_are_the_popcount_bits(tmp_path: Path) -> None:
    fast, f = _bodies(True)
    gate, g = _bodies(False)
    assert any("$countones" in line for line in fast)
    assert not any("$countones" in line for line in gate)
    checks = " ".join(
        f"if ({f[m]}(v) !== c[{m}] || {g[m]}(v) !== c[{m}]) bad = bad + 1;" for m in (1, 2))
    top = "\n".join([
        "module t;", *fast, *gate,
        "  integer i, bad, swapped;", "  reg [5:0] v;", "  reg [2:0] c;",
        "  initial begin",
        "    bad = 0; swapped = 0;",
        "    for (i = 0; i < 64; i = i + 1) begin",
        "      v = i[5:0];",
        "      c = v[0] + v[1] + v[2] + v[3] + v[4] + v[5];",  # the number of ones
        f"      {checks}",
        f"      if ({g[1]}(v) !== c[2]) swapped = swapped + 1;",  # a check that can fail
        "    end",
        '    $display("BAD=%0d SWAPPED=%0d", bad, swapped);',
        "    $finish;",
        "  end",
        "endmodule", ""])
    (tmp_path / "t.v").write_text(top)
    inst = find_verilator()
    build = subprocess.run(
        [str(inst.verilator), "--binary", "-Wno-fatal", f"-D{FAST_SIM_DEFINE}", "--top-module",
         "t", "-Mdir", str(tmp_path / "obj"), str(tmp_path / "t.v")],
        capture_output=True, text=True, env=inst.env, cwd=tmp_path, check=False)
    if build.returncode != 0:
        pytest.fail(f"verilator --binary failed:\n{build.stdout}\n{build.stderr}")
    out = subprocess.run([str(tmp_path / "obj" / "Vt")], capture_output=True, text=True,
                         check=True).stdout
    assert "BAD=0 " in out
    swapped = int(out.split("SWAPPED=")[1].split()[0])
    assert swapped > 0  # bit 1 is not bit 2: the comparison does discriminate
