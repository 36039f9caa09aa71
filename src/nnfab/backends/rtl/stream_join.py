"""Where branches of a pixel stream meet (``Merge``, ``Concatenate`` on the channels):
one FIFO per branch, popped together when every branch has a pixel.

The branches of a stream carry the same pixels in the same (raster) order but at
different times: a convolution emits a pixel when the pixel completing its window
arrives, a per-pixel layer right away. The join wrapper writes each branch's valid
pixel into that branch's FIFO and, at an edge where every FIFO holds a pixel, pops
them all into its output register (input 0 in the lowest bits) with ``v_out`` high;
the merge layer itself then runs per pixel on that register.

Timing: a pixel produced by its branch at edge ``t`` is written at edge ``t + 1`` and can
be popped from edge ``t + 2`` on; one pixel is popped per edge, so output ``k`` is loaded
at ``max(max_i t_i[k] + 2, out[k - 1] + 1)`` (``join_times``). Depth: the most pixels a
FIFO holds in the generation-time schedules (images back to back, and with idle
cycles between pixels and between images), plus two, rounded up to a power of two
(``fifo_depths``); within an image a branch is at most its windows' reach ahead of
another, so pauses do not deepen the FIFOs.
"""

from __future__ import annotations

from nnfab.backends.rtl.verilog import literal


def join_times(inputs: list[list[int]]) -> list[int]:
    """Edges at which the join's output register is loaded, from its branches' edges."""
    counts = {len(t) for t in inputs}
    if len(counts) != 1:
        raise AssertionError(f"join of branches with {sorted(counts)} pixels")
    out: list[int] = []
    for k in range(len(inputs[0])):
        ready = max(t[k] for t in inputs) + 2
        out.append(ready if not out else max(ready, out[-1] + 1))
    return out


def occupancy(writes: list[int], pops: list[int]) -> int:
    """The most pixels a FIFO holds: written at edges ``writes`` (+1: the edge after the
    branch produced them), popped at edges ``pops``."""
    events = sorted([(t + 1, 1) for t in writes] + [(t, -1) for t in pops],
                    key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def fifo_depth(peak: int) -> int:
    """``peak + 2`` rounded up to a power of two (at least 2)."""
    depth = 2
    while depth < peak + 2:
        depth *= 2
    return depth


def join_wrapper_text(name: str, widths: list[int], depths: list[int], layer: str) -> str:
    """The join module: ports ``clk, rst, v_in<k>, x_in<k>`` per branch, ``v_out, y_out``."""
    n = len(widths)
    total = sum(widths)
    ports = ["  input  wire clk", "  input  wire rst"]
    for k, w in enumerate(widths):
        ports += [f"  input  wire v_in{k}", f"  input  wire [{w - 1}:0] x_in{k}"]
    ports += ["  output reg  v_out", f"  output reg  [{total - 1}:0] y_out"]
    body = [f"// Join of {n} pixel-stream branches into layer {layer!r}: one FIFO per branch "
            f"(depths {depths}),",
            "// popped together when every branch holds a pixel (input 0 in the lowest bits).",
            f"module {name} (", ",\n".join(ports), ");"]
    ready = " && ".join(f"(n{k} != 0)" for k in range(n))
    for k, (w, d) in enumerate(zip(widths, depths, strict=True)):
        a = max(1, (d - 1).bit_length())
        body += [f"  reg  [{w - 1}:0] mem{k} [0:{d - 1}];",
                 f"  reg  [{a - 1}:0] wp{k}, rp{k};",
                 f"  reg  [{a}:0] n{k};"]
    body += [f"  wire ready = {ready};", "  always @(posedge clk) begin", "    if (rst) begin"]
    for k, d in enumerate(depths):
        a = max(1, (d - 1).bit_length())
        body.append(f"      wp{k} <= {literal(0, a)}; rp{k} <= {literal(0, a)}; "
                    f"n{k} <= {literal(0, a + 1)};")
    body += ["      v_out <= 1'b0;", "    end else begin", "      v_out <= ready;"]
    for k, d in enumerate(depths):
        a = max(1, (d - 1).bit_length())
        one = literal(1, a)
        body += [
            f"      if (v_in{k}) begin",
            f"        mem{k}[wp{k}] <= x_in{k};",
            f"        wp{k} <= wp{k} + {one};",
            "      end",
            f"      if (ready) rp{k} <= rp{k} + {one};",
            f"      n{k} <= n{k} + {{{{{a}{{1'b0}}}}, v_in{k}}} - {{{{{a}{{1'b0}}}}, ready}};",
        ]
    heads = ", ".join(f"mem{k}[rp{k}]" for k in reversed(range(n)))
    body += [f"      if (ready) y_out <= {{{heads}}};", "    end", "  end", "endmodule", ""]
    return "\n".join(body)
