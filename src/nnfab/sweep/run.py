"""Run a design-space sweep on Dask distributed, with a per-point cache and progress bar.

The model is converted once, on the client, into the float nnfab IR graph; the graph and
the data are scattered once per sweep (workers fetch them from each other) and each
point (``nnfab.sweep.evaluate``) applies its configuration to a copy. Finished points
are written to ``cache_dir`` as one JSON file per point, named by a content hash of the
graph, the data, the point, the base configuration, the conversion options, ``synth``
and the nnfab version: an interrupted sweep resumes where it stopped and re-running a
finished one starts no cluster at all.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnfab.errors import ConfigError
from nnfab.ir import Graph
from nnfab.sweep.evaluate import COLUMNS, class_labels, evaluate_point, is_deterministic_error
from nnfab.sweep.pareto import DEFAULT_OBJECTIVES, FALLBACKS, pareto_front, resolve_objectives
from nnfab.sweep.space import SweepPoint, make_points

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
NUMERIC_COLUMNS = ("accuracy", "DSP", "BRAM_18K", "multipliers", "weight_bits", "latency",
                   "latency_ns", "ii", "LUT", "FF", "synth_DSP", "rtl_latency", "rtl_ii",
                   "seconds")
FRONTEND_KWARGS = ("input_shape", "weights")
"""Keyword arguments of ``sweep`` used to read the model (PyTorch shape, Keras 2 weights)."""


# ------------------------------------------------------------------ the model
def model_to_graph(model: Any, input_shape: Any = None, weights: Any = None) -> Graph:
    """A Keras model / path, an ONNX path or ModelProto, a PyTorch module / path, a Keras 2
    ``(json, h5)`` pair or an nnfab ``Graph`` -> the float IR graph (``optimize_float``)."""
    from nnfab.frontends.loader import graph_from_file, graph_from_keras_source
    from nnfab.passes import optimize_float

    if isinstance(model, Graph):
        graph = model.copy()
    elif isinstance(model, str | os.PathLike):
        graph = graph_from_file(model, weights, input_shape)
    elif _is_torch_module(model):
        if input_shape is None:
            raise ConfigError("sweep: a PyTorch module needs input_shape=(...) (one sample "
                              "without the batch, channels first)")
        from nnfab.frontends.torch import torch_to_graph

        graph = torch_to_graph(model, input_shape)
    elif type(model).__module__.split(".")[0] in ("onnx", "qonnx"):
        from nnfab.frontends.onnx import onnx_to_graph

        graph = onnx_to_graph(model)
    else:
        graph = graph_from_keras_source(model)
    return optimize_float(graph)


def _is_torch_module(model: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module"
               for c in type(model).__mro__)


def _convert_options(options: dict[str, Any]) -> dict[str, Any]:
    from nnfab.api import convert_graph

    allowed = [p for p in inspect.signature(convert_graph).parameters
               if p not in ("graph", "hls_config")]
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"sweep: unknown keyword {key!r}; allowed: hls_config, "
                f"{', '.join(FRONTEND_KWARGS)}, {', '.join(allowed)}"
            )
    return options


# ------------------------------------------------------------------ hashing
def _sha(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def graph_hash(graph: Graph) -> str:
    """Content hash of an IR graph (structure, attributes, weights, types)."""
    return _sha(graph.to_dict())


def array_hash(*arrays: np.ndarray) -> str:
    """Content hash of arrays (dtype, shape and bytes)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def point_key(point: SweepPoint, context: dict[str, Any]) -> str:
    """Cache key of a point: its settings plus ``context`` (graph/data hashes, options)."""
    from nnfab import __version__

    return _sha({"point": point.as_dict(), "context": context, "nnfab": __version__,
                 "format": CACHE_FORMAT})


