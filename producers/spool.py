"""Opt-in local spool: while Redis is unreachable, accepted events are journalled to disk and
enqueued when Redis answers again (``RELAY_SPOOL_DIR`` or ``Producer(spool_dir=...)``).

Each event is one JSON line, appended and fsynced before ``record`` returns, so a POS that
crashes right after still has it. Draining re-enqueues line by line; enqueue dedupes on
``event_id``, so a line sent twice (a crash mid-drain) is still delivered once. A file lock
keeps two processes sharing a folder from draining the same lines at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class Spool:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "spool.jsonl"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.folder / "spool.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")) + "\n"
        with self._locked(), self.path.open("a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def has_events(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open() as f:
            return sum(1 for line in f if line.strip())

    def drain(self, enqueue: Callable[[dict[str, Any]], object]) -> int:
        """Enqueue journalled events oldest first; stop at the first failure and keep the
        rest. Returns how many left the spool."""
        with self._locked():
            if not self.path.exists():
                return 0
            lines = [line for line in self.path.read_text().splitlines() if line.strip()]
            done = 0
            try:
                for line in lines:
                    enqueue(json.loads(line))
                    done += 1
            finally:
                rest = lines[done:]
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("".join(f"{line}\n" for line in rest))
                os.replace(tmp, self.path)
            return done
