from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Sandbox, start_sandbox, stop


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
