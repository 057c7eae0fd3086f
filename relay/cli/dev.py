"""``relay dev``: the whole pipeline on one machine, from nothing, in one command.

Starts what is not configured: the embedded Redis-compatible server when no Redis URL is set,
the sandbox when no SOAP URL is set; then a worker (and the HTTP API when available), and
prints live counters. URLs go to ``.relay/dev.env`` so a second terminal's ``relay send``
finds them. Ctrl-C stops every process it started.
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
from relay.settings import DEV_ENV_FILE, StoreSettings

SANDBOX_TOKEN = "sandbox-token"  # noqa: S105 - the emulator's published test token
SANDBOX_CONTROL_ENV = "RELAY_SANDBOX_CONTROL_TOKEN"
DEV_API_KEY = "dev-key"  # only when RELAY_API_KEYS is unset, on a developer's machine


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
            raise RuntimeError(f"{name} exited with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not open port {port} within {timeout:.0f}s")


class _Stack:
    """What ``relay dev`` started, so that everything is stopped, by PID, on the way out."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.server: Any = None

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([sys.executable, "-m", "relay", *args], env=self.env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, proc))
        return proc

    def redis(self) -> str:
        if self.env.get("RELAY_REDIS_URL") or self.env.get("REDIS_URL"):
            print("redis:   using the configured Redis URL")
        else:
            from relay.embedded import start_embedded

            self.server = start_embedded(port=_free_port(6390))
            self.env["RELAY_REDIS_URL"] = self.server.connection_url + "/0"
            print(f"redis:   embedded valkey at {self.env['RELAY_REDIS_URL']} "
                  "(AOF in .relay-data/)")
        return self.env.get("RELAY_REDIS_URL") or self.env["REDIS_URL"]

    def sandbox(self) -> None:
        if self.env.get("RELAY_SOAP_URL"):
            print(f"soap:    {self.env['RELAY_SOAP_URL']}")
            return
        port = _free_port(8088)
        # The sandbox's control API is off unless given a token: on here, behind a fresh one.
        token = self.env.setdefault(SANDBOX_CONTROL_ENV, secrets.token_urlsafe(24))
        _wait_port(port, self.spawn("sandbox", "sandbox", "--port", str(port)), "sandbox")
        self.env["RELAY_SOAP_URL"] = f"http://127.0.0.1:{port}/Services/Interaction.asmx"
        self.env.setdefault("RELAY_SECURITY_TOKEN", SANDBOX_TOKEN)
        print(f"soap:    sandbox at {self.env['RELAY_SOAP_URL']}\n"
              f"         control http://127.0.0.1:{port}/_sandbox/config "
              f"(Authorization: Bearer {token})")

    def api(self) -> None:
        self.env.setdefault("RELAY_API_KEYS", DEV_API_KEY)
        port = _free_port(8080)
        _wait_port(port, self.spawn("api", "api", "--host", "127.0.0.1", "--port", str(port)),
                   "api")
        print(f"api:     http://127.0.0.1:{port}/v1/interactions "
              f"(Authorization: Bearer {self.env['RELAY_API_KEYS'].split(',')[0]})")

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            _stop(proc)
        if self.server is not None:
            self.server.stop()


def run_dev(with_api: bool = True) -> int:
    logs = Path(".relay-data") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = _Stack(dict(os.environ), logs)
    # `relay dev` itself is the thing that writes dev.env: ignore a stale one.
    with contextlib.suppress(FileNotFoundError):
        DEV_ENV_FILE.unlink()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        url = stack.redis()
        stack.sandbox()
        DEV_ENV_FILE.parent.mkdir(exist_ok=True)
        DEV_ENV_FILE.write_text(f"RELAY_REDIS_URL={url}\n")
        stack.spawn("worker", "worker", "--processes", "1")
        if with_api:
            stack.api()
        print(f"logs:    {logs}/ ; send from another terminal with:\n"
              "  .venv/bin/relay send --account 123456 --location STORE-001 --type VISIT\n")
        _live(url, stack.children)
    except KeyboardInterrupt:
        print("\nstopping ...")
    except (RuntimeError, OSError) as exc:
        print(f"\nrelay dev: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        with contextlib.suppress(FileNotFoundError):
            DEV_ENV_FILE.unlink()
    return 0


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _live(url: str, children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    client = connect.client(url)
    keys = StoreSettings.from_env().keys
    tty = sys.stdout.isatty()
    last = ""
    while True:
        for name, proc in children:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; "
                                   f"see .relay-data/logs/{name}.log")
        line = one_line(overview(client, keys))
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
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