class PointCache:
    """One JSON file per finished point in ``directory`` (``<key>.json``); None: no cache."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"cache_dir {str(directory)!r} cannot be created: {e}") from e

    def path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.path(key)
        if path is None or not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            log.warning("sweep cache: ignoring unreadable %s (%s)", path, e)
            return None
        if not isinstance(data, dict) or data.get("key") != key or "row" not in data:
            log.warning("sweep cache: ignoring %s (not a sweep point of this key)", path)
            return None
        return dict(data["row"])

    def put(self, key: str, row: dict[str, Any]) -> None:
        path = self.path(key)
        if path is None:
            return
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "row": row}, indent=1, default=_plain))
        os.replace(tmp, path)  # atomic: an interrupted write never leaves half a file


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ------------------------------------------------------------------ the result
class SweepResult:
    """The table of a sweep (one row per point) with its Pareto front, files and plot."""

    def __init__(self, table: pd.DataFrame, stats: dict[str, Any] | None = None) -> None:
        self.table = table
        self.stats: dict[str, Any] = dict(stats or {})
        """``points``, ``cached``, ``evaluated``, ``failed``, ``seconds``."""

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        s = self.stats
        return (f"SweepResult({len(self)} points, {s.get('failed', 0)} failed, "
                f"{s.get('cached', 0)} from cache)")

    @property
    def failed(self) -> pd.DataFrame:
        """The rows whose evaluation failed (``error`` says why)."""
        return self.table[self.table["error"].notna()]

    def pareto(self, objectives: str | Iterable[str] = DEFAULT_OBJECTIVES) -> pd.DataFrame:
        """The non-dominated points (``nnfab.sweep.pareto``); without synthesis results the
        LUT objective falls back to the estimated DSP count."""
        return pareto_front(self.table, objectives)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table: ``.csv``, or ``.parquet`` / ``.pq`` (pyarrow)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            self.table.to_csv(path, index=False)
        elif suffix in (".parquet", ".pq"):
            self.table.to_parquet(path, index=False)
        else:
            raise ConfigError(f"save: {str(path)!r}: unknown table format {path.suffix!r}; "
                              "allowed suffixes: .csv, .parquet, .pq")
        return path

    def plot(self, path: str | os.PathLike[str],
             objectives: str | Iterable[str] = DEFAULT_OBJECTIVES) -> Path:
        """Scatter plots, accuracy vs resources (LUT, else DSP) and vs latency, the front
        (for ``objectives``) highlighted; written to ``path`` (.png, .pdf, .svg)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        table = self.table[self.table["error"].isna()]
        resolved = resolve_objectives(self.table, objectives)
        front = self.pareto([f"{name}:{sense}" for name, sense in resolved])
        front = front[front["error"].isna()]
        resource = "LUT" if "LUT" in table and table["LUT"].notna().any() else FALLBACKS["LUT"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
        for ax, x_col, x_label in ((axes[0], resource, f"{resource}"),
                                   (axes[1], "latency", "latency (cycles)")):
            for strategy, group in table.groupby("strategy"):
                ax.scatter(group[x_col], group["accuracy"], s=22, alpha=0.55, label=strategy)
            ax.scatter(front[x_col], front["accuracy"], s=70, facecolors="none",
                       edgecolors="red", linewidths=1.5, label="Pareto front")
            ax.set_xlabel(x_label + (" (Yosys)" if x_col == "LUT" else " (estimate)"))
            ax.set_ylabel("accuracy (emulator)")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        names = ", ".join(f"{n} {s}" for n, s in resolved)
        fig.suptitle(f"design-space sweep: {len(table)} points, front on {names}", fontsize=10)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


# ------------------------------------------------------------------ the sweep
def sweep(
    model: Any,
    X: Any,
    y: Any,
    *,
    precision: Any = range(6, 17),
    integer_bits: Any = None,
    reuse: Any = (1, 2, 4, 8),
    strategy: Any = ("Latency", "Resource"),
    synth: bool = False,
    scheduler: Any = None,
    n_workers: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    **convert_kwargs: Any,
) -> SweepResult:
    """Evaluate every (precision, integer bits, reuse, strategy) point of a model.

    ``model``: Keras model or ``.keras``/``.h5`` path, ONNX path, PyTorch module or path
    (with ``input_shape=``), Keras 2 ``(json, h5)`` pair or an nnfab ``Graph``. ``X``:
    inputs; ``y``: class labels (n,) or one-hot (n, C). Precision W means
    ``ap_fixed<W, I>`` for every layer (``Model.Precision``), I from ``integer_bits`` (an
    int or several) or else the base configuration's integer bits (6 for the default
    ``ap_fixed<16,6>``). ``scheduler``: None (a ``LocalCluster`` of ``n_workers``
    single-threaded processes), a ``"tcp://host:8786"`` address or a
    ``distributed.Client``. ``cache_dir``: where finished points are kept (None: no
    cache). ``convert_kwargs``: ``hls_config`` (the base configuration), ``input_shape`` /
    ``weights`` (reading the model) and ``nnfab.convert_graph`` options (``part``,
    ``clock_period``, ``io_type``, ...).
    """
    start = time.perf_counter()
    base_config = convert_kwargs.pop("hls_config", None)
    frontend = {k: convert_kwargs.pop(k) for k in FRONTEND_KWARGS if k in convert_kwargs}
    options = _convert_options(convert_kwargs)
    points = make_points(precision, integer_bits, reuse, strategy, base_config)
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int)
                                  or n_workers < 1):
        raise ConfigError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    x = np.asarray(X)
    if x.ndim < 2:
        raise ConfigError(f"X: expected a batch of samples (n, features...), got shape {x.shape}")
    labels = class_labels(y, x.shape[0])
    graph = model_to_graph(model, **frontend)
    context = {"graph": graph_hash(graph), "data": array_hash(x, labels),
               "config": base_config or {}, "options": options,
               "synth": bool(synth)}
    keys = [point_key(p, context) for p in points]
    cache = PointCache(cache_dir)
    rows: list[dict[str, Any] | None] = []
    for point, key in zip(points, keys, strict=True):
        row = cache.get(key)
        if row is not None:
            log.debug("sweep cache hit: %s (%s)", point, cache.path(key))
            row["cached"] = True
        rows.append(row)
    pending = [i for i, row in enumerate(rows) if row is None]
    n_cached = len(points) - len(pending)
    if n_cached:
        log.info("sweep: %d of %d points from the cache in %s", n_cached, len(points),
                 cache.directory)

    def finished(j: int, row: dict[str, Any]) -> None:
        """Called as each point completes: cache it at once (an interrupt keeps it)."""
        i = pending[j]
        if row.pop("_dask_failure", False):
            pass  # the worker died or the task was lost: try again next time
        elif is_deterministic_error(row.get("error_type")):
            cache.put(keys[i], row)
        row["cached"] = False
        rows[i] = row

    if pending:
        _run_on_dask(graph, x, labels, [points[i] for i in pending], scheduler, n_workers,
                     progress, dict(base_config=base_config, convert_kwargs=options,
                                    synth=bool(synth)), finished)
    import pandas as pd

    table = pd.DataFrame([r for r in rows if r is not None],
                         columns=[*COLUMNS, "cached"])
    for col in NUMERIC_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce")
    failed = int(table["error"].notna().sum())
    stats = {"points": len(points), "cached": n_cached, "evaluated": len(pending),
             "failed": failed, "seconds": round(time.perf_counter() - start, 3)}
    log.info("sweep: %d points (%d evaluated, %d cached, %d failed) in %.1f s",
             len(points), len(pending), n_cached, failed, stats["seconds"])
    return SweepResult(table, stats)


