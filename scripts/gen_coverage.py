"""Write docs/coverage.md: which layers each frontend reads and each backend implements.

    python scripts/gen_coverage.py           # regenerate docs/coverage.md
    python scripts/gen_coverage.py --check   # exit 1 when docs/coverage.md is out of date

Everything in the table comes from the code's own registries:

- Keras 3: ``nnfab.frontends.keras_layers.SUPPORTED_LAYERS``; Keras 2 files and QKeras:
  ``nnfab.frontends.keras_json.SUPPORTED_LAYERS`` / ``QKERAS_LAYERS``, and the QKeras
  quantizers ``nnfab.frontends.qkeras.QUANTIZER_PARAMS`` / ``ACTIVATION_QUANTIZERS``;
- PyTorch: ``nnfab.frontends.torch_layers.MODULES`` / ``FUNCTIONS`` / ``METHODS``;
- ONNX / QONNX: ``nnfab.frontends.onnx_layers.CONVERTERS`` and
  ``nnfab.frontends.onnx_quant.QUANT_CONVERTERS``;
- IR ops: ``nnfab.ir.ops.OPS`` (and ``ACTIVATIONS``, ``MERGE_MODES``, ``POOL_MODES``);
- emulator: ``nnfab.emulate.base.KERNELS``; HLS: ``nnfab.backends.hls.layers.RENDERERS``;
  RTL: ``nnfab.backends.rtl.supported_ops()``.

The only knowledge kept here is which table row each frontend name belongs to
(``KERAS_ROWS``, ``TORCH_*_ROWS``, ``ONNX_ROWS``). A name a registry gains or loses
without this file following, or an IR op that no row shows, stops the generator with
an error saying what to add: the table cannot silently fall behind the code.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "coverage.md"
COMMAND = "python scripts/gen_coverage.py"


class CoverageError(RuntimeError):
    """A registry and this generator's row assignment disagree."""


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    ops: tuple[str, ...]  # IR ops the backends must implement; () = nothing to implement
    no_op_cell: str = ""  # backend cell when ops is empty


