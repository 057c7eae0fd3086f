"""Process accounting for the benchmark: CPU seconds and peak RSS from /proc (Linux)."""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            kids = [int(k) for k in children.read_text().split()]
        except OSError:
            kids = []
        found += kids
        frontier += kids
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    return total


def peak_rss_mb(pids: list[int]) -> float:
    """The processes' high-water marks of resident memory, summed."""
    return _status_mb(pids, "VmHWM:")


def rss_mb(pids: list[int]) -> float:
    """The processes' resident memory now, summed."""
    return _status_mb(pids, "VmRSS:")


def _status_mb(pids: list[int], field: str) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class CpuSampler(threading.Thread):
    """Samples the CPU seconds of a process tree every ``period``, so the CPU spent between
    two moments (the steady-state window) can be read off afterwards."""

    def __init__(self, root_pids: list[int], period: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.root_pids, self.period = root_pids, period
        self.samples: list[tuple[float, float]] = []  # (epoch seconds, CPU seconds)
        self.peak_rss = 0.0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            pids = [p for root in self.root_pids for p in tree(root)]
            self.samples.append((time.time(), cpu_seconds(pids)))
            self.peak_rss = max(self.peak_rss, peak_rss_mb(pids))
            self.stopping.wait(self.period)

    def stop(self) -> None:
        self.stopping.set()
        self.join()

    def cpu_at(self, when: float) -> float:
        """CPU seconds at ``when``, interpolated between the samples either side."""
        stamps = [t for t, _ in self.samples]
        i = bisect.bisect_left(stamps, when)
        if i == 0:
            return self.samples[0][1]
        if i == len(self.samples):
            return self.samples[-1][1]
        (t0, c0), (t1, c1) = self.samples[i - 1], self.samples[i]
        return c0 + (c1 - c0) * (when - t0) / max(1e-9, t1 - t0)
