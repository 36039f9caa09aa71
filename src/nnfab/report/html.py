"""One self-contained HTML file about a converted model (``write_report``).

The page opens offline: CSS is inline, the graph is inline SVG drawn by
``graph_svg``, figures are PNGs embedded as base64 ``data:`` URLs, and there is no
script, font or link to anything outside the file. It holds:

- the graph and a per-layer table (op, output shape, types, ReuseFactor, strategy, the
  analytic estimate's latency / II / multipliers / DSP / BRAM, overflow counts of the
  last emulator run),
- totals of the estimate, Yosys figures of the Verilog (``synth=True``, or read from
  ``<output_dir>/rtl/synth/report.json`` when an earlier synthesis left it), the vendor
  HLS reports when the project was built (``nnfab.backends.hls.reports.read_report``),
- float vs fixed-point accuracy on ``X``/``y``, which engines agreed bit for bit with
  the emulator (``verify``), and the profiling figures (``nnfab.profiling``, when it
  imports and ``X`` is given) plus any ``figures`` passed in.

Every string from the model or the user is escaped by jinja2's autoescape.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnfab.errors import ConfigError
from nnfab.ir import FixedType, Graph
from nnfab.report.graph_svg import graph_svg

log = logging.getLogger(__name__)

REPORT_NAME = "nnfab_report.html"
"""Default file name, in the model's ``output_dir``."""
VERIFY_ENGINES = ("csim", "rtl")
VERIFY_SAMPLES = 200
"""Samples (the first ones of ``X``) run through each engine of ``verify``."""
PROFILE_SAMPLES = 10_000
"""At most this many samples of ``X`` go to the profiling functions."""
FIG_DPI = 100
WIDE_TYPE = FixedType(40, 20, True, "AP_RND_CONV", "AP_SAT")
"""Type of every tensor and weight in the wide copy used as float reference without a
``model``; accumulators get ``WIDE_ACCUM`` (they must wrap); lookup tables stay as typed."""
WIDE_ACCUM = FixedType(96, 48)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class EngineCheck:
    """One row of the bit-exactness table."""

    engine: str
    label: str
    status: str = "not run"  # "agree", "differ", "error", "not run"
    samples: int = 0
    detail: str = ""


@dataclass
class Sections:
    """Everything the template shows (built by ``collect``)."""

    meta: dict[str, Any]
    svg: str
    layers: list[dict[str, Any]]
    estimate: dict[str, Any] | None = None
    estimate_error: str = ""
    yosys: dict[str, Any] | None = None
    yosys_note: str = ""
    vendor: dict[str, Any] | None = None
    vendor_note: str = ""
    accuracy: dict[str, Any] | None = None
    accuracy_note: str = ""
    checks: list[EngineCheck] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    figure_notes: list[str] = field(default_factory=list)
    overflow_note: str = ""


# ------------------------------------------------------------------ public
def write_report(
    hm: Any,
    path: str | Path | None = None,
    *,
    X: Any = None,
    y: Any = None,
    model: Any = None,
    figures: Mapping[str, Any] | None = None,
    verify: Iterable[str] | str = (),
    synth: bool = False,
) -> Path:
    """Write the HTML report of ``hm`` (an ``NnfabModel``); returns the file's path.

    ``path`` defaults to ``<hm.output_dir>/nnfab_report.html``. ``X`` (a batch, first
    axis samples) is run through the emulator for the overflow counts and accuracy, and
    given to ``nnfab.profiling``; ``y`` holds class labels or one-hot rows for ``X``.
    The float reference is ``model`` (a Keras model, or any callable ``model(X)``), else
    a copy of the graph with every type widened (``WIDE_TYPE``). ``figures`` maps a
    caption to a matplotlib Figure or PNG bytes. ``verify`` names engines among
    ``"csim"`` (g++ C simulation) and ``"rtl"`` (Verilator) to compare bit for bit with
    the emulator on the first ``VERIFY_SAMPLES`` samples of ``X``. ``synth=True`` runs
    Yosys on the Verilog for ``hm.part``.
    """
    target = Path(path) if path is not None else Path(hm.output_dir) / REPORT_NAME
    text = render_report(hm, X=X, y=y, model=model, figures=figures, verify=verify,
                         synth=synth)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    log.info("wrote the HTML report %s", target)
    return target


