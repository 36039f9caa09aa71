"""Permute inside a pixel stream (``perm`` over the sample axes, ``nnfab.ir.rearrange``).

Two forms are taken:

- Absorbed: a Permute that ends the stream (the graph's output) or whose only reader
  is a ``Flatten`` only changes the order of the collected elements. ``stream.py``
  collects the Permute's input image into one vector (as for ``Flatten``) and renders
  the Permute itself as a vector layer (wires), for any ``perm``.
- Transposed: ``perm == (1, 0, 2)`` on an ``(H, W, C)`` image (height and width
  swapped, pixels unchanged) followed by more pixel-stream layers. Output pixel
  ``(y, x)`` of the ``W x H`` output image is input pixel ``(x, y)``; in output raster
  order, output ``k`` of an image reads input pixel ``s(k) = (k % H) * W + k // H``.

Every other Permute inside a stream (one moving the channel axis, ``(1, 0)`` on a
1-D ``(steps, channels)`` stream) changes what a pixel is and is refused by
``permute_refusal``.

The transposer (``transpose_wrapper_text``): the input pixels go into a circular RAM of
``D`` pixels (a power of two) at consecutive addresses as they come; an emitter reads
them back in transposed order. Its state: the output column ``ox`` and row ``oy`` and
``lead``, the pixels written minus the index of its current source (a two's complement
count: negative while the source is still to come), so the source is at address
``wp - lead``, kept in the register ``rp`` (it moves only on an emission, by minus ``lead``'s
step), so the RAM reads a registered address. It emits whenever ``lead > 0`` (the source
is written) and, with folded kernels downstream, at least ``P`` cycles after its
previous emission. After an emission ``lead`` drops by the source step: ``W`` along an
output row, ``1 - (H - 1) * W`` from the end of a row to the next one, ``1`` from an
image's last output to the next image's first. The next image is written behind the one
being read out, so nothing stalls (the stream has no back-pressure).

Timing (``transpose_times``): input pixel ``n`` loaded at edge ``a[n]`` is written at
edge ``a[n] + 1``; output ``k`` is loaded at edge ``e[k] = max(a[s(k)] + 2, e[k-1] + P)``.
With images back to back the output runs ``(H - 1) * (W - 1)`` pixels behind the input
(the first output row needs the first input column), then one pixel per ``P`` cycles:
the pace stays that of the stream. As the sources come in bursts (a row at a time),
an image's first output waits until ``Transpose.start`` of its pixels are written
(``start_for``: the fewest for which every image then leaves in one steady run, so
the stages after it time each image as the last one, and the stream is periodic).
The depth: the most pixels from the oldest one
still to be read to the one being written (from the generation-time schedules, as
for upsampling), plus two, rounded up to a power of two (about twice the image with
images back to back); any other timing is checked against it.

Values are not changed; a result type other than the input type is applied per pixel
by a cast stage after this one (``stream.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nnfab.backends.rtl.verilog import (
    bits_for,
    literal,
    pixel_buffer_memory,
    pixel_buffer_process,
    pixel_stage_ports,
)
from nnfab.errors import BackendError

TRANSPOSE_PERM = (1, 0, 2)
"""The one Permute a pixel stream runs in place: height and width swapped."""


@dataclass(frozen=True)
class Transpose:
    """An ``h x w x c`` image transposed into a ``w x h x c`` one."""

    layer: str
    h: int
    w: int
    c: int
    start: int = 1
    """An image's first output waits until this many of its pixels are written."""

    @property
    def pixels(self) -> int:
        return self.h * self.w

    def source(self, k: int) -> int:
        """Input pixel index (over images back to back) of output pixel ``k``."""
        image, r = divmod(k, self.pixels)
        return image * self.pixels + (r % self.h) * self.w + r // self.h

    def oldest(self, k: int) -> int:
        """The smallest input index read by output ``k`` or a later one."""
        image, r = divmod(k, self.pixels)
        oy, ox = divmod(r, self.h)
        # the rest of output row oy reads column oy from row ox on; later rows read
        # columns oy + 1 .. from row 0 on
        rest = ox * self.w + oy
        later = oy + 1 if oy + 1 < self.w else self.pixels
        return image * self.pixels + min(rest, later)


def permute_refusal(name: str, perm: tuple[int, ...], shape: tuple[int, ...]) -> BackendError:
    """The error for a Permute a pixel stream cannot run, naming what it takes."""
    return BackendError(
        f"layer {name!r}: op 'Permute' with perm {perm} on {shape} is not supported inside "
        "a streamed RTL design: it moves the channel axis, which changes what a pixel is; "
        f"a pixel stream takes perm {TRANSPOSE_PERM} on (height, width, channels) images "
        "(height and width swapped, a whole-image buffer), and any perm as the stream's "
        "last layer or right before a Flatten (the collected vector is reordered); a "
        "vector design (no convolution or pooling before it) takes any perm")


def transpose_times(tr: Transpose, times: list[int], interval: int = 1,
                    depth: int | None = None) -> tuple[list[int], int]:
    """``(out, need)``: the edges at which the stage loads its output pixels, given those
    at which its input pixels are loaded, and the fewest buffer pixels these timings
    need. ``interval``: the stream's pixel interval P. With ``depth``, a timing needing
    more than ``depth`` pixels raises ``BackendError``."""
    n_in = len(times)
    out: list[int] = []
    k = 0
    while True:
        s = tr.source(k)
        first = s + (tr.start - 1 if k % tr.pixels == 0 else 0)
        if first >= n_in:
            break
        e = times[first] + 2
        out.append(e if not out else max(e, out[-1] + interval))
        k += 1
    need = 0
    k = 0
    for n, t in enumerate(times):  # pixel n is written at edge t + 1
        while k < len(out) and out[k] < t + 1:
            k += 1
        keep = n - tr.oldest(k) + 1
        need = max(need, keep)
        if depth is not None and keep > depth:
            raise BackendError(
                f"layer {tr.layer!r} (Permute): this input timing needs {keep} buffered "
                f"pixels at input pixel {n} (cycle {t}); the transpose buffer holds {depth} "
                "(sized for images paced at the design's pixel interval, with gaps); pace "
                "the input pixels more evenly")
    return out, need


