"""The erf form of gelu that exporters write before opset 20, fused into one ``Gelu``.

``torch.onnx.export`` of ``nn.GELU()`` / ``F.gelu`` at opset 17 or 18 writes
``x * (1 + Erf(x / sqrt 2)) * 0.5`` as ``Div`` (or ``Mul`` by ``1 / sqrt 2``), ``Erf``,
``Add`` of 1 and two ``Mul``. ``fuse_erf_gelu`` finds that chain (the two products in
any order: ``(x * s) * 0.5``, ``(x * 0.5) * s`` or ``x * (s * 0.5)``, with ``s = 1 +
erf``) when its inner tensors feed nothing else, and replaces it by a standard ``Gelu``
node (``approximate="none"``), which ``onnx_layers.convert_gelu`` maps to
``x * normal_cdf(x)``. Anything else keeps its nodes, and ``Erf`` alone is refused by
the converter as an unknown op.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import Any

import numpy as np

from nnfab.frontends.onnx_idioms import _STANDARD, _constants

log = logging.getLogger(__name__)

_RTOL = 1e-6  # float32 constants: sqrt 2 is stored as 1.4142135


class _Matcher:
    """The graph's producers, consumers and scalar constants, to follow one chain."""

    def __init__(self, onnx: Any, graph: Any) -> None:
        self.consts = _constants(onnx, graph)
        self.producer = {t: n for n in graph.node for t in n.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for n in graph.node:
            for t in n.input:
                self.consumers[t].append(n)
        self.outputs = {o.name for o in graph.output}

    def scalar(self, name: str) -> float | None:
        value = self.consts.get(name)
        if value is None or value.size != 1:
            return None
        return float(np.asarray(value, dtype=np.float64).ravel()[0])

    def is_scalar(self, name: str, want: float) -> bool:
        got = self.scalar(name)
        return got is not None and math.isclose(got, want, rel_tol=_RTOL)

    def only_reader(self, tensor: str, op: str) -> Any | None:
        """The one node reading ``tensor`` if it is an ``op`` and nothing else reads it."""
        readers = self.consumers.get(tensor, [])
        if tensor in self.outputs or len(readers) != 1 or readers[0].op_type != op:
            return None
        return readers[0] if (readers[0].domain or "") in _STANDARD else None

    def other(self, node: Any, tensor: str) -> str | None:
        """The other input of a two-input node that reads ``tensor``."""
        ins = list(node.input)
        if len(ins) != 2 or tensor not in ins:
            return None
        return ins[1] if ins[0] == tensor else ins[0]

    def chain(self, erf: Any) -> tuple[str, str, list[Any]] | None:
        """``(x, output, nodes)`` of the gelu around ``erf``, or None."""
        scaled = self.producer.get(erf.input[0])
        if scaled is None or scaled.op_type not in ("Div", "Mul"):
            return None
        x, c = scaled.input[0], scaled.input[1]
        if scaled.op_type == "Mul" and x in self.consts:
            x, c = c, x
        if not self.is_scalar(c, math.sqrt(2.0) if scaled.op_type == "Div" else
                              1 / math.sqrt(2.0)):
            return None
        if self.only_reader(scaled.output[0], "Erf") is None:
            return None
        add = self.only_reader(erf.output[0], "Add")
        if add is None or not self.is_scalar(self.other(add, erf.output[0]) or "", 1.0):
            return None
        s = add.output[0]
        first = self.only_reader(s, "Mul")
        if first is None:
            return None
        partner = self.other(first, s)
        if partner == x:  # (x * s) * 0.5
            last = self.only_reader(first.output[0], "Mul")
            if last is None or not self.is_scalar(self.other(last, first.output[0]) or "", 0.5):
                return None
        elif partner is not None and self.is_scalar(partner, 0.5):  # x * (s * 0.5)
            last = self.only_reader(first.output[0], "Mul")
            if last is None or self.other(last, first.output[0]) != x:
                return None
        else:  # (x * 0.5) * s
            half = self.producer.get(partner or "")
            if half is None or half.op_type != "Mul" or self.other(half, x) is None \
                    or not self.is_scalar(self.other(half, x) or "", 0.5) \
                    or self.only_reader(half.output[0], "Mul") is not first:
                return None
            return x, first.output[0], [scaled, erf, add, half, first]
        return x, last.output[0], [scaled, erf, add, first, last]


def fuse_erf_gelu(onnx: Any, model: Any) -> Any:
    """``model``, or a copy whose erf-form gelus are single ``Gelu`` nodes."""
    graph = model.graph
    if not any(n.op_type == "Erf" for n in graph.node):
        return model
    matcher = _Matcher(onnx, graph)
    fused: dict[int, Any] = {}  # id of the chain's last node -> the Gelu node
    drop: set[int] = set()
    for erf in [n for n in graph.node if n.op_type == "Erf"]:
        found = matcher.chain(erf)
        if found is None:
            continue
        x, output, nodes = found
        gelu = onnx.helper.make_node("Gelu", [x], [output], name=f"{erf.name or output}_gelu",
                                     approximate="none")
        fused[id(nodes[-1])] = gelu
        drop.update(id(n) for n in nodes[:-1])
    if not fused:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    for n in graph.node:
        if id(n) in fused:
            out.graph.node.append(fused[id(n)])
        elif id(n) not in drop:
            out.graph.node.append(n)
    log.info("fused %d erf-form gelu(s) (Div, Erf, Add, Mul, Mul) into Gelu", len(fused))
    return out