def render_report(
    hm: Any,
    *,
    X: Any = None,
    y: Any = None,
    model: Any = None,
    figures: Mapping[str, Any] | None = None,
    verify: Iterable[str] | str = (),
    synth: bool = False,
) -> str:
    """The report's HTML text (``write_report`` without writing)."""
    sections = collect(hm, X=X, y=y, model=model, figures=figures, verify=verify,
                       synth=synth)
    return render(sections)


def render(sections: Sections) -> str:
    """Fill the jinja2 template (autoescaped) with ``sections``."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = _num
    template = env.get_template("report.html.j2")
    # the SVG is built from escaped strings in graph_svg, so it is safe markup
    return template.render(s=sections, svg=Markup(sections.svg))


def load_project(root: str | Path) -> Any:
    """The ``NnfabModel`` of a project directory written by ``NnfabModel.write``: its
    ``nnfab_model.json`` and ``nnfab_config.yml``, and the settings in ``project.tcl``
    (accelerator projects through ``nnfab.accel.project.load_accel_model``)."""
    import re

    from nnfab.config import load_config
    from nnfab.model import NnfabModel

    root = Path(root)
    ir_file = root / "nnfab_model.json"
    if not ir_file.is_file():
        raise ConfigError(f"{root} is not a converted nnfab project (no nnfab_model.json); "
                          "write one with NnfabModel.write() or nnfab convert")
    if (root / "accel" / "accel.json").is_file():
        from nnfab.accel.project import load_accel_model

        return load_accel_model(root)
    settings: dict[str, Any] = {}
    tcl = root / "project.tcl"
    if tcl.is_file():
        text = tcl.read_text()
        for key in ("project_name", "backend", "part", "clock_period"):
            m = re.search(rf'^set {key} "?([^"\n]+?)"?\s*$', text, re.MULTILINE)
            if m:
                settings[key] = m.group(1)
    if "clock_period" in settings:
        settings["clock_period"] = float(settings["clock_period"])
    config_file = root / "nnfab_config.yml"
    config = load_config(config_file) if config_file.is_file() else {}
    return NnfabModel(Graph.load(ir_file), config, output_dir=root, **settings)


# ------------------------------------------------------------------ collect
def collect(
    hm: Any,
    *,
    X: Any = None,
    y: Any = None,
    model: Any = None,
    figures: Mapping[str, Any] | None = None,
    verify: Iterable[str] | str = (),
    synth: bool = False,
) -> Sections:
    """Run what the options ask for and gather the report's sections."""
    engines = _engines(verify)
    x = None if X is None else np.asarray(X, dtype=np.float64)
    if engines and x is None:
        raise ConfigError(f"verify={engines!r} needs inputs: pass X (a batch of samples)")
    if y is not None and x is None:
        raise ConfigError("y (labels) given without X: pass the inputs X they belong to")
    graph: Graph = hm.graph
    s = Sections(meta=_meta(hm), svg=graph_svg(graph), layers=[])

    fixed_out = None
    if x is not None:
        fixed_out = _first(hm.predict(x))  # also fills hm.last_result (overflows)
    s.layers = _layer_rows(hm)
    if hm.last_result is None:
        s.overflow_note = "no emulator run yet: pass X (or call hm.predict) for overflow counts"
    try:
        est = hm.estimate()
        s.estimate = est.as_dict()
        by_name = {row["name"]: row for row in s.estimate["layers"]}
        for row in s.layers:
            row["estimate"] = by_name.get(row["name"])
    except Exception as e:  # the rest of the report stays useful
        log.warning("report: no HLS estimate: %s", e)
        s.estimate_error = f"{type(e).__name__}: {e}"

    rtl_project: list[Any] = []  # built once, on first need

    def rtl() -> Any:
        if not rtl_project:
            rtl_project.append(hm.to_rtl())
        return rtl_project[0]

    if x is not None:
        s.checks = [_check(hm, engine, x, rtl) if engine in engines else
                    EngineCheck(engine, _ENGINE_LABELS[engine]) for engine in VERIFY_ENGINES]
    else:
        s.checks = [EngineCheck(e, _ENGINE_LABELS[e]) for e in VERIFY_ENGINES]
    s.yosys, s.yosys_note = _yosys(hm, synth, rtl)
    s.vendor, s.vendor_note = _vendor(hm)
    if x is not None and fixed_out is not None:
        s.accuracy, s.accuracy_note = _accuracy(hm, x, y, model, fixed_out)
    else:
        s.accuracy_note = "no data given: pass X (and y) for float vs fixed-point accuracy"
    s.figures, s.figure_notes = _figures(hm, x, model, figures)
    return s


