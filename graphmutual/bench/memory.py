"""Resident memory of this process from ``/proc/self`` (Linux), for benchmarks that measure
the peak of one phase (e.g. training after setup): read ``VmHWM`` after resetting it."""
from __future__ import annotations


def proc_status_kib(key: str) -> int:
    """A ``/proc/self/status`` field in KiB, e.g. ``"VmRSS"`` (now) or ``"VmHWM"`` (peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (``/proc/self/clear_refs``); ``False`` if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
