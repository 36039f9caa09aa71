"""glibc tuning: heap slack and an mmap threshold above the emulator's chunk arrays."""

from __future__ import annotations

import sys

import pytest

from nnfab.emulate import allocator


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

        def mallopt(param: int, value: int) -> int:
            self.calls.append((param, value))
            return 1

        self.mallopt = mallopt


@pytest.fixture
def fake_libc(monkeypatch: pytest.MonkeyPatch) -> _FakeLibc:
    libc = _FakeLibc()
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("NNFAB_MALLOC_TUNING", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_"):
        monkeypatch.delenv(var, raising=False)
    return libc


def test_sets_top_pad_and_mmap_threshold_once(fake_libc: _FakeLibc) -> None:
    assert allocator.tune_allocator() is True
    # malloc.h: M_TOP_PAD = -2, M_MMAP_THRESHOLD = -3; 64 MiB slack, 32 MiB threshold
    assert fake_libc.calls == [(-2, 64 << 20), (-3, 32 << 20)]
    assert allocator.tune_allocator() is False  # once per process
    assert len(fake_libc.calls) == 2


def test_respects_the_environment(fake_libc: _FakeLibc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    allocator.tune_allocator()
    assert fake_libc.calls == [(-2, 64 << 20)]


def test_can_be_turned_off(fake_libc: _FakeLibc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNFAB_MALLOC_TUNING", "0")
    assert allocator.tune_allocator() is False
    assert fake_libc.calls == []
