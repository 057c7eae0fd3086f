"""``relay dev``: the whole pipeline on one machine, from nothing, in one command.

Starts what is not configured: the embedded Redis-compatible server when no Redis URL is set,
the sandbox when no SOAP URL is set; then a worker and the HTTP API (with a dev API key and a
dev admin key unless keys are set), prints a banner saying where everything is and what to
try, and then live counters. URLs go to ``.relay/dev.env`` so that ``relay`` in a second
terminal finds them.

Every child runs in a session of its own, so a Ctrl-C in this terminal reaches only this
process, which then stops them in order: the worker first (its calls end while Redis and the
sandbox still answer), then the API and the sandbox, the embedded server last. SIGTERM does
the same; a second signal while stopping is ignored rather than a traceback.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from relay import connect
from relay.overview import one_line, overview
from relay.settings import DEV_ENV_FILE, StoreSettings, mask_url

SANDBOX_TOKEN = "sandbox-token"  # noqa: S105 - the emulator's published test token
SANDBOX_CONTROL_ENV = "RELAY_SANDBOX_CONTROL_TOKEN"
DEV_API_KEY = "dev-key"  # only when RELAY_API_KEYS is unset, on a developer's machine
DEV_ADMIN_KEY = "dev-admin-key"  # only when RELAY_ADMIN_KEYS is unset
STOP_ORDER = ("worker", "api", "sandbox", "redis")


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            found: int = s.getsockname()[1]
            return found
    raise OSError("no free port")


def _wait_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}; see "
                               f".relay-data/logs/{name}.log")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not open port {port} within {timeout:.0f}s")


class _Stack:
    """What ``relay dev`` started, so that everything is stopped, by PID, in order."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.banner: list[tuple[str, str]] = []

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        from worker.processes import stop_with_parent

        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([sys.executable, "-m", *args], env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=stop_with_parent)  # noqa: PLW1509 - no threads
        self.children[name] = proc
        return proc

    def redis(self) -> str:
        configured = self.env.get("RELAY_REDIS_URL") or self.env.get("REDIS_URL")
        if configured:
            self.banner.append(("redis", f"{mask_url(configured)} (configured)"))
            return configured
        port = _free_port(6390)
        proc = self.spawn("redis", "relay.embedded", str(port))
        _wait_port(port, proc, "redis")
        url = self.env["RELAY_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        _wait_ready(url, proc)
        self.banner.append(("redis", f"{url} (embedded valkey, data in .relay-data/redis/)"))
        return url

    def sandbox(self) -> None:
        if self.env.get("RELAY_SOAP_URL"):
            self.banner.append(("soap", f"{mask_url(self.env['RELAY_SOAP_URL'])} (configured)"))
            return
        port = _free_port(8088)
        # The sandbox's control API is off unless given a token: on here, behind a fresh one.
        token = self.env.setdefault(SANDBOX_CONTROL_ENV, secrets.token_urlsafe(24))
        _wait_port(port, self.spawn("sandbox", "relay", "sandbox", "--port", str(port)),
                   "sandbox")
        self.env["RELAY_SOAP_URL"] = f"http://127.0.0.1:{port}/Services/Interaction.asmx"
        self.env.setdefault("RELAY_SECURITY_TOKEN", SANDBOX_TOKEN)
        self.banner += [("soap", f"sandbox at {self.env['RELAY_SOAP_URL']}"),
                        ("sandbox control", f"http://127.0.0.1:{port}/_sandbox/config "
                                            f"(Authorization: Bearer {token})")]

    def worker(self) -> None:
        self.spawn("worker", "relay", "worker", "--processes", "1")
        self.banner.append(("worker", "1 process"))

    def api(self) -> str:
        keys = {"RELAY_API_KEYS": DEV_API_KEY, "RELAY_ADMIN_KEYS": DEV_ADMIN_KEY}
        shown = {}
        for name, dev_value in keys.items():  # print a key only if it is ours to print
            shown[name] = f"(yours, from {name})" if self.env.get(name) else dev_value
            self.env.setdefault(name, dev_value)
        port = _free_port(8080)
        _wait_port(port, self.spawn("api", "relay", "api", "--port", str(port)), "api")
        base = f"http://127.0.0.1:{port}"
        self.banner += [("api", f"{base}/v1/interactions"), ("dashboard", f"{base}/ui/"),
                        ("api key", shown["RELAY_API_KEYS"]),
                        ("admin key", shown["RELAY_ADMIN_KEYS"])]
        return base

    def stop(self) -> None:
        """Worker first, embedded server last; every child by its own PID."""
        for name in sorted(self.children, key=lambda n: STOP_ORDER.index(n)
                           if n in STOP_ORDER else 0):
            _stop(self.children[name])
            print(f"  {name} stopped", flush=True)


def run_dev(with_api: bool = True) -> int:
    logs = Path(".relay-data") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = _Stack(dict(os.environ), logs)
    # `relay dev` itself is the thing that writes dev.env: ignore a stale one.
    with contextlib.suppress(FileNotFoundError):
        DEV_ENV_FILE.unlink()
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job ignores it
        signal.signal(signum, _interrupt)
    code = 0
    try:
        url = stack.redis()
        stack.sandbox()
        DEV_ENV_FILE.parent.mkdir(exist_ok=True)
        DEV_ENV_FILE.write_text(f"RELAY_REDIS_URL={url}\n")
        stack.worker()
        base = stack.api() if with_api else None
        print(_banner(stack.banner, logs, base), flush=True)
        _live(url, stack.children)
    except KeyboardInterrupt:
        print("\nstopping: worker first, then the API, the sandbox and Redis ...", flush=True)
    except (RuntimeError, OSError) as exc:
        print(f"\nrelay dev: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut this short
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()
        with contextlib.suppress(FileNotFoundError):
            DEV_ENV_FILE.unlink()
    print("stopped", flush=True)
    return code


def _banner(rows: list[tuple[str, str]], logs: Path, base: str | None) -> str:
    width = max(len(name) for name, _ in rows) + 2
    lines = ["relay dev is running", *(f"  {name + ':':<{width}}{value}" for name, value in rows),
             f"  {'logs:':<{width}}{logs}/",
             "", "Try, in another terminal in this folder (it reads .relay/dev.env):",
             "  relay send --account 123456 --location STORE-001 --type VISIT",
             "  relay status                 pool-wide counters (relay status EVENT_ID: one event)",
             "  relay dlq list               dead letters, if any"]
    if base:
        key = dict(rows)["api key"]
        key = key if not key.startswith("(") else "$KEY"
        lines.append(f"  curl -H 'Authorization: Bearer {key}' -H 'Content-Type: "
                     "application/json' -d '{\"account_id\": \"123456\", \"location\": "
                     f"\"STORE-001\", \"interaction_type\": \"VISIT\"}}' {base}/v1/interactions")
    lines += ["", f"Stop: Ctrl-C here (or kill {os.getpid()}); the worker stops first, "
                  "Redis last.", ""]
    return "\n".join(lines)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until the server answers PING (it loads its AOF after opening the port)."""
    import redis

    client = connect.client(url, socket_connect_timeout=1, socket_timeout=2)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the embedded server did not start; see "
                                       ".relay-data/logs/redis.log") from None
                time.sleep(0.1)
    finally:
        client.close()


def _live(url: str, children: dict[str, subprocess.Popen[bytes]]) -> None:
    import redis

    client = connect.client(url, socket_connect_timeout=2, socket_timeout=5)
    keys = StoreSettings.from_env().keys
    tty = sys.stdout.isatty()
    last = ""
    while True:
        for name, proc in children.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; "
                                   f"see .relay-data/logs/{name}.log")
        try:
            line = one_line(overview(client, keys))
        except redis.RedisError as exc:
            line = f"Redis at {mask_url(url)} does not answer ({type(exc).__name__})"
        if tty:
            print("\r\033[K" + line, end="", flush=True)
        elif line != last:
            print(line, flush=True)
        last = line
        time.sleep(1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
