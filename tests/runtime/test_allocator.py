"""The malloc tuning is applied once, only on Linux, and never over a user's own settings."""

import sys

from dlc.runtime.numpy_engine import allocator


def test_applied_once_on_linux(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    first = allocator.keep_freed_memory()
    assert first == sys.platform.startswith("linux")
    assert allocator.keep_freed_memory() is first  # cached: mallopt is not called again


def test_user_settings_win(monkeypatch):
    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert allocator.keep_freed_memory() is False
