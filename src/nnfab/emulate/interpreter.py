"""Run an IR graph on whole batches with the bit-exact NumPy kernels."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from nnfab.emulate.allocator import tune_allocator
from nnfab.emulate.base import KERNELS, Kernel, OverflowCounter
from nnfab.emulate.kernels import load_all
from nnfab.errors import EmulationError, NnfabError
from nnfab.ir import FixedType, Graph, Overflow

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 24
"""Aim for at most this many bytes of activations per layer and batch chunk."""



@contextmanager
def blas_single_threaded() -> Iterator[None]:
    """Limit the BLAS libraries NumPy uses to one thread for the duration."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController()
    with _blas_controller.limit(limits=1, user_api="blas"):
        yield


_blas_controller = None


def default_threads() -> int:
    """Worker threads for batch chunks: ``NNFAB_THREADS`` or the usable cores (at most 4)."""
    env = os.environ.get("NNFAB_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise EmulationError(f"NNFAB_THREADS must be a positive integer, got {env!r}") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


ArrayInputs = np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]


@dataclass
class EmulationResult:
    """Outputs of one run, optional per-layer traces, and overflow counts."""

    outputs: dict[str, np.ndarray]
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    overflows: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)


class Emulator:
    """Bit-exact executor of a typed, shape-checked IR graph."""

    def __init__(self, graph: Graph, threads: int | None = None) -> None:
        load_all()
        self.threads = max(1, threads if threads is not None else default_threads())
        graph.validate()
        self.graph = graph
        self.kernels: dict[str, Kernel] = {}
        self.static_overflows: dict[str, dict[str, int]] = {}
        for node in graph.nodes:
            cls = KERNELS.get(node.op)
            if cls is None:
                raise EmulationError(
                    f"layer {node.name!r}: the emulator has no kernel for op {node.op!r}; "
                    f"supported: {sorted(KERNELS)}"
                )
            try:
                kernel = cls(node, graph)
            except NnfabError:
                raise
            except Exception as e:
                raise EmulationError(f"while preparing layer {node.name!r} ({node.op}): {e}") from e
            self.kernels[node.name] = kernel
            static = {
                key: getattr(kernel, f"{key}_overflow")
                for key in ("kernel", "bias", "scale", "table", "param")
                if getattr(kernel, f"{key}_overflow", 0)
            }
            if static:
                self.static_overflows[node.name] = static
                log.warning(
                    "layer %r: %s weight value(s) do not fit their type and %s",
                    node.name,
                    sum(static.values()),
                    "were saturated/wrapped (see the overflow report)",
                )

    # ------------------------------------------------------------------ run
    def run(self, inputs: ArrayInputs, *, trace: bool = False) -> EmulationResult:
        """Execute the graph on a batch (first axis) of inputs."""
        tune_allocator()
        feeds = self._normalize_inputs(inputs)
        batch = next(iter(feeds.values())).shape[0]
        chunk = self._chunk_size(batch)
        starts = list(range(0, batch, chunk))
        counters = [OverflowCounter() for _ in starts]
        keep = set(self.graph.outputs)

        def run_chunk(i: int) -> dict[str, np.ndarray]:
            start = starts[i]
            return self._run_chunk(
                {k: v[start : start + chunk] for k, v in feeds.items()}, counters[i], trace, keep
            )

        workers = min(self.threads, len(starts))
        if workers > 1:
            # NumPy releases the GIL in copies, ufuncs and BLAS; one BLAS thread per worker
            # (a threaded BLAS inside each worker oversubscribes the cores).
            with blas_single_threaded(), ThreadPoolExecutor(
                workers, thread_name_prefix="nnfab-emu"
            ) as pool:
                pieces = list(pool.map(run_chunk, range(len(starts))))
        else:
            pieces = [run_chunk(i) for i in range(len(starts))]
        counter = OverflowCounter.merged(counters)
        merged = {
            name: np.concatenate([p[name] for p in pieces]) if len(pieces) > 1 else pieces[0][name]
            for name in pieces[0]
        } if pieces else {}
        outputs = {name: merged[name] for name in self.graph.outputs}
        traces = {n.name: merged[n.name] for n in self.graph.nodes} if trace else {}
        overflows = {k: dict(v) for k, v in counter.counts.items()}
        for node, static in self.static_overflows.items():
            overflows.setdefault(node, {}).update(static)
        return EmulationResult(outputs, traces, overflows, counter.totals)

    def _run_chunk(
        self,
        feeds: dict[str, np.ndarray],
        counter: OverflowCounter,
        trace: bool,
        keep: set[str],
    ) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}
        remaining_uses = {n.name: 0 for n in self.graph.nodes}
        for n in self.graph.nodes:
            for t in n.inputs:
                remaining_uses[t] += 1
        for node in self.graph.nodes:
            counter.node = node.name
            args = [feeds[node.name]] if node.op == "Input" else [values[t] for t in node.inputs]
            try:
                values[node.name] = self.kernels[node.name](args, counter)
            except NnfabError:
                raise
            except Exception as e:
                raise EmulationError(f"while executing layer {node.name!r} ({node.op}): {e}") from e
            if not trace:
                for t in node.inputs:
                    remaining_uses[t] -= 1
                    if remaining_uses[t] == 0 and t not in keep:
                        del values[t]
        return values

    def _chunk_size(self, batch: int) -> int:
        per_sample = max(self.graph.tensors[n.name].size for n in self.graph.nodes) * 8 * 4
        return max(1, min(batch, CHUNK_BYTES // max(1, per_sample)))

    def _normalize_inputs(self, inputs: ArrayInputs) -> dict[str, np.ndarray]:
        names = self.graph.inputs
        if isinstance(inputs, Mapping):
            unknown = set(inputs) - set(names)
            if unknown:
                raise EmulationError(f"unknown input(s) {sorted(unknown)}; model inputs: {names}")
            arrays = [inputs.get(n) for n in names]
        elif isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
            arrays = [inputs]
        else:
            arrays = list(inputs)
        if len(arrays) != len(names) or any(a is None for a in arrays):
            raise EmulationError(f"the model has {len(names)} input(s) {names}; got {len(arrays)}")
        feeds: dict[str, np.ndarray] = {}
        batch = None
        for name, a in zip(names, arrays, strict=True):
            a = np.asarray(a, dtype=np.float64)
            expected = self.graph.tensors[name].shape
            if a.shape == expected:  # one sample without a batch axis
                a = a[None]
            elif a.ndim == 2 and len(expected) > 1 and a.shape[1] == np.prod(expected):
                a = a.reshape(a.shape[0], *expected)  # flattened samples, row-major
            if a.shape[1:] != expected:
                raise EmulationError(
                    f"input {name!r}: expected shape (batch, {', '.join(map(str, expected))}), "
                    f"got {a.shape}{_layout_hint(a.shape, expected)}"
                )
            if batch is not None and a.shape[0] != batch:
                raise EmulationError(
                    f"inputs have different batch sizes ({batch} and {a.shape[0]})"
                )
            batch = a.shape[0]
            feeds[name] = a
        return feeds


OVERFLOW_ACTIONS = {
    Overflow.WRAP: "wrapped around",
    Overflow.SAT: "saturated",
    Overflow.SAT_SYM: "saturated (symmetric)",
    Overflow.SAT_ZERO: "were set to zero (AP_SAT_ZERO)",
}
"""What a cast does to a value outside its type's range, by overflow mode."""


def cast_type(graph: Graph, node_name: str, key: str) -> FixedType | None:
    """The type a run-time cast ``key`` (result, accum, exp_sum, ...) of a layer casts to."""
    node = graph.node(node_name)
    if key == "result":
        return graph.tensors[node.output].type
    return node.precision.get(key)


def overflow_messages(
    graph: Graph, overflows: Mapping[str, Mapping[str, int]],
    totals: Mapping[str, Mapping[str, int]],
) -> list[str]:
    """One message per layer whose run-time casts overflowed: per cast the count, out of
    how many values, the type and whether values saturated or wrapped.

    Weight casts (counts without totals) are left out: the emulator warns about them once
    when it is built.
    """
    messages = []
    for node in graph.nodes:
        counted = totals.get(node.name, {})
        parts = []
        for key, n in overflows.get(node.name, {}).items():
            if not n or key not in counted:
                continue
            t = cast_type(graph, node.name, key)
            if t is None:
                parts.append(f"{key} cast: {n} of {counted[key]} values overflowed")
            else:
                parts.append(f"{key} cast to {t}: {n} of {counted[key]} values "
                             f"{OVERFLOW_ACTIONS[t.overflow]}")
        if parts:
            messages.append(
                f"layer {node.name!r}: values overflowed at {len(parts)} cast(s) during this "
                f"run: {'; '.join(parts)}. Widen these types, or silence this with "
                "warn_overflow=False / NNFAB_WARN_OVERFLOW=0"
            )
    return messages


def _layout_hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    """When ``got`` is the channels-first form of a channels-last ``expected``, say how to
    transpose it."""
    if len(expected) < 2 or len(got) != len(expected) + 1:
        return ""
    channels_first = (expected[-1], *expected[:-1])
    if tuple(got[1:]) != channels_first:
        return ""
    rank = len(got)
    axes = ", ".join(str(i) for i in (0, *range(2, rank), 1))
    return (f"; this looks channels-first: nnfab takes channels-last samples, "
            f"pass np.transpose(x, ({axes}))")
