"""ECP5 sysDSP multipliers that use their own registers (``MULT18X18D``).

Yosys's ``synth_ecp5`` maps a ``*`` to a ``MULT18X18D`` without its input and output
registers, so a registered product pays two routes between the logic and the DSP column
plus the multiplier in each of two cycles. A multiplier instantiated here registers ``A``
and ``B`` inside the block (``REG_INPUTA_CLK`` / ``REG_INPUTB_CLK``) and its product
(``REG_OUTPUT_CLK``): the multiplication is a cycle of its own, between two registers
next to it, and nextpnr times it as such.

Simulation: ``MULT18X18D`` is a vendor cell. ``cell_models()`` gives nnfab's own model
of the configuration instantiated here (18 x 18 -> 36 bits, signed or unsigned operands,
``CLK0`` / ``CE0`` / ``RST0`` registers or none, synchronous reset), inside
`` `ifndef SYNTHESIS``: Verilator and Icarus simulate it, Yosys and Vivado (which define
``SYNTHESIS``) see nothing and use the real cell.
"""

from __future__ import annotations

from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, bits_for

CELL = "MULT18X18D"
CELL_MODELS_FILE = "nnfab_ecp5_cells.v"
"""The project file holding the simulation model (written when a module uses the cell)."""
OPERAND_BITS = 18
PRODUCT_BITS = 36


def fits(a: Sig, b: Sig) -> bool:
    """Both operands fit the cell's signed 18-bit inputs (and neither is a constant)."""
    return (not a.is_const and not b.is_const
            and all(s.width + (0 if s.signed else 1) <= OPERAND_BITS for s in (a, b)))


def registered_multiplier(mb: ModuleBuilder, base: str, a: Sig, b: Sig) -> Sig:
    """``a * b`` on one ``MULT18X18D`` with input and output registers: the product is
    ready two stages after the operands (which must share a stage)."""
    if not fits(a, b) or a.stage != b.stage:
        raise AssertionError(f"{base}: operands do not fit a {CELL} or differ in stage")
    ends = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
    lo, hi = min(ends), max(ends)
    width, signed = bits_for(lo, hi)
    inst = mb.fresh(f"{base}_dsp")
    ea = mb.wire(f"{base}_a", a.ext(OPERAND_BITS), a.lo, a.hi, a.stage, OPERAND_BITS, True)
    eb = mb.wire(f"{base}_b", b.ext(OPERAND_BITS), b.lo, b.hi, b.stage, OPERAND_BITS, True)
    p = mb.fresh(f"{base}_p")
    mb.lines.append(f"  wire [{PRODUCT_BITS - 1}:0] {p};")
    ports = [*(f".A{k}({ea.name}[{k}])" for k in range(OPERAND_BITS)),
             *(f".B{k}({eb.name}[{k}])" for k in range(OPERAND_BITS)),
             *(f".C{k}(1'b0)" for k in range(OPERAND_BITS)),
             ".SIGNEDA(1'b1)", ".SIGNEDB(1'b1)", ".SOURCEA(1'b0)", ".SOURCEB(1'b0)",
             ".CLK0(clk)", ".CE0(1'b1)", ".RST0(1'b0)",
             *(f".P{k}({p}[{k}])" for k in range(PRODUCT_BITS))]
    mb.lines += [
        f"  {CELL} #(.REG_INPUTA_CLK(\"CLK0\"), .REG_INPUTB_CLK(\"CLK0\"), "
        ".REG_OUTPUT_CLK(\"CLK0\"), .GSR(\"DISABLED\"), .RESETMODE(\"SYNC\")) "
        f"{inst} (",
        *(f"    {port}," for port in ports[:-1]),
        f"    {ports[-1]}",
        "  );",
    ]
    # the cell's registers are not logic flip-flops: mb.n_regs does not count them
    return mb.wire(f"{base}_prod", f"{p}[{width - 1}:0]", lo, hi, a.stage + 2, width, signed)


def uses_cells(texts: list[str]) -> bool:
    """Whether any module text instantiates the cell."""
    return any(f"  {CELL} #(" in t for t in texts)


