"""HGQ (the first, Keras 2 package) proxy models: ``FixedPointQuantizer`` -> ``ElementCast``.

A proxy model (HGQ's ``to_proxy_model``) is plain Keras layers whose weights already
lie on their fixed-point grids, with a ``FixedPointQuantizer`` wherever data is cast.
Its weights ``keep_negative``, ``bits`` and ``integers`` (int8, broadcast against the
data, a leading axis of 1 for the batch) give each element ``ap_[u]fixed<bits,
integers>`` (0 bits: the element is 0); config ``RND`` / ``SAT`` the shared modes.
The layer becomes an ``ElementCast`` (``nnfab.ir.element_cast``): bit-exact, also with
per-element widths. Its ``overrides`` (hls4ml precision hints for the layers around it)
are not read: nnfab derives exact accumulators itself. ``WRAP_SM`` has no ``ap_fixed``
counterpart here and is refused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from nnfab.errors import FrontendError
from nnfab.ir.types import Overflow, Rounding

if TYPE_CHECKING:
    from nnfab.frontends.keras_mapping import Converter, LayerCall
    from nnfab.ir.graph import Node

log = logging.getLogger(__name__)


def convert_fixed_point_quantizer(call: LayerCall) -> list[Node]:
    rnd, sat = str(call.get("RND", "TRN")), str(call.get("SAT", "WRAP"))
    if f"AP_{rnd}" not in {r.value for r in Rounding}:
        raise call.unsupported("RND", rnd, ", ".join(r.value[3:] for r in Rounding))
    if f"AP_{sat}" not in {o.value for o in Overflow}:
        raise call.unsupported("SAT", sat, ", ".join(o.value[3:] for o in Overflow))
    rank = len(call.in_shapes[0])
    fields = {}
    for key in ("keep_negative", "bits", "integers"):
        values = call.weight(key)
        assert values is not None
        values = np.asarray(values, dtype=np.int64)
        if values.ndim == rank + 1 and values.shape[0] == 1:  # HGQ's batch axis of 1
            values = values[0]
        fields[key] = values
    try:
        np.broadcast_shapes(*(v.shape for v in fields.values()), tuple(call.in_shapes[0]))
    except ValueError:
        raise FrontendError(
            f"{call.where()}: keep_negative/bits/integers of shapes "
            f"{[v.shape for v in fields.values()]} do not broadcast to the input "
            f"{tuple(call.in_shapes[0])}") from None
    if call.get("overrides"):
        log.info("%s: its precision overrides are not read (nnfab derives exact types)",
                 call.where())
    return [call.node("ElementCast", {"rounding": f"AP_{rnd}", "overflow": f"AP_{sat}"},
                      **{k: v.astype(np.float64) for k, v in fields.items()})]


HGQ_PROXY_CONVERTERS: dict[str, Converter] = {
    "FixedPointQuantizer": convert_fixed_point_quantizer,
}
"""Keras class name -> converter, merged into ``keras_mapping.CONVERTERS`` (model files
only: the HGQ package needs Keras 2)."""