def rows() -> list[Row]:
    from nnfab.ir.ops import ACTIVATIONS, GLOBAL_POOL_MODES, MERGE_MODES, POOL_MODES

    pools = "/".join(POOL_MODES)
    global_pools = "/".join(GLOBAL_POOL_MODES)
    return [
        Row("Dense", "Dense (fully connected)", ("Dense",)),
        Row("Conv1D", "Conv 1-D", ("Conv1D",)),
        Row("Conv2D", "Conv 2-D", ("Conv2D",)),
        Row("DepthwiseConv1D", "depthwise Conv 1-D", ("DepthwiseConv1D",)),
        Row("DepthwiseConv2D", "depthwise Conv 2-D", ("DepthwiseConv2D",)),
        Row("Pooling1D", f"pooling 1-D ({pools})", ("Pooling1D",)),
        Row("Pooling2D", f"pooling 2-D ({pools})", ("Pooling2D",)),
        Row("GlobalPooling1D", f"global pooling 1-D ({global_pools})", ("GlobalPooling1D",)),
        Row("GlobalPooling2D", f"global pooling 2-D ({global_pools})", ("GlobalPooling2D",)),
        Row("BatchNormalization", "batch normalization (per-channel scale and bias)",
            ("BatchNormalization",)),
        Row("Activation", f"activation ({', '.join(ACTIVATIONS)}; relu with max_value = relu6; "
            "prelu with a learned per-channel weight alpha)", ("Activation",)),
        Row("Softmax", "softmax (last axis)", ("Softmax",)),
        Row("SimpleRNN", "SimpleRNN (return_sequences, go_backwards)", ("SimpleRNN",)),
        Row("LSTM", "LSTM (Keras gate order i, f, c, o)", ("LSTM",)),
        Row("GRU", "GRU (reset_after true or false)", ("GRU",)),
        Row("Embedding", "embedding (row lookup by integer index; out of range: zeros)",
            ("Embedding",)),
        Row("Conv1DTranspose", "transposed Conv 1-D (strides, pads, output_padding)",
            ("Conv1DTranspose",)),
        Row("Conv2DTranspose", "transposed Conv 2-D (strides, pads, output_padding)",
            ("Conv2DTranspose",)),
        Row("LayerNormalization", "layer normalization (last axis; 1/sqrt table by octave)",
            ("LayerNormalization",)),
        Row("Merge", f"element-wise merge ({', '.join(MERGE_MODES)})", ("Merge",)),
        Row("Dot", "dot product of two vectors (axes = 1)", ("Dot",)),
        Row("MatMul", "matrix product of two activations, batched over leading axes",
            ("MatMul",)),
        Row("MultiHeadAttention", "multi-head attention over the sequence (no masks): "
            "projections, per-head MatMul, softmax", ("Dense", "MatMul", "Softmax",
                                                    "Permute", "Reshape")),
        Row("GarNet", "GarNet / GarNetStack (simplified, features + vertex count; mean, sum, "
            "max collapse): Dense, exp(-d^2) table, vertex masks, MatMul, means",
            ("Dense", "Activation", "VertexMask", "VertexMean", "MatMul", "GlobalPooling1D",
             "Permute", "Reshape")),
        Row("Concatenate", "concatenate", ("Concatenate",)),
        Row("Flatten", "flatten", ("Flatten",)),
        Row("Reshape", "reshape", ("Reshape",)),
        Row("Dropout", "identity at inference (dropout, noise)", ("Dropout",)),
        Row("MultiThreshold", "thresholds (FINN MultiThreshold, bipolar sign)",
            ("MultiThreshold",)),
        Row("ElementCast", "per-element fixed-point cast (HGQ proxy FixedPointQuantizer, "
            "HGQ2 per-element data quantizers)", ("ElementCast",)),
        Row("ZeroPadding1D", "zero padding 1-D", ("ZeroPadding1D",)),
        Row("ZeroPadding2D", "zero padding 2-D", ("ZeroPadding2D",)),
        Row("Cropping1D", "cropping 1-D", ("Cropping1D",)),
        Row("Cropping2D", "cropping 2-D", ("Cropping2D",)),
        Row("UpSampling1D", "upsampling 1-D (nearest, integer factors)", ("UpSampling1D",)),
        Row("UpSampling2D", "upsampling 2-D (nearest, integer factors)", ("UpSampling2D",)),
        Row("Permute", "permute (a real reordering of the sample's axes)", ("Permute",)),
        Row("Slice", "slice of any axes, strided or not (data at constant indices)",
            ("Slice",)),
        Row("SeparableConv1D", "separable Conv 1-D: depthwise, then a 1x1 Conv",
            ("DepthwiseConv1D", "Conv1D")),
        Row("SeparableConv2D", "separable Conv 2-D: depthwise, then a 1x1 Conv",
            ("DepthwiseConv2D", "Conv2D")),
        Row("ActQuant", "activation quantizer: a cast to a fixed-point type (the result type "
            "of the layer before, else a linear Activation)", ("Activation",)),
        Row("WeightQuant", "weight / bias quantizer: applied to the constants, which keep "
            "the exact type", (), "folded"),
        Row("View", "layout-only op: absorbed into the element order, no IR node of its "
            "own", (), "no node"),
    ]


# --------------------------------------------------------------- row assignment
_POOL = {f"{kind}Pooling{d}D": (f"{ir}Pooling{d}D",)
         for kind, ir in (("Max", ""), ("Average", ""), ("GlobalMax", "Global"),
                          ("GlobalAverage", "Global"))
         for d in (1, 2)}
"""Keras MaxPooling1D ... GlobalAveragePooling2D -> their pooling rows."""
_DROPOUT = ("Dropout",)

