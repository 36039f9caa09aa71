"""Train the demo network and save it to src/nnfab/data/jet_tagger.keras.

Reproduces the file shipped with nnfab: ``python scripts/train_demo_model.py``.
16 inputs, Dense 64-32-32 relu, Dense 5 softmax, trained on
``nnfab.demo.data.make_jet_like_data`` with fixed seeds.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from nnfab.demo.data import CLASSES, N_FEATURES, make_jet_like_data

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "nnfab" / "data" / "jet_tagger.keras"


def build_model() -> keras.Model:
    inputs = keras.Input(shape=(N_FEATURES,), name="input")
    x = keras.layers.Dense(64, activation="relu", name="fc1")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="fc2")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc3")(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax", name="output")(x)
    return keras.Model(inputs, outputs, name="jet_tagger")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x_train, y_train = make_jet_like_data(50_000, seed=1)
    x_test, y_test = make_jet_like_data(10_000, seed=2)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=256, epochs=args.epochs, verbose=2,
              validation_split=0.1)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy: {accuracy:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"saved {args.out}")
    probe = model.predict(x_test[:4], verbose=0)
    print("probe outputs:", np.round(probe, 4))


if __name__ == "__main__":
    main()
