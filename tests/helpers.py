"""Process and port helpers for tests: every process started is stopped by PID."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(args: list[str], env: dict[str, str] | None = None, log: Path | None = None
          ) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass


@dataclass
class Sandbox:
    """A running ``relay sandbox`` and its control API (on, behind ``token``)."""

    port: int
    proc: subprocess.Popen[bytes]
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/Services/Interaction.asmx"

    def control(self, method: str, name: str, **kwargs: Any) -> requests.Response:
        """One raw control request, authenticated, e.g. ``control("POST", "config", json=...)``."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.base}/_sandbox/{name}", headers=headers,
                                timeout=kwargs.pop("timeout", 10), **kwargs)

    def configure(self, **change: Any) -> dict[str, Any]:
        r = self.control("POST", "config", json=change)
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def seed(self, **change: Any) -> dict[str, Any]:
        r = self.control("POST", "seed", json=change)
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def calls(self, limit: int = 100000) -> dict[str, Any]:
        r = self.control("GET", "calls", params={"limit": limit})
        r.raise_for_status()
        result: dict[str, Any] = r.json()
        return result

    def reset(self) -> None:
        self.control("POST", "reset").raise_for_status()


def start_sandbox(*extra: str, log: Path | None = None) -> Sandbox:
    """A sandbox process with its control API on behind a fresh random token (it is off by
    default)."""
    port, token = free_port(), secrets.token_urlsafe(24)
    proc = start(["-m", "sandbox", "--port", str(port), *extra], log=log,
                 env={"RELAY_SANDBOX_CONTROL_TOKEN": token})
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 15, message="sandbox")
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited with {proc.returncode}")
    except BaseException:
        stop(proc)
        raise
    return Sandbox(port, proc, token)


# The test suite's own database; only it is ever flushed. RELAY_TEST_DB moves it, so two
# checkouts can run their suites against one Redis at once.
REDIS_DB = int(os.environ.get("RELAY_TEST_DB", "13"))


def system_redis_url() -> str | None:
    """The machine's Redis at 6379, when one answers."""
    import redis

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return None
    return url


def counters(client: Any) -> dict[str, int]:
    """The relay's pool-wide counters as integers."""
    from relay.keys import Keys

    return {k.decode(): int(float(v)) for k, v in client.hgetall(Keys().stats).items()}


def states(client: Any, ids: list[str], tenant: str = "default") -> dict[str, str]:
    """Each event's state, for many events in two round trips ('' when unknown)."""
    from relay.connect import server_ms
    from relay.keys import member
    from relay.settings import StoreSettings

    store = StoreSettings()
    keys = store.keys
    pipe = client.pipeline(transaction=False)
    for i in ids:
        pipe.hget(keys.record(tenant, i), "s")
    found = {i: (s or b"").decode() for i, s in zip(ids, pipe.execute(), strict=True)}
    ended = [i for i, s in found.items() if not s]
    if ended:
        bucket = server_ms(client) // store.bucket_ms
        pipe = client.pipeline(transaction=False)
        for i in ended:
            for b in range(bucket, bucket - store.buckets - 1, -1):
                pipe.hget(keys.done(b), member(tenant, i))
        answers = pipe.execute()
        width = store.buckets + 1
        for n, i in enumerate(ended):
            outcome = next((a for a in answers[n * width:(n + 1) * width] if a), b"")
            found[i] = {b"d": "delivered", b"r": "rejected"}.get(outcome[:1], "")
    return found


def members(client: Any, key: str) -> list[str]:
    """Every member of a sorted set, as text."""
    return [m.decode() for m in client.zrange(key, 0, -1)]


def clear_app_data(client: Any) -> None:
    """Delete the relay's own keys, but not its configuration (the tenants a running worker
    registered) nor Celery's keys, which a running worker needs."""
    from relay.keys import Keys

    keep = Keys().tenants.encode()
    batch = [k for k in client.scan_iter(match=Keys().pattern(), count=1000) if k != keep]
    if batch:
        client.delete(*batch)


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_worker(env: dict[str, str], log: Path, *extra: str) -> Worker:
    """One worker process (``--processes 1``), so its PID is the one to signal."""
    proc = start(["-m", "relay", "worker", "--processes", "1", *extra], env=env, log=log)
    try:
        # this process's own line: a log shared with an earlier worker already has one
        ready = f"relay worker ready (pid {proc.pid})"
        wait_until(lambda: ready in log.read_text(errors="replace")
                   or proc.poll() is not None, 30, 0.1, "worker ready")
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")
    except BaseException:
        stop(proc)
        raise
    return Worker(proc, log)


def start_relay_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``relay api`` on a free loopback port, up and answering; the process and its base URL."""
    port = free_port()
    proc = start(["-m", "relay", "api", "--host", "127.0.0.1", "--port", str(port)], env=env,
                 log=log)
    try:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 20, message="relay api")
        assert proc.poll() is None, log.read_text()
    except BaseException:
        stop(proc)
        raise
    return proc, f"http://127.0.0.1:{port}"


def start_relay_dev(folder: Path, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``relay dev`` as on a fresh machine (no RELAY_* settings but ``env``), run in
    ``folder`` until its banner is out; the process and its output file."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("RELAY_") and k not in ("REDIS_URL", "SENTRY_DSN")}
    clean.update(PYTHONPATH=str(ROOT), **env)
    log = folder / "dev.out"
    with log.open("wb") as out:
        dev = subprocess.Popen([sys.executable, "-m", "relay", "dev"], cwd=folder, env=clean,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "Stop: Ctrl-C" in log.read_text(), 60, 0.2, "relay dev")
    except BaseException:
        stop(dev, timeout=30)
        raise
    return dev, log