KERAS_ROWS: dict[str, tuple[str, ...]] = {
    "InputLayer": (),
    "Dense": ("Dense",),
    "Conv1D": ("Conv1D",),
    "Conv2D": ("Conv2D",),
    "DepthwiseConv1D": ("DepthwiseConv1D",),
    "DepthwiseConv2D": ("DepthwiseConv2D",),
    **_POOL,
    "BatchNormalization": ("BatchNormalization",),
    "Rescaling": ("BatchNormalization",),  # x * scale + offset per channel
    "Normalization": ("BatchNormalization",),  # (x - mean) / std per channel
    "Activation": ("Activation", "Softmax"),
    "ReLU": ("Activation",),
    "LeakyReLU": ("Activation",),
    **{n: ("Activation",) for n in ("ELU", "PReLU", "ThresholdedReLU")},
    "Softmax": ("Softmax",),
    **{n: (n,) for n in ("SimpleRNN", "LSTM", "GRU")},
    "TimeDistributed": ("Dense",),
    "EinsumDense": ("Dense",),
    "Bidirectional": ("SimpleRNN", "LSTM", "GRU"),
    **{n: (n,) for n in ("Embedding", "Conv1DTranspose", "Conv2DTranspose",
                         "LayerNormalization")},
    "Add": ("Merge",),
    "Subtract": ("Merge",),
    "Multiply": ("Merge",),
    "Average": ("Merge",),
    "Maximum": ("Merge",),
    "Minimum": ("Merge",),
    "Dot": ("Dot",),
    "MultiHeadAttention": ("MultiHeadAttention",),
    "FixedPointQuantizer": ("ElementCast",),
    "GarNet": ("GarNet",),
    "GarNetStack": ("GarNet",),
    "Concatenate": ("Concatenate",),
    "Flatten": ("Flatten",),
    "Reshape": ("Reshape",),
    "Dropout": _DROPOUT,
    "Identity": _DROPOUT,
    "SpatialDropout1D": _DROPOUT,
    "SpatialDropout2D": _DROPOUT,
    "GaussianNoise": _DROPOUT,
    "GaussianDropout": _DROPOUT,
    "AlphaDropout": _DROPOUT,
    "ActivityRegularization": _DROPOUT,
    **{n: (n,) for n in ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
                         "UpSampling1D", "UpSampling2D", "Permute", "SeparableConv1D",
                         "SeparableConv2D")},
    "RepeatVector": ("UpSampling1D",),  # a Reshape to (1, F), then UpSampling1D(n)
    # QKeras
    "QDense": ("Dense",),
    "QConv1D": ("Conv1D",),
    "QConv2D": ("Conv2D",),
    "QDepthwiseConv2D": ("DepthwiseConv2D",),
    "QActivation": ("ActQuant", "Activation"),
    "QBatchNormalization": ("BatchNormalization",),
    "QSimpleRNN": ("SimpleRNN",),
    "QLSTM": ("LSTM",),
    "QGRU": ("GRU",),
}
"""Keras / QKeras class -> rows (``()``: the model input, in every backend)."""

_ACT = ("Activation",)
_MERGE = ("Merge",)
_RESHAPE = ("Reshape",)

TORCH_MODULE_ROWS: dict[str, tuple[str, ...]] = {
    "Linear": ("Dense",),
    "Conv1d": ("Conv1D", "DepthwiseConv1D"),
    "Conv2d": ("Conv2D", "DepthwiseConv2D"),
    "BatchNorm1d": ("BatchNormalization",),
    "BatchNorm2d": ("BatchNormalization",),
    "MaxPool1d": ("Pooling1D",),
    "MaxPool2d": ("Pooling2D",),
    "AvgPool1d": ("Pooling1D",),
    "AvgPool2d": ("Pooling2D",),
    "AdaptiveAvgPool1d": ("GlobalPooling1D",),
    "AdaptiveAvgPool2d": ("GlobalPooling2D",),
    "AdaptiveMaxPool1d": ("GlobalPooling1D",),
    "AdaptiveMaxPool2d": ("GlobalPooling2D",),
    "ReLU": _ACT,
    "ReLU6": _ACT,
    "LeakyReLU": _ACT,
    "Sigmoid": _ACT,
    "Tanh": _ACT,
    "Hardsigmoid": _ACT,
    "Hardswish": ("Activation", "Merge"),  # x * hard_sigmoid(x)
    "SiLU": ("Activation", "Merge"),  # x * sigmoid(x)
    "GELU": ("Activation", "Merge"),  # x * normal_cdf(x)
    **{m: _ACT for m in ("ELU", "CELU", "SELU", "Softplus", "Softsign", "Hardtanh",
                         "Threshold", "PReLU")},
    "Softmax": ("Softmax",),
    "Flatten": ("Flatten",),
    "Unflatten": _RESHAPE,
    "Dropout": _DROPOUT,
    "Dropout1d": _DROPOUT,
    "Dropout2d": _DROPOUT,
    "AlphaDropout": _DROPOUT,
    "Identity": _DROPOUT,
    "ZeroPad1d": ("ZeroPadding1D", "Cropping1D"),
    "ZeroPad2d": ("ZeroPadding2D", "Cropping2D"),
    "ConstantPad1d": ("ZeroPadding1D", "Cropping1D"),
    "ConstantPad2d": ("ZeroPadding2D", "Cropping2D"),
    "Upsample": ("UpSampling1D", "UpSampling2D"),
    "UpsamplingNearest2d": ("UpSampling2D",),
    "Embedding": ("Embedding",),
    "ConvTranspose1d": ("Conv1DTranspose",),
    "ConvTranspose2d": ("Conv2DTranspose",),
    "LayerNorm": ("LayerNormalization",),
}
"""``torch.nn`` module class -> rows (Conv with groups = in_channels: depthwise)."""

