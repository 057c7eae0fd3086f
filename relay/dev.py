"""``relay dev``: the whole pipeline on one machine, from nothing, in one command.

Starts what is not configured: the embedded Redis-compatible server when no Redis URL is set,
the sandbox when no SOAP URL is set; then a worker (and the HTTP API when available), and
prints live counters. URLs go to ``.relay/dev.env`` so a second terminal's ``relay send``
finds them. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from producers.overview import one_line, overview
from producers.settings import DEV_ENV_FILE

SANDBOX_TOKEN = "sandbox-token"  # noqa: S105 - the emulator's published test token


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


def run_dev(with_api: bool = True) -> int:
    env = dict(os.environ)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    server: Any = None
    logs = Path(".relay-data") / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([sys.executable, "-m", "relay", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        children.append((name, proc))
        return proc

    # `relay dev` itself is the thing that writes dev.env: ignore a stale one.
    with contextlib.suppress(FileNotFoundError):
        DEV_ENV_FILE.unlink()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if not (env.get("RELAY_REDIS_URL") or env.get("REDIS_URL")):
            from relay.embedded import start_embedded

            server = start_embedded(port=_free_port(6390))
            env["RELAY_REDIS_URL"] = server.connection_url + "/0"
            print(f"redis:   embedded valkey at {env['RELAY_REDIS_URL']} (AOF in .relay-data/)")
        else:
            print("redis:   using the configured Redis URL")
        if not env.get("RELAY_SOAP_URL"):
            port = _free_port(8088)
            _wait_port(port, spawn("sandbox", "sandbox", "--port", str(port)), "sandbox")
            env["RELAY_SOAP_URL"] = f"http://127.0.0.1:{port}/Services/Interaction.asmx"
            env.setdefault("RELAY_SECURITY_TOKEN", SANDBOX_TOKEN)
            print(f"soap:    sandbox at {env['RELAY_SOAP_URL']}")
        else:
            print(f"soap:    {env['RELAY_SOAP_URL']}")
        DEV_ENV_FILE.parent.mkdir(exist_ok=True)
        DEV_ENV_FILE.write_text(f"RELAY_REDIS_URL={env['RELAY_REDIS_URL']}\n"
                                if "RELAY_REDIS_URL" in env else "")
        spawn("worker", "worker")
        if with_api and _has_api():
            api_port = _free_port(8080)
            spawn("api", "api", "--port", str(api_port))
            print(f"api:     http://127.0.0.1:{api_port}/v1/interactions")
        print(f"logs:    {logs}/ ; send from another terminal with:\n"
              "  .venv/bin/relay send --account 123456 --location STORE-001 --type VISIT\n")
        _live(env["RELAY_REDIS_URL"] if "RELAY_REDIS_URL" in env else env["REDIS_URL"], children)
    except KeyboardInterrupt:
        print("\nstopping ...")
    except (RuntimeError, OSError) as exc:
        print(f"\nrelay dev: {exc}", file=sys.stderr)
        return 1
    finally:
        for _name, proc in reversed(children):
            _stop(proc)
        if server is not None:
            server.stop()
        with contextlib.suppress(FileNotFoundError):
            DEV_ENV_FILE.unlink()
    return 0


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def _has_api() -> bool:
    return importlib.util.find_spec("producers.api") is not None


def _live(url: str, children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    client = redis.Redis.from_url(url)
    tty = sys.stdout.isatty()
    last = ""
    while True:
        for name, proc in children:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}; "
                                   f"see .relay-data/logs/{name}.log")
        line = one_line(overview(client))
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
