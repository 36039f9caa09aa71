"""PyTorch ``nn.Embedding``, ``nn.ConvTranspose1d/2d`` and ``nn.LayerNorm`` -> IR ops.

Registered in ``torch_layers.MODULES`` (module forms only). Rules: ``nnfab.ir.zoo``.

- ``Embedding``: the weight (V, D) is the IR table; ``max_norm`` (renormalizes rows at
  each call) is rejected; ``padding_idx`` only matters for training.
- ``ConvTranspose1d/2d``: ``groups=1``, ``dilation=1``, ``padding_mode='zeros'``; the
  weight ``(C_in, C_out, *k)`` becomes the IR kernel ``(*k, C_in, C_out)``; ``padding`` p
  crops p from both ends of the full output, ``output_padding`` is kept.
- ``LayerNorm``: ``normalized_shape`` must be the last dim only; ``gamma``/``beta`` are
  ones/zeros without ``elementwise_affine`` (or without ``bias``).

``example_inputs`` builds the traced forward's inputs: integer indices in ``0..V-1``
for an input read by an ``nn.Embedding``, random floats otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnfab.frontends.torch_layers import (
    SPATIAL,
    Converted,
    Kind,
    OpCall,
    _bias,
    _ints,
    _require_channels_last,
    to_float64,
)
from nnfab.frontends.torch_layout import Value, channels_last_index, fibers


def convert_embedding(call: OpCall) -> Converted:
    m = call.module
    v = call.value()
    if getattr(m, "max_norm", None) is not None:
        raise call.unsupported("max_norm", m.max_norm, "None (rows renormalized at each call)")
    table = to_float64(m.weight)  # (V, D)
    dim = table.shape[1]
    node = call.node("Embedding", [v.tensor], embeddings=table)
    index = v.index[..., None] * dim + np.arange(dim)
    return node, Value(call.name, call.out_shape, index)


def convert_conv_transpose(call: OpCall) -> Converted:
    m, rank = call.module, call.rank
    v = call.value()
    _require_channels_last(call, v)
    if m.padding_mode != "zeros":
        raise call.unsupported("padding_mode", m.padding_mode, "'zeros'")
    if int(m.groups) != 1:
        raise call.unsupported("groups", m.groups, "1")
    dilation = _ints(call, "dilation", m.dilation, rank)
    if any(d != 1 for d in dilation):
        raise call.unsupported("dilation", m.dilation, "1 on every axis")
    if isinstance(m.padding, str):
        raise call.unsupported("padding", m.padding, "an int or a tuple of ints")
    strides = _ints(call, "stride", m.stride, rank)
    pads = tuple(p for p in _ints(call, "padding", m.padding, rank) for _ in range(2))
    extra = _ints(call, "output_padding", m.output_padding, rank)
    weight = to_float64(m.weight)  # (C_in, C_out, *k)
    kernel = weight.transpose(*range(2, 2 + rank), 0, 1)
    attrs: dict[str, Any] = {"strides": strides, "pads": pads, "output_padding": extra}
    node = call.node(f"Conv{rank}DTranspose", [v.tensor], attrs, kernel=kernel,
                     bias=_bias(m, int(m.out_channels)))
    return node, Value(call.name, call.out_shape, channels_last_index(call.out_shape))


def convert_layernorm(call: OpCall) -> Converted:
    m = call.module
    v = call.value()
    shape = v.torch_shape
    normalized = tuple(int(n) for n in m.normalized_shape)
    if not shape or normalized != (shape[-1],):
        raise call.unsupported("normalized_shape", normalized,
                               f"the last dim only ({shape[-1:]!r} for this input)")
    found = fibers(v, len(shape) - 1)
    if found is not None:
        position = found[1].reshape(-1, found[1].shape[-1])
        if not np.all(position == position[:1]):
            found = None
    if found is None:
        raise call.error(
            f"its input {v.tensor!r} does not hold the last PyTorch dim as its last axis "
            "inside nnfab (a feature map is held channels-last); normalize a (batch, ..., "
            "features) tensor"
        )
    n = shape[-1]
    gamma = to_float64(m.weight) if getattr(m, "weight", None) is not None else np.ones(n)
    beta = to_float64(m.bias) if getattr(m, "bias", None) is not None else np.zeros(n)
    order = position[0]
    node = call.node("LayerNormalization", [v.tensor], {"epsilon": float(m.eps)},
                     gamma=gamma[order], beta=beta[order])
    return node, Value(call.name, call.out_shape, v.index)


def example_inputs(torch: Any, gm: Any, shapes: list[tuple[int, ...]], batch: int,
                   generator: Any, dtype: Any, device: Any) -> list[Any]:
    """Inputs of the traced forward (``gm`` the fx GraphModule, one shape per placeholder):
    integer indices in ``0..V-1`` for a placeholder read by an ``nn.Embedding`` (the
    smallest V among its readers), ``torch.randn`` floats otherwise."""
    modules = dict(gm.named_modules())
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    out = []
    for k, shape in enumerate(shapes):
        sizes = [int(modules[str(u.target)].num_embeddings) for u in
                 (placeholders[k].users if k < len(placeholders) else ())
                 if u.op == "call_module" and type(modules.get(str(u.target))).__name__
                 == "Embedding"]
        if sizes:
            out.append(torch.randint(0, min(sizes), (batch, *shape), generator=generator)
                       .to(device))
        else:
            out.append(torch.randn((batch, *shape), generator=generator, dtype=dtype)
                       .to(device))
    return out


ZOO_MODULES: dict[str, Kind] = {
    "Embedding": Kind(convert_embedding),
    "ConvTranspose1d": Kind(convert_conv_transpose, role=SPATIAL, rank=1),
    "ConvTranspose2d": Kind(convert_conv_transpose, role=SPATIAL, rank=2),
    "LayerNorm": Kind(convert_layernorm),
}
"""``torch.nn`` class name -> kind, merged into ``torch_layers.MODULES``."""
