"""Comparator trees for the maximum / minimum merges (``merges.py``)."""

from __future__ import annotations

from nnfab.backends.rtl.verilog import ModuleBuilder, Sig, bits_for


def pick(mb: ModuleBuilder, base: str, a: Sig, b: Sig, largest: bool) -> Sig:
    """``max(a, b)`` (``largest``) or ``min(a, b)`` of two signals on the same grid."""
    if largest:
        return mb.maximum(base, a, b)
    if a.hi <= b.lo:
        return a
    if b.hi <= a.lo:
        return b
    lo, hi = min(a.lo, b.lo), min(a.hi, b.hi)
    width, signed = bits_for(lo, hi)
    w = max(a.width + (0 if a.signed else 1), b.width + (0 if b.signed else 1))
    cond = f"($signed({a.ext(w)}) < $signed({b.ext(w)}))"
    return mb.wire(base, f"{cond} ? {a.ext(width)} : {b.ext(width)}", lo, hi,
                   max(a.stage, b.stage), width, signed)


def extremum(mb: ModuleBuilder, base: str, values: list[Sig], mode: str) -> Sig:
    """The maximum (``mode == "maximum"``) or minimum of ``values``: a balanced tree."""
    largest = mode == "maximum"
    level = list(values)
    while len(level) > 1:
        nxt = [pick(mb, f"{base}_{mode[:3]}", a, b, largest)
               for a, b in zip(level[::2], level[1::2], strict=False)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return level[0]
