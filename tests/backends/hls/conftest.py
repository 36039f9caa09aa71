"""Fixtures of the HLS backend tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def csim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A C-simulation cache private to this test session (first builds really compile)."""
    return tmp_path_factory.mktemp("csim_cache")
