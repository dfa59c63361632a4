"""Memory of a process as Linux reports it in /proc/<pid>/status (resident set size now and
its peak), for tests and the soak benchmark that watch the server for unbounded growth."""

from __future__ import annotations

from pathlib import Path


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def rss_mib(pid: int) -> float:
    """Resident set size now (VmRSS), MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def peak_rss_mib(pid: int) -> float:
    """Largest resident set size so far (VmHWM), MiB."""
    return _status_kib(pid, "VmHWM") / 1024