_ENGINE_LABELS = {"csim": "HLS C simulation (g++)", "rtl": "Verilog (Verilator)"}


def _engines(verify: Iterable[str] | str | bool) -> tuple[str, ...]:
    if verify is True:
        return VERIFY_ENGINES
    if not verify:
        return ()
    names = (verify,) if isinstance(verify, str) else tuple(verify)
    for name in names:
        if name not in VERIFY_ENGINES:
            raise ConfigError(f"verify: unknown engine {name!r}; allowed: "
                              f"{', '.join(VERIFY_ENGINES)}")
    return names


def _meta(hm: Any) -> dict[str, Any]:
    from nnfab import __version__

    graph: Graph = hm.graph
    title = getattr(hm, "project_name", None) or graph.name
    return {
        "title": title, "graph": graph.name, "layers": len(graph.nodes),
        "backend": getattr(hm, "backend", "?"), "part": getattr(hm, "part", "?"),
        "board": getattr(hm, "board", None), "clock_period": getattr(hm, "clock_period", None),
        "io_type": graph.io_type, "output_dir": str(getattr(hm, "output_dir", "")),
        "inputs": ", ".join(graph.inputs), "outputs": ", ".join(graph.outputs),
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
    }


def _first(out: Any) -> np.ndarray:
    return np.asarray(out[0] if isinstance(out, list) else out)


def _layer_rows(hm: Any) -> list[dict[str, Any]]:
    graph: Graph = hm.graph
    result = hm.last_result
    rows = []
    for node in graph.nodes:
        tensor = graph.tensors[node.name]
        types = [("result", str(tensor.type) if tensor.type is not None else "-")]
        types += [(k, str(v)) for k, v in node.precision.items()]
        overflows: list[tuple[str, int, int | None]] | None = None
        if result is not None:
            counts = result.overflows.get(node.name, {})
            totals = result.totals.get(node.name, {})
            overflows = [(k, int(n), totals.get(k)) for k, n in counts.items() if n]
        rows.append({
            "name": node.name, "op": node.op, "source_class": node.source_class,
            "shape": "(" + ", ".join(str(d) for d in tensor.shape) + ")",
            "types": types, "reuse_factor": node.reuse_factor, "strategy": node.strategy,
            "inputs": list(node.inputs), "overflows": overflows, "estimate": None,
        })
    return rows


# ------------------------------------------------------------------ engines
def _emulate(hm: Any, x: np.ndarray) -> np.ndarray:
    """Emulator outputs without touching ``hm.last_result`` (first output)."""
    run = hm.emulator.run(x)
    return np.asarray(run.outputs[hm.graph.outputs[0]])


def _compare(check: EngineCheck, out: Any, ref: np.ndarray) -> EngineCheck:
    got = np.asarray(out, dtype=np.float64)
    if got.size != ref.size:
        check.status = "differ"
        check.detail = f"output shape {got.shape}, emulator {ref.shape}"
        return check
    got = got.reshape(ref.shape)
    rows = np.any((got != ref).reshape(len(ref), -1), axis=1)
    check.status = "differ" if rows.any() else "agree"
    if rows.any():
        check.detail = f"{int(rows.sum())} of {len(ref)} samples differ"
    return check


