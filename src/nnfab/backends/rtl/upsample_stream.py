"""UpSampling1D/2D (nearest) inside a pixel stream: every pixel ``fw`` times, every row
``fh`` times (``out[y][x] = in[y // fh][x // fw]``, see ``nnfab.ir.rearrange``).

This is the one stage that emits more pixels than it takes, and the stream has no
back-pressure, so the stage cannot stall its upstream. Instead:

- Buffer: the input pixels go into a circular RAM of ``D`` pixels (a power of two) as
  they arrive; an emitter reads them back in output raster order. Its state: the
  column repeat ``cc``, the source column ``j``, the row repeat ``rr`` and ``lead``, the
  number of buffered pixels from its current source pixel on (the source is at address
  ``wp - lead``). It emits one output pixel whenever its source has been written
  (``lead != 0``) and, with folded kernels downstream, at least ``P`` cycles after its
  previous emission (``P``: the stream's pixel interval). After the last column of a
  row that must be repeated it goes back to the row's first pixel (``lead += w - 1``).
  The next input rows keep arriving while a row is repeated: they are written behind
  it (the buffer holds the repeated row and the pixels arriving meanwhile), so nothing
  stalls.
- Pace: the stream's input pixels must come slowly enough that the upsampled map
  fits in an image's cycles: ``StreamDesign.pixel_interval`` becomes at least
  ``P * ceil(upsampled pixels / input pixels)`` (``stream.py`` raises it further until
  back-to-back images give a periodic schedule).
- Depth: from the generation-time schedules (back to back, idle slots, image gaps,
  pauses), the most pixels that must be kept (from the start of the row still to be
  repeated, or from the source in the row's last repeat), plus two, rounded up to a
  power of two. ``upsample_times`` checks any other input timing against the depth and
  raises ``BackendError`` when it would overwrite a pixel still needed.

Timing (``upsample_times``): input pixel ``n`` loaded (at the stage's input) at edge
``a[n]`` is written at edge ``a[n] + 1``; output ``k`` with source pixel ``s(k)`` is
loaded at edge ``e[k] = max(a[s(k)] + 2, e[k - 1] + P)``. So the pixels after an
upsampling come at a non-uniform rate (bursts of repeats); every later stage takes
any timing with pixels at least ``P`` cycles apart, and the schedule stays exact.

Values are not changed; a result type other than the input type is applied per
pixel by a cast stage after this one (``stream.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from nnfab.backends.rtl.verilog import (
    bits_for,
    literal,
    pixel_buffer_memory,
    pixel_buffer_process,
    pixel_stage_ports,
)
from nnfab.errors import BackendError
from nnfab.ir import Node

UPSAMPLE_OPS = ("UpSampling1D", "UpSampling2D")


@dataclass(frozen=True)
class Upsampling:
    """An ``h x w x c`` image (1-D: ``h == 1``) upsampled by ``(fh, fw)``."""

    layer: str
    op: str
    h: int
    w: int
    c: int
    fh: int
    fw: int

    @property
    def in_pixels(self) -> int:
        return self.h * self.w

    @property
    def out_pixels(self) -> int:
        return self.in_pixels * self.fh * self.fw

    @property
    def out_w(self) -> int:
        return self.w * self.fw

    def source(self, k: int) -> tuple[int, int, bool]:
        """Output pixel ``k`` (counted over images back to back): (input pixel index,
        its column, whether its row is still to be repeated)."""
        image, r = divmod(k, self.out_pixels)
        orow, ocol = divmod(r, self.out_w)
        j = ocol // self.fw
        return image * self.in_pixels + (orow // self.fh) * self.w + j, j, (
            orow % self.fh < self.fh - 1)


def upsampling_of(node: Node, shape: tuple[int, ...]) -> Upsampling:
    """The geometry of an UpSampling1D/2D on input ``shape`` (``(L, C)`` or ``(H, W, C)``)."""
    size = tuple(int(s) for s in node.attrs["size"])
    interpolation = node.attrs.get("interpolation", "nearest")
    if interpolation != "nearest":
        raise BackendError(f"layer {node.name!r} ({node.op}): interpolation {interpolation!r}; "
                           "a pixel stream upsamples by nearest neighbour only")
    if len(shape) == 2:
        return Upsampling(node.name, node.op, 1, shape[0], shape[1], 1, size[0])
    return Upsampling(node.name, node.op, shape[0], shape[1], shape[2], size[0], size[1])


def upsample_times(u: Upsampling, times: list[int], interval: int = 1,
                   depth: int | None = None) -> tuple[list[int], int]:
    """``(out, need)``: the edges at which the stage loads its output pixels, given those
    at which its input pixels are loaded (``times``), and the fewest buffer pixels these
    timings need. ``interval``: the stream's pixel interval P (emissions at least P
    apart). With ``depth``, a timing needing more than ``depth`` pixels raises
    ``BackendError``."""
    n_in = len(times)
    out: list[int] = []
    k = 0
    while True:
        s = u.source(k)[0]
        if s >= n_in:
            break
        e = times[s] + 2
        out.append(e if not out else max(e, out[-1] + interval))
        k += 1
    need = 0
    k = 0
    for n, t in enumerate(times):  # pixel n is written at edge t + 1
        while k < len(out) and out[k] < t + 1:
            k += 1
        s, j, repeat = u.source(k)
        keep = n - s + (j if repeat else 0) + 1  # oldest needed: row start or the source
        need = max(need, keep)
        if depth is not None and keep > depth:
            raise BackendError(
                f"layer {u.layer!r} ({u.op}): this input timing needs {keep} buffered pixels "
                f"at input pixel {n} (cycle {t}); the upsampling buffer holds {depth} (sized "
                "for images paced at the design's pixel interval, with gaps); pace the "
                "input pixels more evenly")
    return out, need


def buffer_depth(need: int) -> int:
    """``need + 2`` rounded up to a power of two (at least 2)."""
    depth = 2
    while depth < need + 2:
        depth *= 2
    return depth


def upsample_wrapper_text(name: str, u: Upsampling, pw: int, depth: int,
                          interval: int = 1, timed: bool = False) -> str:
    """A module ``(clk, rst, v_in, x_in, v_out, y_out)``: the buffer and the emitter.
    ``timed``: under a clock target (``pixel_buffer_memory``)."""
    a = max(1, (depth - 1).bit_length())
    wl = bits_for(0, depth + u.w)[0]
    lines = [
        f"// {name}: {u.op} layer {u.layer!r} on a pixel stream: {u.h}x{u.w} in, "
        f"{u.h * u.fh}x{u.out_w} out, factors ({u.fh}, {u.fw}) (nearest).",
        f"// The input pixels go into a circular buffer of {depth} pixels; the emitter "
        "reads each one",
        f"// {u.fw} time(s) in a row and each row {u.fh} time(s), one output pixel as soon "
        "as its source is written"
        + (f" and at least {interval} cycles after the previous one." if interval > 1 else "."),
        "// Latency 2 (write, then read); no stall: the next rows are written while one "
        "is repeated.",
        *pixel_stage_ports(name, pw, pw),
        pixel_buffer_memory(pw, depth, timed),
        f"  reg  [{a - 1}:0] wp;  // address of the next input pixel",
        f"  reg  [{a - 1}:0] rp;  // address of the source: wp - lead, kept in a register",
        f"  reg  [{wl - 1}:0] lead;  // buffered pixels from the current source on",
    ]
    reset = [f"wp <= {literal(0, a)};", f"rp <= {literal(0, a)};",
             f"lead <= {literal(0, wl)};", "v_out <= 1'b0;"]
    seq = ["v_out <= emit;", f"if (v_in) wp <= wp + {literal(1, a)};"]
    cond = "(lead != " + literal(0, wl) + ")"
    if interval > 1:
        wd = bits_for(0, interval - 1)[0]
        lines.append(f"  reg  [{wd - 1}:0] cd;  // cycles until the next emission may come")
        cond += f" && (cd == {literal(0, wd)})"
        reset.append(f"cd <= {literal(0, wd)};")
        seq += [f"if (emit) cd <= {literal(interval - 1, wd)};",
                f"else if (cd != {literal(0, wd)}) cd <= cd - {literal(1, wd)};"]
    ends = {}
    for reg, count, what in (("cc", u.fw, "column repeat"), ("j", u.w, "source column"),
                             ("rr", u.fh, "row repeat")):
        if count > 1:
            wr = bits_for(0, count - 1)[0]
            lines.append(f"  reg  [{wr - 1}:0] {reg};  // {what}")
            reset.append(f"{reg} <= {literal(0, wr)};")
            ends[reg] = f"({reg} == {literal(count - 1, wr)})"
        else:
            ends[reg] = "1'b1"
    lines += [
        f"  wire emit = {cond};",
        f"  wire c_end = {ends['cc']};",
        f"  wire j_end = {ends['j']};",
        f"  wire r_end = {ends['rr']};",
        "  wire adv = emit && c_end && (!j_end || r_end);  // on to the next input pixel",
    ]
    zeros = f"{{{wl - 1}{{1'b0}}}}"
    step = f"lead + {{{zeros}, v_in}} - {{{zeros}, adv}}"
    move = f"rp + {{{{{a - 1}{{1'b0}}}}, adv}}" if a > 1 else "rp + adv"
    if u.fh > 1 and u.w > 1:
        lines.append("  wire back = emit && c_end && j_end && !r_end;  // the row once more")
        step += f" + (back ? {literal(u.w - 1, wl)} : {literal(0, wl)})"
        move += f" - (back ? {literal((u.w - 1) % depth, a)} : {literal(0, a)})"
    seq.append(f"lead <= {step};")
    seq.append(f"rp <= {move};  // wp - lead: moves by minus lead's change without v_in")
    if u.fw > 1:
        seq.append(f"if (emit) cc <= c_end ? {literal(0, bits_for(0, u.fw - 1)[0])} : "
                   f"cc + {literal(1, bits_for(0, u.fw - 1)[0])};")
    if u.w > 1:
        wj = bits_for(0, u.w - 1)[0]
        seq.append(f"if (emit && c_end) j <= j_end ? {literal(0, wj)} : j + {literal(1, wj)};")
    if u.fh > 1:
        wr = bits_for(0, u.fh - 1)[0]
        seq.append(f"if (emit && c_end && j_end) rr <= r_end ? {literal(0, wr)} : "
                   f"rr + {literal(1, wr)};")
    lines += pixel_buffer_process(reset, seq)
    return "\n".join(lines) + "\n"
