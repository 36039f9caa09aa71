"""PyTorch padding, nearest upsampling and axis permutations (merged into ``torch_layers``).

- ``nn.ZeroPad1d/2d``, ``nn.ConstantPad1d/2d`` (value 0) and ``F.pad`` (mode
  ``"constant"``, value 0 or None) on the spatial axes of ``(N, C, L)`` / ``(N, C, H, W)``
  data become ``ZeroPadding1D/2D``; all-negative pads (PyTorch crops) ``Cropping1D/2D``.
- ``nn.Upsample`` / ``nn.UpsamplingNearest2d`` / ``F.interpolate`` with mode ``"nearest"``
  (or ``"nearest-exact"``, the same for integer factors) and integer scale factors become
  ``UpSampling1D/2D``.
- ``.permute`` / ``torch.permute`` / ``.transpose`` / ``torch.transpose`` (batch axis kept
  first) first only relabel where each element sits (``torch_layout``): no IR node when
  the result is held in PyTorch's own order or channels-last (e.g. ``(N, L, C)`` permuted
  to ``(N, C, L)`` for a ``Conv1d``, or a conv output permuted to ``(N, H, W, C)``). Any
  other order is made channels-last by a ``Permute`` node (a real data permutation).
- ``x[:, a:b:s, ..., k]`` (slices with positive steps and integers; the batch axis whole) and
  ``narrow`` become an IR ``Slice`` in the order the data is held in (channels-last data
  is sliced as it is), plus a ``Reshape`` when integers drop axes.
- ``split`` / ``chunk`` / ``tensor_split`` / ``unbind`` (functions or methods) along a
  sample axis: each part read (``parts[k]``, or unpacked) is such a ``Slice``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from nnfab.frontends.torch_layers import (
    SPATIAL,
    Converted,
    Kind,
    OpCall,
    _require_channels_last,
    _torch_dim,
)
from nnfab.frontends.torch_layout import (
    CHANNELS_LAST,
    UNCHANGED,
    Value,
    canonical_index,
    channels_last_index,
)


def _feature_map(call: OpCall) -> Value:
    """The input, a channels-first (C, L) / (C, H, W) sample held channels-last."""
    v = call.value()
    call.rank = len(v.torch_shape) - 1
    if call.rank not in (1, 2):
        raise call.error(
            f"expects (batch, C, L) or (batch, C, H, W) data, got one sample of shape "
            f"{v.torch_shape!r}"
        )
    _require_channels_last(call, v)
    return v


def _spatial_out(call: OpCall, op: str, attrs: dict[str, Any]) -> Converted:
    node = call.node(f"{op}{call.rank}D", [call.value().tensor], attrs)
    return node, Value(call.name, call.out_shape, channels_last_index(call.out_shape))


# ------------------------------------------------------------------ padding
def _pad_pairs(call: OpCall, key: str, pad: Any) -> tuple[int, ...]:
    """PyTorch pads (last axis first: left, right[, top, bottom]) -> IR pads per spatial axis."""
    rank = call.rank
    if isinstance(pad, int) and not isinstance(pad, bool):
        pad = (pad,) * (2 * rank)
    try:
        values = [int(p) for p in pad]
    except TypeError:
        raise call.unsupported(key, pad, "an int or a tuple of ints") from None
    if len(values) % 2 or not 2 <= len(values) <= 2 * rank:
        raise call.unsupported(
            key, pad, f"(left, right{', top, bottom' if rank == 2 else ''}) pads of the "
            "spatial axes only (not the channel axis)"
        )
    values += [0] * (2 * rank - len(values))
    # values[0:2] pad the last axis, values[2:4] the one before it.
    return tuple(p for ax in reversed(range(rank)) for p in values[2 * ax: 2 * ax + 2])


def _check_zero(call: OpCall, value: Any) -> None:
    if value not in (None, 0, 0.0):
        raise call.unsupported("value", value, "0 (zero padding)")


def _pad_or_crop(call: OpCall, key: str, pads: tuple[int, ...]) -> Converted:
    """Non-negative pads: ZeroPadding; non-positive ones (PyTorch crops): Cropping."""
    if all(p >= 0 for p in pads):
        return _spatial_out(call, "ZeroPadding", {"pads": pads})
    if all(p <= 0 for p in pads):
        return _spatial_out(call, "Cropping", {"crops": tuple(-p for p in pads)})
    raise call.unsupported(key, call.params[key], "all >= 0 (padding) or all <= 0 (cropping)")


def convert_pad_module(call: OpCall) -> Converted:
    _feature_map(call)
    _check_zero(call, call.params.get("value", 0.0))
    return _pad_or_crop(call, "padding", _pad_pairs(call, "padding", call.params["padding"]))


def convert_pad(call: OpCall) -> Converted:
    _feature_map(call)
    mode = call.params.get("mode", "constant")
    if mode != "constant":
        raise call.unsupported("mode", mode, "'constant' (with value 0)")
    _check_zero(call, call.params.get("value"))
    return _pad_or_crop(call, "pad", _pad_pairs(call, "pad", call.params["pad"]))


# --------------------------------------------------------------- upsampling
def convert_upsample(call: OpCall) -> Converted:
    v = _feature_map(call)
    p = call.params
    mode = p.get("mode", "nearest")
    if mode not in ("nearest", "nearest-exact"):
        raise call.unsupported("mode", mode, "'nearest' ('nearest-exact': the same here)")
    if p.get("antialias"):
        raise call.unsupported("antialias", True, "False")
    spatial = v.torch_shape[1:]
    out = call.out_shape[1:]
    if any(o % n for o, n in zip(out, spatial, strict=True)):
        raise call.unsupported(
            "scale_factor" if p.get("size") is None else "size",
            p.get("scale_factor") if p.get("size") is None else p.get("size"),
            f"integer scale factors (the spatial shape {tuple(spatial)} becomes {tuple(out)})",
        )
    factor = p.get("scale_factor")
    if factor is not None:
        factors = list(factor) if isinstance(factor, list | tuple) else [factor] * call.rank
        if any(float(f) != int(float(f)) for f in factors):
            raise call.unsupported("scale_factor", factor, "integers (nearest upsampling)")
    size = tuple(o // n for o, n in zip(out, spatial, strict=True))
    return _spatial_out(call, "UpSampling", {"size": size, "interpolation": "nearest"})


# ------------------------------------------------------------ permutations
def _permuted(call: OpCall, v: Value, perm: list[int]) -> Converted:
    """``v`` with its PyTorch sample axes reordered (output axis k = input axis perm[k])."""
    n = v.index.size
    moved = canonical_index(v.torch_shape).transpose(perm).reshape(-1)
    position = np.empty(n, dtype=np.int64)
    position[moved] = np.arange(n)  # input flat index -> output flat index
    value = Value(v.tensor, call.out_shape, position[v.index])
    if value.layout() in (UNCHANGED, CHANNELS_LAST) or perm == list(range(len(perm))):
        return None, value
    target = channels_last_index(call.out_shape)
    for axes in itertools.permutations(range(value.index.ndim)):
        if np.array_equal(value.index.transpose(axes), target):
            node = call.node("Permute", [v.tensor], {"perm": tuple(int(a) for a in axes)})
            return node, Value(call.name, call.out_shape, target)
    raise call.error(
        f"its input {v.tensor!r} is held inside nnfab in an order (after a reshape/view) "
        "that no axis permutation makes channels-last; permute before reshaping"
    )


def _sample_dims(call: OpCall, key: str, dims: list[Any], rank: int) -> list[int]:
    full = [_torch_dim_or_batch(call, key, d, rank) for d in dims]
    if len(full) != rank + 1 or sorted(full) != list(range(rank + 1)) or full[0] != 0:
        raise call.unsupported(key, tuple(dims), f"a permutation of 0..{rank} keeping dim 0 "
                               "(the batch) first")
    return [d - 1 for d in full[1:]]


def _torch_dim_or_batch(call: OpCall, key: str, dim: Any, rank: int) -> int:
    full = rank + 1
    if isinstance(dim, bool) or not isinstance(dim, int) or not -full <= dim < full:
        raise call.unsupported(key, dim, f"ints in {-full}..{full - 1}")
    return dim % full


def convert_permute(call: OpCall) -> Converted:
    v = call.value()
    p = call.params
    dims = p.get("dims")
    if isinstance(dims, list | tuple):
        listed = list(dims)
    else:
        listed = [dims, *(p[k] for k in _EXTRA_DIMS if p.get(k) is not None)]
    return _permuted(call, v, _sample_dims(call, "dims", listed, len(v.torch_shape)))


def convert_transpose(call: OpCall) -> Converted:
    v = call.value()
    rank = len(v.torch_shape)
    a = _torch_dim(call, "dim0", call.params.get("dim0"), rank)
    b = _torch_dim(call, "dim1", call.params.get("dim1"), rank)
    perm = list(range(rank))
    perm[a], perm[b] = perm[b], perm[a]
    return _permuted(call, v, perm)


# ------------------------------------------------------------------ slicing
def _index_items(call: OpCall, key: Any, rank: int) -> list[Any]:
    """``key`` of ``x[key]`` as one item (a slice or an int) per axis, batch included."""
    items = list(key) if isinstance(key, tuple) else [key]
    if sum(1 for k in items if k is Ellipsis) > 1:
        raise call.unsupported("index", key, "at most one Ellipsis")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = rank + 1 - (len(items) - 1)
        items = [*items[:at], *[slice(None)] * fill, *items[at + 1:]]
    items += [slice(None)] * (rank + 1 - len(items))
    allowed = ("slices with positive steps and integers (no None / newaxis, tensors or "
               "lists), the batch axis kept whole")
    if len(items) != rank + 1:
        raise call.unsupported("index", key, f"at most {rank + 1} items; {allowed}")
    for k in items:
        ok_slice = isinstance(k, slice) and all(
            isinstance(b, int | type(None)) and not isinstance(b, bool)
            for b in (k.start, k.stop, k.step)) and (k.step is None or k.step >= 1)
        if not ok_slice and (isinstance(k, bool) or not isinstance(k, int)):
            raise call.unsupported("index", key, allowed)
    if items[0] != slice(None):
        raise call.unsupported("index", key, allowed)
    return items[1:]


def _sliced(call: OpCall, v: Value, ranges: list[tuple[int, ...]],
            dropped: list[bool]) -> Converted:
    """``v`` restricted to ``ranges`` (per PyTorch sample axis ``(lo, hi)`` or ``(lo, hi,
    step)``), ``dropped`` axes removed: an IR ``Slice`` in the order the data is held in,
    then a ``Reshape`` if axes drop."""
    shape = v.torch_shape
    ranges = [(*r, 1)[:3] for r in ranges]
    if all(r == (0, n, 1) for r, n in zip(ranges, shape, strict=True)) and not any(dropped):
        return None, v
    perm = v.axes()
    if perm is None:
        raise call.error(
            f"slices data held in an order that is not an axis permutation of PyTorch's "
            f"{shape!r} (a flatten of channels-last data); slice before flattening")
    begin = tuple(ranges[p][0] for p in perm)
    size = tuple(-(-(ranges[p][1] - ranges[p][0]) // ranges[p][2]) for p in perm)
    attrs: dict[str, Any] = {"begin": begin, "size": size}
    if any(r[2] != 1 for r in ranges):
        attrs["step"] = tuple(ranges[p][2] for p in perm)
    kept = [a for a in range(len(shape)) if not dropped[a]]
    if not kept:
        raise call.error("indexes every sample axis with an integer; nnfab needs at least "
                         "one sample axis left (use a slice, e.g. x[:, k:k + 1])")
    out_torch = tuple(size[perm.index(a)] for a in kept)
    new_axis = {a: k for k, a in enumerate(kept)}
    out_perm = tuple(new_axis[p] for p in perm if not dropped[p])
    index = canonical_index(out_torch).transpose(out_perm)
    if not any(dropped):
        return call.node("Slice", [v.tensor], attrs), Value(call.name, out_torch, index)
    part = call.node("Slice", [v.tensor], attrs)
    part.name = f"{call.name}_slice"
    target = tuple(int(n) for n in index.shape)
    reshape = call.node("Reshape", [part.name], {"target_shape": target})
    return [part, reshape], Value(call.name, out_torch, index)


def convert_getitem(call: OpCall) -> Converted:
    """``x[:, a:b:s, ..., k]``: slices with positive steps and integers of the sample
    axes."""
    v = call.value()
    items = _index_items(call, call.params.get("idx"), len(v.torch_shape))
    ranges, dropped = [], []
    for item, n in zip(items, v.torch_shape, strict=True):
        if isinstance(item, slice):
            lo, hi, step = item.indices(n)
            if hi <= lo:
                raise call.unsupported("index", call.params.get("idx"),
                                       f"non-empty ranges (axis of size {n})")
            ranges.append((lo, hi, step))
            dropped.append(False)
        else:
            if not -n <= item < n:
                raise call.unsupported("index", item, f"an integer in {-n}..{n - 1}")
            k = item % n
            ranges.append((k, k + 1))
            dropped.append(True)
    if not any(dropped) and all(r == (0, n, 1) for r, n in zip(ranges, v.torch_shape,
                                                                strict=True)):
        return None, v
    return _sliced(call, v, ranges, dropped)


def convert_narrow(call: OpCall) -> Converted:
    """``torch.narrow(x, dim, start, length)`` / ``x.narrow(...)`` on a sample axis."""
    v = call.value()
    rank = len(v.torch_shape)
    dim = _torch_dim(call, "dim", call.params.get("dim"), rank)
    start, length = call.params.get("start"), call.params.get("length")
    n = v.torch_shape[dim]
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in (start, length)) or not (
            -n <= start < n) or length < 1 or start % n + length > n:
        raise call.unsupported("start/length", (start, length),
                               f"integers giving a non-empty range of an axis of size {n}")
    ranges = [(0, m) for m in v.torch_shape]
    ranges[dim] = (start % n, start % n + length)
    return _sliced(call, v, ranges, [False] * rank)


SPLIT_CALLS: dict[str, tuple[str, ...]] = {
    "split": ("input", "split_size_or_sections", "dim"),
    "chunk": ("input", "chunks", "dim"),
    "tensor_split": ("input", "indices_or_sections", "dim"),
    "unbind": ("input", "dim"),
}
"""Functions and tensor methods that return a tuple of parts of one tensor: each part an
``operator.getitem`` of the call reads becomes a ``Slice`` (``split_part``)."""


def split_part(call: OpCall, pieces: Sequence[Any], index: Any) -> Converted:
    """Part ``index`` of ``call.value()`` split along ``call.params['dim']`` into the
    ``pieces`` the traced forward pass produced (their sizes give the ranges); ``unbind``
    drops the axis."""
    v = call.value()
    rank = len(v.torch_shape)
    d = _torch_dim_or_batch(call, "dim", call.params.get("dim", 0), rank)
    if d == 0:
        raise call.unsupported("dim", call.params.get("dim", 0),
                               f"a sample axis, 1..{rank} or {-rank}..-1 (the batch axis "
                               "cannot be split)")
    axis, unbind = d - 1, call.source_class == "unbind"
    sizes = [1 if unbind else int(p.shape[d]) for p in pieces]
    if isinstance(index, bool) or not isinstance(index, int) or not -len(sizes) <= index < len(
            sizes):
        raise call.unsupported("index", index, f"an integer in {-len(sizes)}..{len(sizes) - 1}")
    k = index % len(sizes)
    if sizes[k] == 0:
        raise call.error(f"part {k} of the {call.source_class} is empty")
    start = sum(sizes[:k])
    ranges = [(0, m) for m in v.torch_shape]
    ranges[axis] = (start, start + sizes[k])
    dropped = [False] * rank
    dropped[axis] = unbind
    return _sliced(call, v, ranges, dropped)


_EXTRA_DIMS = ("d1", "d2", "d3", "d4", "d5")
_INTERPOLATE = ("input", "size", "scale_factor", "mode", "align_corners",
                "recompute_scale_factor", "antialias")
_INTERPOLATE_DEFAULTS = {"size": None, "scale_factor": None, "mode": "nearest",
                         "align_corners": None, "recompute_scale_factor": None,
                         "antialias": False}

PAD_MODULE = Kind(convert_pad_module, ("input", "padding", "value"), {"value": 0.0}, SPATIAL)
PAD = Kind(convert_pad, ("input", "pad", "mode", "value"), {"mode": "constant", "value": None},
           SPATIAL)
UPSAMPLE = Kind(convert_upsample, _INTERPOLATE, _INTERPOLATE_DEFAULTS, SPATIAL)
PERMUTE = Kind(convert_permute, ("input", "dims", *_EXTRA_DIMS), dict.fromkeys(_EXTRA_DIMS))
TRANSPOSE = Kind(convert_transpose, ("input", "dim0", "dim1"))

GETITEM = Kind(convert_getitem, ("input", "idx"))
NARROW = Kind(convert_narrow, ("input", "dim", "start", "length"))

SHAPE_MODULES: dict[str, Kind] = {
    "ZeroPad1d": PAD_MODULE,
    "ZeroPad2d": PAD_MODULE,
    "ConstantPad1d": PAD_MODULE,
    "ConstantPad2d": PAD_MODULE,
    "Upsample": UPSAMPLE,
    "UpsamplingNearest2d": UPSAMPLE,
}
SHAPE_FUNCTIONS: dict[str, Kind] = {
    "torch.nn.functional.pad": PAD,
    "torch.nn.functional.interpolate": UPSAMPLE,
    "torch.permute": PERMUTE,
    "torch.transpose": TRANSPOSE,
    "operator.getitem": GETITEM,
    "torch.narrow": NARROW,
}
SHAPE_METHODS: dict[str, Kind] = {"permute": PERMUTE, "transpose": TRANSPOSE, "narrow": NARROW}
