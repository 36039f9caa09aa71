"""Conversion time and memory per frontend, and how they grow with the parameter count.

    python benchmarks/bench_convert.py [--repeats 5] [--frontends keras,pytorch,onnx]
                                       [--no-large]

For each model and frontend, times what a user's script does after importing the
framework: ``config_from_*_model`` then ``convert_from_*_model`` (the framework model
is built, and the ONNX file exported from PyTorch, before the clock starts; no project
is written). Models: the three reference networks (the 16-64-32-32-5 jet-tagger MLP,
a 57-32-16-3-16-32-57 autoencoder, a 32x32x3 CNN: Conv 8 3x3 relu, MaxPool 2, Conv 16
3x3 relu, MaxPool 2, Flatten, Dense 10 softmax) and two wide MLPs,
1024-512-512-256-10 (0.92 M parameters) and 2048-1024-1024-512-10 (3.68 M, 4x), to
show that time and memory grow linearly. Every frontend and model is timed in this
one process, after one untimed warm-up conversion per frontend (lazy imports of
nnfab, torch.fx, onnx.reference), so the ratios compare like with like.

Columns: best wall time of ``--repeats`` runs (the minimum: the machine may be shared,
and other load only ever adds time); parameters per second (linear
growth: constant across sizes); peak memory of the conversion as traced by
``tracemalloc`` (NumPy buffers included; measured in a separate run, since tracing
slows the code down); and the ratio of the 3.68 M to the 0.92 M model's time and
memory next to the ratio of their parameter counts.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from rich.console import Console
from rich.table import Table

import nnfab

FRONTENDS = ("keras", "pytorch", "onnx")
REFERENCE = ("mlp", "autoencoder", "cnn")


@dataclass(frozen=True)
class Spec:
    """A network as the three frameworks build it."""

    name: str
    kind: str  # "dense" or "cnn"
    widths: tuple[int, ...] = ()  # dense: input, hidden..., output

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample, channels first (PyTorch / ONNX)."""
        return (3, 32, 32) if self.kind == "cnn" else (self.widths[0],)


SPECS = {
    "mlp": Spec("mlp 16-64-32-32-5", "dense", (16, 64, 32, 32, 5)),
    "autoencoder": Spec("autoencoder 57-32-16-3-16-32-57", "dense", (57, 32, 16, 3, 16, 32, 57)),
    "cnn": Spec("cnn 32x32x3", "cnn"),
    "mlp1m": Spec("mlp 1024-512-512-256-10", "dense", (1024, 512, 512, 256, 10)),
    "mlp4m": Spec("mlp 2048-1024-1024-512-10", "dense", (2048, 1024, 1024, 512, 10)),
}


def _dense_activation(spec: Spec, i: int) -> str:
    """Hidden layers relu; the classifiers end in softmax, the autoencoder is linear."""
    last = i == len(spec.widths) - 2
    if not last:
        return "relu"
    return "linear" if spec.name.startswith("autoencoder") else "softmax"


# ------------------------------------------------------------------ builders
def keras_model(spec: Spec) -> Any:
    import keras

    keras.utils.set_random_seed(0)
    if spec.kind == "cnn":
        inp = keras.Input((32, 32, 3), name="input")
        x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inp)
        x = keras.layers.MaxPooling2D(2, name="pool1")(x)
        x = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
        x = keras.layers.MaxPooling2D(2, name="pool2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        out = keras.layers.Dense(10, activation="softmax", name="output")(x)
        return keras.Model(inp, out)
    inp = keras.Input((spec.widths[0],), name="input")
    x = inp
    for i, n in enumerate(spec.widths[1:]):
        x = keras.layers.Dense(n, activation=_dense_activation(spec, i), name=f"fc{i + 1}")(x)
    return keras.Model(inp, x)


def torch_model(spec: Spec) -> Any:
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    if spec.kind == "cnn":
        layers = [nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                  nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 6 * 6, 10), nn.Softmax(dim=1)]
        return nn.Sequential(*layers).eval()
    layers = []
    for i, (n_in, n_out) in enumerate(zip(spec.widths, spec.widths[1:], strict=False)):
        layers.append(nn.Linear(n_in, n_out))
        act = _dense_activation(spec, i)
        if act == "relu":
            layers.append(nn.ReLU())
        elif act == "softmax":
            layers.append(nn.Softmax(dim=1))
    return nn.Sequential(*layers).eval()