def _unguarded_main_script() -> bool:
    """Whether ``__main__`` is a script file with no ``if __name__ == "__main__":`` guard
    (a spawned worker process would run all of it again)."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path or not os.path.isfile(path):
        return False  # interactive, a notebook, python -c: nothing is re-run
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"""__name__\s*==\s*['"]__main__['"]""", text) is None


def _local_cluster(local_cluster: Any, n: int) -> Any:
    """A LocalCluster of ``n`` worker processes; threads when processes cannot start.

    Worker processes are spawned, and spawning re-imports the caller's ``__main__``: a
    script that calls ``sweep`` at its top level, without ``if __name__ ==
    "__main__":``, makes them fail. The sweep then runs on worker threads (slower: the
    emulator holds the GIL between NumPy calls) and says how to get processes.
    """
    if _unguarded_main_script():
        log.warning(
            "sweep: the running script calls sweep without `if __name__ == \"__main__\":`, "
            "so spawned Dask worker processes would re-run it; using %d worker thread(s) "
            "instead (slower: the emulator holds the GIL between NumPy calls)", n)
        return local_cluster(n_workers=1, threads_per_worker=n, processes=False,
                             dashboard_address=None)
    try:
        cluster = local_cluster(n_workers=n, threads_per_worker=1, processes=True,
                                dashboard_address=None)
    except RuntimeError as e:
        log.warning(
            "sweep: Dask worker processes failed to start (%s); running on %d worker "
            "thread(s) instead. In a script, call sweep under `if __name__ == \"__main__\":` "
            "so that spawned workers can import it", e, n)
        return local_cluster(n_workers=1, threads_per_worker=n, processes=False,
                             dashboard_address=None)
    log.info("sweep: LocalCluster with %d worker process(es)", n)
    return cluster