TORCH_FUNCTION_ROWS: dict[str, tuple[str, ...]] = {
    "torch.nn.functional.relu": _ACT,
    "torch.relu": _ACT,
    "torch.nn.functional.relu6": _ACT,
    "torch.nn.functional.leaky_relu": _ACT,
    "torch.sigmoid": _ACT,
    "torch.tanh": _ACT,
    "torch.nn.functional.hardsigmoid": _ACT,
    "torch.nn.functional.hardswish": ("Activation", "Merge"),
    "torch.nn.functional.silu": ("Activation", "Merge"),
    "torch.nn.functional.gelu": ("Activation", "Merge"),
    **{f"torch.nn.functional.{f}": _ACT for f in ("elu", "celu", "selu", "softplus",
                                                  "softsign", "hardtanh", "threshold")},
    "torch.celu": _ACT,
    "torch.selu": _ACT,
    **{f"torch.{f}": _MERGE for f in ("maximum", "minimum", "max", "min")},
    "torch.nn.functional.softmax": ("Softmax",),
    "torch.softmax": ("Softmax",),
    "torch.cat": ("Concatenate",),
    "torch.concat": ("Concatenate",),
    "torch.concatenate": ("Concatenate",),
    "operator.add": _MERGE,
    "torch.add": _MERGE,
    "operator.sub": _MERGE,
    "torch.sub": _MERGE,
    "torch.subtract": _MERGE,
    "operator.mul": _MERGE,
    "torch.mul": _MERGE,
    "operator.pow": _MERGE,  # x ** 2 = x * x
    "torch.pow": _MERGE,
    "torch.square": _MERGE,
    "torch.multiply": _MERGE,
    "operator.truediv": ("BatchNormalization",),  # by a number: a scale
    "torch.div": ("BatchNormalization",),
    "torch.true_divide": ("BatchNormalization",),
    "torch.matmul": ("MatMul",),
    "torch.bmm": ("MatMul",),
    "operator.matmul": ("MatMul",),
    "torch.flatten": ("Flatten",),
    "torch.reshape": _RESHAPE,
    "torch.squeeze": _RESHAPE,
    "torch.unsqueeze": _RESHAPE,
    "torch.mean": ("GlobalPooling1D", "GlobalPooling2D"),
    "torch.amax": ("GlobalPooling1D", "GlobalPooling2D"),
    "torch.sum": ("GlobalPooling1D", "GlobalPooling2D"),
    "torch.nn.functional.dropout": _DROPOUT,
    "torch.nn.functional.dropout1d": _DROPOUT,
    "torch.nn.functional.dropout2d": _DROPOUT,
    "torch.nn.functional.alpha_dropout": _DROPOUT,
    "torch.nn.functional.max_pool1d": ("Pooling1D",),
    "torch.nn.functional.max_pool2d": ("Pooling2D",),
    "torch.nn.functional.avg_pool1d": ("Pooling1D",),
    "torch.nn.functional.avg_pool2d": ("Pooling2D",),
    "torch.nn.functional.adaptive_avg_pool1d": ("GlobalPooling1D",),
    "torch.nn.functional.adaptive_avg_pool2d": ("GlobalPooling2D",),
    "torch.nn.functional.adaptive_max_pool1d": ("GlobalPooling1D",),
    "torch.nn.functional.adaptive_max_pool2d": ("GlobalPooling2D",),
    "torch.nn.functional.pad": ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D"),
    "torch.nn.functional.interpolate": ("UpSampling1D", "UpSampling2D"),
    "torch.permute": ("View", "Permute"),
    "torch.transpose": ("View", "Permute"),
    "operator.getitem": ("View", "Slice"),  # x[:, a:b]: a Slice; every index whole: a view
    "torch.narrow": ("View", "Slice"),
}
"""Function traced by torch.fx -> rows (``torch.mean`` over the spatial dims only)."""

