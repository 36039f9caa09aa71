"""ONNX Pad, Slice, Resize and Upsample on the spatial axes (merged into ``onnx_layers``).

- ``Pad`` (mode ``constant``, value 0) padding only the spatial axes: ``ZeroPadding1D/2D``;
  all-negative pads (a crop) become ``Cropping1D/2D``.
- ``Slice`` (positive steps) that keeps the batch axis whole: ``Cropping1D/2D`` for
  contiguous spatial ranges of channels-last data, an IR ``Slice`` otherwise (channel
  ranges, strides, sequences, vectors); ``Split`` along a non-batch axis: one ``Slice``
  per output.
- ``Resize`` (mode ``nearest``) / ``Upsample`` with integer spatial scale factors and
  unit batch/channel factors: ``UpSampling1D/2D``. Output ``o`` must read input
  ``o // s``: true for coordinate modes ``half_pixel`` / ``pytorch_half_pixel`` with any
  nearest mode, and ``asymmetric`` with ``floor`` or ``round_prefer_floor``.

Pad and Resize need (N, C, L) or (N, C, H, W) data; their result is held channels-last.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfab.frontends.onnx_layers import (
    Converter,
    NodeCall,
    Output,
    Value,
    _batch_axis,
    _channels_last_output,
    _spatial_rank,
    channels_last,
    identity,
    layout_candidates,
    layout_index,
)

INT64_MAX = 2**63 - 1


def _spatial_node(call: NodeCall, x: Value, op: str, attrs: dict[str, Any]) -> list[Output]:
    rank = _spatial_rank(call, x)
    ir = call.builder.require(x, channels_last(x.rank), call.where)
    node = call.emit(f"{op}{rank}D", [ir], attrs)
    return [_channels_last_output(node, call.graph, channels_last(x.rank))]


def _const_ints(call: NodeCall, i: int, what: str) -> list[int]:
    return [int(v) for v in np.asarray(call.const(i, what)).ravel()]


def _full_axes(call: NodeCall, axes: list[int] | None, n: int, full_rank: int) -> list[int]:
    if axes is None:
        return list(range(n))
    out = [a + full_rank if a < 0 else a for a in axes]
    if len(out) != n or any(not 0 <= a < full_rank for a in out) or len(set(out)) != n:
        raise call.unsupported("axes", axes, f"{n} distinct axes of a rank-{full_rank} tensor")
    return out


# ---------------------------------------------------------------------- Pad
def convert_pad(call: NodeCall) -> list[Output]:
    x = call.value(0, "data")
    rank = _spatial_rank(call, x)
    full = x.rank + 1
    mode = call.attr("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise call.unsupported("mode", mode, "'constant' (with value 0)")
    if call.opset >= 11:
        pads = _const_ints(call, 1, "pads")
        value = float(np.asarray(call.const(2, "constant_value")).ravel()[0]) if call.has(2) \
            else 0.0
        axes = _const_ints(call, 3, "axes") if call.has(3) else None
    else:
        pads = [int(p) for p in call.attr("pads", [])]
        value, axes = float(call.attr("value", 0.0)), None
    if value != 0.0:
        raise call.unsupported("constant_value", value, "0 (zero padding)")
    n = len(pads) // 2
    axes = _full_axes(call, axes, n, full)
    per_axis = dict.fromkeys(range(full), (0, 0))
    for k, a in enumerate(axes):
        per_axis[a] = (pads[k], pads[n + k])
    if len(pads) != 2 * n or per_axis[0] != (0, 0) or per_axis[1] != (0, 0):
        raise call.unsupported("pads", pads, "pads of the spatial axes only (batch and "
                               "channel axes unpadded)")
    flat = tuple(p for a in range(2, rank + 2) for p in per_axis[a])
    if all(p >= 0 for p in flat):
        return _spatial_node(call, x, "ZeroPadding", {"pads": flat})
    if all(p <= 0 for p in flat):
        return _spatial_node(call, x, "Cropping", {"crops": tuple(-p for p in flat)})
    raise call.unsupported("pads", pads, "all >= 0 (padding) or all <= 0 (cropping)")


# -------------------------------------------------------------------- Slice
def _held_layout(call: NodeCall, x: Value) -> tuple[int, ...]:
    """The IR axis order (as ONNX axes) in which ``x`` is held now; identity if none fits."""
    for perm in layout_candidates(x.rank):
        if call.builder.matches(x, perm):
            return perm
    return identity(x.rank)


def slice_value(call: NodeCall, x: Value, ranges: dict[int, tuple[int, ...]],
                suffix: str = "") -> Value:
    """``x`` restricted to ``ranges`` (non-batch ONNX axis -> ``(lo, hi)`` or ``(lo, hi,
    step)``: ``lo, lo + step, ... < hi``): contiguous spatial ranges of channels-last
    (N, C, L) / (N, C, H, W) data as ``Cropping1D/2D``, then a channel range as a
    ``Slice`` (both stream in Verilog); anything else as an IR ``Slice`` in the layout
    ``x`` is held in."""
    perm = _held_layout(call, x)
    full = {a: (*ranges.get(a, (0, n)), 1)[:3] for a, n in enumerate(x.shape)}
    if full == {a: (0, n, 1) for a, n in enumerate(x.shape)}:
        return x
    spatial_whole = all(full[a] == (0, x.shape[a], 1) for a in range(1, x.rank))
    strided = any(r[2] != 1 for r in full.values())
    if x.rank in (2, 3) and perm == channels_last(x.rank) and not spatial_whole \
            and not strided:
        # the pixels first (a Cropping streams), then the channel range of each pixel
        crops = tuple(p for a in range(1, x.rank)
                      for p in (full[a][0], x.shape[a] - full[a][1]))
        out = _spatial_node(call, x, "Cropping", {"crops": crops})[0]
        assert isinstance(out, Value)
        return slice_value(call, out, {0: full[0]}, suffix)
    src = call.builder.require(x, perm, call.where)
    count = {a: -(-(hi - lo) // step) for a, (lo, hi, step) in full.items()}
    attrs: dict[str, Any] = {"begin": tuple(full[p][0] for p in perm),
                             "size": tuple(count[p] for p in perm)}
    if strided:
        attrs["step"] = tuple(full[p][2] for p in perm)
    node = call.emit("Slice", [src], attrs, suffix=suffix)
    return Value(node.name, layout_index([count[a] for a in range(x.rank)], perm))


def convert_slice(call: NodeCall) -> list[Output]:
    x = call.value(0, "data")
    full = x.rank + 1
    if call.opset >= 10:
        starts, ends = _const_ints(call, 1, "starts"), _const_ints(call, 2, "ends")
        axes = _const_ints(call, 3, "axes") if call.has(3) else None
        steps = _const_ints(call, 4, "steps") if call.has(4) else [1] * len(starts)
    else:
        starts = [int(v) for v in call.attr("starts", [])]
        ends = [int(v) for v in call.attr("ends", [])]
        axes = [int(v) for v in call.attr("axes")] if call.attr("axes") is not None else None
        steps = [1] * len(starts)
    if len(ends) != len(starts) or len(steps) != len(starts) or any(s < 1 for s in steps):
        raise call.unsupported("steps", steps, "positive steps, one per sliced axis")
    axes = _full_axes(call, axes, len(starts), full)
    dims = (1, *x.shape)  # the batch size does not matter: it must stay whole
    ranges: dict[int, tuple[int, ...]] = {}
    for a, s, e, step in zip(axes, starts, ends, steps, strict=True):
        n = dims[a]
        lo = min(max(s + n if s < 0 else s, 0), n)
        hi = min(max(e + n if e < 0 else e, 0), n)
        if a == 0:
            if s in (0, -INT64_MAX - 1) and e >= INT64_MAX // 2 and step == 1:
                continue
            raise call.unsupported("starts/ends/steps", (s, e, step), "the whole batch axis")
        if hi <= lo:
            raise call.unsupported("starts/ends", (s, e), f"a non-empty range of axis {a}")
        ranges[a - 1] = (lo, hi, step)
    return [slice_value(call, x, ranges)]


def convert_split(call: NodeCall) -> list[Output]:
    """``Split`` along one non-batch axis: one IR ``Slice`` per output."""
    x = call.value(0, "input")
    axis = _batch_axis(call, int(call.attr("axis", 0)), x.rank + 1)
    n = x.shape[axis]
    outputs = len(call.proto.output)
    if call.opset >= 13 and call.has(1):
        sizes = _const_ints(call, 1, "split")
    elif call.opset < 13 and call.attr("split") is not None:
        sizes = [int(v) for v in call.attr("split")]
    else:
        given = call.attr("num_outputs")
        parts = int(given) if given is not None else outputs
        chunk = -(-n // parts)  # the last part is smaller when parts does not divide n
        sizes = [min(chunk, n - k * chunk) for k in range(parts)]
    if len(sizes) != outputs or any(s <= 0 for s in sizes) or sum(sizes) != n:
        raise call.unsupported("split", sizes, f"{outputs} positive sizes adding up to {n} "
                               f"(axis {axis + 1})")
    out: list[Output] = []
    lo = 0
    for k, size in enumerate(sizes):
        out.append(slice_value(call, x, {axis: (lo, lo + size)}, suffix=f"_{k}"))
        lo += size
    return out


# ------------------------------------------------------------ Resize / Upsample
NEAREST_FLOOR_MODES = {
    "half_pixel": None,
    "pytorch_half_pixel": None,
    "asymmetric": ("floor", "round_prefer_floor"),
}
"""coordinate_transformation_mode -> the nearest modes giving output o = input o // s
(None: all of them, for integer scales)."""


def _text(value: Any, default: str) -> str:
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def _factors(call: NodeCall, x: Value, scales: list[float] | None,
             sizes: list[int] | None) -> tuple[int, ...]:
    rank = x.rank - 1
    full = (1, *x.shape)
    if sizes is not None:
        if len(sizes) != x.rank + 1 or any(o % n for o, n in zip(sizes[1:], full[1:],
                                                                  strict=True)):
            raise call.unsupported("sizes", sizes, "integer multiples of the input shape")
        factors = [o // n for o, n in zip(sizes, full, strict=True)]
        # sizes[0] names the batch; with a symbolic batch it is taken to be the batch.
        factors[0] = 1 if call.builder.batch in (None, sizes[0]) or sizes[0] == 1 else 0
    elif scales is not None and len(scales) == x.rank + 1:
        factors = [int(s) if float(s) == int(s) else 0 for s in scales]
    else:
        raise call.unsupported("scales", scales, f"{x.rank + 1} values (N, C, spatial...)")
    if factors[0] != 1 or factors[1] != 1 or any(f < 1 for f in factors[2:]):
        raise call.unsupported(
            "scales" if sizes is None else "sizes", scales if sizes is None else sizes,
            "1 on the batch and channel axes and integers >= 1 on the spatial axes",
        )
    return tuple(factors[2:2 + rank])


def convert_resize(call: NodeCall) -> list[Output]:
    x = call.value(0, "X")
    _spatial_rank(call, x)
    mode = _text(call.attr("mode"), "nearest")
    if mode != "nearest":
        raise call.unsupported("mode", mode, "'nearest'")
    if call.op_type == "Upsample":
        coord, nearest = "asymmetric", "floor"
        scales = ([float(s) for s in np.asarray(call.const(1, "scales")).ravel()]
                  if call.has(1) else [float(s) for s in call.attr("scales", [])])
        sizes = None
    else:
        coord = _text(call.attr("coordinate_transformation_mode"), "half_pixel")
        nearest = _text(call.attr("nearest_mode"), "round_prefer_floor")
        if call.opset < 11:
            scales_at, sizes_at = 1, None
            coord = "asymmetric"
        else:
            scales_at, sizes_at = 2, 3
        raw = (np.asarray(call.const(scales_at, "scales")).ravel() if call.has(scales_at)
               else np.zeros(0))
        scales = [float(s) for s in raw] if raw.size else None
        sizes = (_const_ints(call, sizes_at, "sizes")
                 if sizes_at is not None and call.has(sizes_at) else None)
        if call.attr("axes") is not None:
            raise call.unsupported("axes", call.attr("axes"), "not set (all axes)")
    allowed = NEAREST_FLOOR_MODES.get(coord, ())
    if allowed is not None and nearest not in allowed:
        raise call.unsupported(
            "coordinate_transformation_mode/nearest_mode", (coord, nearest),
            "half_pixel or pytorch_half_pixel (any nearest_mode), or asymmetric with floor or "
            "round_prefer_floor (output o reads input o // scale)",
        )
    size = _factors(call, x, scales, sizes)
    return _spatial_node(call, x, "UpSampling", {"size": size, "interpolation": "nearest"})


SHAPE_CONVERTERS: dict[str, Converter] = {
    "Pad": convert_pad,
    "Slice": convert_slice,
    "Split": convert_split,
    "Resize": convert_resize,
    "Upsample": convert_resize,
}
"""ONNX op type -> converter, merged into ``onnx_layers.CONVERTERS``."""
