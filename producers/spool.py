"""Opt-in local spool: while Redis is unreachable, accepted events are journalled to disk and
enqueued when Redis answers again (``RELAY_SPOOL_DIR`` or ``Producer(spool_dir=...)``).
A journalled event Redis refuses on its own account (an unknown tenant) moves to
``rejected.jsonl`` beside the journal (the reason goes to the log), so it neither blocks the
events behind it nor is lost: fix the file and feed it to ``relay import``.

Each event is one JSON line, appended and fsynced before ``record`` returns, so a POS that
crashes right after still has it. Draining re-enqueues line by line; enqueue dedupes on
``event_id``, so a line sent twice (a crash mid-drain) is still delivered once. A file lock
keeps two processes (or two drains in one event loop) from draining the same lines at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.errors import ValidationError

log = logging.getLogger("relay.producer")


@dataclass
class Pending:
    """The journalled events, oldest first; a drain counts in ``done`` those Redis took."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    done: int = 0


class Spool:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "spool.jsonl"

    @contextlib.contextmanager
    def _locked(self, wait: bool = True) -> Iterator[bool]:
        with (self.folder / "spool.lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, message: dict[str, Any]) -> None:
        self.extend([message])

    def extend(self, messages: Iterable[dict[str, Any]]) -> None:
        """Journal events (one fsync for all of them)."""
        lines = "".join(json.dumps(m, separators=(",", ":")) + "\n" for m in messages)
        with self._locked(), self.path.open("a") as f:
            f.write(lines)
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

    @contextlib.contextmanager
    def pending(self, wait: bool = True) -> Iterator[Pending]:
        """The journalled events under the lock; on exit the first ``done`` leave the file.

        ``wait=False`` (an event loop must never block on the lock): nothing pending while
        another drain holds it.
        """
        with self._locked(wait) as held:
            if not held or not self.path.exists():
                yield Pending()
                return
            lines = [line for line in self.path.read_text().splitlines() if line.strip()]
            batch = Pending([json.loads(line) for line in lines])
            try:
                yield batch
            finally:
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("".join(f"{line}\n" for line in lines[batch.done:]))
                os.replace(tmp, self.path)

    def drain(self, enqueue: Callable[[dict[str, Any]], object]) -> int:
        """Enqueue journalled events oldest first; stop at the first failure to reach Redis
        and keep the rest. Returns how many left the spool."""
        with self.pending() as batch:
            for message in batch.messages:
                try:
                    enqueue(message)
                except ValidationError as exc:
                    self.reject(message, exc)
                batch.done += 1
        return batch.done

    def reject(self, message: dict[str, Any], error: ValidationError) -> None:
        """Set aside an event Redis refused for what it is (fsynced; importable as it is)."""
        line = json.dumps(message, separators=(",", ":"))
        with (self.folder / "rejected.jsonl").open("a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        log.warning("spooled event %s set aside in %s: %s", message.get("event_id"),
                    self.folder / "rejected.jsonl", error)