TORCH_METHOD_ROWS: dict[str, tuple[str, ...]] = {
    **{m: _ACT for m in ("relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_")},
    "softmax": ("Softmax",),
    **{m: _MERGE for m in ("add", "add_", "sub", "sub_", "mul", "mul_", "maximum", "minimum",
                           "pow", "square")},
    "div": ("BatchNormalization",),
    "matmul": ("MatMul",),
    "bmm": ("MatMul",),
    "flatten": ("Flatten",),
    **{m: _RESHAPE for m in ("view", "reshape", "squeeze", "unsqueeze")},
    "mean": ("GlobalPooling1D", "GlobalPooling2D"),
    "amax": ("GlobalPooling1D", "GlobalPooling2D"),
    "sum": ("GlobalPooling1D", "GlobalPooling2D"),
    "contiguous": ("View",),
    "permute": ("View", "Permute"),
    "transpose": ("View", "Permute"),
    "narrow": ("View", "Slice"),
}
"""``Tensor`` method -> rows."""

ONNX_ROWS: dict[str, tuple[str, ...]] = {
    "Gemm": ("Dense",),
    "MatMul": ("Dense", "MatMul"),
    "Conv": ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D"),
    "BatchNormalization": ("BatchNormalization",),
    **{op: _ACT for op in ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "Clip")},
    **{op: _ACT for op in ("Elu", "Celu", "Selu", "PRelu", "Softplus", "Softsign",
                           "ThresholdedRelu")},
    **{op: _MERGE for op in ("Max", "Min", "Mean")},  # two or more data inputs
    "Softmax": ("Softmax",),
    "MaxPool": ("Pooling1D", "Pooling2D"),
    "AveragePool": ("Pooling1D", "Pooling2D"),
    "GlobalAveragePool": ("GlobalPooling1D", "GlobalPooling2D"),
    "GlobalMaxPool": ("GlobalPooling1D", "GlobalPooling2D"),
    "HardSwish": ("Activation", "Merge"),  # x * hard_sigmoid(x)
    "Gelu": ("Activation", "Merge"),  # x * normal_cdf(x); also the erf form before opset 20
    "Pow": ("Merge",),  # x ** 2 = x * x
    "ReduceMean": ("GlobalPooling1D", "GlobalPooling2D"),  # over the spatial axes only
    "ReduceMax": ("GlobalPooling1D", "GlobalPooling2D"),
    "ReduceSum": ("GlobalPooling1D", "GlobalPooling2D"),
    # Two data inputs: a merge; a constant operand: a scale/bias (folded into the layer
    # before when exact, else a BatchNormalization node).
    "Add": ("Merge", "BatchNormalization"),
    "Sum": ("Merge", "BatchNormalization"),
    "Sub": ("Merge", "BatchNormalization"),
    "Mul": ("Merge", "BatchNormalization"),
    "Div": ("BatchNormalization",),
    "Concat": ("Concatenate",),
    # Views: a Flatten / Reshape node only where a layer needs the data in another shape.
    "Flatten": ("View", "Flatten"),
    "Reshape": ("View", "Reshape"),
    **{op: ("View",) for op in ("Squeeze", "Unsqueeze", "Identity", "Dropout", "Shape")},
    "Cast": ("View", "ActQuant"),  # to a float type: a view; to an integer type: a cast
    "Gather": ("Embedding", "Slice"),  # a constant table indexed by data, or a selection
    "RNN": ("SimpleRNN",),
    "LSTM": ("LSTM",),
    "GRU": ("GRU",),
    "ConvTranspose": ("Conv1DTranspose", "Conv2DTranspose"),
    "LayerNormalization": ("LayerNormalization",),
    "Transpose": ("View", "Permute"),
    "Pad": ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D"),
    "Slice": ("Cropping1D", "Cropping2D", "Slice"),
    "Split": ("Slice",),
    "Resize": ("UpSampling1D", "UpSampling2D"),
    "Upsample": ("UpSampling1D", "UpSampling2D"),
    # QONNX
    "Quant": ("ActQuant", "WeightQuant", "MultiThreshold"),
    "IntQuant": ("ActQuant", "WeightQuant", "MultiThreshold"),
    "MultiThreshold": ("MultiThreshold",),
    "Trunc": ("ActQuant", "WeightQuant"),
    "BipolarQuant": ("WeightQuant", "MultiThreshold"),
}
"""ONNX / QONNX op type -> rows."""


