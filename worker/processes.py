"""``relay worker --processes N``: one worker process per core by default.

One process runs one event loop and is bound by one core (design.md section 10), so using the
machine takes several. Each child is a whole Celery worker node (its own name, heartbeats and
remote control), started and stopped together. Children run in their own process groups, so a
Ctrl-C reaches each of them once (from here; Celery reads a second one as "stop now"), and
they are told to stop (SIGTERM) if this process dies. A child that dies is started again,
with the same index (``RELAY_WORKER_INDEX``: its metrics port stays the same), unless it
exited saying its configuration cannot work (exit code 4): then every child is stopped and
the supervisor exits with that code, rather than restarting it forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

RESTART_DELAY_S = 1.0
CONFIG_EXIT = 4  # relay.cli.exitcodes.CONFIG: restarting cannot help
INDEX_ENV = "RELAY_WORKER_INDEX"


def index() -> int:
    """This worker process's index among its supervisor's children (0 when alone)."""
    raw = os.environ.get(INDEX_ENV, "0")
    return int(raw) if raw.isdigit() else 0


def default_processes() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def supervise(processes: int, argv: list[str]) -> int:
    """Run ``processes`` single-process workers until a signal stops them all."""
    command = [sys.executable, "-m", "relay", "worker", "--processes", "1", *argv]

    def spawn(i: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, process_group=0, env={**os.environ, INDEX_ENV: str(i)},
                                preexec_fn=stop_with_parent)  # noqa: PLW1509 - no threads here

    children = [spawn(i) for i in range(processes)]
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, forward)
    while True:
        time.sleep(0.2)
        if stopping:
            codes = [child.wait() for child in children]
            return CONFIG_EXIT if CONFIG_EXIT in codes else 0
        if any(child.poll() == CONFIG_EXIT for child in children):
            forward(signal.SIGTERM, None)
            continue
        for i, child in enumerate(children):
            if child.poll() is not None and not stopping:
                print(f"relay worker: process {child.pid} exited with {child.returncode}; "
                      "starting another", file=sys.stderr, flush=True)
                time.sleep(RESTART_DELAY_S)
                children[i] = spawn(i)


def stop_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
