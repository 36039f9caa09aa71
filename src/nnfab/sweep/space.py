"""The design space of a sweep: its points and the parsing of ranges like ``6..16``.

A point is one (precision, integer bits, reuse factor, strategy) setting, applied to the
whole model: ``Model.Precision = ap_fixed<W, I>``, ``Model.ReuseFactor = R``,
``Model.Strategy = S`` on top of the base configuration.
"""

from __future__ import annotations

import itertools
import numbers
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from nnfab.config import DEFAULT_PRECISION, STRATEGIES, parse_type
from nnfab.errors import ConfigError
from nnfab.ir import FixedType

_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?$")


@dataclass(frozen=True, order=True)
class SweepPoint:
    """One design point: every layer gets ``ap_fixed<precision, integer_bits>``."""

    precision: int
    integer_bits: int
    reuse: int
    strategy: str

    @property
    def type(self) -> str:
        """The fixed-point type of the point, as written in a configuration."""
        return f"ap_fixed<{self.precision},{self.integer_bits}>"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def config(self, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """``base`` (an nnfab configuration) with this point's Model-level settings.

        Only ``Model`` is changed: entries of ``LayerType`` / ``LayerName`` in ``base``
        keep precedence over the point's settings, as everywhere in nnfab.
        """
        config = {k: v for k, v in (base or {}).items()}
        model = dict(config.get("Model", {}))
        precision = model.get("Precision")
        if isinstance(precision, dict):  # keep explicit accum/table keys, replace the default
            precision = {**precision, "default": self.type}
            for key in ("weight", "bias", "result"):
                precision.pop(key, None)
        else:
            precision = self.type
        model.update(Precision=precision, ReuseFactor=self.reuse, Strategy=self.strategy)
        config["Model"] = model
        return config


def parse_int_list(text: str | int | Iterable[int], option: str = "value",
                   minimum: int = 1) -> list[int]:
    """``"6..16"`` (inclusive), ``"6..16:2"`` (step), ``"1,2,4,8"``, ``"8"``, mixes of them
    (``"1,2,8..10"``), an int or an iterable of ints -> a sorted list without duplicates.

    ``option`` names the setting in error messages (``--precision``); every value must be
    at least ``minimum``.
    """
    allowed = (f"allowed: integers >= {minimum} written as a list '1,2,4,8', an inclusive "
               "range '6..16', a range with a step '6..16:2', or a mix '1,2,8..10'")
    values: list[int] = []
    if isinstance(text, bool):
        raise ConfigError(f"{option}: {text!r} is not an integer; {allowed}")
    if isinstance(text, numbers.Integral):
        values = [int(text)]
    elif isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise ConfigError(f"{option}: empty value in {text!r}; {allowed}")
        for part in parts:
            m = _RANGE.match(part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                step = int(m.group(3)) if m.group(3) else 1
                if step < 1:
                    raise ConfigError(f"{option}: step {step} in {part!r} must be >= 1; {allowed}")
                if hi < lo:
                    raise ConfigError(
                        f"{option}: range {part!r} is empty (end {hi} < start {lo}); {allowed}"
                    )
                values.extend(range(lo, hi + 1, step))
                continue
            try:
                values.append(int(part))
            except ValueError:
                raise ConfigError(f"{option}: {part!r} is not an integer or range; "
                                  f"{allowed}") from None
    else:
        try:
            items = list(text)
        except TypeError:
            raise ConfigError(f"{option}: {text!r} is not a list of integers; {allowed}") from None
        for v in items:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ConfigError(f"{option}: {v!r} is not an integer; {allowed}")
            values.append(int(v))
    if not values:
        raise ConfigError(f"{option}: no values given; {allowed}")
    bad = [v for v in values if v < minimum]
    if bad:
        raise ConfigError(f"{option}: {bad[0]} is below {minimum}; {allowed}")
    return sorted(set(values))


def parse_strategies(text: str | Iterable[str], option: str = "strategy") -> list[str]:
    """``"Latency,Resource"`` or an iterable of names -> the strategies, in order given.

    Names are matched case-insensitively against ``nnfab.config.STRATEGIES``.
    """
    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    canonical = {s.lower(): s for s in STRATEGIES}
    out: list[str] = []
    for item in items:
        name = canonical.get(str(item).strip().lower()) if isinstance(item, str) else None
        if name is None:
            raise ConfigError(
                f"{option}: unknown strategy {item!r}; allowed: {', '.join(STRATEGIES)} "
                "(comma-separated for several)"
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"{option}: no strategy given; allowed: {', '.join(STRATEGIES)}")
    return out


def default_integer_bits(base_config: dict[str, Any] | None = None) -> int:
    """Integer bits of the base configuration's default type (``ap_fixed<16,6>``: 6)."""
    precision: Any = (base_config or {}).get("Model", {}).get("Precision", DEFAULT_PRECISION)
    if isinstance(precision, dict):
        precision = precision.get("default", DEFAULT_PRECISION)
    parsed = parse_type(precision, "Model.Precision")
    assert isinstance(parsed, FixedType)
    return parsed.integer


def make_points(
    precision: Any = range(6, 17),
    integer_bits: Any = None,
    reuse: Any = (1, 2, 4, 8),
    strategy: Any = ("Latency", "Resource"),
    base_config: dict[str, Any] | None = None,
) -> list[SweepPoint]:
    """Every combination of the settings, in a fixed order (strategy, reuse, precision, I).

    ``integer_bits``: None (the base configuration's integer bits, 6 for the default
    ``ap_fixed<16,6>``), an int or several (another axis of the sweep).
    """
    widths = parse_int_list(precision, "precision")
    if integer_bits is None:
        ints = [default_integer_bits(base_config)]
    else:
        ints = parse_int_list(integer_bits, "integer_bits", minimum=-64)
    reuses = parse_int_list(reuse, "reuse")
    strategies = parse_strategies(strategy)
    return [
        SweepPoint(w, i, r, s)
        for s, r, w, i in itertools.product(strategies, reuses, widths, ints)
    ]
