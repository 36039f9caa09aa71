"""Bit-exact predictions on data larger than memory.

``predict_file`` streams a ``.npy`` file (memory-mapped) or an HDF5 dataset through the
emulator in chunks of samples and writes the outputs to ``.npy`` files (memory-mapped),
so memory stays bounded by a few chunks whatever the file size. Overflow counts add up
over the chunks. ``predict_dask`` maps the emulator over the batch-axis blocks of a Dask
array. See docs/large_data.md.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnfab.emulate.interpreter import EmulationResult, Emulator
from nnfab.errors import ConfigError

if TYPE_CHECKING:
    from nnfab.model import NnfabModel

RETURN_LIMIT_BYTES = 1 << 29
"""Without ``output=``, outputs larger than this (512 MiB) are refused: write them to a file."""

CHUNK_INPUT_BYTES = 1 << 26
"""The default chunk holds at most this many bytes of (float64) input."""

NPY_SUFFIXES = (".npy",)
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


# ----------------------------------------------------------------- input files
@contextmanager
def open_samples(path: str | Path, dataset: str | None = None) -> Iterator[Any]:
    """The array in ``path`` without reading it: a read-only memmap of a ``.npy`` file, or
    an ``h5py.Dataset`` (``dataset`` names it; default the file's only dataset)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"input file {str(p)!r} does not exist")
    suffix = p.suffix.lower()
    if suffix in NPY_SUFFIXES:
        if dataset is not None:
            raise ConfigError(f"{p}: dataset={dataset!r} is for HDF5 files; a .npy file holds "
                              "one array")
        try:
            array = np.load(p, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise ConfigError(f"{p}: not a NumPy .npy array file ({e})") from e
        yield array
        return
    if suffix not in HDF5_SUFFIXES:
        raise ConfigError(f"{p}: input files must be .npy or HDF5 "
                          f"({', '.join(HDF5_SUFFIXES)}), got {p.suffix or 'no suffix'!r}")
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise ConfigError(f"{p}: not a readable HDF5 file ({e})") from e
    with f:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append(name)
                     if isinstance(obj, h5py.Dataset) else None)
        if dataset is None:
            if len(names) != 1:
                raise ConfigError(
                    f"{p}: holds {len(names)} datasets; choose one with dataset=... "
                    f"(available: {', '.join(names) or 'none'})")
            dataset = names[0]
        key = dataset.strip("/")
        if key not in names:
            raise ConfigError(f"{p}: no dataset {dataset!r}; available: "
                              f"{', '.join(names) or 'none'}")
        yield f[key]


def check_samples(array: Any, expected: tuple[int, ...], what: str) -> tuple[int, ...]:
    """The per-sample shape the emulator takes for ``array`` (batch first, or flattened
    samples), or a ConfigError naming ``what`` and the expected shape."""
    dtype = np.dtype(array.dtype)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise ConfigError(f"{what}: values must be numbers, got dtype {dtype}")
    shape = tuple(array.shape)
    flat = len(shape) == 2 and len(expected) > 1 and shape[1] == math.prod(expected)
    if len(shape) < 1 or (shape[1:] != expected and not flat):
        want = ", ".join(map(str, ("N", *expected)))
        raise ConfigError(f"{what}: has shape {shape}; the model's input expects ({want}) "
                          "(samples first)")
    return expected


# --------------------------------------------------------------------- results
class CountSum:
    """Overflow counts and totals added up over runs (weight overflows taken once)."""

    def __init__(self, emulator: Emulator) -> None:
        self.static = emulator.static_overflows
        self.overflows: dict[str, dict[str, int]] = {}
        self.totals: dict[str, dict[str, int]] = {}

    def add(self, result: EmulationResult) -> None:
        for node, keys in result.totals.items():
            tot = self.totals.setdefault(node, {})
            over = self.overflows.setdefault(node, {})
            for key, n in keys.items():
                tot[key] = tot.get(key, 0) + n
                over[key] = over.get(key, 0) + result.overflows.get(node, {}).get(key, 0)

    def result(self, outputs: dict[str, np.ndarray]) -> EmulationResult:
        overflows = {k: dict(v) for k, v in self.overflows.items()}
        for node, static in self.static.items():
            overflows.setdefault(node, {}).update(static)
        return EmulationResult(outputs, {}, overflows, {k: dict(v) for k, v in self.totals.items()})


def output_paths(output: str | Path, names: list[str]) -> list[Path]:
    """``output`` for one model output; ``<stem>_<name>.npy`` beside it for several."""
    p = Path(output)
    if p.suffix.lower() != ".npy":
        raise ConfigError(f"output={str(p)!r}: outputs are written as .npy files; give a path "
                          "ending in .npy")
    if not p.parent.is_dir():
        raise ConfigError(f"output={str(p)!r}: the folder {str(p.parent)!r} does not exist")
    if len(names) == 1:
        return [p]
    return [p.with_name(f"{p.stem}_{name.replace('/', '_')}.npy") for name in names]


def default_chunk_size(emulator: Emulator, sample_values: int) -> int:
    """Samples per chunk: enough to keep the emulator's threads busy, input bytes bounded."""
    inner = emulator._chunk_size(1 << 62)
    rows = inner * emulator.threads * 4
    return max(1, min(rows, CHUNK_INPUT_BYTES // max(1, 8 * sample_values)))


def _progress(total: int, enabled: bool, label: str) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("events"), TimeRemainingColumn(), console=console,
                    transient=False, disable=not (enabled and console.is_terminal))


# ---------------------------------------------------------------- predict_file
def predict_file(
    model: NnfabModel,
    path: str | Path,
    *,
    dataset: str | None = None,
    output: str | Path | None = None,
    chunk_size: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray | list[np.ndarray], EmulationResult]:
    """Outputs for every sample of a file, in chunks, plus the summed overflow counts.

    With ``output`` the outputs go to ``.npy`` files and come back as read-only memmaps;
    without it they are returned in memory when at most ``RETURN_LIMIT_BYTES``.
    """
    graph = model.graph
    if len(graph.inputs) != 1:
        raise ConfigError(f"predict_file takes models with one input; this one has "
                          f"{len(graph.inputs)} ({', '.join(graph.inputs)})")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
            chunk_size, int | np.integer) or chunk_size < 1):
        raise ConfigError(f"chunk_size must be a positive number of samples, got {chunk_size!r}")
    emulator = model.emulator
    expected = graph.tensors[graph.inputs[0]].shape
    out_names = list(graph.outputs)
    out_shapes = [graph.tensors[n].shape for n in out_names]
    what = f"{path}" + (f" dataset {dataset!r}" if dataset else "")
    with open_samples(path, dataset) as src:
        check_samples(src, expected, what)
        n = int(src.shape[0])
        shapes = [(n, *s) for s in out_shapes]
        if output is not None:
            paths = output_paths(output, out_names)
            if any(q.resolve() == Path(path).resolve() for q in paths):
                raise ConfigError(f"output={str(output)!r} is the input file; write the "
                                  "outputs to another .npy file")
            outs = [np.lib.format.open_memmap(p, mode="w+", dtype=np.float64, shape=s)
                    for p, s in zip(paths, shapes, strict=True)]
        else:
            size = sum(8 * math.prod(s) for s in shapes)
            if size > RETURN_LIMIT_BYTES:
                raise ConfigError(
                    f"{what}: the outputs for {n} samples take {size / 2**20:,.0f} MiB, over "
                    f"the {RETURN_LIMIT_BYTES >> 20} MiB kept in memory; give output='out.npy'")
            outs = [np.empty(s, dtype=np.float64) for s in shapes]
        step = int(chunk_size) if chunk_size else default_chunk_size(
            emulator, math.prod(expected))
        counts = CountSum(emulator)
        _stream(src, n, step, emulator, outs, out_names, counts, progress)
    if output is not None:
        for a in outs:
            a.flush()
        del outs
        outs = [np.load(p, mmap_mode="r") for p in paths]
    result = counts.result(dict(zip(out_names, outs, strict=True)))
    return (outs[0] if len(outs) == 1 else outs), result