def _check(hm: Any, engine: str, x: np.ndarray, rtl: Any) -> EngineCheck:
    sub = x[:VERIFY_SAMPLES]
    check = EngineCheck(engine, _ENGINE_LABELS[engine], samples=len(sub))
    try:
        ref = _emulate(hm, sub)
        if engine == "csim":
            out = _first(hm.predict(sub, engine="csim"))
        else:
            out = rtl().simulate(sub).outputs
    except Exception as e:  # a missing tool must not lose the rest of the report
        log.warning("report: %s check failed: %s", engine, e)
        check.status, check.detail = "error", f"{type(e).__name__}: {e}"
        return check
    return _compare(check, out, ref)


def _yosys(hm: Any, synth: bool, rtl: Any) -> tuple[dict[str, Any] | None, str]:
    if synth:
        try:
            return rtl().synthesize(hm.part).as_dict(), ""
        except Exception as e:
            log.warning("report: Yosys synthesis failed: %s", e)
            return None, f"Yosys synthesis failed: {type(e).__name__}: {e}"
    path = Path(hm.output_dir) / "rtl" / "synth" / "report.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            return None, f"cannot read {path}: {e}"
        return data, f"read from {path}"
    return None, "not run (synth=True, or nnfab rtl PRJ --synth, synthesizes the Verilog)"


def _vendor(hm: Any) -> tuple[dict[str, Any] | None, str]:
    from nnfab.backends.hls.reports import read_report, report_files

    root = Path(hm.output_dir)
    if not root.is_dir() or not report_files(root):
        return None, "no vendor HLS report in the project (run the build with the tools)"
    try:
        return read_report(root), ""
    except Exception as e:
        log.warning("report: cannot read the vendor reports of %s: %s", root, e)
        return None, f"cannot read the vendor reports: {type(e).__name__}: {e}"


# ------------------------------------------------------------------ accuracy
def wide_copy(graph: Graph) -> Graph:
    """A copy of a typed graph with every type widened: ``WIDE_TYPE`` for tensors and
    weights, ``WIDE_ACCUM`` for accumulators; lookup-table types are kept."""
    wide = graph.copy()
    for node in wide.nodes:
        tensor = wide.tensors[node.name]
        if tensor.type is not None:
            tensor.type = WIDE_TYPE
        for key in list(node.precision):
            if key == "accum":
                node.precision[key] = WIDE_ACCUM
            elif "table" not in key:
                node.precision[key] = WIDE_TYPE
    return wide


def _float_outputs(hm: Any, x: np.ndarray, model: Any) -> tuple[np.ndarray, str]:
    if model is None:
        from nnfab.emulate import Emulator

        run = Emulator(wide_copy(hm.graph)).run(x)
        return (np.asarray(run.outputs[hm.graph.outputs[0]], dtype=np.float64),
                f"wide-typed emulator copy ({WIDE_TYPE}, accumulators {WIDE_ACCUM})")
    if hasattr(model, "predict") and hasattr(model, "layers"):  # Keras
        out = model.predict(x, verbose=0)
        source = f"Keras model {getattr(model, 'name', '')}".strip()
    elif callable(model):
        out = model(x)
        source = f"model(X) of {type(model).__name__}"
    else:
        raise ConfigError(f"model must be a Keras model or a callable model(X) -> outputs, "
                          f"got {type(model).__name__}")
    if isinstance(out, list | tuple):
        out = out[0]
    if hasattr(out, "detach"):  # torch tensor
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.float64), source


def _classes(out: np.ndarray) -> np.ndarray:
    flat = out.reshape(len(out), -1)
    if flat.shape[1] == 1:
        return (flat[:, 0] > 0.5).astype(np.int64)
    return np.argmax(flat, axis=1)


