"""Synthetic, deterministic jet-tagging-like data: 16 features, 5 classes.

Not physics: a stand-in with the same shape as the classic jet-substructure
benchmark (16 high-level features, classes g, q, W, Z, t), overlapping classes and
non-linear feature correlations, so a 16-64-32-32-5 MLP reaches roughly 75-80 %.
"""

from __future__ import annotations

import numpy as np

N_FEATURES = 16
CLASSES = ("g", "q", "W", "Z", "t")


def make_jet_like_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples: features (n, 16) float64, standardized; labels (n,) int64 in 0..4."""
    structure = np.random.default_rng(12345)  # fixed class structure, whatever the sample seed
    centers = structure.normal(0.0, 1.0, size=(len(CLASSES), N_FEATURES))
    mixing = structure.normal(0.0, 0.5, size=(N_FEATURES, N_FEATURES))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(CLASSES), size=n)
    latent = centers[labels] + rng.normal(0.0, 1.6, size=(n, N_FEATURES))
    features = latent + np.tanh(latent) @ mixing
    features[:, ::3] = np.abs(features[:, ::3])  # some positive-only, mass-like features
    mean = np.array([0.9 * i % 1.3 for i in range(N_FEATURES)])  # fixed, not data-dependent
    return ((features - mean) / 2.0).astype(np.float64), labels.astype(np.int64)