# --------------------------------------------------------------- registries
def _check(where: str, registry: list[str], assigned: dict[str, tuple[str, ...]],
           row_keys: set[str]) -> None:
    unassigned = [n for n in registry if n not in assigned]
    stale = [n for n in assigned if n not in registry]
    bad_rows = sorted({r for n in registry for r in assigned.get(n, ()) if r not in row_keys})
    problems = []
    if unassigned:
        problems.append(f"{where} supports {unassigned}, which scripts/gen_coverage.py does not "
                        "place in a row: add them to its row assignment")
    if stale:
        problems.append(f"{where} no longer lists {stale}: remove them from "
                        "scripts/gen_coverage.py")
    if bad_rows:
        problems.append(f"{where}: unknown rows {bad_rows} in scripts/gen_coverage.py")
    if problems:
        raise CoverageError("; ".join(problems))


def frontend_cells(row_keys: set[str]) -> dict[str, dict[str, list[str]]]:
    """frontend -> row key -> names shown in that cell (registry order)."""
    from nnfab.frontends import (
        keras_json,
        keras_layers,
        onnx_idioms,  # noqa: F401 - registers its converters into the ONNX tables
        onnx_layers,
        onnx_quant,
        onnx_recurrent,  # noqa: F401 - registers RNN / LSTM / GRU into the ONNX table
        qkeras,
        torch_layers,
    )

    cells: dict[str, dict[str, list[str]]] = {f: {} for f in FRONTENDS}

    def put(frontend: str, name: str, display: str, assigned: dict[str, tuple[str, ...]]) -> None:
        for key in assigned[name]:
            cells[frontend].setdefault(key, []).append(display)

    keras3 = list(keras_layers.SUPPORTED_LAYERS)
    qkeras_layers = list(keras_json.QKERAS_LAYERS)
    keras2 = [n for n in keras_json.SUPPORTED_LAYERS if n not in qkeras_layers]
    _check("nnfab.frontends.keras_layers (Keras 3)", keras3, _subset(KERAS_ROWS, keras3),
           row_keys)
    _check("nnfab.frontends.keras_json (Keras 2, QKeras)", list(keras_json.SUPPORTED_LAYERS),
           _subset(KERAS_ROWS, keras_json.SUPPORTED_LAYERS), row_keys)
    unknown = [n for n in KERAS_ROWS if n not in keras3 and n not in keras_json.SUPPORTED_LAYERS]
    if unknown:
        raise CoverageError(f"no Keras frontend lists {unknown}: remove them from "
                            "scripts/gen_coverage.py")
    for name in dict.fromkeys([*keras3, *keras2]):
        mark = "" if name in keras3 and name in keras2 else (" ²" if name in keras2 else " ³")
        put("Keras", name, f"`{name}`{mark}", KERAS_ROWS)
    from nnfab.frontends.keras_mapping import ACTIVATION_FUNCTIONS, GATED
    from nnfab.frontends.keras_ops import ARITHMETIC as KERAS_ARITHMETIC

    # keras.ops operations on symbolic tensors (not layers)
    cells["Keras"].setdefault("Slice", []).append("`x[...]` (GetItem) ³")
    symbols = {"Add": "+", "Subtract": "-", "Multiply": "*"}
    cells["Keras"].setdefault("Merge", []).extend(
        f"`x {symbols[n]} y` ({n}) ³" for n in KERAS_ARITHMETIC if n in symbols)
    cells["Keras"].setdefault("BatchNormalization", []).append(
        "`x * c`, `x + c`, `x / c`, ... (keras.ops with a number) ³")
    from nnfab.frontends.keras_ops import REDUCTIONS as KERAS_REDUCTIONS

    for rank in (1, 2):
        cells["Keras"].setdefault(f"GlobalPooling{rank}D", []).append(
            ", ".join(f"`keras.ops.{n.lower()}`" for n in KERAS_REDUCTIONS)
            + " over the spatial axes ³")
    gated = [n for n, (op, _) in ACTIVATION_FUNCTIONS.items() if op == GATED]
    cells["Keras"].setdefault("Merge", []).append(
        f"activations {', '.join(gated)} (x * gate(x), with an Activation)")
    for name in qkeras_layers:
        put("QKeras", name, f"`{name}`", KERAS_ROWS)
    for name in qkeras.ACTIVATION_QUANTIZERS:
        cells["QKeras"].setdefault("ActQuant", []).append(f"`{name}`")
    for name in qkeras.QUANTIZER_PARAMS:
        cells["QKeras"].setdefault("WeightQuant", []).append(f"`{name}`")

    for registry, assigned, where, show in (
        (torch_layers.MODULES, TORCH_MODULE_ROWS, "torch_layers.MODULES", _torch_module),
        (torch_layers.FUNCTIONS, TORCH_FUNCTION_ROWS, "torch_layers.FUNCTIONS", _torch_function),
        (torch_layers.METHODS, TORCH_METHOD_ROWS, "torch_layers.METHODS", _torch_method),
    ):
        _check(f"nnfab.frontends.{where}", list(registry), assigned, row_keys)
        for name in registry:
            put("PyTorch", name, show(name), assigned)

    from nnfab.frontends.torch_recurrent import TORCH_OPS as TORCH_RECURRENT

    for name, op in TORCH_RECURRENT.items():  # traced by the frontend itself (tuple outputs)
        cells["PyTorch"].setdefault(op, []).append(_torch_module(name))
    from nnfab.frontends.torch_shape import SPLIT_CALLS

    for name in SPLIT_CALLS:  # tuple outputs, read by index (the frontend's own tracing)
        cells["PyTorch"].setdefault("Slice", []).extend(
            [_torch_function(f"torch.{name}"), _torch_method(name)])
    from nnfab.frontends.torch_attention import MODULE as TORCH_ATTENTION

    cells["PyTorch"].setdefault("MultiHeadAttention", []).append(_torch_module(TORCH_ATTENTION))

    onnx_ops = [*onnx_layers.CONVERTERS, *onnx_quant.QUANT_CONVERTERS]
    _check("nnfab.frontends.onnx (CONVERTERS + QUANT_CONVERTERS)", onnx_ops, ONNX_ROWS, row_keys)
    for name in onnx_ops:
        put("ONNX / QONNX", name, f"`{name}`", ONNX_ROWS)
    for frontend in cells.values():  # a name listed twice in one cell (method aliases)
        for key, names in frontend.items():
            frontend[key] = list(dict.fromkeys(names))
    return cells