def onnx_model(spec: Spec) -> Any:
    """The PyTorch model exported to ONNX (TorchScript exporter), as a ModelProto."""
    import onnx
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(torch_model(spec), torch.randn(1, *spec.input_shape), buf,
                          dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    return onnx.load_from_string(buf.getvalue())


def converter(frontend: str, spec: Spec) -> tuple[Callable[[], Any], int]:
    """A no-argument function doing config + convert, and the model's parameter count."""
    if frontend == "keras":
        model = keras_model(spec)
        params = int(model.count_params())

        def run() -> Any:
            cfg = nnfab.config_from_keras_model(model, granularity="name")
            return nnfab.convert_from_keras_model(model, hls_config=cfg)

        return run, params
    if frontend == "pytorch":
        model = torch_model(spec)
        params = sum(p.numel() for p in model.parameters())

        def run() -> Any:
            cfg = nnfab.config_from_pytorch_model(model, spec.input_shape, granularity="name")
            return nnfab.convert_from_pytorch_model(model, spec.input_shape, hls_config=cfg)

        return run, params
    if frontend == "onnx":
        model = onnx_model(spec)
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)

        def run() -> Any:
            cfg = nnfab.config_from_onnx_model(model, granularity="name")
            return nnfab.convert_from_onnx_model(model, hls_config=cfg)

        return run, params
    raise ValueError(f"unknown frontend {frontend!r}; choose from {', '.join(FRONTENDS)}")


# ------------------------------------------------------------------ measuring
@dataclass
class Result:
    model: str
    frontend: str
    params: int
    seconds: float
    peak_bytes: int


def measure(run: Callable[[], Any], repeats: int) -> tuple[float, int]:
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        hm = run()
        times.append(time.perf_counter() - t0)
        del hm
    gc.collect()
    tracemalloc.start()
    try:
        hm = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del hm
    return min(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per small model")
    parser.add_argument("--large-repeats", type=int, default=5,
                        help="timed runs per wide MLP")
    parser.add_argument("--frontends", default=",".join(FRONTENDS))
    parser.add_argument("--no-large", action="store_true", help="skip the 0.92 M / 3.68 M MLPs")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads for the PyTorch frontend's shape-recording "
                             "forward pass (1: steadier timings on a shared machine)")
    args = parser.parse_args()
    frontends = [f.strip() for f in args.frontends.split(",") if f.strip()]
    console = Console(width=140)

    t_import = time.perf_counter()
    if "keras" in frontends:
        import keras  # noqa: F401
    if {"pytorch", "onnx"} & set(frontends):
        import torch

        torch.set_num_threads(args.torch_threads)
    if "onnx" in frontends:
        import onnx  # noqa: F401
    console.print(f"framework imports: {time.perf_counter() - t_import:.1f} s (not counted)")

    names = [*REFERENCE, *([] if args.no_large else ["mlp1m", "mlp4m"])]
    results: list[Result] = []
    for frontend in frontends:
        warm, _ = converter(frontend, SPECS["mlp"])
        warm()  # lazy imports inside nnfab and the framework's tracing/exporting code
        for name in names:
            spec = SPECS[name]
            run, params = converter(frontend, spec)
            repeats = args.large_repeats if name.startswith("mlp") and name != "mlp" else (
                args.repeats)
            seconds, peak = measure(run, repeats)
            results.append(Result(spec.name, frontend, params, seconds, peak))
            console.print(f"  {frontend:8s} {spec.name:34s} {seconds * 1e3:9.1f} ms",
                          highlight=False)

    table = Table(title="nnfab conversion: config_from_* + convert_from_* (best of N runs)")
    for col in ("model", "frontend", "parameters", "time (ms)", "parameters/s",
                "peak traced memory (MiB)", "bytes / parameter"):
        table.add_column(col, justify="left" if col in ("model", "frontend") else "right")
    for r in results:
        table.add_row(r.model, r.frontend, f"{r.params:,}", f"{r.seconds * 1e3:,.1f}",
                      f"{r.params / r.seconds:,.0f}", f"{r.peak_bytes / 2**20:,.1f}",
                      f"{r.peak_bytes / r.params:,.0f}")
    console.print(table)

    if not args.no_large:
        scale = Table(title="linearity: 2048-1024-1024-512-10 vs 1024-512-512-256-10")
        for col in ("frontend", "parameter ratio", "time ratio", "memory ratio"):
            scale.add_column(col, justify="left" if col == "frontend" else "right")
        for frontend in frontends:
            small = next(r for r in results if r.frontend == frontend and r.model.startswith(
                "mlp 1024"))
            big = next(r for r in results if r.frontend == frontend and r.model.startswith(
                "mlp 2048"))
            scale.add_row(frontend, f"{big.params / small.params:.2f}",
                          f"{big.seconds / small.seconds:.2f}",
                          f"{big.peak_bytes / small.peak_bytes:.2f}")
        console.print(scale)


if __name__ == "__main__":
    main()
