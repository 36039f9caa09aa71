"""HLS renderer of MultiThreshold (``nnfab_threshold.h``), io_parallel.

Thresholds are moved onto the input type's grid: ``x >= t`` for a value ``x`` of the
input type holds exactly when ``x >= ceil_grid(t)``; thresholds above the input's range
become ``max + lsb`` (never reached) and those below it ``min`` (always reached), so a
type two integer bits wider than the input holds them all. The output levels are cast
to the result type with the emulator's cast (``emulate.kernels.common.cast``).
"""

from __future__ import annotations

import numpy as np

from nnfab.backends.hls.cpp import ConstArray
from nnfab.backends.hls.layers import (
    ConfigField,
    LayerCode,
    RenderContext,
    RowContext,
    _result_typedef,
    renderer,
)
from nnfab.emulate.kernels.common import Exact, cast
from nnfab.errors import BackendError
from nnfab.ir import FixedType, Node
from nnfab.ir.threshold import multithreshold_levels


def threshold_grid(thresholds: np.ndarray, x_type: FixedType) -> tuple[np.ndarray, FixedType]:
    """Thresholds on ``x_type``'s grid, deciding ``x >= t`` as the real ones do, and their
    type (same fractional bits, two more integer bits, signed)."""
    step = 2.0 ** -x_type.frac
    lifted = np.ceil(np.asarray(thresholds, dtype=np.float64) / step) * step
    lifted = np.clip(lifted, x_type.min, x_type.max + step)
    t_type = FixedType(x_type.width + 2, x_type.integer + 2, True)
    return lifted, t_type


@renderer("MultiThreshold")
def render_multithreshold(ctx: RenderContext, node: Node) -> LayerCode:
    (src,) = node.inputs
    x_type = ctx.tensor_type(src)
    if x_type.width > 62:
        raise BackendError(f"layer {node.name!r} (MultiThreshold): input type {x_type} is "
                           "wider than 62 bits")
    thresholds = np.asarray(node.weights["thresholds"], dtype=np.float64)
    rows, k = thresholds.shape
    values, t_type = threshold_grid(thresholds, x_type)
    levels = multithreshold_levels(node)
    frac = max(max(int(lv.denominator).bit_length() - 1 for lv in levels), 0)
    ints = [int(lv * 2**frac) for lv in levels]
    mantissas = np.array(ints, dtype=object if max(map(abs, ints)) >= 1 << 62 else np.int64)
    out_type = ctx.tensor_type(node.name)
    level_values, _ = cast(Exact(mantissas, frac), out_type)
    n_in = ctx.size(src)
    channels = int(ctx.graph.tensors[src].shape[-1]) if ctx.graph.tensors[src].shape else 1
    if rows not in (1, channels) and (isinstance(ctx, RowContext) or rows != n_in):
        raise BackendError(
            f"layer {node.name!r} (MultiThreshold): {rows} threshold rows (one per element) "
            "need io_parallel; in io_stream thresholds must be shared or per channel")
    names = {key: ctx.ident(node, key) for key in ("thr_t", "config", "thr", "levels")}
    code = LayerCode(node, includes=["nnfab_threshold.h"], config_name=names["config"])
    code.typedefs = [_result_typedef(ctx, node), (names["thr_t"], t_type, "threshold")]
    code.config = [
        ConfigField("n_in", "unsigned", str(n_in)),
        ConfigField("n_chan", "unsigned", str(channels)),
        ConfigField("n_rows", "unsigned", str(rows)),
        ConfigField("n_thr", "unsigned", str(k)),
        ConfigField("thr_t", "type", names["thr_t"]),
    ]
    code.arrays = [
        ConstArray(names["thr"], names["thr_t"], t_type, values.ravel(),
                   comment=f"thresholds of {node.name!r} on the input grid, ({rows}, {k})"),
        ConstArray(names["levels"], ctx.type_name(node.name), out_type,
                   np.asarray(level_values, dtype=np.float64).ravel(),
                   comment=f"the {k + 1} output levels of {node.name!r}"),
    ]
    code.call = [
        f"nnfab::multithreshold<{ctx.type_name(src)}, {ctx.type_name(node.name)}, "
        f"{names['config']}>({ctx.array(src)}, {ctx.array(node.name)}, {names['thr']}, "
        f"{names['levels']});"
    ]
    return code
