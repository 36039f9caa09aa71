"""GlobalPooling1D/2D (max and avg) in Verilog, registered into ``layers.RENDERERS``.

A global pooling is a pooling whose window is the whole feature map: the renderer is the
pixel stream's pooling kernel (``stream._pool_module``: a comparator tree per channel, or
the exact sum times ``scale_q(1/count)``) over the flattened ``(H, W, C)`` vector, which
is that window's element order (row-major, channels last). In a vector design it is a
regular layer; in a pixel stream it collects the feature map as ``Flatten`` does
(``stream.COLLECT_OPS``) and then runs once per image, like the layers after a Flatten.
"""

from __future__ import annotations

from nnfab.backends.rtl.layers import LayerContext, LayerModule, renders
from nnfab.backends.rtl.stream import Geometry, _pool_module
from nnfab.errors import BackendError

GLOBAL_POOL_OPS = ("GlobalPooling1D", "GlobalPooling2D")


@renders(*GLOBAL_POOL_OPS)
def render_global_pool(ctx: LayerContext) -> LayerModule:
    node = ctx.node
    shape = ctx.graph.tensors[node.inputs[0]].shape
    rank = 2 if node.op.endswith("2D") else 1
    if len(shape) != rank + 1:
        raise BackendError(f"layer {node.name!r} ({node.op}): input shape {shape} must have "
                           f"{rank} spatial axis(es) plus channels")
    h, w = (1, shape[0]) if rank == 1 else (shape[0], shape[1])
    geometry = Geometry(node.name, h, w, shape[-1], h, w, 1, 1, 0, 0, 0, 0)
    module, mask_port = _pool_module(ctx.module, node, geometry, ctx.in_type, ctx.out_type,
                                     ctx.options)
    assert not mask_port  # one window, one count: no border cases
    return module