def cell_models() -> str:
    """nnfab's simulation model of the ``MULT18X18D`` configurations it instantiates."""
    n, m = OPERAND_BITS, PRODUCT_BITS
    names = [*(f"A{k}" for k in range(n)), *(f"B{k}" for k in range(n)),
             *(f"C{k}" for k in range(n)), "SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB",
             "CLK0", "CE0", "RST0"]
    outputs = [f"P{k}" for k in range(m)]
    a_bits = ", ".join(f"A{k}" for k in reversed(range(n)))
    b_bits = ", ".join(f"B{k}" for k in reversed(range(n)))
    lines = [
        "// nnfab: simulation model of the ECP5 MULT18X18D as nnfab instantiates it",
        "// (18 x 18 -> 36 bits; operands signed when SIGNEDA / SIGNEDB are high; A, B and P",
        "// registered on CLK0 with enable CE0 and synchronous reset RST0 when",
        "// REG_INPUTA_CLK / REG_INPUTB_CLK / REG_OUTPUT_CLK are \"CLK0\", else combinational;",
        "// C, the shift chains, the other clocks and the pipeline register are not",
        "// modelled: nnfab leaves those ports unconnected). Synthesis defines SYNTHESIS",
        "// and uses the vendor cell instead.",
        "`ifndef SYNTHESIS",
        "/* verilator lint_off UNUSEDPARAM */",
        "/* verilator lint_off UNUSEDSIGNAL */",
        f"module {CELL} #(",
        '  parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0",',
        '  parameter REG_INPUTA_RST = "RST0", parameter REG_INPUTB_CLK = "NONE",',
        '  parameter REG_INPUTB_CE = "CE0", parameter REG_INPUTB_RST = "RST0",',
        '  parameter REG_INPUTC_CLK = "NONE", parameter REG_INPUTC_CE = "CE0",',
        '  parameter REG_INPUTC_RST = "RST0", parameter REG_PIPELINE_CLK = "NONE",',
        '  parameter REG_PIPELINE_CE = "CE0", parameter REG_PIPELINE_RST = "RST0",',
        '  parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0",',
        '  parameter REG_OUTPUT_RST = "RST0", parameter CLK0_DIV = "ENABLED",',
        '  parameter CLK1_DIV = "ENABLED", parameter CLK2_DIV = "ENABLED",',
        '  parameter CLK3_DIV = "ENABLED", parameter HIGHSPEED_CLK = "NONE",',
        '  parameter GSR = "ENABLED", parameter CAS_MATCH_REG = "FALSE",',
        '  parameter SOURCEB_MODE = "B_SHIFT", parameter MULT_BYPASS = "DISABLED",',
        '  parameter RESETMODE = "SYNC"',
        ") (",
        f"  input wire {', '.join(names)},",
        f"  output wire {', '.join(outputs)}",
        ");",
        f"  wire [{n - 1}:0] a_in = {{{a_bits}}};",
        f"  wire [{n - 1}:0] b_in = {{{b_bits}}};",
        f"  reg  [{n - 1}:0] a_q, b_q;",
        f"  reg  [{m - 1}:0] p_q;",
        "  reg  sa_q, sb_q;",
        "  wire registered_a = REG_INPUTA_CLK == \"CLK0\";",
        "  wire registered_b = REG_INPUTB_CLK == \"CLK0\";",
        "  wire registered_p = REG_OUTPUT_CLK == \"CLK0\";",
        f"  wire [{n - 1}:0] a = registered_a ? a_q : a_in;",
        f"  wire [{n - 1}:0] b = registered_b ? b_q : b_in;",
        "  wire sa = registered_a ? sa_q : SIGNEDA;",
        "  wire sb = registered_b ? sb_q : SIGNEDB;",
        f"  wire signed [{n}:0] a_ext = {{sa & a[{n - 1}], a}};",
        f"  wire signed [{n}:0] b_ext = {{sb & b[{n - 1}], b}};",
        f"  wire signed [{2 * n + 1}:0] product = a_ext * b_ext;",
        f"  wire [{m - 1}:0] p = registered_p ? p_q : product[{m - 1}:0];",
        "  always @(posedge CLK0) begin",
        "    if (RST0) begin",
        f"      a_q <= {n}'d0; b_q <= {n}'d0; p_q <= {m}'d0; sa_q <= 1'b0; sb_q <= 1'b0;",
        "    end else if (CE0) begin",
        "      a_q <= a_in; b_q <= b_in; sa_q <= SIGNEDA; sb_q <= SIGNEDB;",
        f"      p_q <= product[{m - 1}:0];",
        "    end",
        "  end",
        *(f"  assign P{k} = p[{k}];" for k in range(m)),
        "endmodule",
        "/* verilator lint_on UNUSEDSIGNAL */",
        "/* verilator lint_on UNUSEDPARAM */",
        "`endif",
    ]
    return "\n".join(lines) + "\n"


def add_cell_models(files: dict[str, str]) -> None:
    """Add the simulation model file to a design's files when a module uses the cell."""
    if uses_cells(list(files.values())):
        files[CELL_MODELS_FILE] = cell_models()
