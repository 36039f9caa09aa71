"""What the Keras 3 frontend tests share: the TensorFlow backend, quiet, the module
skipped without Keras, their marks and the wide type."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
L = keras.layers
KERAS_MARKS = [pytest.mark.keras,
               pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
WIDE = {"Model": {"Precision": "ap_fixed<32,12>"}}
"""``ap_fixed<32,12>``: 20 fractional bits, for comparisons with the float framework."""
