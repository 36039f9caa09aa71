"""Streamed designs for convolutional networks: one pixel (all channels) per clock (or
one every P clocks with folded kernels).

A graph with convolutions or poolings (``Conv1D/2D``, ``DepthwiseConv1D/2D``,
``Pooling1D/2D``) becomes a pixel stream instead of one fully parallel sample.

Top interface (Verilog-2001)::

    module <top> (
      input  wire clk, rst,                 // rst: synchronous, active high
      input  wire in_valid,                 // one input pixel per cycle when high
      input  wire [C_IN*W_IN-1:0] in_data,  // channel c in bits [c*W_IN +: W_IN]
      output wire out_valid,                // one output item per cycle when high
      output wire [N_OUT*W_OUT-1:0] out_data
    );

Images enter pixel after pixel in raster order (row-major: row by row, left to
right; a 1-D input ``(L, C)`` is one row of ``L`` pixels), images back to back. A
pixel is taken at every rising edge where ``in_valid`` is high; ``in_valid`` may drop
anywhere (inside an image or between images): the design counts pixels, so after
``rst`` the first valid pixel is pixel (0, 0) of an image. There is no back-pressure.
Without folded kernels there is no input pacing requirement: the design accepts a
pixel at every cycle, so one image takes ``H * W`` cycles (the throughput). With
folded kernels (below) pixels must be at least ``P`` cycles apart (the *pixel
interval*, ``StreamDesign.pixel_interval``), and an image takes ``H * W * P`` cycles;
an upsampling raises the interval further (below).

The output is one item per ``out_valid`` cycle: an output pixel (all channels of the
last feature map, raster order) when the network ends on a streamed layer, or the
whole output vector once per image when it ends with ``Flatten`` and vector layers
(``Dense``, ``Activation``, ``Softmax``), which then run once per image on the
collected feature map.

Inside, every windowed layer keeps a ``kh x kw`` window of pixel registers fed by
``kh - 1`` line buffers (RAM arrays of ``W - kw`` pixels) and counts pixels; when
the pixel completing an output's window arrives it computes that output with a fully
parallel kernel: the window-kernel dot products reuse the Dense renderer (adder
graphs in ``lut`` style, ``*`` in ``dsp`` style), the poolings a comparator tree or
an exact sum times ``scale_q(1/count)``. Zero padding: window elements outside the
image are replaced by zeros (convolutions, average pooling; the count excludes them)
or by the smallest value of the input type (max pooling). An output whose window
extends below the image or past its right edge is ready only after the image's last
pixel: it is computed at the slots of the next image's first pixels or, while the
next image has not begun, at idle cycles (the layer then advances on its own), so the
last image's results come out without extra input. (When a stream pauses inside an
image, the previous image's last outputs wait for that image's next pixels.)

Layers between windowed layers that act per pixel (``Activation``, ``Dense`` on the
channel axis, ``Softmax``, ``Dropout``, ``MultiThreshold``, ``BatchNormalization``,
``LayerNormalization`` over the channels, an ``ElementCast`` or ``prelu`` whose values
depend on the channel only) run on each pixel with the regular renderers.
``Cropping1D/2D`` drops the pixels outside the crop (``crop_stream.py``); a
``ZeroPadding1D/2D`` read only by a convolution becomes that convolution's padding
(``padding.py``); ``GlobalPooling1D/2D`` collects the feature map as ``Flatten`` does and
then runs once per image (``shape_ops.py``). ``UpSampling1D/2D`` (nearest) emits more
pixels than it takes (``upsample_stream.py``): a circular buffer (the row being repeated
and the pixels arriving meanwhile, sized from the schedules) takes the input pixels as
they come, and an emitter
sends each pixel ``fw`` times and each row ``fh`` times, one output pixel per cycle at
most (one per P cycles with folded kernels), without stalling the upstream (the stream
has no back-pressure). Instead the input is paced: with upsampling the pixel interval
is at least ``P * ceil(upsampled pixels / input pixels)`` (``_stream_pace``), so the
pixels after an upsampling come in bursts (the repeats), which every stage takes.
A ``Permute`` (``permute_stream.py``) with perm ``(1, 0, 2)`` swaps height and width: a
circular buffer of about two images re-emits the pixels in transposed order (the
output runs ``(H - 1) * (W - 1)`` pixels behind, at the stream's pace); any other perm
is taken only where it ends the stream (the last layer, or read by a ``Flatten`` only):
the image is collected as for ``Flatten`` and the vector reordered (wires).

The stream may branch and meet again before the Flatten (skip connections, parallel
convolutions): a tensor read by several layers feeds them all, and a ``Merge`` or a
``Concatenate`` on the channels joins its branches in one FIFO each
(``stream_join.py``), then runs per pixel. After the Flatten the vector layers form a
chain.

Folding (reuse factors). A ``Conv1D``/``Conv2D`` or a per-pixel ``Dense`` with
``reuse_factor`` R > 1 gets a folded kernel: the window's weighted sum is rendered as a
folded Dense over the window vector (``folded.py``: ``ceil(taps*C*F / R)`` shared
multipliers fed by weight ROMs and a phase counter, latency ``R + D + 2``), which takes
a window every R cycles. The stream's pixel interval P is the largest such R; every
layer then runs at one pixel per P cycles (a fully parallel kernel simply idles). A
layer whose windows reach past the image keeps its output pixels P cycles apart: its
idle steps come P cycles after its last step, and a window emitted right after an
idle step waits in the window registers until the kernel may take it (``window_times``
models this, cycle by cycle). A ``Dense`` after the Flatten folds with its reuse factor
up to the cycles between two images there; depthwise convolutions keep a fully parallel
kernel. A reuse factor the design cannot use is reported as ``CheckReuseFactor``
reports one (a warning naming the layer and the value used, or a ``ConfigError`` with
``Model.ReuseFactorPolicy: strict``).

Latencies are known at generation time: ``emission_times`` / ``window_times`` model
the controller cycle by cycle; ``StreamDesign.schedule`` predicts every output's cycle
for any input timing, and the simulation measures the same.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nnfab.backends.rtl import ecp5
from nnfab.backends.rtl.adders import SumBuilder, Term
from nnfab.backends.rtl.crop_stream import CROP_OPS, crop_window, crop_wrapper_text, keep_mask
from nnfab.backends.rtl.layers import (
    RENDERERS,
    LayerContext,
    LayerModule,
    RtlOptions,
    const_product,
    input_signals,
)
from nnfab.backends.rtl.padding import fold_zero_padding
from nnfab.backends.rtl.permute_stream import (
    TRANSPOSE_PERM,
    Transpose,
    permute_refusal,
    start_for,
    transpose_times,
    transpose_wrapper_text,
)
from nnfab.backends.rtl.stream_join import (
    fifo_depth,
    join_times,
    join_wrapper_text,
    occupancy,
)
from nnfab.backends.rtl.upsample_stream import (
    UPSAMPLE_OPS,
    Upsampling,
    buffer_depth,
    upsample_times,
    upsample_wrapper_text,
    upsampling_of,
)
from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, bits_for, literal, pixel_stage_ports
from nnfab.backends.rtl.writer import RtlDesign, dataflow
from nnfab.errors import BackendError, ConfigError
from nnfab.ir import FixedType, Graph, Namespace, Node, sanitize
from nnfab.ir.ops import GLOBAL_POOL_MODES, POOL_MODES
from nnfab.ir.rearrange import REARRANGE_OPS
from nnfab.ir.rows import row_weights
from nnfab.ir.tables import pool_counts, pool_scale, pool_scale_type

log = logging.getLogger(__name__)

WINDOW_OPS = ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "Pooling1D",
              "Pooling2D")
"""Ops that make a design streamed (a window slides over the pixel stream)."""
PIXEL_OPS = ("Activation", "Dense", "Softmax", "Dropout", "MultiThreshold",
             "BatchNormalization", "LayerNormalization", "ElementCast")
"""Ops applied to each pixel of a stream on its own (over the channel axis; an
``ElementCast`` whose types depend on the channel only, a ``prelu`` with per-channel
alphas)."""
COLLECT_OPS = ("Flatten", "GlobalPooling1D", "GlobalPooling2D")
"""Ops that collect the whole feature map, then run once per image (vector layers)."""
"""Ops that end the stream: the pixels of an image are collected into one vector."""


def is_streamed(graph: Graph) -> bool:
    """True when the graph has a convolution or a pooling (see ``WINDOW_OPS``)."""
    return any(n.op in WINDOW_OPS for n in graph.nodes)


# ----------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Geometry:
    """A window sliding over an ``h x w`` image of ``c`` channels (1-D: ``h == 1``).

    Output ``(oy, ox)`` reads padded rows ``oy*sh .. oy*sh + kh - 1`` (image rows
    ``oy*sh - pt + t``) and likewise columns. Its *emission slot* is the flat index
    ``(oy*sh + kh-1-pt) * w + ox*sw + kw-1-pl`` of the window's bottom-right element,
    counted in pixels from the image's first pixel; indices at or beyond ``h*w``
    (windows reaching into the bottom or right padding) fall after the image.
    """

    layer: str
    h: int
    w: int
    c: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int

    @property
    def ho(self) -> int:
        return (self.h + self.pt + self.pb - self.kh) // self.sh + 1

    @property
    def wo(self) -> int:
        return (self.w + self.pl + self.pr - self.kw) // self.sw + 1

    @property
    def pixels(self) -> int:
        return self.h * self.w

    def emission(self, oy: int, ox: int) -> int:
        row = oy * self.sh + self.kh - 1 - self.pt
        return row * self.w + ox * self.sw + self.kw - 1 - self.pl

    @property
    def e0(self) -> int:
        return self.emission(0, 0)

    @property
    def e_last(self) -> int:
        return self.emission(self.ho - 1, self.wo - 1)

    @property
    def row_step(self) -> int:
        """Emission slot of ``(oy + 1, 0)`` minus that of ``(oy, wo - 1)``."""
        return self.sh * self.w - (self.wo - 1) * self.sw

    @property
    def tail(self) -> bool:
        """Whether some outputs are emitted after the image's last pixel."""
        return self.e_last >= self.pixels

    @property
    def line_depth(self) -> int:
        """Pixels held by each line buffer (between two window rows)."""
        return self.w - self.kw

    @property
    def padded(self) -> bool:
        return any((self.pt, self.pb, self.pl, self.pr))

    def row_real(self, t: int) -> tuple[int, int]:
        """Range ``[lo, hi]`` of ``oy`` for which window row ``t`` lies in the image."""
        lo = max(0, -(-(self.pt - t) // self.sh))
        hi = min(self.ho - 1, (self.h - 1 + self.pt - t) // self.sh)
        return lo, hi

    def col_real(self, t: int) -> tuple[int, int]:
        lo = max(0, -(-(self.pl - t) // self.sw))
        hi = min(self.wo - 1, (self.w - 1 + self.pl - t) // self.sw)
        return lo, hi

    def check(self, op: str) -> None:
        """Raise ``BackendError`` when the streaming schedule cannot hold this layer."""
        where = f"layer {self.layer!r} ({op})"
        if self.line_depth < 0:
            raise BackendError(
                f"{where}: the window is {self.kw} pixels wide but the image only {self.w}; "
                "the streamed RTL needs windows no wider than the (unpadded) image"
            )
        if self.e0 < 0:
            raise BackendError(
                f"{where}: padding {(self.pt, self.pb, self.pl, self.pr)} leaves the first "
                "window entirely in the padding; the streamed RTL supports paddings smaller "
                "than the window on each side"
            )
        if self.wo > 1 and (self.wo - 1) * self.sw >= self.sh * self.w:
            raise BackendError(
                f"{where}: left + right padding {self.pl} + {self.pr} is too large for the "
                f"window width {self.kw}: output rows would overlap in the pixel stream; the "
                "streamed RTL supports pads with pad_left + pad_right < kernel width (as "
                "'same' and 'valid' padding)"
            )
        if self.e_last - self.e0 >= self.pixels:
            raise BackendError(
                f"{where}: top + bottom padding {self.pt} + {self.pb} is too large for the "
                f"window height {self.kh}: consecutive images would overlap in the pixel "
                "stream; the streamed RTL supports pads with pad_top + pad_bottom < kernel "
                "height (as 'same' and 'valid' padding)"
            )


def geometry_of(node: Node, in_shape: tuple[int, ...]) -> Geometry:
    """The window geometry of a convolution or pooling (1-D layers get ``h == 1``)."""
    rank = 2 if node.op.endswith("2D") else 1
    if node.op.startswith("Pooling"):
        size = tuple(int(k) for k in node.attrs["pool_size"])
    else:
        size = tuple(int(k) for k in np.shape(node.weights["kernel"])[:rank])
    strides = tuple(int(s) for s in node.attrs.get("strides", size if node.op.startswith(
        "Pooling") else (1,) * rank))
    pads = tuple(int(p) for p in node.attrs.get("pads", (0,) * (2 * rank)))
    if rank == 1:
        (length, channels) = in_shape
        return Geometry(node.name, 1, length, channels, 1, size[0], 1, strides[0], 0, 0,
                        pads[0], pads[1])
    h, w, channels = in_shape
    return Geometry(node.name, h, w, channels, size[0], size[1], strides[0], strides[1],
                    pads[0], pads[1], pads[2], pads[3])


def emission_times(g: Geometry, times: list[int]) -> list[int]:
    """Cycles at which the layer emits outputs, given the cycles of its input pixels.

    A cycle-level model of the controller in ``_window_wrapper`` (same rules, in Python):
    used to report latencies at generation time and to predict the simulation. (For a
    stream with a pixel interval above 1 see ``window_times``.)
    """
    return window_times(g, times, 1)[0]


def window_times(g: Geometry, times: list[int], interval: int = 1
                 ) -> tuple[list[int], list[int]]:
    """``(emissions, issues)``: the cycles at which the layer emits outputs (the pixel
    completing the window enters) and those at which its kernel takes the window.

    ``interval`` is the stream's pixel interval P (input pixels at least P cycles apart).
    With P == 1 every window goes to the kernel the cycle after its emission. With
    P > 1, a layer whose windows reach past the image (``Geometry.tail``) steps on its own
    (an idle step) only P cycles or more after its last step, when no window waits and
    the kernel may take the next one on the following cycle: the last image's tail
    comes out when it would with a next image at the same pace. A window emitted less
    than P cycles after the previous one was taken (a pixel right after an idle step)
    waits (at most P - 1 cycles, while the window registers still hold it), so the
    kernel takes windows, and the layer emits output pixels, at least P cycles apart:
    the interval holds down the stream.
    """
    hw = g.pixels
    out: list[int] = []
    oy = ox = 0
    en = g.e0

    def advance() -> None:
        nonlocal oy, ox, en
        if ox < g.wo - 1:
            ox, en = ox + 1, en + g.sw
        elif oy < g.ho - 1:
            ox, oy, en = 0, oy + 1, en + g.row_step
        else:
            ox, oy, en = 0, 0, g.e0

    if not g.tail:
        ip = 0
        for t in times:
            if ip == en:
                out.append(t)
                advance()
            ip = 0 if ip == hw - 1 else ip + 1
        return out, [t + 1 for t in out]
    if not times:
        return out, []
    issues: list[int] = []
    valid = set(times)
    ip = os_ = base = 0
    waiting, nxt, rcvd = True, False, False
    pend, cd = False, 0  # a window waits for the kernel; cycles until the kernel is free
    sc = 0  # cycles until the next idle step may come (P after the last step)
    t = times[0]
    end = times[-1]
    while t <= end or (rcvd and not nxt) or pend:
        v_in = t in valid
        first_px = v_in and ip == 0
        idle = rcvd and not nxt and (interval == 1 or (not pend and cd <= 1 and sc == 0))
        slot = v_in or idle
        start_next = first_px and not waiting
        active = not waiting or first_px
        cur = 0 if waiting else os_
        emit = slot and active and cur == en
        last_out = emit and ox == g.wo - 1 and oy == g.ho - 1
        have_next = nxt or start_next
        nb = cur if start_next else base
        issue = pend and cd == 0
        if slot and pend and not issue:
            raise AssertionError(f"layer {g.layer!r}: the window registers shift at cycle {t} "
                                 "while an emitted window still waits for the kernel (input "
                                 f"pixels closer than the pixel interval {interval}?)")
        if issue:
            issues.append(t)
        cd = interval - 1 if issue else max(cd - 1, 0)
        sc = interval - 1 if slot else max(sc - 1, 0)
        pend = emit or (pend and not issue)
        if last_out:
            rcvd = False
        if v_in and ip == hw - 1:
            rcvd = True
        if v_in:
            ip = 0 if ip == hw - 1 else ip + 1
        if slot and active:
            if last_out:
                waiting, nxt, os_ = not have_next, False, cur + 1 - nb
            else:
                waiting, os_ = False, cur + 1
                if start_next:
                    nxt, base = True, cur
        if emit:
            out.append(t)
            advance()
        t += 1
    return out, issues


# ------------------------------------------------------------------ stages
@dataclass
class Stage:
    """One step of the streamed pipeline.

    ``kind``: ``window`` (a convolution or pooling with its line buffers), ``pixel``
    (a per-pixel layer), ``crop`` (drops pixels), ``upsample`` (repeats pixels and
    rows, ``upsample_stream.py``), ``transpose`` (a Permute swapping height and width,
    ``permute_stream.py``), ``join`` (branches meet), ``collect`` (Flatten:
    pixels into one vector per image) or ``vector`` (a layer after the collection,
    once per image). ``latency``: cycles
    from input valid to output valid (``window``: from the emission slot, counting
    the window register, i.e. ``1 +`` the kernel's latency, when the kernel takes the
    window at once, see ``window_times``). ``reuse``: the reuse factor of a folded
    kernel (1: fully parallel); ``interval``: the stream's pixel interval.
    """

    kind: str
    node: str
    op: str
    latency: int
    in_width: int
    out_width: int
    module: LayerModule | None = None
    wrapper: str = ""
    wrapper_text: str = ""
    geometry: Geometry | None = None
    items: int = 1
    reuse: int = 1
    interval: int = 1
    keep: tuple[bool, ...] = ()
    """``crop``: for each pixel of an input image, whether it is passed on."""
    sources: tuple[int, ...] | None = None
    """Indices of the stages it reads (-1: the input register); None: the stage before."""
    widths: tuple[int, ...] = ()
    """``join``: the pixel width of each branch."""
    upsample: Upsampling | None = None
    """``upsample``: the geometry."""
    depth: int = 0
    """``upsample``, ``transpose``: buffer pixels (0 until sized: timings are then not
    checked)."""
    transpose: Transpose | None = None
    """``transpose``: the geometry (``permute_stream.py``)."""

    def times(self, times: list[int]) -> list[int]:
        """Output valid cycles given the input valid cycles (see ``window_times``)."""
        if self.kind == "crop":
            return [t + 1 for k, t in enumerate(times) if self.keep[k % len(self.keep)]]
        if self.kind == "upsample":
            assert self.upsample is not None
            return upsample_times(self.upsample, times, self.interval, self.depth or None)[0]
        if self.kind == "transpose":
            assert self.transpose is not None
            return transpose_times(self.transpose, times, self.interval, self.depth or None)[0]
        if self.kind == "window":
            assert self.geometry is not None
            issues = window_times(self.geometry, times, self.interval)[1]
            return [t + self.latency - 1 for t in issues]
        if self.kind == "collect":
            return [t + 1 for k, t in enumerate(times) if k % self.items == self.items - 1]
        return [t + self.latency for t in times]


@dataclass
class StreamDesign(RtlDesign):
    """A streamed design (see the module docstring): pixels in, pixels or vectors out.

    ``latency``: cycles from an image's first pixel to its last output item when the
    images arrive back to back (``latency_first``: to its first item), counted as the
    fully parallel design counts them (the edge sampling the first pixel is edge 1);
    ``ii``: cycles per image (``H * W * pixel_interval``); ``pixel_interval``: cycles
    between input pixels (1, or the largest reuse factor of the folded kernels, times
    more with upsampling, see ``_stream_pace``).
    """

    stages: list[Stage] = field(default_factory=list)
    pixel_in: int = 0
    """Channels of an input pixel (elements of ``in_data``)."""
    item_shape: tuple[int, ...] = ()
    """Shape of one output item (an output pixel's channels, or the output vector)."""
    items_per_image: int = 1
    latency_first: int = 0
    pixel_interval: int = 1
    """Input pixels must be at least this many cycles apart (the largest reuse factor;
    more when upsampling makes the feature maps larger than the input image)."""

    streamed = True

    @property
    def pixels_per_image(self) -> int:
        return self.n_in // max(self.pixel_in, 1)

    @property
    def item_size(self) -> int:
        return math.prod(self.item_shape)

    @property
    def in_width(self) -> int:
        return self.pixel_in * self.in_type.width

    @property
    def out_width(self) -> int:
        return self.item_size * self.out_type.width

    def schedule(self, in_cycles: list[int]) -> list[int]:
        """Harness cycles at which ``out_valid`` is seen, given those of the input pixels.

        A pixel presented in harness cycle ``i`` is sampled by edge ``i + 1``; an output
        seen in cycle ``j`` was produced by edge ``j + 1``; latencies are ``j - i + 1``.
        Input pixels must be ``pixel_interval`` cycles apart or more.
        """
        p = self.pixel_interval
        for a, b in itertools.pairwise(in_cycles):
            if b - a < p:
                raise BackendError(f"stream schedule: input pixels at cycles {a} and {b}; this "
                                   f"design takes one pixel every {p} cycles at most")
        return [t - 1 for t in self.stage_times(in_cycles)[-1]]

    def stage_times(self, in_cycles: list[int]) -> list[list[int]]:
        """The edges at which each stage's output is loaded (``schedule`` without checks)."""
        done: dict[int, list[int]] = {-1: [i + 1 for i in in_cycles]}  # the input register
        for k, stage in enumerate(self.stages):
            srcs = stage.sources if stage.sources is not None else (k - 1,)
            if stage.kind == "join":
                done[k] = join_times([done[i] for i in srcs])
            else:
                done[k] = stage.times(done[srcs[0]])
        return [done[k] for k in range(len(self.stages))]

    def manifest(self) -> dict[str, Any]:
        data = super().manifest()
        data["input"]["width"] = self.in_width
        data["output"]["width"] = self.out_width
        data["stream"] = {
            "pixel_channels": self.pixel_in,
            "pixels_per_image": self.pixels_per_image,
            "pixel_interval": self.pixel_interval,
            "item_shape": list(self.item_shape),
            "items_per_image": self.items_per_image,
            "latency_first": self.latency_first,
            "latency_last": self.latency,
            "cycles_per_image": self.ii,
            "stages": [
                {"name": s.node, "op": s.op, "kind": s.kind, "latency": s.latency,
                 "reuse_factor": s.reuse,
                 **({"window": [s.geometry.kh, s.geometry.kw],
                     "strides": [s.geometry.sh, s.geometry.sw],
                     "pads": [s.geometry.pt, s.geometry.pb, s.geometry.pl, s.geometry.pr],
                     "line_buffer_pixels": max(s.geometry.line_depth, 0)
                     * (s.geometry.kh - 1)} if s.geometry else {}),
                 **({"size": [s.upsample.fh, s.upsample.fw], "buffer_pixels": s.depth}
                    if s.upsample else {}),
                 **({"buffer_pixels": s.depth} if s.transpose else {})}
                for s in self.stages
            ],
        }
        return data


# ------------------------------------------------------------- generation
def generate_stream(graph: Graph, options: RtlOptions | None = None, top: str | None = None
                    ) -> StreamDesign:
    """Render a streamed design (see the module docstring) for the layers the output
    depends on."""
    options = options or RtlOptions()
    graph.validate()
    graph = fold_zero_padding(graph)  # ZeroPadding -> Conv: the convolution's own pads
    names = Namespace()
    top_name = names(top or sanitize(graph.name or "nnfab_top"))
    order = stream_order(graph)
    in_tensor = graph.tensors[order[0]]
    in_t = in_tensor.type
    out_t = graph.tensors[order[-1]].type
    if in_t is None or out_t is None:
        raise BackendError("the graph has untyped tensors; run the precision passes first")
    if len(in_tensor.shape) not in (2, 3):
        raise BackendError(
            f"streamed RTL: the input {order[0]!r} has shape {in_tensor.shape}; a network with "
            "convolutions or poolings needs a 1-D (length, channels) or 2-D (height, width, "
            "channels) input"
        )
    reuse = stream_reuse_factors(graph, order)
    interval = max(reuse.values(), default=1)
    stages: list[Stage] = []
    mode = "stream"
    shape = in_tensor.shape
    image_interval = 0  # cycles between images after the Flatten (at least)
    producer: dict[str, int] = {order[0]: -1}  # tensor -> index of the stage computing it
    for name in order[1:]:
        node = graph.node(name)
        for t in (*node.inputs, node.name):
            if graph.tensors[t].type is None:
                raise BackendError(f"layer {name!r}: tensor {t!r} has no fixed-point type")
        out_shape = graph.tensors[name].shape
        shape = graph.tensors[node.inputs[0]].shape
        first = len(stages)
        if mode == "stream" and node.op in JOIN_OPS:
            stages.extend(_join_stages(graph, node, [producer[t] for t in node.inputs], names,
                                       top_name, options))
        elif mode == "stream":
            if node.op in WINDOW_OPS:
                stages.append(_window_stage(graph, node, shape, names, top_name, options,
                                            reuse.get(name, 1), interval))
            elif node.op in PIXEL_OPS or _channel_slice(node, shape):
                stages.append(_pixel_stage(graph, node, shape, out_shape, names, top_name,
                                           options, reuse.get(name, 1)))
            elif node.op in CROP_OPS:  # drops the pixels outside the crop (crop_stream)
                h, w, crops = crop_window(graph, node, shape)
                wrapper = names(f"{top_name}_{node.name}")
                pw = shape[-1] * graph.tensors[name].type.width  # type: ignore[union-attr]
                stages.append(Stage("crop", name, node.op, 1, pw, pw, wrapper=wrapper,
                                    wrapper_text=crop_wrapper_text(wrapper, h, w, crops, pw,
                                                                   f"layer {name!r}"),
                                    keep=keep_mask(h, w, crops)))
            elif node.op in UPSAMPLE_OPS:  # repeats pixels and rows (upsample_stream)
                stages.extend(_upsample_stages(graph, node, shape, names, top_name, options))
            elif node.op == "Permute" and _permute_absorbed(graph, node, order):
                # the end of the stream: the collected vector reordered (permute_stream)
                stages.append(_collect_stage(graph, node, shape, names, top_name))
                image_interval = math.prod(shape[:-1]) * interval
                stages.append(_vector_stage(graph, node, names, top_name, options,
                                            image_interval))
                mode = "vector"
            elif node.op == "Permute":  # height and width swapped (permute_stream)
                stages.extend(_transpose_stages(graph, node, shape, names, top_name, options))
            elif node.op in COLLECT_OPS:
                stages.append(_collect_stage(graph, node, shape, names, top_name))
                image_interval = math.prod(shape[:-1]) * interval
                stages.append(_vector_stage(graph, node, names, top_name, options,
                                            image_interval))
                mode = "vector"
            else:
                raise BackendError(
                    f"layer {name!r}: op {node.op!r} is not supported inside a streamed RTL "
                    f"design; supported on pixel streams: {', '.join(WINDOW_OPS)} (padding "
                    f"'valid' or 'same'), {', '.join(PIXEL_OPS)} (per pixel), Slice of "
                    "the channels only (per pixel), "
                    f"{', '.join(CROP_OPS + UPSAMPLE_OPS)}, Permute (perm {TRANSPOSE_PERM}; "
                    "any perm as the last layer or before a Flatten), Merge / Concatenate, "
                    "and Flatten "
                    "or global pooling followed by vector layers"
                    + (" (a ZeroPadding folds into the convolution it feeds when that is its "
                       "only reader and its result type holds its input type; cropping "
                       "only drops pixels; upsampling repeats pixels)"
                       if node.op in REARRANGE_OPS else "")
                )
        else:
            if node.op in WINDOW_OPS:
                raise BackendError(
                    f"layer {name!r} ({node.op}) follows a Flatten; the streamed RTL design "
                    "supports windowed layers only before the Flatten"
                )
            if len(node.inputs) != 1 or producer[node.inputs[0]] != len(stages) - 1:
                raise BackendError(
                    f"layer {name!r} ({node.op}): after the Flatten (or global pooling) a "
                    "streamed RTL design is a chain of vector layers; branches must join "
                    "on the pixel stream, before it")
            stages.append(_vector_stage(graph, node, names, top_name, options,
                                        image_interval))
        if stages[first].sources is None:
            stages[first].sources = (producer[node.inputs[0]],)
        producer[name] = len(stages) - 1
    for s in stages:
        s.interval = interval
    pixel_in = in_tensor.shape[-1]
    out_shape = graph.tensors[order[-1]].shape
    if mode == "stream":
        item_shape: tuple[int, ...] = (out_shape[-1],)
        items = math.prod(out_shape[:-1])
    else:
        item_shape, items = tuple(out_shape), 1
    pixels = math.prod(in_tensor.shape[:-1])
    design = StreamDesign(
        top=top_name, files={}, layers=[s.module for s in stages if s.module is not None],
        latency=0, ii=pixels * interval, in_type=in_t, out_type=out_t,
        in_shape=in_tensor.shape, out_shape=out_shape, options=options,
        graph_name=graph.name, stages=stages, pixel_in=pixel_in, item_shape=item_shape,
        items_per_image=items, pixel_interval=interval,
    )
    pace = _stream_pace(design, interval)  # == interval without upsampling
    period = pixels * pace
    _time_transposes(design, period, pace)
    # timing at generation time: two images back to back, one pixel every pace cycles
    out_cycles = design.schedule(list(range(0, 2 * period, pace)))
    if len(out_cycles) != 2 * items:
        raise AssertionError(f"stream schedule produced {len(out_cycles)} items, "
                             f"expected {2 * items}")
    _size_upsamplers(design, period, pace)
    _size_joins(design, period, pace)
    design.latency_first = out_cycles[0] + 1
    design.latency = out_cycles[items - 1] + 1
    steady = out_cycles[2 * items - 1] - out_cycles[items - 1]
    if steady != period:
        raise AssertionError(f"stream schedule: {steady} cycles per image, expected {period}")
    files: dict[str, str] = {}
    for s in stages:
        if s.module is not None:
            files[f"{s.module.module}.v"] = s.module.text
        if s.wrapper:
            files[f"{s.wrapper}.v"] = s.wrapper_text
    files[f"{top_name}.v"] = _top_text(design, graph)
    ecp5.add_cell_models(files)
    design.files = files
    rate = "one per cycle" if pace == 1 else f"one every {pace} cycles"
    design.notes.append(
        f"streamed: {pixels} pixels of {pixel_in} channels per image, {rate}; "
        f"latency {design.latency_first} cycles to the first output item, {design.latency} "
        f"to the last ({items} item(s) per image); {period} cycles per image"
    )
    log.info("streamed RTL for %r: latency %d (first item) / %d (last item) cycles, %d cycles "
             "per image (pixel interval %d)", graph.name, design.latency_first, design.latency,
             period, pace)
    return design


JOIN_OPS = ("Merge", "Concatenate")
"""Ops where branches of the stream meet (``stream_join.py``); Concatenate on the channels."""


def stream_order(graph: Graph) -> list[str]:
    """The input, then the layers the output depends on, in topological order."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise BackendError(
            f"a streamed (pixel) RTL design takes one input and one output; graph "
            f"{graph.name!r} has inputs {graph.inputs} and outputs {graph.outputs}")
    return dataflow(graph)


def _join_stages(graph: Graph, node: Node, sources: list[int], names: Namespace, top: str,
                 options: RtlOptions) -> list[Stage]:
    """A join (one FIFO per branch) and the merge itself per pixel on the joined pixel."""
    shapes = [graph.tensors[t].shape for t in node.inputs]
    out_shape = graph.tensors[node.name].shape
    if len({tuple(sh[:-1]) for sh in shapes}) != 1:
        raise BackendError(f"layer {node.name!r} ({node.op}): inputs of spatial shapes "
                           f"{[sh[:-1] for sh in shapes]}; a pixel stream joins branches of "
                           "one image size")
    rank = len(out_shape)
    if node.op == "Concatenate" and node.attrs.get("axis") != rank - 1:
        raise BackendError(f"layer {node.name!r} (Concatenate): axis {node.attrs.get('axis')!r};"
                           " a pixel stream concatenates on the channel axis only (a vector "
                           "design, with no convolution or pooling, takes any axis)")
    types = [graph.tensors[t].type for t in node.inputs]
    t_out = graph.tensors[node.name].type
    assert t_out is not None and all(t is not None for t in types)
    widths = tuple(sh[-1] * t.width for sh, t in zip(shapes, types, strict=True))  # type: ignore[union-attr]
    wrapper = names(f"{top}_{node.name}_join")
    join = Stage("join", node.name, "join", 2, sum(widths), sum(widths), wrapper=wrapper,
                 sources=tuple(sources), widths=widths)
    g = Graph(name=f"{node.name}_part")
    inputs = []
    for k, (sh, t) in enumerate(zip(shapes, types, strict=True)):
        name = f"{node.name}_x{k}"
        g.add_node(Node(name, "Input", [], attrs={"shape": (sh[-1],)}), (sh[-1],), t)
        inputs.append(name)
    attrs = dict(node.attrs)
    if node.op == "Concatenate":
        attrs["axis"] = 0
    g.add_node(Node(node.name, node.op, inputs, attrs=attrs, weights=dict(node.weights),
                    precision=dict(node.precision), source_class=node.source_class),
               (out_shape[-1],), t_out)
    g.outputs = [node.name]
    module = RENDERERS[node.op](LayerContext(g.node(node.name), g, names(f"{top}_{node.name}"),
                                             options, folding=False))
    merge = Stage("pixel", node.name, node.op, module.latency, sum(widths),
                  out_shape[-1] * t_out.width, module=module)
    return [join, merge]


def _size_joins(design: StreamDesign, period: int, interval: int) -> None:
    """FIFO depths of the joins from generation-time schedules, then their Verilog."""
    joins = [k for k, st in enumerate(design.stages) if st.kind == "join"]
    if not joins:
        return
    pixels = design.pixels_per_image
    patterns = [
        list(range(0, 2 * period, interval)),  # images back to back
        [k * 2 * interval for k in range(2 * pixels)],  # an idle slot after every pixel
        [k * interval + (k // pixels) * 3 * period for k in range(2 * pixels)],  # image gaps
    ]
    peaks = {k: [0] * len(design.stages[k].sources or ()) for k in joins}
    for cycles in patterns:
        times = design.stage_times(cycles)
        for k in joins:
            srcs = design.stages[k].sources or ()
            for b, src in enumerate(srcs):
                branch = times[src] if src >= 0 else [i + 1 for i in cycles]
                peaks[k][b] = max(peaks[k][b], occupancy(branch, times[k]))
    for k in joins:
        st = design.stages[k]
        depths = [fifo_depth(p) for p in peaks[k]]
        st.wrapper_text = join_wrapper_text(st.wrapper, list(st.widths), depths,
                                            st.node)
        log.info("layer %r: pixel-stream join, FIFO depths %s", st.node, depths)


def _upsample_stages(graph: Graph, node: Node, shape: tuple[int, ...], names: Namespace,
                     top: str, options: RtlOptions) -> list[Stage]:
    """An upsampling (``upsample_stream.py``; its buffer is sized by ``_size_upsamplers``)
    and, when its result type is not its input type, a per-pixel cast after it."""
    t_in, t_out = _types(graph, node)
    u = upsampling_of(node, shape)
    pw = u.c * t_in.width
    stages = [Stage("upsample", node.name, node.op, 2, pw, pw,
                    wrapper=names(f"{top}_{node.name}_up"), upsample=u)]
    if t_out != t_in:
        sub = _sub_graph(node, t_in, (u.c,), t_out, (u.c,), op="Dropout", attrs={},
                         weights={})
        module = RENDERERS["Dropout"](LayerContext(sub.node(node.name), sub,
                                                   names(f"{top}_{node.name}_cast"), options,
                                                   folding=False))
        stages.append(Stage("pixel", node.name, "cast", module.latency, pw,
                            u.c * t_out.width, module=module))
    return stages


def _permute_absorbed(graph: Graph, node: Node, order: list[str]) -> bool:
    """Whether a Permute ends the stream: the graph's output, or read by a Flatten only
    (then the collected vector is reordered, ``permute_stream.py``)."""
    if node.name == order[-1]:
        return tuple(node.attrs["perm"]) != TRANSPOSE_PERM
    readers = [n for n in order if node.name in graph.node(n).inputs]
    return len(readers) == 1 and graph.node(readers[0]).op == "Flatten"


def _transpose_stages(graph: Graph, node: Node, shape: tuple[int, ...], names: Namespace,
                      top: str, options: RtlOptions) -> list[Stage]:
    """A Permute inside the stream: perm (1, 0, 2) (height and width swapped) as a
    transposer (``permute_stream.py``; its buffer is sized by ``_size_upsamplers``), an
    identity perm as nothing; then a per-pixel cast when the result type differs."""
    perm = tuple(int(p) for p in node.attrs["perm"])
    t_in, t_out = _types(graph, node)
    c = shape[-1]
    pw = c * t_in.width
    stages: list[Stage] = []
    if perm == TRANSPOSE_PERM and len(shape) == 3:
        tr = Transpose(node.name, shape[0], shape[1], c)
        stages.append(Stage("transpose", node.name, node.op, 2, pw, pw,
                            wrapper=names(f"{top}_{node.name}_tr"), transpose=tr))
    elif perm != tuple(range(len(shape))):
        raise permute_refusal(node.name, perm, shape)
    if t_out != t_in or not stages:
        sub = _sub_graph(node, t_in, (c,), t_out, (c,), op="Dropout", attrs={}, weights={})
        module = RENDERERS["Dropout"](LayerContext(sub.node(node.name), sub,
                                                   names(f"{top}_{node.name}_cast"), options,
                                                   folding=False))
        stages.append(Stage("pixel", node.name, "cast", module.latency, pw, c * t_out.width,
                            module=module))
    return stages


def _time_transposes(design: StreamDesign, period: int, pace: int) -> None:
    """Each transposer's start (``permute_stream.start_for``), from three images back
    to back, in stream order."""
    for k, st in enumerate(design.stages):
        if st.transpose is None:
            continue
        src = (st.sources or (k - 1,))[0]
        cycles = list(range(0, 3 * period, pace))
        feed = design.stage_times(cycles)[src] if src >= 0 else [c + 1 for c in cycles]
        st.transpose = replace(st.transpose, start=start_for(st.transpose, feed, st.interval))
        log.info("layer %r: transposed images start after %d of their pixels", st.node,
                 st.transpose.start)


def _stream_pace(design: StreamDesign, interval: int) -> int:
    """Cycles between input pixels: the stages' interval P without upsampling; with it,
    the least pace from ``P * ceil(largest upsampled map / input pixels)`` on at which
    images back to back give a periodic schedule (the last items of three images one
    period apart), so the upsamplers keep up with the input."""
    ups = [s for s in design.stages if s.kind == "upsample" and s.upsample is not None]
    if not ups:
        return interval
    pixels = design.pixels_per_image
    most = max(s.upsample.out_pixels for s in ups if s.upsample is not None)
    low = interval * max(1, -(-most // pixels))
    items = design.items_per_image
    for pace in range(low, 2 * low + 9):
        design.pixel_interval, design.ii = pace, pixels * pace
        cycles = design.schedule(list(range(0, 3 * design.ii, pace)))
        last = [cycles[(b + 1) * items - 1] for b in range(3)]
        if last[1] - last[0] == design.ii == last[2] - last[1]:
            log.info("upsampling %s: input pixels every %d cycles (%d pixels in, up to %d "
                     "upsampled, stage interval %d)", ", ".join(repr(s.node) for s in ups),
                     pace, pixels, most, interval)
            return pace
    raise BackendError(
        f"upsampling {', '.join(repr(s.node) for s in ups)}: no input pixel interval from "
        f"{low} to {2 * low + 8} cycles gives a periodic pixel-stream schedule; the streamed "
        "RTL cannot pace this network")


def _paced(n: int, pixels: int, pace: int, gap: int = 0, image_gap: int = 0) -> list[int]:
    """Cycles of ``n`` input pixels as the stream harness presents them (one every
    ``pace`` cycles, an idle cycle after every ``gap``, ``image_gap`` after each image)."""
    out: list[int] = []
    cycle = run = idle_left = hold = 0
    while len(out) < n:
        pacing = hold > 0
        if not (pacing or idle_left > 0 or (gap > 0 and run == gap)):
            out.append(cycle)
            run += 1
            hold = pace - 1
            if image_gap and len(out) % pixels == 0:
                idle_left = image_gap
        elif pacing:
            hold -= 1
        elif idle_left > 0:
            idle_left -= 1
        else:
            run = 0
        cycle += 1
    return out


def _size_upsamplers(design: StreamDesign, period: int, pace: int) -> None:
    """Buffer depths of the upsamplers from generation-time schedules (images back to
    back, idle slots, image gaps short and long, a pause inside an image), then their
    Verilog; the depth then checks every other timing (``upsample_times``)."""
    ups = [k for k, st in enumerate(design.stages) if st.kind in ("upsample", "transpose")]
    if not ups:
        return
    px = design.pixels_per_image
    pause = [*range(0, (3 * px // 2) * pace, pace)]
    pause += [pause[-1] + period + pace * (k + 1) for k in range(3 * px - len(pause))]
    patterns = [_paced(3 * px, px, pace), _paced(2 * px, px, 2 * pace), pause,
                *(_paced(3 * px, px, pace, gap, image_gap)
                  for gap, image_gap in ((0, 1), (0, pace), (0, 2 * pace - 1), (0, 3 * period),
                                         (3, 2), (2, 1), (1, 0)))]
    need = dict.fromkeys(ups, 0)
    timed = design.options.adders_per_stage is not None
    for cycles in patterns:
        times = design.stage_times(cycles)
        for k in ups:
            st = design.stages[k]
            src = (st.sources or (k - 1,))[0]
            feed = times[src] if src >= 0 else [c + 1 for c in cycles]
            if st.transpose is not None:
                need[k] = max(need[k], transpose_times(st.transpose, feed, st.interval)[1])
                continue
            assert st.upsample is not None
            need[k] = max(need[k], upsample_times(st.upsample, feed, st.interval)[1])
    for k in ups:
        st = design.stages[k]
        if st.transpose is not None:
            st.depth = buffer_depth(need[k])
            st.wrapper_text = transpose_wrapper_text(st.wrapper, st.transpose, st.in_width,
                                                     st.depth, st.interval, timed)
            log.info("layer %r: pixel-stream transpose (Permute), buffer of %d pixels (%d "
                     "needed)", st.node, st.depth, need[k])
            continue
        assert st.upsample is not None
        st.depth = buffer_depth(need[k])
        st.wrapper_text = upsample_wrapper_text(st.wrapper, st.upsample, st.in_width, st.depth,
                                                st.interval, timed)
        log.info("layer %r: pixel-stream upsampling %s, buffer of %d pixels (%d needed)",
                 st.node, (st.upsample.fh, st.upsample.fw), st.depth, need[k])


FOLDED_WINDOW_OPS = ("Conv1D", "Conv2D")
"""Window layers whose kernel folds by its reuse factor (``folded.py`` on the window)."""


def stream_reuse_factors(graph: Graph, order: list[str]) -> dict[str, int]:
    """Reuse factor of each folded layer on the pixel stream (before the Flatten).

    Convolutions (``FOLDED_WINDOW_OPS``) and per-pixel ``Dense`` layers with
    ``reuse_factor`` R > 1 fold; the stream's pixel interval is the largest R. A
    depthwise convolution keeps a fully parallel kernel (``_reuse_not_used``).
    """
    out: dict[str, int] = {}
    for name in order[1:]:
        node = graph.node(name)
        if node.op in COLLECT_OPS:
            break
        if node.reuse_factor <= 1:
            continue
        if node.op in FOLDED_WINDOW_OPS or node.op == "Dense":
            out[name] = int(node.reuse_factor)
        elif node.op.startswith("Depthwise"):
            _reuse_not_used(graph, node, "cannot fold a depthwise convolution in a streamed "
                            "design (its kernel stays fully parallel)", 1)
    return out


def _reuse_not_used(graph: Graph, node: Node, reason: str, used: int) -> None:
    """A reuse factor the streamed design cannot apply: as ``CheckReuseFactor`` does, a
    warning naming the layer and the value used instead, or a ``ConfigError`` with
    ``Model.ReuseFactorPolicy: strict``."""
    if graph.metadata.get("reuse_factor_policy", "warn") == "strict":
        raise ConfigError(f"layer {node.name!r}: ReuseFactor {node.reuse_factor!r}: {reason} "
                          "(Model.ReuseFactorPolicy is 'strict')")
    log.warning("layer %r: ReuseFactor %d: %s; using %d", node.name, node.reuse_factor, reason,
                used)


def _sub_graph(node: Node, in_type: FixedType, in_shape: tuple[int, ...], out_type: FixedType,
               out_shape: tuple[int, ...], op: str | None = None,
               attrs: dict[str, Any] | None = None,
               weights: dict[str, np.ndarray] | None = None, reuse: int = 1) -> Graph:
    """A two-layer graph ``Input -> node`` on the given shapes (a pixel or a window);
    ``reuse``: the copy's reuse factor (> 1: it folds, ``folded.py``)."""
    g = Graph(name=f"{node.name}_part")
    g.add_node(Node(f"{node.name}_x", "Input", [], attrs={"shape": in_shape}), in_shape, in_type)
    copy = Node(node.name, op or node.op, [f"{node.name}_x"],
                attrs=dict(node.attrs if attrs is None else attrs),
                weights=dict(node.weights if weights is None else weights),
                precision=dict(node.precision), reuse_factor=reuse, strategy=node.strategy,
                source_class=node.source_class)
    g.add_node(copy, out_shape, out_type)
    g.outputs = [node.name]
    return g


def _types(graph: Graph, node: Node) -> tuple[FixedType, FixedType]:
    t_in = graph.tensors[node.inputs[0]].type
    t_out = graph.tensors[node.name].type
    assert t_in is not None and t_out is not None
    return t_in, t_out


def _channel_slice(node: Node, shape: tuple[int, ...]) -> bool:
    """A ``Slice`` that keeps every pixel and selects a range of the channels: per pixel."""
    if node.op != "Slice":
        return False
    begin, size = tuple(node.attrs["begin"]), tuple(node.attrs["size"])
    return begin[:-1] == (0,) * (len(shape) - 1) and size[:-1] == tuple(shape[:-1])


def _pixel_stage(graph: Graph, node: Node, shape: tuple[int, ...], out_shape: tuple[int, ...],
                 names: Namespace, top: str, options: RtlOptions, reuse: int = 1) -> Stage:
    """A per-pixel layer: the regular renderer on one pixel's channels (a ``Dense`` with
    ``reuse`` > 1 folded, taking a pixel every ``reuse`` cycles)."""
    t_in, t_out = _types(graph, node)
    c_in, c_out = shape[-1], out_shape[-1]
    if tuple(out_shape[:-1]) != tuple(shape[:-1]):
        raise BackendError(f"layer {node.name!r} ({node.op}) changes the spatial shape "
                           f"{shape} -> {out_shape}; per-pixel layers must keep it")
    attrs = dict(node.attrs)
    if node.op == "Slice":  # the channel range of one pixel
        attrs = {"begin": (attrs["begin"][-1],), "size": (attrs["size"][-1],),
                 "step": (tuple(attrs.get("step") or (1,))[-1],)}
    if node.op == "Softmax":
        axis = attrs.get("axis", -1)
        if axis not in (-1, len(shape) - 1):
            raise BackendError(f"layer {node.name!r} (Softmax): axis {axis!r}; a streamed "
                               "design applies softmax over the channels (axis -1) only")
        attrs["axis"] = -1
    if node.op == "MultiThreshold":
        rows = np.asarray(node.weights["thresholds"]).shape[0]
        if rows not in (1, c_in):
            raise BackendError(f"layer {node.name!r} (MultiThreshold): {rows} threshold rows "
                               f"(one per element); in a pixel stream the thresholds must be "
                               f"shared (1 row) or per channel ({c_in} rows)")
    weights = _pixel_weights(node, shape)
    sub = _sub_graph(node, t_in, (c_in,), t_out, (c_out,), attrs=attrs, weights=weights,
                     reuse=reuse)
    module = RENDERERS[node.op](LayerContext(sub.node(node.name), sub,
                                             names(f"{top}_{node.name}"), options,
                                             folding=reuse > 1))
    return Stage("pixel", node.name, node.op, module.latency, c_in * t_in.width,
                 c_out * t_out.width, module=module, reuse=module.ii)


PER_ELEMENT_WEIGHTS = {"ElementCast": ("keep_negative", "bits", "integers"),
                       "Activation": ("alpha",)}
"""Weights that broadcast against the whole sample; a pixel stage needs them per channel."""


def _pixel_weights(node: Node, shape: tuple[int, ...]) -> dict[str, np.ndarray] | None:
    """The node's weights for one pixel (``None``: as they are): a per-element weight
    must repeat the same row of channels at every pixel, else ``BackendError``."""
    keys = [k for k in PER_ELEMENT_WEIGHTS.get(node.op, ()) if k in node.weights]
    if not keys:
        return None
    rows = row_weights(node, shape, keys)
    if rows is None:
        key = next(k for k in keys if row_weights(node, shape, [k]) is None)
        raise BackendError(
            f"layer {node.name!r} ({node.op}): weight {key!r} differs from pixel to "
            "pixel; a pixel stream applies one row of channels to every pixel (per-channel "
            "values; use io_parallel-style vector designs, i.e. no convolution, for "
            "per-element ones)")
    return rows


def _vector_stage(graph: Graph, node: Node, names: Namespace, top: str,
                  options: RtlOptions, image_interval: int) -> Stage:
    """A layer after the Flatten: the regular renderer, once per image.

    A ``Dense`` with a reuse factor folds (``folded.py``) up to ``image_interval``, the
    fewest cycles between two images there; a larger reuse factor is not used
    (``_reuse_not_used``: a warning, or an error with the strict policy)."""
    renderer = RENDERERS.get(node.op)
    if renderer is None:
        raise BackendError(
            f"layer {node.name!r}: op {node.op!r} is not supported by the RTL backend yet; "
            f"supported: {', '.join(sorted(RENDERERS))}"
        )
    if node.op == "Dense" and node.reuse_factor > image_interval:
        _reuse_not_used(graph, node, f"exceeds the {image_interval} cycles between images "
                        "after the Flatten (the most a layer there can fold)", image_interval)
        node = replace(node, reuse_factor=image_interval)
    module = renderer(LayerContext(node, graph, names(f"{top}_{node.name}"), options,
                                   folding=True))
    return Stage("vector", node.name, node.op, module.latency, module.in_width,
                 module.out_width, module=module, reuse=module.ii)


def _collect_stage(graph: Graph, node: Node, shape: tuple[int, ...], names: Namespace,
                   top: str) -> Stage:
    t_in = graph.tensors[node.inputs[0]].type
    assert t_in is not None
    pixels = math.prod(shape[:-1])
    pw = shape[-1] * t_in.width
    wrapper = names(f"{top}_{node.name}_collect")
    return Stage("collect", node.name, "collect", 1, pw, pixels * pw, wrapper=wrapper,
                 wrapper_text=_collector_text(wrapper, pixels, pw, shape, t_in),
                 items=pixels)


# ----------------------------------------------------------- window layers
def _window_stage(graph: Graph, node: Node, shape: tuple[int, ...], names: Namespace,
                  top: str, options: RtlOptions, reuse: int = 1, interval: int = 1) -> Stage:
    """A convolution or pooling: line buffers, window registers and the kernel (a Dense
    over the window vector; with ``reuse`` > 1 folded, ``folded.py``); ``interval``: the
    stream's pixel interval."""
    t_in, t_out = _types(graph, node)
    g = geometry_of(node, shape)
    g.check(node.op)
    out_shape = graph.tensors[node.name].shape
    c_out = out_shape[-1]
    if (g.ho, g.wo) != ((out_shape[0], out_shape[1]) if len(out_shape) == 3
                        else (1, out_shape[0])):
        raise BackendError(f"layer {node.name!r}: output shape {out_shape} does not match its "
                           f"window geometry {g}")
    module_name = names(f"{top}_{node.name}")
    taps = g.kh * g.kw
    mask_port = False
    fill = 0
    if node.op.startswith("Pooling"):
        module, mask_port = _pool_module(module_name, node, g, t_in, t_out, options)
        if node.attrs["mode"] == "max":
            fill = t_in.min_mantissa
    else:
        kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
        if node.op.startswith("Depthwise"):
            mult = kernel.shape[-1]
            k = kernel.reshape(taps, g.c, mult)
            dense = np.zeros((taps, g.c, g.c * mult))
            for ch in range(g.c):
                dense[:, ch, ch * mult:(ch + 1) * mult] = k[:, ch, :]
            kernel2d = dense.reshape(taps * g.c, g.c * mult)
        else:
            kernel2d = kernel.reshape(taps * g.c, kernel.shape[-1])
        attrs = {k: v for k, v in node.attrs.items() if k == "activation"}
        sub = _sub_graph(node, t_in, (taps * g.c,), t_out, (c_out,), op="Dense", attrs=attrs,
                         weights={"kernel": kernel2d,
                                  "bias": np.asarray(node.weights["bias"]).reshape(-1)},
                         reuse=reuse)
        # the padding mask in front of the kernel is a level of its first stage
        module = RENDERERS["Dense"](LayerContext(sub.node(node.name), sub, module_name,
                                                 options, folding=reuse > 1,
                                                 input_levels=int(_padding_masked(g))))
        module.op = node.op
    wrapper = names(f"{top}_{node.name}_stream")
    delayed = options.adders_per_stage is not None
    text = _window_wrapper(wrapper, g, t_in, module, fill, mask_port, node.op, interval,
                           delayed)
    return Stage("window", node.name, node.op, (2 if delayed else 1) + module.latency,
                 g.c * t_in.width,
                 c_out * t_out.width, module=module, wrapper=wrapper, wrapper_text=text,
                 geometry=g, reuse=module.ii)


def _pool_module(name: str, node: Node, g: Geometry, x_t: FixedType, y_t: FixedType,
                 options: RtlOptions) -> tuple[LayerModule, bool]:
    """The pooling kernel of one window: ``x`` = the window, ``y`` = one output pixel.

    ``max``: a comparator tree per channel (padding elements arrive as the smallest
    input value). ``avg``: the exact sum times ``scale_q(1/count)``; when the count
    depends on the position (padding), input ``m`` carries which window rows
    (bits ``0 .. kh-1``) and columns (bits ``kh ..``) lie in the image, and the product
    with the matching reciprocal is selected.
    """
    mode = node.attrs["mode"]
    if mode not in (GLOBAL_POOL_MODES if node.op.startswith("Global") else POOL_MODES):
        raise BackendError(f"layer {node.name!r}: pooling mode {mode!r} is not supported")
    taps = g.kh * g.kw
    mb = ModuleBuilder(split_casts=options.split_casts)
    mb._used.add("m")
    sb = SumBuilder(mb, options.adders_per_stage)
    xs = input_signals(mb, x_t, taps * g.c)
    outputs: list[Sig] = []
    detail = ""
    mask_port = False
    if mode == "max":
        for ch in range(g.c):
            level = [xs[t * g.c + ch] for t in range(taps)]
            k = options.adders_per_stage
            used = 0  # adder levels spent in the current stage
            while len(level) > 1:
                # a compare (a carry chain) and the select after it: two levels, so a
                # stage holds k // 2 of them (at least one)
                if k is not None and used > 0 and used + 2 > k:
                    stage = max(sig.stage for sig in level) + 1
                    level = [mb.at_stage(sig, stage) for sig in level]
                    used = 0
                nxt = [mb.maximum(f"mx{ch}", a, b)
                       for a, b in zip(level[::2], level[1::2], strict=False)]
                level = nxt + ([level[-1]] if len(level) % 2 else [])
                used += 2
            outputs.append(mb.cast(f"y{ch}", level[0], x_t.frac, y_t))
    else:
        scale_t = node.precision.get("scale")
        if scale_t is None:
            raise BackendError(f"layer {node.name!r} ({node.op}) has no 'scale' precision; run "
                               "the precision passes before generating RTL")
        scale_t = pool_scale_type(mode, scale_t)
        counts = pool_counts((g.h, g.w), (g.kh, g.kw), (g.sh, g.sw),
                             (g.pt, g.pb, g.pl, g.pr))
        scales = {}
        for count in sorted({int(c) for c in counts.ravel()}):
            value, _ = pool_scale(mode, count, scale_t)
            scales[count] = int(np.asarray(scale_t.to_mantissa(np.array([value])))[0])
        detail = ", scale " + ", ".join(f"1/{c} -> {m} * 2^-{scale_t.frac}"
                                        for c, m in scales.items()) + f" ({scale_t})"
        mask_port = len(scales) > 1
        if mask_port:
            rows = [mb.wire("mr", f"m[{t}]", 0, 1, 0, 1, False) for t in range(g.kh)]
            cols = [mb.wire("mc", f"m[{g.kh + t}]", 0, 1, 0, 1, False) for t in range(g.kw)]
            cy = _popcount(mb, "cy", rows)
            cx = _popcount(mb, "cx", cols)
            row_counts = sorted({hi - lo + 1 for lo, hi in
                                 [_real_count_range(g, oy, True) for oy in range(g.ho)]})
            col_counts = sorted({hi - lo + 1 for lo, hi in
                                 [_real_count_range(g, ox, False) for ox in range(g.wo)]})
        for ch in range(g.c):
            col = [Term(xs[t * g.c + ch], 0, False, 0) for t in range(taps)]
            total = sb.resolve(f"s{ch}n", sb.reduce(f"s{ch}", col))
            # the products' builders count levels from the sum's stage: a register first
            # when the sum leaves no room for the cast after them
            total = sb.before_cast(total)
            products: dict[int, tuple[Sig, int]] = {}  # count -> (signal, frac)
            for count, sm in scales.items():
                psb = SumBuilder(mb, options.adders_per_stage, base_stage=total.sig.stage)
                p = const_product(psb, f"p{ch}_{count}", total.sig, sm, options.style, {})
                p = psb.before_cast(psb.resolve(f"p{ch}_{count}n", p))
                sb.adders += psb.adders
                sb.adder_bits += psb.adder_bits
                products[count] = (p.sig, x_t.frac + scale_t.frac - p.shift - total.shift)
            if not mask_port:
                sig, frac = products[next(iter(products))]
                outputs.append(mb.cast(f"y{ch}", sig, frac, y_t))
                continue
            frac = max(f for _, f in products.values())
            stage = max(s.stage for s, _ in products.values())
            aligned = {c: mb.at_stage(mb.shift_left(f"a{ch}_{c}", s, frac - f), stage)
                       for c, (s, f) in products.items()}
            lo = min(s.lo for s in aligned.values())
            hi = max(s.hi for s in aligned.values())
            width, signed = bits_for(lo, hi)
            cy_s, cx_s = mb.at_stage(cy, stage), mb.at_stage(cx, stage)
            # the interior count is the default; border counts are selected by (rows, cols)
            default = g.kh * g.kw if g.kh * g.kw in aligned else max(aligned)
            expr = aligned[default].ext(width)
            for ry in row_counts:
                for rx in col_counts:
                    c = ry * rx
                    if c == default:
                        continue
                    cond = (f"({cy_s.name} == {literal(ry, cy_s.width)} && "
                            f"{cx_s.name} == {literal(rx, cx_s.width)})")
                    expr = f"{cond} ? {aligned[c].ext(width)} : ({expr})"
            merged = mb.wire(f"q{ch}", expr, lo, hi, stage, width, signed)
            outputs.append(mb.cast(f"y{ch}", merged, frac, y_t))
    latency = 1 + max((s.stage for s in outputs), default=0)
    header = [
        f"Layer {node.name!r}: {node.op} {mode} over a {g.kh}x{g.kw} window of {g.c} "
        f"channel(s){detail}",
        f"  input {x_t}, result {y_t}; latency {latency} cycle(s)",
    ]
    w_in = taps * g.c * x_t.width
    w_out = g.c * y_t.width
    lines = [f"// {h}".rstrip() for h in header]
    lines += [f"module {name} (", "  input  wire clk,",
              f"  input  wire [{w_in - 1}:0] x,  // {taps} pixels x {g.c} x {x_t}"]
    if mask_port:
        lines.append(f"  input  wire [{g.kh + g.kw - 1}:0] m,  // window rows, columns in "
                     "the image")
    staged = [mb.at_stage(s, latency - 1) for s in outputs]
    for e, s in enumerate(staged):
        mb.regs.append(f"    y[{e * y_t.width} +: {y_t.width}] <= {s.ext(y_t.width)};")
    mb.n_regs += len(outputs) * y_t.width
    lines += [f"  output reg  [{w_out - 1}:0] y   // {g.c} x {y_t}", ");", *mb.functions,
              *mb.lines, *mb.always_block(), "endmodule"]
    stats = {"adders": sb.adders, "adder_bits": sb.adder_bits, "registers": mb.n_regs}
    return LayerModule(node.name, node.op, name, "\n".join(lines) + "\n", latency, w_in,
                       w_out, stats), mask_port


def _real_count_range(g: Geometry, o: int, rows: bool) -> tuple[int, int]:
    """Window rows (or columns) of output row (column) ``o`` that lie in the image."""
    k, s, before, n = (g.kh, g.sh, g.pt, g.h) if rows else (g.kw, g.sw, g.pl, g.w)
    start = o * s - before
    return max(start, 0), min(start + k, n) - 1


def _popcount(mb: ModuleBuilder, base: str, bits: list[Sig]) -> Sig:
    n = len(bits)
    width = bits_for(0, n)[0]
    expr = " + ".join(b.ext(width) for b in bits)
    return mb.wire(base, expr, 0, n, 0, width, False)


def _window_wrapper(name: str, g: Geometry, t_in: FixedType, kernel: LayerModule, fill: int,
                    mask_port: bool, op: str, interval: int = 1, delayed: bool = False) -> str:
    """Line buffers, window registers, the pixel/emission controller and the kernel.

    ``interval`` > 1 (pixels at least that many cycles apart): a folded kernel
    (``kernel.valid_in``) gets ``rst`` and the cycle in which it takes the window; a
    layer with a tail (``Geometry.tail``) holds an emitted window until the kernel may
    take it and steps on its own only when nothing waits (``window_times``).

    ``delayed`` (under a clock target): the window registers, line buffers and masks act
    one cycle after the controller decides, on registered copies of ``slot``, the pixel
    and the emission, and the kernel takes the window a cycle later: the controller's
    decision then drives a few registers instead of every window and line-buffer
    enable (one more cycle of latency, the same schedule otherwise).
    """
    queued = g.tail and interval > 1  # windows may wait for the kernel (pend / cd)
    pw = g.c * t_in.width
    hw = g.pixels
    wi = bits_for(0, hw - 1)[0]
    ws = bits_for(0, max(g.e_last + 1, hw - 1))[0]
    wy, wx = bits_for(0, g.ho - 1)[0], bits_for(0, g.wo - 1)[0]
    depth = g.line_depth
    lat = kernel.latency
    extra = 1 if delayed else 0

    def lit(v: int, w: int) -> str:
        return literal(v, w)

    lines = [
        f"// {name}: {op} layer {g.layer!r} on a pixel stream ({g.h}x{g.w}x{g.c} in, "
        f"{g.ho}x{g.wo} out).",
        f"// Window {g.kh}x{g.kw}, strides ({g.sh}, {g.sw}), pads (top {g.pt}, bottom {g.pb}, "
        f"left {g.pl}, right {g.pr}); line buffers: {g.kh - 1} x {max(depth, 0)} pixels.",
        "// Output (oy, ox) is emitted when the pixel with flat index",
        f"//   (oy*{g.sh} + {g.kh - 1 - g.pt})*{g.w} + ox*{g.sw} + {g.kw - 1 - g.pl} "
        "(counted from the image's first pixel)",
        "// enters; its window is then in the window registers and the kernel "
        f"'{kernel.module}' computes it.",
        "// Latency from that pixel's valid to v_out: "
        f"{1 + extra + lat} cycle(s) (window register"
        + (", the delayed shift" if delayed else "") + " + kernel)"
        + (", plus the wait of a pending window." if queued else "."),
    ]
    if kernel.valid_in:
        lines.append(f"// The kernel is folded: it takes a window every {kernel.ii} cycles at "
                     "most; pixels arrive at least")
        lines.append(f"// {interval} cycles apart (the stream's pixel interval).")
    if queued:
        lines.append(f"// Output pixels leave at least {interval} cycles apart: a window emitted "
                     "sooner after the previous")
        lines.append("// one (a pixel right after an idle step) waits in the window registers "
                     "(pend) until the kernel")
        lines.append("// may take it (cd == 0); idle steps come when nothing is pending, at "
                     f"least {interval} cycles after")
        lines.append("// the last step (sc == 0): the pace of the pixels.")
    if g.tail:
        lines.append("// Windows reaching past the image's last pixel complete at the slots "
                     "of the next image's first")
        lines.append("// pixels or, before the next image begins, at idle cycles (the layer "
                     "then steps on its own).")
    lines += [
        f"module {name} (",
        "  input  wire clk,",
        "  input  wire rst,",
        "  input  wire v_in,",
        f"  input  wire [{pw - 1}:0] x_in,",
        "  output wire v_out,",
        f"  output wire [{kernel.out_width - 1}:0] y_out",
        ");",
        f"  reg  [{wi - 1}:0] ip;  // index of the next input pixel in its image",
        f"  reg  [{ws - 1}:0] en;  // emission slot of the next output",
        f"  reg  [{wy - 1}:0] oy;",
        f"  reg  [{wx - 1}:0] ox;",
        f"  wire ox_end = (ox == {lit(g.wo - 1, wx)});",
        f"  wire oy_end = (oy == {lit(g.ho - 1, wy)});",
        f"  wire ip_last = (ip == {lit(hw - 1, wi)});",
    ]
    seq: list[str] = []  # statements of the clocked block (after reset)
    if not g.tail:
        lines += [
            "  wire slot = v_in;",
            f"  wire emit = v_in && (ip == {_ext_cmp('en', ws, wi)});",
        ]
        reset = [f"ip <= {lit(0, wi)};"]
    else:
        if queued:
            wc = bits_for(0, interval - 1)[0]
            lines += [
                "  reg  pend;  // an emitted window waits for the kernel",
                f"  reg  [{wc - 1}:0] cd;  // cycles until the kernel may take the next window",
                f"  reg  [{wc - 1}:0] sc;  // cycles until an idle step may come",
                f"  wire issue = pend && (cd == {lit(0, wc)});  // the kernel takes the window",
            ]
        lines += [
            f"  reg  [{ws - 1}:0] os;    // slots since the tracked output image started",
            f"  reg  [{ws - 1}:0] base1;  // slot at which the next image started, minus 1",
            "  reg  waiting, nxt, rcvd;",
            f"  wire first_px = v_in && (ip == {lit(0, wi)});",
            "  wire slot = v_in || (rcvd && !nxt"
            + (f" && !pend && (sc == {lit(0, wc)})" if queued else "")
            + (f" && (cd <= {lit(1, wc)})" if queued and interval > 2 else "")
            + ");  // no pixel, image received, next not begun: an idle step",
            "  wire start_next = first_px && !waiting;",
            "  wire active = !waiting || first_px;",
            f"  wire [{ws - 1}:0] cur = waiting ? {lit(0, ws)} : os;",
            "  wire emit = slot && active && (cur == en);",
            "  wire last_out = emit && ox_end && oy_end;",
            "  wire have_next = nxt || start_next;",
            f"  wire [{ws - 1}:0] cur1 = cur + {lit(1, ws)};",
            # the slots since the next image started, after this one: cur + 1 - base in
            # one subtraction (base1 = base - 1, modulo 2**ws as the counters)
            f"  wire [{ws - 1}:0] rel = cur - base1;",
        ]
        reset = [f"ip <= {lit(0, wi)};", f"os <= {lit(0, ws)};", f"base1 <= {lit(-1, ws)};",
                 "waiting <= 1'b1;", "nxt <= 1'b0;", "rcvd <= 1'b0;"]
        seq += [
            "if (last_out) rcvd <= 1'b0;",
            "if (v_in && ip_last) rcvd <= 1'b1;",
            "if (slot && active) begin",
            "  if (last_out) begin",
            "    waiting <= !have_next;",
            "    nxt <= 1'b0;",
            f"    os <= start_next ? {lit(1, ws)} : rel;",
            "  end else begin",
            "    waiting <= 1'b0;",
            "    os <= cur1;",
            "    if (start_next) begin",
            "      nxt <= 1'b1;",
            f"      base1 <= cur - {lit(1, ws)};",
            "    end",
            "  end",
            "end",
        ]
    nvq = (lat if queued else lat + 1) + extra  # bits of the valid pipeline
    reset += [f"en <= {lit(g.e0, ws)};", f"oy <= {lit(0, wy)};", f"ox <= {lit(0, wx)};",
              f"vq <= {lit(0, nvq)};"]
    seq = [f"if (v_in) ip <= ip_last ? {lit(0, wi)} : ip + {lit(1, wi)};", *seq,
           "if (emit) begin",
           "  if (!ox_end) begin",
           f"    ox <= ox + {lit(1, wx)};",
           f"    en <= en + {lit(g.sw, ws)};",
           "  end else if (!oy_end) begin",
           f"    ox <= {lit(0, wx)};",
           f"    oy <= oy + {lit(1, wy)};",
           f"    en <= en + {lit(g.row_step, ws)};",
           "  end else begin",
           f"    ox <= {lit(0, wx)};",
           f"    oy <= {lit(0, wy)};",
           f"    en <= {lit(g.e0, ws)};",
           "  end",
           "end"]
    if queued:
        wc = bits_for(0, interval - 1)[0]
        reset += ["pend <= 1'b0;", f"cd <= {lit(0, wc)};", f"sc <= {lit(0, wc)};"]
        seq += ["pend <= emit || (pend && !issue);",
                f"if (issue) cd <= {lit(interval - 1, wc)};",
                f"else if (cd != {lit(0, wc)}) cd <= cd - {lit(1, wc)};",
                f"if (slot) sc <= {lit(interval - 1, wc)};",
                f"else if (sc != {lit(0, wc)}) sc <= sc - {lit(1, wc)};",
                "vq <= " + (f"{{vq[{nvq - 2}:0], issue}};" if nvq > 1 else "issue;")]
        take = "vq[0]" if delayed else "issue"
        lines.append(f"  reg  [{nvq - 1}:0] vq;  // the kernel's pipeline")
    else:
        seq.append("vq <= " + (f"{{vq[{nvq - 2}:0], emit}};" if nvq > 1 else "emit;"))
        take = f"vq[{extra}]"
        lines.append(f"  reg  [{nvq - 1}:0] vq;  // emission, then the kernel's pipeline")
    # window registers and line buffers
    win = [[f"w{r}_{c}" for c in range(g.kw)] for r in range(g.kh)]
    for r in range(g.kh):
        for c in range(g.kw):
            lines.append(f"  reg  [{pw - 1}:0] {win[r][c]};")
    shift: list[str] = []
    if depth > 0 and g.kh > 1:
        wp = bits_for(0, depth - 1)[0]
        lines.append(f"  reg  [{wp - 1}:0] lbp;  // line buffer position")
        for r in range(g.kh - 1):
            lines.append(f"  reg  [{pw - 1}:0] lb{r} [0:{depth - 1}];  // between window rows "
                         f"{r + 1} and {r}")
        shift.append(f"lbp <= (lbp == {lit(depth - 1, wp)}) ? {lit(0, wp)} : lbp + "
                     f"{lit(1, wp)};")
        reset.append(f"lbp <= {lit(0, wp)};")
    for r in range(g.kh):
        for c in range(g.kw - 1):
            shift.append(f"{win[r][c]} <= {win[r][c + 1]};")
        if r == g.kh - 1:
            shift.append(f"{win[r][g.kw - 1]} <= {'x_in_d' if delayed else 'x_in'};")
        elif depth > 0:
            shift.append(f"{win[r][g.kw - 1]} <= lb{r}[lbp];")
            shift.append(f"lb{r}[lbp] <= {win[r + 1][0]};")
        else:
            shift.append(f"{win[r][g.kw - 1]} <= {win[r + 1][0]};")
    # padding masks: which window rows / columns of the emitted output lie in the image
    row_ok = [_range_expr("oy", wy, *g.row_real(t), g.ho) for t in range(g.kh)]
    col_ok = [_range_expr("ox", wx, *g.col_real(t), g.wo) for t in range(g.kw)]
    masked = any(e != "1'b1" for e in row_ok + col_ok)
    if masked:
        lines.append(f"  reg  [{g.kh - 1}:0] mrq;  // window rows in the image (emitted output)")
        lines.append(f"  reg  [{g.kw - 1}:0] mcq;  // window columns in the image")
        row_bits = ", ".join(reversed(row_ok))
        col_bits = ", ".join(reversed(col_ok))
        rows_now, cols_now = f"{{{row_bits}}}", f"{{{col_bits}}}"
        if delayed:  # the masks of this cycle's decision, applied a cycle later
            lines.append(f"  reg  [{g.kh - 1}:0] mrd;  // mrq / mcq one cycle early")
            lines.append(f"  reg  [{g.kw - 1}:0] mcd;")
            seq += [f"mrd <= {rows_now};", f"mcd <= {cols_now};"]
            rows_now, cols_now = "mrd", "mcd"
        updates = [f"mrq <= {rows_now};", f"mcq <= {cols_now};"]
        if delayed:  # one mask register per window position: each drives one pixel
            for r in range(g.kh):
                for c in range(g.kw):
                    terms = [f"mrd[{r}]" if row_ok[r] != "1'b1" else "",
                             f"mcd[{c}]" if col_ok[c] != "1'b1" else ""]
                    terms = [t for t in terms if t]
                    if terms:
                        lines.append(f"  reg  mq{r}_{c};  // window position ({r}, {c}) "
                                     "in the image")
                        updates.append(f"mq{r}_{c} <= {' && '.join(terms)};")
        if queued:  # held with the window until the kernel takes it
            if delayed:
                lines.append("  reg  emit_d;")
                seq.append("emit_d <= emit;")
            seq += [f"if ({'emit_d' if delayed else 'emit'}) begin",
                    *[f"  {u}" for u in updates], "end"]
        else:
            seq += updates
    fill_pixel = 0
    for ch in range(g.c):
        fill_pixel |= (fill % (1 << t_in.width)) << (ch * t_in.width)
    elements = []
    for r in range(g.kh):
        for c in range(g.kw):
            cond = [f"mrq[{r}]" if row_ok[r] != "1'b1" else "", f"mcq[{c}]"
                    if col_ok[c] != "1'b1" else ""]
            cond = [x for x in cond if x]
            if cond and delayed:
                cond = [f"mq{r}_{c}"]
            if not cond:
                elements.append(win[r][c])
            else:
                wire = f"x{r}_{c}"
                lines.append(f"  wire [{pw - 1}:0] {wire} = ({' && '.join(cond)}) ? "
                             f"{win[r][c]} : {lit(fill_pixel, pw)};")
                elements.append(wire)
    window_bus = "{" + ", ".join(reversed(elements)) + "}" if len(elements) > 1 else elements[0]
    ports = [".clk(clk)"]
    if kernel.valid_in:
        ports += [".rst(rst)", f".x_valid({take})"]
    ports.append(f".x({window_bus})")
    if mask_port:
        ports.append(".m({mcq, mrq})" if masked else f".m({lit(-1, g.kh + g.kw)})")
    ports.append(".y(y_out)")
    lines.append(f"  {kernel.module} u_kernel ({', '.join(ports)});")
    lines.append(f"  assign v_out = vq[{nvq - 1}];")
    if delayed:
        lines.append("  reg  slot_d;  // slot and the pixel, one cycle later: the shift")
        lines.append(f"  reg  [{pw - 1}:0] x_in_d;")
        lines.append("  always @(posedge clk) begin")
        lines.append("    slot_d <= slot && !rst;")
        lines.append("    x_in_d <= x_in;")
        lines.append("  end")
    lines.append("  always @(posedge clk) begin")
    lines.append(f"    if ({'slot_d' if delayed else 'slot'}) begin")
    lines += [f"      {s}" for s in shift]
    lines.append("    end")
    lines.append("    if (rst) begin")
    lines += [f"      {s}" for s in reset]
    lines.append("    end else begin")
    lines += [f"      {s}" for s in seq]
    lines.append("    end")
    lines.append("  end")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _ext_cmp(name: str, width: int, target: int) -> str:
    """``name`` (``width`` bits) as ``target`` bits (zero-extended or truncated)."""
    if width == target:
        return name
    if width > target:
        return f"{name}[{target - 1}:0]"
    return f"{{{literal(0, target - width)}, {name}}}"


def _padding_masked(g: Geometry) -> bool:
    """Some window element is masked (padding): ``_window_wrapper`` puts a mask in
    front of the kernel."""
    return any(_range_expr("oy", 1, *g.row_real(t), g.ho) != "1'b1" for t in range(g.kh)) or \
        any(_range_expr("ox", 1, *g.col_real(t), g.wo) != "1'b1" for t in range(g.kw))


def _range_expr(var: str, width: int, lo: int, hi: int, n: int) -> str:
    """Expression ``lo <= var <= hi`` for a counter in ``0 .. n-1`` (constant-folded)."""
    if lo > hi:
        return "1'b0"
    parts = []
    if lo > 0:
        parts.append(f"({var} >= {literal(lo, width)})")
    if hi < n - 1:
        parts.append(f"({var} <= {literal(hi, width)})")
    if not parts:
        return "1'b1"
    return "(" + " && ".join(parts) + ")"


def _collector_text(name: str, pixels: int, pw: int, shape: tuple[int, ...],
                    t: FixedType) -> str:
    wk = bits_for(0, pixels - 1)[0]
    total = pixels * pw
    shift = f"{{x_in, y_out[{total - 1}:{pw}]}}" if pixels > 1 else "x_in"
    lines = [
        f"// {name}: collects the {pixels} pixels of an image ({shape}, {t}) into one vector",
        "// (row-major, channels-last: pixel p in bits [p*PW +: PW]); v_out for one cycle after",
        "// the last pixel, y_out then holds the image until the next image's first pixel.",
        *pixel_stage_ports(name, pw, total),
        f"  reg  [{wk - 1}:0] k;",
        f"  wire k_last = (k == {literal(pixels - 1, wk)});",
        "  always @(posedge clk) begin",
        f"    if (v_in) y_out <= {shift};",
        "    if (rst) begin",
        f"      k <= {literal(0, wk)};",
        "      v_out <= 1'b0;",
        "    end else begin",
        "      v_out <= v_in && k_last;",
        f"      if (v_in) k <= k_last ? {literal(0, wk)} : k + {literal(1, wk)};",
        "    end",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------- top
def _top_text(d: StreamDesign, graph: Graph) -> str:
    local = Namespace()
    for reserved in ("clk", "rst", "in_valid", "in_data", "out_valid", "out_data"):
        local(reserved)
    pw_in = d.in_width
    p = d.pixel_interval
    pace = "one pixel per cycle" if p == 1 else f"one pixel every {p} cycles at most"
    lines = [
        f"// {d.top}: network {graph.name!r} as a pixel stream ({pace}).",
        f"// in_data:  one pixel, {d.pixel_in} x {d.in_type} (mantissas), channel c in bits "
        f"[c*{d.in_type.width} +: {d.in_type.width}];",
        f"//           {d.pixels_per_image} pixels per image {d.in_shape}, raster order, images "
        "back to back; in_valid per pixel (gaps allowed)"
        + ("." if p == 1 else f",\n//           at least {p} cycles apart ("
           + ("upsampling" if any(s.kind == "upsample" for s in d.stages)
              else "folded kernels") + ")."),
        f"// out_data: {d.item_size} x {d.out_type} per out_valid; "
        + (f"{d.items_per_image} output pixels per image (raster order)."
           if d.items_per_image > 1 or len(d.out_shape) > 1 else "one vector per image."),
        f"// Latency (images back to back): {d.latency_first} cycles from an image's first pixel "
        f"to its first output, {d.latency} to its last; {d.ii} cycles per image.",
        "// Stages (latency in cycles):",
        "//   input register: 1",
    ]
    for s in d.stages:
        what = {"window": "window layer, from the pixel completing a window",
                "pixel": "per pixel", "collect": "collect an image", "vector": "per image",
                "crop": "drops the pixels outside the crop",
                "upsample": "repeats pixels and rows, from a buffer",
                "transpose": "height and width swapped, from a buffer",
                "join": "branches meet: one FIFO each, popped together"}
        lines.append(f"//   {s.node!r} ({s.op}, {what[s.kind]}): {s.latency}"
                     + (f", folded by reuse factor {s.reuse}" if s.reuse > 1 else ""))
    lines += [
        f"module {d.top} (",
        "  input  wire clk,",
        "  input  wire rst,",
        "  input  wire in_valid,",
        f"  input  wire [{pw_in - 1}:0] in_data,",
        "  output wire out_valid,",
        f"  output wire [{d.out_width - 1}:0] out_data",
        ");",
    ]
    d_in, v_in = local("in_q"), local("in_v")
    lines += [
        f"  reg  [{pw_in - 1}:0] {d_in};",
        f"  reg  {v_in};",
        "  always @(posedge clk) begin",
        f"    {d_in} <= in_data;",
        f"    {v_in} <= rst ? 1'b0 : in_valid;",
        "  end",
    ]
    outs = {-1: (d_in, v_in)}
    for k, s in enumerate(d.stages):
        srcs = s.sources if s.sources is not None else (k - 1,)
        cur_d, cur_v = outs[srcs[0]]
        tag = {"collect": f"{s.node}_c", "join": f"{s.node}_j",
               "upsample": f"{s.node}_u", "transpose": f"{s.node}_t"}.get(s.kind, s.node)
        dw, vw = local(f"{tag}_y"), local(f"{tag}_v")
        lines.append(f"  wire [{s.out_width - 1}:0] {dw};")
        lines.append(f"  wire {vw};")
        if s.kind == "join":
            ports = "".join(f".v_in{b}({outs[src][1]}), .x_in{b}({outs[src][0]}), "
                            for b, src in enumerate(srcs))
            lines.append(f"  {s.wrapper} u_{dw} (.clk(clk), .rst(rst), {ports}.v_out({vw}), "
                         f".y_out({dw}));")
        elif s.kind in ("window", "collect", "crop", "upsample", "transpose"):
            lines.append(f"  {s.wrapper} u_{dw} (.clk(clk), .rst(rst), .v_in({cur_v}), "
                         f".x_in({cur_d}), .v_out({vw}), .y_out({dw}));")
        else:
            assert s.module is not None
            fold = f".rst(rst), .x_valid({cur_v}), " if s.module.valid_in else ""
            lines.append(f"  {s.module.module} u_{dw} (.clk(clk), {fold}.x({cur_d}), "
                         f".y({dw}));")
            if s.latency == 0:
                lines.append(f"  assign {vw} = {cur_v};")
            else:
                q = local(f"{s.node}_vq")
                lines += [
                    f"  reg  [{s.latency - 1}:0] {q};",
                    "  always @(posedge clk)",
                    f"    {q} <= rst ? {literal(0, s.latency)} : "
                    + (f"{{{q}[{s.latency - 2}:0], {cur_v}}};" if s.latency > 1
                       else f"{cur_v};"),
                    f"  assign {vw} = {q}[{s.latency - 1}];",
                ]
        outs[k] = (dw, vw)
    cur_d, cur_v = outs[len(d.stages) - 1]
    lines += [
        f"  assign out_data = {cur_d};",
        f"  assign out_valid = {cur_v};",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"

