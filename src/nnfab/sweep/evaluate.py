"""Evaluate one design point: convert, emulate, estimate, optionally synthesize.

``evaluate_point`` runs on a Dask worker (or anywhere): it takes the float IR graph, applies
the point's configuration with ``nnfab.convert_graph``, measures the accuracy of the
bit-exact emulator on the data, reads the analytic HLS estimate and, with ``synth=True``,
synthesizes the generated Verilog with Yosys. It never raises: a failure is recorded in the
row's ``error`` field (``"ConfigError: ..."``) with whatever was measured before it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.errors import BackendError, ConfigError, NnfabError
from nnfab.ir import Graph
from nnfab.passes.check_reuse_factor import REUSE_OPS
from nnfab.sweep.space import SweepPoint

log = logging.getLogger(__name__)

COLUMNS = (
    "precision", "integer_bits", "reuse", "strategy", "type", "accuracy",
    "DSP", "BRAM_18K", "multipliers", "weight_bits", "latency", "latency_ns", "ii", "fits",
    "reuse_used", "LUT", "FF", "synth_DSP", "rtl_latency", "rtl_ii", "error", "error_type",
    "seconds",
)
"""Columns of a sweep table, in order (``cached`` is added by ``nnfab.sweep.run``).

``DSP`` .. ``ii`` come from ``hm.estimate()`` (an analytic estimate; ``latency`` in clock
cycles), ``LUT`` / ``FF`` / ``synth_DSP`` / ``rtl_latency`` / ``rtl_ii`` from Yosys and the
generated Verilog (``synth=True`` only, else missing)."""


def class_labels(y: Any, n: int) -> np.ndarray:
    """Class labels (n,) from labels (n,) / (n, 1) or one-hot / scores (n, C)."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    if labels.ndim != 1:
        raise ConfigError(f"y: expected class labels (n,) or one-hot labels (n, classes), got "
                          f"shape {np.shape(y)}")
    if labels.shape[0] != n:
        raise ConfigError(f"y: {labels.shape[0]} labels for {n} samples in X")
    if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
        raise ConfigError("y: class labels must be whole numbers (or one-hot rows)")
    return labels.astype(np.int64)


def predicted_classes(outputs: Any) -> np.ndarray:
    """Predicted class per sample: argmax over classes; one output column: ``> 0.5``.

    A model with several outputs is scored on its first output.
    """
    out = np.asarray(outputs[0] if isinstance(outputs, list) else outputs, dtype=np.float64)
    out = out.reshape(out.shape[0], -1)
    if out.shape[1] == 1:
        return (out[:, 0] > 0.5).astype(np.int64)
    return out.argmax(axis=1).astype(np.int64)


def accuracy(outputs: Any, labels: np.ndarray) -> float:
    """Fraction of samples whose predicted class equals its label."""
    return float(np.mean(predicted_classes(outputs) == labels))


def _error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def is_deterministic_error(error_type: str | None) -> bool:
    """Whether a recorded failure would happen again (cacheable): configuration, precision
    and graph errors do; tool failures, timeouts and crashes may not."""
    if error_type is None:
        return True
    import nnfab.errors as errors

    cls = getattr(errors, error_type, None)
    return (isinstance(cls, type) and issubclass(cls, NnfabError)
            and not issubclass(cls, BackendError))


def evaluate_point(
    graph: Graph,
    point: SweepPoint,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    base_config: dict[str, Any] | None = None,
    convert_kwargs: dict[str, Any] | None = None,
    synth: bool = False,
    synth_part: str | None = None,
) -> dict[str, Any]:
    """The row of one design point (see ``COLUMNS``); errors go to ``error``/``error_type``.

    ``graph`` is the float IR graph (not modified); ``labels`` class labels (see
    ``class_labels``); ``convert_kwargs`` go to ``nnfab.convert_graph`` (part, clock_period,
    ...); ``synth_part`` defaults to the model's part.
    """
    from nnfab.api import convert_graph

    start = time.perf_counter()
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(point.as_dict(), type=point.type)
    work = Path(tempfile.mkdtemp(prefix="nnfab_sweep_"))
    try:
        options = dict(convert_kwargs or {})
        options.setdefault("output_dir", work / "prj")
        hm = convert_graph(graph.copy(), point.config(base_config), **options)
        row["reuse_used"] = ",".join(str(r) for r in sorted(
            {n.reuse_factor for n in hm.graph.nodes if n.op in REUSE_OPS}))
        row["accuracy"] = accuracy(hm.predict(x, warn_overflow=False), labels)
        totals = hm.estimate().totals()
        row.update(DSP=totals["dsp"], BRAM_18K=totals["bram_18k"],
                   multipliers=totals["multipliers"], weight_bits=totals["weight_bits"],
                   latency=totals["latency_cycles"], latency_ns=totals["latency_ns"],
                   ii=totals["ii_cycles"], fits=totals["fits"])
        if synth:
            rtl = hm.to_rtl(work / "rtl")
            row.update(rtl_latency=rtl.latency, rtl_ii=rtl.ii)
            report = rtl.synthesize(synth_part or hm.part)
            row.update(LUT=report.lut, FF=report.ff, synth_DSP=report.dsp)
    except Exception as e:  # a failing point is data, not a crash
        row["error"] = _error_text(e)
        row["error_type"] = type(e).__name__
        log.info("point %s failed: %s", point, row["error"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row["seconds"] = round(time.perf_counter() - start, 4)
    return row
