"""Deployment files are read, not run (no Docker here): every command must resolve to a real
entry point and real options."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import click
import pytest
import yaml

from relay.cli import cli
from tests.helpers import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def celery_worker_options() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "celery", "worker", "--help"], text=True,
                         capture_output=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z-]+)", out))


def assert_relay_command(argv: list[str]) -> None:
    assert argv[0] == "relay", argv
    if argv[1] == "worker":
        known = celery_worker_options()
        unknown = [a.split("=")[0] for a in argv[2:] if a.startswith("--")
                   and a.split("=")[0] not in known]
        assert not unknown, f"celery worker does not know {unknown}"
    else:  # click raises UsageError (fails the test) on an unknown command or option
        command = cli.get_command(click.Context(cli), argv[1])
        assert command is not None, f"no command {argv[1]!r}"
        command.make_context(argv[1], argv[2:])


def test_console_script_points_at_the_cli() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'relay = "relay.command:main"' in pyproject


@pytest.mark.parametrize("service", ["worker", "api", "sandbox"])
def test_compose_relay_commands_resolve(service: str) -> None:
    assert_relay_command(COMPOSE["services"][service]["command"])


def test_compose_redis_has_aof_and_healthcheck() -> None:
    redis = COMPOSE["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert redis["healthcheck"]["test"][-1] == "ping"
    for name in ("worker", "api"):
        service = COMPOSE["services"][name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["RELAY_REDIS_URL"] == "redis://redis:6379/0"
    assert COMPOSE["services"]["sandbox"]["profiles"] == ["dev"]
    assert "ports" not in COMPOSE["services"]["worker"]  # so --scale worker=N works


def test_procfile_commands_resolve_with_platform_variables() -> None:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                 if line.strip())
    assert set(lines) == {"worker", "web"}
    for command in lines.values():
        assert_relay_command(shlex.split(command.replace("$PORT", "5000")))


def test_dockerfile_installs_with_constraints_and_runs_a_relay_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "-c constraints.txt" in text
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None
    assert_relay_command(json.loads(cmd.group(1)))
    # The COPY lines are checked by building them: tests/integration/test_packaging.py.


def test_compose_flower_runs_the_workers_app_with_their_environment() -> None:
    """Flower reads the broker URL and transport options (the key prefix) from the workers'
    own app, so it must import it, from the same image, with the same environment."""
    flower, worker = COMPOSE["services"]["flower"], COMPOSE["services"]["worker"]
    assert flower["command"][:3] == ["celery", "-A", "worker.app"]
    assert flower["build"] == worker["build"] == "."
    assert flower["environment"] == worker["environment"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]  # it can shut workers down


def test_platform_variables_are_read() -> None:
    from relay.settings import redis_url
    from worker.settings import Settings

    assert redis_url({"REDIS_URL": "redis://h:1/2"}) == "redis://h:1/2"
    assert redis_url({"REDIS_URL": "redis://h:1/2", "RELAY_REDIS_URL": "redis://x/0"}) == \
        "redis://x/0"
    assert Settings.from_env({"SENTRY_DSN": "http://k@h/1"}).sentry_dsn.reveal() == "http://k@h/1"


def test_version_comes_from_the_installed_distribution() -> None:
    import tomllib
    from importlib.metadata import version

    import relay

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert relay.__version__ == version("interaction-relay") == declared


def test_compose_api_binds_every_interface_explicitly() -> None:
    """`relay api` defaults to 127.0.0.1; inside a container that would be unreachable."""
    api = COMPOSE["services"]["api"]["command"]
    assert api[api.index("--host") + 1] == "0.0.0.0"