def _run_on_dask(graph: Graph, x: np.ndarray, labels: np.ndarray, points: list[SweepPoint],
                 scheduler: Any, n_workers: int | None, progress: bool,
                 kwargs: dict[str, Any],
                 finished: Callable[[int, dict[str, Any]], None]) -> None:
    """Evaluate ``points`` on a cluster; ``finished(index, row)`` as each one completes."""
    from distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    closing: list[Any] = []
    if isinstance(scheduler, Client):
        client = scheduler
        if n_workers is not None:
            log.warning("sweep: n_workers applies to the LocalCluster only; ignored")
    elif scheduler is None:
        n = n_workers or max(1, min(os.cpu_count() or 1, len(points)))
        cluster = _local_cluster(LocalCluster, n)
        client = Client(cluster)
        closing += [client, cluster]
    elif isinstance(scheduler, str):
        if n_workers is not None:
            log.warning("sweep: n_workers applies to the LocalCluster only; ignored")
        try:
            client = Client(scheduler, timeout=30)
        except (OSError, TimeoutError) as e:
            raise ConfigError(f"scheduler: cannot connect to {scheduler!r} ({e}); give a "
                              "running Dask scheduler's address, e.g. tcp://host:8786") from e
        closing.append(client)
    else:
        raise ConfigError(f"scheduler must be None, an address 'tcp://host:8786' or a "
                          f"distributed.Client, got {type(scheduler).__name__}")
    futures: dict[Any, int] = {}
    tag = uuid.uuid4().hex[:8]
    try:
        # hash=False: a fresh key per sweep. Content-hashed keys are the same on the next
        # sweep of the same model, and scattering a key the scheduler is still releasing
        # can hang forever (seen: about one sweep in 60 on a 2-worker LocalCluster).
        g_f, x_f, y_f = (client.scatter(v, hash=False) for v in (graph, x, labels))
        for i, p in enumerate(points):
            key = f"nnfab-sweep-{p.strategy}-R{p.reuse}-W{p.precision}-I{p.integer_bits}-{tag}"
            futures[client.submit(evaluate_point, g_f, p, x_f, y_f, key=key, **kwargs)] = i
        with tqdm(total=len(points), desc="sweep", unit="pt", disable=not progress) as bar:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    row = future.result()
                except Exception as e:  # a worker died: record it, go on
                    row = _failure_row(points[i], e)
                finished(i, row)
                if row.get("error"):
                    bar.set_postfix_str(f"{row['type']} R{row['reuse']} failed", refresh=False)
                bar.update(1)
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    finally:
        for c in closing:
            c.close()


def _failure_row(point: SweepPoint, e: BaseException) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(point.as_dict(), type=point.type, error=f"{type(e).__name__}: {e}",
               error_type=type(e).__name__, _dask_failure=True)
    return row