def _stream(src: Any, n: int, step: int, emulator: Emulator, outs: list[np.ndarray],
            out_names: list[str], counts: CountSum, progress: bool) -> None:
    """Run chunk after chunk, reading the next one while the emulator works on this one."""
    starts = list(range(0, n, step))
    src_pages = MappedPages(src)
    out_pages = [MappedPages(a) for a in outs]

    def read(start: int) -> np.ndarray:
        x = np.array(src[start : start + step])  # a copy, not a view of the mapping
        src_pages.release(start + len(x))
        return x

    with _progress(n, progress, "predict") as bar, ThreadPoolExecutor(
            1, thread_name_prefix="nnfab-read") as reader:
        task = bar.add_task("predict", total=n)
        pending: Future[np.ndarray] | None = reader.submit(read, starts[0]) if starts else None
        for i, start in enumerate(starts):
            assert pending is not None
            x = pending.result()
            pending = reader.submit(read, starts[i + 1]) if i + 1 < len(starts) else None
            res = emulator.run(x)
            counts.add(res)
            for a, pages, name in zip(outs, out_pages, out_names, strict=True):
                a[start : start + len(x)] = res.outputs[name]
                pages.release(start + len(x))
            del x, res
            bar.update(task, advance=min(step, n - start))


class MappedPages:
    """Drops the pages of a memory-mapped array's leading rows from this process once they
    are done (``madvise(MADV_DONTNEED)``), so the resident size stays bounded too.

    The data stays in the file (and the page cache: written rows are not lost); reading a
    released row again maps it back in. Not a memmap, or no ``madvise``: does nothing.
    """

    def __init__(self, array: Any) -> None:
        import mmap

        mm = getattr(array, "_mmap", None) if isinstance(array, np.memmap) else None
        self.mm = mm if mm is not None and hasattr(mm, "madvise") else None
        if self.mm is None:
            return
        self.advice = getattr(mmap, "MADV_DONTNEED", None)
        self.page = mmap.PAGESIZE
        # np.memmap maps from the offset rounded down to the allocation granularity
        self.data_start = int(array.offset) % mmap.ALLOCATIONGRANULARITY
        self.row_bytes = int(array.strides[0]) if array.ndim else 0
        self.done = 0

    def release(self, rows: int) -> None:
        """Rows ``[0, rows)`` are done."""
        if self.mm is None or self.advice is None or self.row_bytes <= 0:
            return
        end = (self.data_start + rows * self.row_bytes) // self.page * self.page
        if end > self.done:
            try:
                self.mm.madvise(self.advice, self.done, end - self.done)
            except (OSError, ValueError):
                self.mm = None  # best effort only
                return
            self.done = end