def _labels(y: Any, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if len(arr) != n:
        raise ConfigError(f"y has {len(arr)} rows but X has {n} samples")
    if arr.ndim >= 2 and arr.reshape(n, -1).shape[1] > 1:
        return np.argmax(arr.reshape(n, -1), axis=1)
    return arr.reshape(n).astype(np.int64)


def _accuracy(hm: Any, x: np.ndarray, y: Any, model: Any,
              fixed_out: np.ndarray) -> tuple[dict[str, Any] | None, str]:
    labels = _labels(y, len(x)) if y is not None else None
    try:
        float_out, source = _float_outputs(hm, x, model)
    except ConfigError:
        raise
    except Exception as e:
        log.warning("report: no float reference: %s", e)
        return None, f"float reference failed: {type(e).__name__}: {e}"
    fixed_cls = _classes(fixed_out)
    out: dict[str, Any] = {"samples": len(x), "float_source": source}
    if float_out.size == fixed_out.size:
        float_out = float_out.reshape(fixed_out.shape)
        float_cls = _classes(float_out)
        out["agreement"] = float(np.mean(float_cls == fixed_cls))
        out["max_abs_diff"] = float(np.max(np.abs(float_out - fixed_out)))
    else:
        float_cls = None
    if labels is not None:
        out["fixed_accuracy"] = float(np.mean(fixed_cls == labels))
        if float_cls is not None:
            out["float_accuracy"] = float(np.mean(float_cls == labels))
    note = "" if labels is not None else "no labels given: accuracy needs y"
    return out, note


# ------------------------------------------------------------------ figures
def _png(name: str, fig: Any) -> bytes:
    if isinstance(fig, bytes | bytearray):
        if not bytes(fig).startswith(PNG_SIGNATURE):
            raise ConfigError(f"figures[{name!r}]: bytes that are not a PNG file")
        return bytes(fig)
    if not hasattr(fig, "savefig"):
        raise ConfigError(f"figures[{name!r}] must be a matplotlib Figure or PNG bytes, got "
                          f"{type(fig).__name__}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIG_DPI, bbox_inches="tight")
    return buf.getvalue()


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _close(fig: Any) -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and hasattr(fig, "savefig"):
        pyplot.close(fig)


def _profiling(hm: Any, x: np.ndarray, model: Any) -> tuple[dict[str, Any], list[str]]:
    try:
        from nnfab.profiling import compare, numerical
    except ImportError as e:
        return {}, [f"nnfab.profiling is not available ({e}): no profiling figures"]
    sub = x[:PROFILE_SAMPLES]
    made: dict[str, Any] = {}
    notes = []
    try:
        made.update(numerical(model=model, hls_model=hm, X=sub))
    except Exception as e:
        log.warning("report: profiling.numerical failed: %s", e)
        notes.append(f"profiling.numerical failed: {type(e).__name__}: {e}")
    if model is not None:
        try:
            made["float vs fixed (profiling.compare)"] = compare(model, hm, sub)
        except Exception as e:
            log.warning("report: profiling.compare failed: %s", e)
            notes.append(f"profiling.compare failed: {type(e).__name__}: {e}")
    return made, notes


def _figures(hm: Any, x: np.ndarray | None, model: Any,
             figures: Mapping[str, Any] | None) -> tuple[list[dict[str, Any]], list[str]]:
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    for name, fig in (figures or {}).items():
        data = _png(str(name), fig)
        out.append(_figure_entry(str(name), data))
    if x is not None:
        made, notes = _profiling(hm, x, model)
        for name, fig in made.items():
            try:
                out.append(_figure_entry(str(name), _png(str(name), fig)))
            finally:
                _close(fig)
    elif not figures:
        notes.append("no figures: pass X for the profiling figures, or figures={...}")
    return out, notes


def _figure_entry(name: str, data: bytes) -> dict[str, Any]:
    width, height = _png_size(data)
    return {"name": name, "data": base64.b64encode(data).decode("ascii"), "width": width,
            "height": height}


def _num(value: Any, digits: int = 1) -> str:
    """Numbers for the page: thousands separators, '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
