"""Where the tests find their models: ``tests/data/models`` (or ``NNFAB_MODELS_DIR``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("NNFAB_MODELS_DIR", REPO / "tests" / "data" / "models"))
QKERAS_ORACLE = Path(os.environ.get("NNFAB_QKERAS_ORACLE", REPO / ".oracle" / "qkeras"))


def missing(reason: str) -> None:
    """Skip a test whose material is absent, but fail under CI, where it must exist."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)
