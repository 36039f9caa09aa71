"""The popcount functions of the compressor trees (the per-column form synthesis maps)
give bits 1 and 2 of the number of ones, on all 64 inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.backends.rtl.rtl_helpers import needs_verilator

from nnfab.backends.rtl.adders import _popcount_functions
from nnfab.backends.rtl.verilog import ModuleBuilder
from nnfab.tools.verilator import find_verilator

pytestmark = needs_verilator


def test_popcount_functions_are_the_count_bits(tmp_path: Path) -> None:
    mb = ModuleBuilder()
    f = _popcount_functions(mb)
    checks = " ".join(f"if ({f[m]}(v) !== c[{m}]) bad = bad + 1;" for m in (1, 2))
    top = "\n".join([
        "module t;", *mb.functions,
        "  integer i, bad, swapped;", "  reg [5:0] v;", "  reg [2:0] c;",
        "  initial begin",
        "    bad = 0; swapped = 0;",
        "    for (i = 0; i < 64; i = i + 1) begin",
        "      v = i[5:0];",
        "      c = v[0] + v[1] + v[2] + v[3] + v[4] + v[5];",  # the number of ones
        f"      {checks}",
        f"      if ({f[1]}(v) !== c[2]) swapped = swapped + 1;",  # a check that can fail
        "    end",
        '    $display("BAD=%0d SWAPPED=%0d", bad, swapped);',
        "    $finish;",
        "  end",
        "endmodule", ""])
    (tmp_path / "t.v").write_text(top)
    inst = find_verilator()
    build = subprocess.run(
        [str(inst.verilator), "--binary", "-Wno-fatal", "--top-module", "t",
         "-Mdir", str(tmp_path / "obj"), str(tmp_path / "t.v")],
        capture_output=True, text=True, env=inst.env, cwd=tmp_path, check=False)
    if build.returncode != 0:
        pytest.fail(f"verilator --binary failed:\n{build.stdout}\n{build.stderr}")
    out = subprocess.run([str(tmp_path / "obj" / "Vt")], capture_output=True, text=True,
                         check=True).stdout
    assert "BAD=0 " in out
    swapped = int(out.split("SWAPPED=")[1].split()[0])
    assert swapped > 0  # bit 1 is not bit 2: the comparison does discriminate
