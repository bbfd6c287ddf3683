"""Memory of this process from /proc/self/status, shared by the benchmark scripts (Linux only)."""

from __future__ import annotations

import pathlib

STATUS = pathlib.Path("/proc/self/status")


def status_kb(field: str) -> int:
    """A memory field of /proc/self/status in kB: ``VmRSS`` (resident now), ``VmHWM`` (peak resident)."""
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"{field!r} is not a field of {STATUS}")


def status_mb(field: str) -> float:
    """:func:`status_kb` in MB (2^20 bytes)."""
    return status_kb(field) / 1024.0


def reset_peak() -> None:
    """Let ``VmHWM`` start again from the resident memory of now (Linux's clear_refs, value 5)."""
    pathlib.Path("/proc/self/clear_refs").write_text("5")
