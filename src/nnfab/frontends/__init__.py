"""Frontends: framework models -> ``nnfab.ir.Graph``.

Each frontend imports its framework lazily, inside its functions, so nnfab imports
without keras / torch / onnx installed.
"""

from nnfab.frontends.keras import keras_to_graph, load_keras_model

__all__ = ["keras_to_graph", "load_keras_model"]