def _subset(assigned: dict[str, tuple[str, ...]], names: object) -> dict[str, tuple[str, ...]]:
    return {n: r for n, r in assigned.items() if n in names}  # type: ignore[operator]


def _torch_module(name: str) -> str:
    return f"`nn.{name}`"


def _torch_function(name: str) -> str:
    symbols = {"operator.add": "+", "operator.sub": "-", "operator.mul": "*",
               "operator.pow": "** 2",
               "operator.truediv": "/", "operator.matmul": "@"}
    if name in symbols:
        return f"`{symbols[name]}`"
    return f"`{name.replace('torch.nn.functional.', 'F.')}`"


def _torch_method(name: str) -> str:
    return f"`.{name}()`"


def backend_registries() -> dict[str, set[str]]:
    from nnfab.backends.hls import layers as hls_layers
    from nnfab.backends.rtl import supported_ops
    from nnfab.emulate.base import KERNELS
    from nnfab.emulate.kernels import load_all

    load_all()
    return {"emulator": set(KERNELS), "HLS": set(hls_layers.RENDERERS), "RTL": set(supported_ops())}


FRONTENDS = ("Keras", "QKeras", "PyTorch", "ONNX / QONNX")
BACKENDS = ("emulator", "HLS", "RTL")


def _backend_cell(row: Row, ops: set[str]) -> str:
    if not row.ops:
        return row.no_op_cell
    return "✓" if all(op in ops for op in row.ops) else "—"