# ---------------------------------------------------------------------- dask
def predict_dask(model: NnfabModel, x: Any) -> Any:
    """Bit-exact outputs for a Dask array of samples, as a lazy Dask array (a list with
    several model outputs): ``map_blocks`` over the batch axis.

    The other axes are rechunked to single blocks. The emulator is embedded in the task
    graph (pickled to the workers of a distributed cluster) with one thread per task:
    Dask runs the blocks in parallel. Overflow counts stay on the workers (no warnings).
    """
    try:
        import dask.array as da
    except ImportError as e:
        raise ConfigError("predict_dask needs dask: pip install 'nnfab[explore]'") from e
    graph = model.graph
    if len(graph.inputs) != 1:
        raise ConfigError(f"predict_dask takes models with one input; this one has "
                          f"{len(graph.inputs)} ({', '.join(graph.inputs)})")
    if not isinstance(x, da.Array):
        raise ConfigError(f"predict_dask takes a dask.array.Array, got {type(x).__name__}")
    expected = graph.tensors[graph.inputs[0]].shape
    check_samples(x, expected, "dask array")
    x = x.rechunk({i: -1 for i in range(1, x.ndim)})
    if x.shape[1:] != expected:
        x = x.reshape((x.shape[0], *expected))
    emulator = copy.copy(model.emulator)
    emulator.threads = 1
    results = []
    for name in graph.outputs:
        shape = graph.tensors[name].shape
        out_nd, in_nd = 1 + len(shape), x.ndim
        extra: dict[str, Any] = {}
        if out_nd < in_nd:
            extra["drop_axis"] = list(range(out_nd, in_nd))
        elif out_nd > in_nd:
            extra["new_axis"] = list(range(in_nd, out_nd))
        results.append(da.map_blocks(
            _dask_block, x, emulator=emulator, output_name=name, dtype=np.float64,
            chunks=(x.chunks[0], *((d,) for d in shape)),
            meta=np.empty((0,) * out_nd, dtype=np.float64), **extra))
    return results[0] if len(results) == 1 else results


def _dask_block(block: np.ndarray, *, emulator: Emulator, output_name: str) -> np.ndarray:
    """One block of samples through the emulator (runs on a Dask worker)."""
    if block.shape[0] == 0:
        shape = emulator.graph.tensors[output_name].shape
        return np.empty((0, *shape), dtype=np.float64)
    return emulator.run(block).outputs[output_name]

