"""Frontends: framework models -> ``nnfab.ir.Graph``.

Each frontend imports its framework lazily, inside its functions, so nnfab imports
without keras / torch / onnx installed.
"""

from nnfab.frontends.keras import keras_to_graph, load_keras_model
from nnfab.frontends.keras_json import graph_from_keras_h5, graph_from_keras_json
from nnfab.frontends.loader import graph_from_file

__all__ = [
    "graph_from_file",
    "graph_from_keras_h5",
    "graph_from_keras_json",
    "keras_to_graph",
    "load_keras_model",
]