# --------------------------------------------------------------- rendering
def render() -> str:
    from nnfab.ir.ops import OPS

    table_rows = rows()
    row_keys = {r.key for r in table_rows}
    shown_ops = {op for r in table_rows for op in r.ops}
    missing = sorted(set(OPS) - shown_ops - {"Input"})
    if missing:
        raise CoverageError(f"IR ops {missing} have no row in scripts/gen_coverage.py: add one")
    cells = frontend_cells(row_keys)
    backends = backend_registries()
    unknown = {b: sorted(ops - set(OPS)) for b, ops in backends.items() if ops - set(OPS)}
    if unknown:
        raise CoverageError(f"backends implement ops the IR does not define: {unknown}")

    lines = [
        "# Coverage: layers x frontends x backends",
        "",
        f"<!-- Generated by `{COMMAND}` from the frontend and backend registries; do not "
        "edit by hand. tests/test_coverage_doc.py fails when this file is out of date. -->",
        "",
        "A frontend cell lists the names that frontend reads into the row's IR op; a backend "
        "cell says whether the backend implements that op: ✓ yes, — not (yet): converting "
        "is fine, but that backend refuses the model with an error naming the layer. "
        "\"folded\" and \"no node\" rows leave nothing for a backend to do. "
        "The IR op is what the emulator, `hm.graph` and the configuration "
        "(`LayerType`) see.",
        "",
        "| layer | IR op | " + " | ".join(FRONTENDS) + " | " + " | ".join(BACKENDS) + " |",
        "|" + "---|" * (2 + len(FRONTENDS) + len(BACKENDS)),
    ]
    for row in table_rows:
        front = [", ".join(cells[f].get(row.key, [])) or "—" for f in FRONTENDS]
        back = [_backend_cell(row, backends[b]) for b in BACKENDS]
        ir = ", ".join(f"`{op}`" for op in row.ops) or "—"
        lines.append(f"| {row.label} | {ir} | " + " | ".join(front + back) + " |")
    lines += [
        "",
        "Notes:",
        "",
        "- Keras: ² only in Keras 2 / QKeras files (read with h5py, no TensorFlow); ³ only "
        "with Keras 3 (`.keras`, live models); unmarked: both. QKeras models may use every "
        "Keras 2 layer as well. `InputLayer`, PyTorch `forward` arguments and ONNX graph "
        "inputs become `Input` nodes, which every backend takes (the RTL top's input port).",
        "- QKeras quantizers (`kernel_quantizer`, `bias_quantizer`, `activation=`, "
        "`QActivation`) and their fixed-point types: [frontends.md](frontends.md#qkeras). "
        "QONNX `Quant`/`IntQuant`/`Trunc` need power-of-two scales and zero point 0: "
        "[frontends.md](frontends.md#onnx-qonnx-and-brevitas).",
        "- PyTorch: `F.` is `torch.nn.functional`; `Conv1d`/`Conv2d` with groups = "
        "in_channels become depthwise convolutions; `nn.Adaptive*Pool` and `torch.mean` only "
        "as global pooling (output size 1, the spatial dims). Brevitas layers go through "
        "the ONNX/QONNX column (export with `brevitas.export.export_qonnx`).",
        "- ONNX: `Add`/`Sub`/`Mul`/`Div` with a constant operand become a per-channel scale "
        "and bias (folded into the layer before when that is exact); with two data inputs, "
        "a merge. `Flatten`, `Reshape`, `Transpose`, `Squeeze`, `Unsqueeze` only rearrange "
        "elements; a `Flatten`/`Reshape` node appears only where a layer needs another shape, "
        "a `Permute` only where a layer needs the axes in another order (PyTorch's "
        "`.permute`/`.transpose` likewise).",
        "- Attribute limits (dilation, groups, padding modes, axes, ...) are checked at "
        "conversion and named in the error; see [frontends.md](frontends.md).",
        "- RTL: a graph with a convolution or pooling becomes a pixel stream (one pixel per "
        "cycle, line buffers; with `ReuseFactor` R > 1, Conv 1-D/2-D and per-pixel Dense "
        "kernels fold and pixels come every R cycles; BatchNormalization, LayerNormalization "
        "and per-channel ElementCast run per pixel; branches meet in a Merge or a Concatenate "
        "on the channels, one FIFO per branch). In a pixel stream, a Permute (1, 0, 2) "
        "(height and width swapped) re-emits the pixels in transposed order from a buffer of "
        "about two images, any other Permute only as the last layer or right before a "
        "Flatten (the collected vector is reordered), and vector designs take any Permute; "
        "cropping drops pixels, nearest upsampling repeats pixels and rows from a buffer "
        "(the input is then paced so that the larger feature map fits in an image's "
        "cycles), a zero padding read only by a "
        "convolution becomes that convolution's padding, and global pooling ends the stream "
        "(it collects the feature map, as Flatten does). Vector designs take several inputs "
        "(GarNet's vertex count, a cross-attention's second sequence) on one input bus, "
        "input after input (the accelerator's Verilog route carries them the same way; its HLS "
        "route and pixel streams take one input).",
        "- Sources: `keras_layers.SUPPORTED_LAYERS`, `keras_json.SUPPORTED_LAYERS` / "
        "`QKERAS_LAYERS`, `qkeras.QUANTIZER_PARAMS` / `ACTIVATION_QUANTIZERS`, "
        "`torch_layers.MODULES` / `FUNCTIONS` / `METHODS`, `onnx_layers.CONVERTERS`, "
        "`onnx_quant.QUANT_CONVERTERS`, `ir.ops.OPS`, `emulate.base.KERNELS`, "
        "`backends.hls.layers.RENDERERS`, `backends.rtl.supported_ops()`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with docs/coverage.md instead of writing it")
    parser.add_argument("--output", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run: {COMMAND}", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
