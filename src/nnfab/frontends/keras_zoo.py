"""Keras Embedding, Conv1D/2DTranspose and LayerNormalization -> IR ops (``nnfab.ir.zoo``).

Registered in ``keras_mapping.CONVERTERS`` (live Keras 3 models and the JSON/h5 reader).

- ``Embedding``: the ``embeddings`` weight (V, D); ``mask_zero`` only makes a mask for
  later layers (rejected: nnfab has no masks); ``input_length`` is ignored.
- ``Conv1DTranspose`` / ``Conv2DTranspose``: kernel ``(*k, filters, C)`` -> the IR's
  ``(*k, C, filters)``; ``padding`` 'valid' / 'same' and ``output_padding`` as Keras
  computes the output length (``transpose_pads``); dilation 1, channels_last.
- ``LayerNormalization`` over the last axis only (``axis`` -1); ``center`` / ``scale``
  off give beta 0 / gamma 1; ``rms_scaling`` is rejected.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from nnfab.errors import FrontendError

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import Converter, LayerCall
    from nnfab.ir.graph import Node


def transpose_pads(n: int, k: int, s: int, padding: str,
                   output_padding: int | None) -> tuple[int, int, int]:
    """``(before, after, extra)`` of one axis reproducing Keras' transposed convolution.

    Keras' output length: without ``output_padding`` ``n*s + max(k - s, 0)`` ('valid') or
    ``n*s`` ('same'); with it ``(n-1)*s + k - 2*(k//2 if same else 0) + output_padding``.
    The full output ``(n-1)*s + k`` is cropped by ``before`` in front: 0 for 'valid', for
    'same' the front padding TensorFlow gives the forward convolution from ``out`` back to
    ``n`` (``total // 2``, the odd cell at the end); the rest of the difference is cropped
    (``after``) or appended (``extra`` < s) at the end.
    """
    full = (n - 1) * s + k
    if output_padding is None:
        out = n * s + max(k - s, 0) if padding == "valid" else n * s
    else:
        out = full - 2 * (k // 2 if padding == "same" else 0) + output_padding
    before = 0
    if padding == "same":
        before = max((math.ceil(out / s) - 1) * s + k - out, 0) // 2
    after = full - before - out
    return (before, after, 0) if after >= 0 else (before, 0, -after)


def _transpose(rank: int) -> Converter:
    def convert(call: LayerCall) -> list[Node]:
        from nnfab.frontends.keras_mapping import (
            _bias,
            _check_channels_last,
            _check_rank,
            _ints,
            with_activation,
        )

        _check_channels_last(call)
        _check_rank(call, rank)
        dilation = _ints(call.get("dilation_rate", 1), rank, call, "dilation_rate")
        if any(d != 1 for d in dilation):
            raise call.unsupported("dilation_rate", call.get("dilation_rate"), "1 on every axis")
        padding = str(call.get("padding", "valid")).lower()
        if padding not in ("valid", "same"):
            raise call.unsupported("padding", call.get("padding"), "'valid', 'same'")
        strides = _ints(call.get("strides", 1), rank, call, "strides")
        ksize = _ints(call.get("kernel_size"), rank, call, "kernel_size")
        extra_cfg = call.get("output_padding")
        out_pad = None if extra_cfg is None else _ints(extra_cfg, rank, call, "output_padding")
        kernel = call.weight("kernel")
        assert kernel is not None
        if kernel.ndim != rank + 2:
            raise FrontendError(f"{call.where()}: kernel shape {kernel.shape} should have "
                                f"{rank + 2} axes")
        pads: list[int] = []
        extra: list[int] = []
        for ax in range(rank):
            b, a, e = transpose_pads(int(call.in_shapes[0][ax]), ksize[ax], strides[ax],
                                     padding, None if out_pad is None else out_pad[ax])
            pads += [b, a]
            extra.append(e)
        kernel = np.swapaxes(np.asarray(kernel, dtype=np.float64), -1, -2)  # (*k, C, F)
        attrs = {"strides": strides, "pads": tuple(pads), "output_padding": tuple(extra)}
        node = call.node(f"Conv{rank}DTranspose", attrs, kernel=np.ascontiguousarray(kernel),
                         bias=_bias(call, kernel.shape[-1]))
        return with_activation(call, node)

    return convert


def convert_embedding(call: LayerCall) -> list[Node]:
    if call.get("mask_zero", False):
        raise call.unsupported("mask_zero", True, "False (nnfab has no masks)")
    table = call.weight("embeddings")
    assert table is not None
    return [call.node("Embedding", embeddings=np.asarray(table, dtype=np.float64))]


def convert_layernorm(call: LayerCall) -> list[Node]:
    rank = len(call.in_shapes[0]) + 1
    axis = call.get("axis", -1)
    axes = list(axis) if isinstance(axis, list | tuple) else [axis]
    if len(axes) != 1 or int(axes[0]) not in (-1, rank - 1):
        raise call.unsupported("axis", axis, f"-1 or {rank - 1} (the last axis only)")
    if call.get("rms_scaling", False):
        raise call.unsupported("rms_scaling", True, "False")
    n = int(call.in_shapes[0][-1])
    gamma = call.weight("gamma") if call.get("scale", True) else np.ones(n)
    beta = call.weight("beta") if call.get("center", True) else np.zeros(n)
    assert gamma is not None and beta is not None
    return [call.node("LayerNormalization", {"epsilon": float(call.get("epsilon", 1e-3))},
                      gamma=np.asarray(gamma, dtype=np.float64).reshape(-1),
                      beta=np.asarray(beta, dtype=np.float64).reshape(-1))]


ZOO_CONVERTERS: dict[str, Converter] = {
    "Embedding": convert_embedding,
    "Conv1DTranspose": _transpose(1),
    "Conv2DTranspose": _transpose(2),
    "LayerNormalization": convert_layernorm,
}
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS``."""
