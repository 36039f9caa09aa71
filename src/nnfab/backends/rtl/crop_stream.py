"""Cropping1D/2D inside a pixel stream: the pixels outside the kept window are dropped.

The stage counts the pixels of each image in raster order (row, column) and passes a
pixel on, one register later, only when it lies inside the crop; downstream layers
then see the cropped image (with gaps where pixels were dropped, which every stream
layer accepts). Values are not changed: the stage needs the crop's result type to hold
its input type (the default).
"""

from __future__ import annotations

from nnfab.backends.rtl.verilog import bits_for, literal, pixel_stage_ports
from nnfab.errors import BackendError
from nnfab.ir import Graph, Node

CROP_OPS = ("Cropping1D", "Cropping2D")


def crop_window(graph: Graph, node: Node, shape: tuple[int, ...]) -> tuple[int, int, tuple[
        int, int, int, int]]:
    """(image height, width, (top, bottom, left, right)) of a crop (1-D: height 1)."""
    crops = tuple(int(c) for c in node.attrs["crops"])
    t_in = graph.tensors[node.inputs[0]].type
    t_out = graph.tensors[node.name].type
    if t_in is None or t_out is None or not t_out.holds(t_in):
        raise BackendError(
            f"layer {node.name!r} ({node.op}): inside a pixel stream a crop only drops pixels; "
            f"its result type {t_out} must hold its input type {t_in} (leave the result type "
            "unset, or cast in the next layer)"
        )
    if len(shape) == 2:
        return 1, shape[0], (0, 0, crops[0], crops[1])
    return shape[0], shape[1], (crops[0], crops[1], crops[2], crops[3])


def keep_mask(h: int, w: int, crops: tuple[int, int, int, int]) -> tuple[bool, ...]:
    """For each pixel of an image (raster order): whether the crop keeps it."""
    top, bottom, left, right = crops
    return tuple(top <= r < h - bottom and left <= c < w - right
                 for r in range(h) for c in range(w))


def crop_wrapper_text(name: str, h: int, w: int, crops: tuple[int, int, int, int],
                      pw: int, label: str) -> str:
    """A module ``(clk, rst, v_in, x_in, v_out, y_out)``: latency 1, kept pixels only."""
    top, bottom, left, right = crops
    wr, wc = bits_for(0, max(h - 1, 1))[0], bits_for(0, max(w - 1, 1))[0]
    conds = []
    if top:
        conds.append(f"row >= {literal(top, wr)}")
    if bottom:
        conds.append(f"row <= {literal(h - 1 - bottom, wr)}")
    if left:
        conds.append(f"col >= {literal(left, wc)}")
    if right:
        conds.append(f"col <= {literal(w - 1 - right, wc)}")
    inside = " && ".join(conds) or "1'b1"
    lines = [
        f"// {name}: {label}: keeps rows {top}..{h - 1 - bottom} and columns "
        f"{left}..{w - 1 - right} of each {h}x{w} image (raster order); latency 1.",
        *pixel_stage_ports(name, pw, pw),
        f"  reg  [{wr - 1}:0] row;",
        f"  reg  [{wc - 1}:0] col;",
        f"  wire col_last = (col == {literal(w - 1, wc)});",
        f"  wire row_last = (row == {literal(h - 1, wr)});",
        f"  wire keep = {inside};",
        "  always @(posedge clk) begin",
        "    y_out <= x_in;",
        "    if (rst) begin",
        f"      row <= {literal(0, wr)};",
        f"      col <= {literal(0, wc)};",
        "      v_out <= 1'b0;",
        "    end else begin",
        "      v_out <= v_in && keep;",
        "      if (v_in) begin",
        f"        col <= col_last ? {literal(0, wc)} : col + {literal(1, wc)};",
        "        if (col_last)",
        f"          row <= row_last ? {literal(0, wr)} : row + {literal(1, wr)};",
        "      end",
        "    end",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"
