"""A Keras 3 GarNet / GarNetStack layer for the tests, written here from the layer's
published definition (simplified form, ``input_format='xn'``): the framework oracle of
``test_keras_garnet.py``. Weights are named as the published layer names them
(``FLR_kernel``, ..., ``Fout0_bias`` in a stack), so nnfab reads them as it reads a
user's model."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


class GarNet(keras.layers.Layer):
    """Simplified GarNet; ``n_*`` are ints (GarNet) or lists (GarNetStack)."""

    stack = False

    def __init__(self, n_aggregators: Any, n_filters: Any, n_propagate: Any,
                 simplified: bool = True, collapse: str | None = None,
                 input_format: str = "xn", output_activation: str | None = None,
                 mean_by_nvert: bool = False, quantize_transforms: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_aggregators, self.n_filters, self.n_propagate = (
            n_aggregators, n_filters, n_propagate)
        self.simplified, self.collapse, self.input_format = simplified, collapse, input_format
        self.output_activation = output_activation
        self.mean_by_nvert, self.quantize_transforms = mean_by_nvert, quantize_transforms
        self.act = keras.activations.get(output_activation)

    def _sizes(self) -> list[tuple[int, int, int]]:
        if self.stack:
            return list(zip(self.n_aggregators, self.n_filters, self.n_propagate, strict=True))
        return [(self.n_aggregators, self.n_filters, self.n_propagate)]

    def build(self, input_shape: Any) -> None:
        features = int(input_shape[0][-1])
        self.blocks = []
        for i, (a, k, p) in enumerate(self._sizes()):
            tag = str(i) if self.stack else ""

            def w(name: str, shape: tuple[int, ...]) -> Any:
                return self.add_weight(name=f"{name}", shape=shape,
                                       initializer="glorot_uniform")

            self.blocks.append((w(f"FLR{tag}_kernel", (features, p)),
                                w(f"FLR{tag}_bias", (p,)),
                                w(f"S{tag}_kernel", (features, a)), w(f"S{tag}_bias", (a,)),
                                w(f"Fout{tag}_kernel", (a * p, k)), w(f"Fout{tag}_bias", (k,))))
            features = k

    def call(self, inputs: Any) -> Any:
        x, n = inputs
        v = x.shape[1]
        mask = ops.cast(ops.arange(v)[None, :] < ops.cast(n, "int32"), "float32")[..., None]
        count = ops.cast(n, "float32")  # (B, 1)
        for flr, flr_b, s, s_b, fout, fout_b in self.blocks:
            f = ops.matmul(x, flr) + flr_b  # (B, V, P)
            d = ops.matmul(x, s) + s_b  # (B, V, A)
            e = mask * ops.exp(-ops.square(d))
            prod = e[:, :, :, None] * f[:, :, None, :]  # (B, V, A, P)
            if self.mean_by_nvert:
                agg = ops.sum(prod, axis=1) / count[:, :, None]
            else:
                agg = ops.mean(prod, axis=1)  # (B, A, P)
            upd = e[:, :, :, None] * agg[:, None, :, :]  # (B, V, A, P)
            upd = ops.reshape(upd, (-1, v, upd.shape[2] * upd.shape[3]))
            x = mask * self.act(ops.matmul(upd, fout) + fout_b)
        if self.collapse == "mean":
            return ops.sum(x, axis=1) / count if self.mean_by_nvert else ops.mean(x, axis=1)
        if self.collapse == "sum":
            return ops.sum(x, axis=1)
        if self.collapse == "max":
            return ops.max(x, axis=1)
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n_aggregators=self.n_aggregators, n_filters=self.n_filters,
                      n_propagate=self.n_propagate, simplified=self.simplified,
                      collapse=self.collapse, input_format=self.input_format,
                      output_activation=self.output_activation,
                      mean_by_nvert=self.mean_by_nvert,
                      quantize_transforms=self.quantize_transforms)
        return config


class GarNetStack(GarNet):
    stack = True
