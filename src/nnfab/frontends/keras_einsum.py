"""Keras ``EinsumDense`` -> IR ``Dense`` (with ``Reshape`` around it where needed).

An equation is taken when it is a dense layer in disguise: the input is
``batch + kept + contracted`` (the contracted axes last), the output ``batch + kept +
free``, and the kernel holds exactly the contracted and free axes, in any order.
Then the contracted axes are merged (a ``Reshape``), the kernel becomes the
``(contracted, free)`` matrix of a ``Dense`` over the last axis, and the free axes
are split again (a ``Reshape``). ``...`` stands for the batch and kept axes.
``bias_axes`` must lie among the free axes (a bias that changes along a kept axis
has no Dense form); Keras broadcasts it from its first axis to the end of the output.

Equations that mix the kept axes with the kernel (``"abc,bd->adc"``, attention's
``"aecd,abcd->acbe"``) are rejected with the form that is supported.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

from nnfab.errors import FrontendError

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import Converter, LayerCall
    from nnfab.ir.graph import Node

SUPPORTED = ("input = batch + kept + contracted axes, output = batch + kept + free axes, "
             "kernel = the contracted and free axes (e.g. 'abc,cd->abd', 'abc,cde->abde', "
             "'abcd,cde->abe', '...b,bc->...c')")
_EQUATION = re.compile(r"^\s*([a-zA-Z.]+)\s*,\s*([a-zA-Z]+)\s*->\s*([a-zA-Z.]+)\s*$")


def _split(call: LayerCall) -> tuple[str, str, str]:
    equation = call.get("equation")
    match = _EQUATION.match(equation) if isinstance(equation, str) else None
    if match is None:
        raise call.unsupported("equation", equation, SUPPORTED)
    inp, ker, out = match.groups()
    rank = len(call.in_shapes[0])  # without the batch axis
    for side in (inp, out):
        if side.count("...") > 1 or ("." in side.replace("...", "")):
            raise call.unsupported("equation", equation, SUPPORTED)
    if inp.startswith("..."):  # the batch and kept axes
        n_kept = rank - (len(inp) - 3)
        if n_kept < 0:
            raise call.unsupported("equation", equation, SUPPORTED)
        ellipsis = "".join(chr(0x3B1 + k) for k in range(n_kept + 1))  # greek: no clash
        inp = ellipsis + inp[3:]
        if not out.startswith("..."):
            raise call.unsupported("equation", equation, SUPPORTED)
        out = ellipsis + out[3:]
    if "..." in inp or "..." in out or len(inp) != rank + 1:
        raise call.unsupported("equation", equation, SUPPORTED)
    return inp, ker, out


def convert_einsum_dense(call: LayerCall) -> list[Node]:
    from nnfab.frontends.keras_mapping import with_activation
    from nnfab.ir.graph import Node

    inp, ker, out = _split(call)
    equation = call.get("equation")
    contracted = [c for c in inp if c in ker and c not in out]
    free = [c for c in out if c in ker and c not in inp]
    n_kept = len(inp) - len(contracted)
    ok = (len(set(inp)) == len(inp) and len(set(ker)) == len(ker) and len(set(out)) == len(out)
          and contracted and inp[n_kept:] == "".join(contracted)
          and sorted(ker) == sorted(contracted + free)
          and out == inp[:n_kept] + "".join(free))
    if not ok:
        raise call.unsupported("equation", equation, SUPPORTED)
    in_shape = tuple(int(s) for s in call.in_shapes[0])
    kept_shape = in_shape[: n_kept - 1]  # without the batch axis
    kernel = call.weight("kernel")
    assert kernel is not None
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != len(ker):
        raise FrontendError(f"{call.where()}: kernel shape {kernel.shape} does not match the "
                            f"equation {equation!r}")
    dims = dict(zip(ker, kernel.shape, strict=True))
    for c, n in zip(inp[1:], in_shape, strict=True):
        if c in dims and dims[c] != n:
            raise FrontendError(f"{call.where()}: axis {c!r} has {n} values in the input, "
                                f"{dims[c]} in the kernel")
    order = [ker.index(c) for c in contracted + free]
    n_in = math.prod(dims[c] for c in contracted)
    free_shape = tuple(dims[c] for c in free)
    n_out = math.prod(free_shape)
    matrix = np.ascontiguousarray(np.transpose(kernel, order).reshape(n_in, n_out))
    bias = np.zeros(free_shape)
    bias_axes = call.get("bias_axes")
    if bias_axes:
        if any(c not in free for c in bias_axes):
            raise call.unsupported("bias_axes", bias_axes,
                                   f"axes among the kernel's output axes {''.join(free)!r}")
        b = call.weight("bias")
        assert b is not None
        first = min(out.index(c) for c in bias_axes)
        spec = out[first:]  # Keras' bias shape: 1 on the axes left out
        shape = tuple(dims[c] if c in bias_axes else 1 for c in spec)
        bias = np.broadcast_to(np.asarray(b, dtype=np.float64).reshape(shape), free_shape)
    name = call.name
    nodes: list[Node] = []
    prev = call.inputs[0]
    if len(contracted) > 1:
        nodes.append(Node(call.unique_name(f"{name}_merge"), "Reshape", [prev],
                          {"target_shape": (*kept_shape, n_in)}, source_class=call.cls))
        prev = nodes[-1].name
    dense = Node(name, "Dense", [prev], weights={"kernel": matrix, "bias": bias.reshape(-1).copy()},
                 source_class=call.cls)
    nodes += with_activation(call, dense)  # element-wise: before the split, fused into Dense
    if len(free) > 1:
        nodes.append(Node(call.unique_name(f"{name}_split"), "Reshape", [nodes[-1].name],
                          {"target_shape": (*kept_shape, *free_shape)}, source_class=call.cls))
    return nodes


EINSUM_CONVERTERS: dict[str, Converter] = {"EinsumDense": convert_einsum_dense}
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS``."""