def start_for(tr: Transpose, times: list[int], interval: int) -> int:
    """The fewest pixels of an image to write before its first output (``Transpose.start``)
    such that, at the input timing ``times`` (images back to back, three or more), the
    outputs of every image after the first leave without a gap (one per ``interval``
    cycles): the next stages then see each image as a steady run of pixels, so the
    stream stays periodic (the last image's tail is timed as the others')."""
    n = tr.pixels
    images = len(times) // n
    for start in range(1, n + 1):
        out = transpose_times(replace(tr, start=start), times, interval)[0]
        if all(out[b * n + j + 1] - out[b * n + j] == interval
               for b in range(1, images) for j in range(n - 1)):
            return start
    return n


def transpose_wrapper_text(name: str, tr: Transpose, pw: int, depth: int,
                           interval: int = 1, timed: bool = False) -> str:
    """A module ``(clk, rst, v_in, x_in, v_out, y_out)``: the buffer and the emitter.
    ``timed``: under a clock target (``pixel_buffer_memory``)."""
    a = max(1, (depth - 1).bit_length())
    wl = max(a + 1, bits_for(-tr.w, depth + tr.pixels)[0])
    step_row = literal(-tr.w, wl)  # lead change: minus the source step
    step_next = literal((tr.h - 1) * tr.w - 1, wl)
    step_image = literal(-1, wl)
    lines = [
        f"// {name}: Permute layer {tr.layer!r} (perm {TRANSPOSE_PERM}) on a pixel stream: "
        f"{tr.h}x{tr.w} in, {tr.w}x{tr.h} out;",
        "// output pixel (y, x) is input pixel (x, y). The input pixels go into a circular "
        f"buffer of {depth} pixels;",
        "// the emitter reads them in transposed order, one output pixel as soon as its "
        "source is written"
        + (f" and at least {interval} cycles after the previous one." if interval > 1 else "."),
        "// Latency 2 (write, then read); no stall: the next image is written behind the "
        "one being read.",
        *pixel_stage_ports(name, pw, pw),
        pixel_buffer_memory(pw, depth, timed),
        f"  reg  [{a - 1}:0] wp;  // address of the next input pixel",
        f"  reg  [{a - 1}:0] rp;  // address of the source: wp - lead, kept in a register",
        f"  reg  [{wl - 1}:0] lead;  // pixels written minus the source's index (two's "
        "complement)",
    ]
    reset = [f"wp <= {literal(0, a)};", f"rp <= {literal(0, a)};",
             f"lead <= {literal(0, wl)};", "v_out <= 1'b0;"]
    seq = ["v_out <= emit;", f"if (v_in) wp <= wp + {literal(1, a)};",
           f"if (emit) rp <= rp - step[{a - 1}:0];  // the source moves by minus the step"]
    ready = f"lead != {literal(0, wl)}"
    if tr.start > 1:  # an image's first output: enough of the image written
        ready = (f"(ox_first && oy_first) ? (lead >= {literal(tr.start, wl)}) : "
                 f"({ready})")
    cond = f"(!lead[{wl - 1}] && ({ready}))"
    if interval > 1:
        wd = bits_for(0, interval - 1)[0]
        lines.append(f"  reg  [{wd - 1}:0] cd;  // cycles until the next emission may come")
        cond += f" && (cd == {literal(0, wd)})"
        reset.append(f"cd <= {literal(0, wd)};")
        seq += [f"if (emit) cd <= {literal(interval - 1, wd)};",
                f"else if (cd != {literal(0, wd)}) cd <= cd - {literal(1, wd)};"]
    ends = {}
    for reg, count, what in (("ox", tr.h, "output column"), ("oy", tr.w, "output row")):
        if count > 1:
            wr = bits_for(0, count - 1)[0]
            lines.append(f"  reg  [{wr - 1}:0] {reg};  // {what}")
            reset.append(f"{reg} <= {literal(0, wr)};")
            ends[reg] = f"({reg} == {literal(count - 1, wr)})"
            ends[reg + "0"] = f"({reg} == {literal(0, wr)})"
            nxt = (f"{reg} <= {reg}_end ? {literal(0, wr)} : {reg} + {literal(1, wr)};")
            seq.append(f"if (emit{' && ox_end' if reg == 'oy' else ''}) {nxt}")
        else:
            ends[reg] = ends[reg + "0"] = "1'b1"
    zeros = f"{{{wl - 1}{{1'b0}}}}"
    lines += [
        f"  wire emit = {cond};",
        f"  wire ox_end = {ends['ox']};",
        f"  wire oy_end = {ends['oy']};",
        f"  wire ox_first = {ends['ox0']};",
        f"  wire oy_first = {ends['oy0']};",
        f"  wire [{wl - 1}:0] step = !ox_end ? {step_row} : (!oy_end ? {step_next} : "
        f"{step_image});",
    ]
    seq.append(f"lead <= lead + {{{zeros}, v_in}} + (emit ? step : {literal(0, wl)});")
    lines += pixel_buffer_process(reset, seq)
    return "\n".join(lines) + "\n"
