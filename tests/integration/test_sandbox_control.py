"""The sandbox's control API: off by default, bearer-token only when on, never anonymous.

Each test runs a real sandbox process; ``start_sandbox`` (what every other test uses) turns the
API on with a fresh token, these tests also start one without.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import (
    ROOT,
    Sandbox,
    free_port,
    port_open,
    start,
    start_relay_dev,
    stop,
    wait_until,
)
from tests.integration.wire import call

ENDPOINTS = [("GET", "config"), ("POST", "config"), ("GET", "seed"), ("POST", "seed"),
             ("GET", "calls"), ("POST", "reset")]
VAR = "RELAY_SANDBOX_CONTROL_TOKEN"


def launch(tmp_path: Path, token: str) -> tuple[int, subprocess.Popen[bytes], Path]:
    port, log = free_port(), tmp_path / "sandbox.log"
    proc = start(["-m", "relay", "sandbox", "--port", str(port)], env={VAR: token}, log=log)
    wait_until(lambda: port_open(port) or proc.poll() is not None, 15, message="sandbox")
    return port, proc, log


@pytest.fixture
def uncontrolled(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A sandbox started as `relay sandbox` is by default: no control token."""
    port, proc, log = launch(tmp_path, "")
    yield f"http://127.0.0.1:{port}", log
    stop(proc)


@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
def test_off_by_default_every_control_path_is_404(uncontrolled: tuple[str, Path], method: str,
                                                  name: str) -> None:
    base, _ = uncontrolled
    r = requests.request(method, f"{base}/_sandbox/{name}", json={"force_code": 6}, timeout=5)
    assert r.status_code == 404
    assert r.json()["error"] == ("the sandbox control API is off; start the sandbox with "
                                 f"{VAR} set to turn it on")


def test_off_the_service_still_answers_and_nothing_changed(uncontrolled: tuple[str, Path]
                                                           ) -> None:
    base, log = uncontrolled
    requests.post(f"{base}/_sandbox/config", json={"force_code": 6}, timeout=5)
    assert call(f"{base}/Services/Interaction.asmx").return_code == 0
    assert f"control API off: set {VAR} to turn it on" in log.read_text()


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic c2FuZGJveDp0b2tlbg==", "Bearer wrong-token-of-length",
    "TOKEN", "Bearer  TOKEN", "Bearer TOKENx", "Bearer TOKE", "Bearer TOKEN TOKEN",
])
@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
def test_on_every_control_path_needs_the_exact_bearer_token(
        sandbox: Sandbox, method: str, name: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header.replace("TOKEN", sandbox.token)}
    r = requests.request(method, f"{sandbox.base}/_sandbox/{name}", headers=headers,
                         json={"force_code": 6, "add": {"tokens": ["mine"]}}, timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"] == (f"control API: missing or wrong bearer token (Authorization: "
                                 f"Bearer <{VAR}>)")
    assert sandbox.token not in r.text
    # nothing was changed: no forced code, no new token in the seed
    assert call(sandbox.url).return_code == 0
    assert call(sandbox.url, token="mine").return_code == 100
    assert sandbox.control(method, name, json={}).status_code == 200


def test_the_right_token_changes_what_the_service_answers(sandbox: Sandbox) -> None:
    assert sandbox.configure(force_code=6)["force_code"] == 6
    assert call(sandbox.url).return_code == 6
    # the scheme is case-insensitive (RFC 9110), the token is not
    r = requests.post(f"{sandbox.base}/_sandbox/config", json={"force_code": None}, timeout=5,
                      headers={"Authorization": f"bearer {sandbox.token}"})
    assert r.status_code == 200 and call(sandbox.url).return_code == 0


@pytest.mark.parametrize("token", ["short", "x" * 15, " " + "x" * 20, "x" * 20 + "\n",
                                   "tab\tinside-a-long-token"])
def test_a_weak_or_malformed_token_refuses_to_start(tmp_path: Path, token: str) -> None:
    result = subprocess.run([sys.executable, "-m", "relay", "sandbox", "--port",
                             str(free_port())], cwd=ROOT, env={**os.environ, VAR: token},
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"relay sandbox: {VAR}: must be at least 16 printable characters without surrounding "
        "spaces (e.g. `openssl rand -hex 16`)")
    if token.strip():
        assert token.strip() not in result.stderr + result.stdout


def test_the_token_never_reaches_the_log_or_the_service_replies(tmp_path: Path) -> None:
    token = "control-" + os.urandom(12).hex()
    port, proc, log = launch(tmp_path, token)
    try:
        url = f"http://127.0.0.1:{port}/Services/Interaction.asmx"
        replies = [requests.get(url + "?WSDL", timeout=5).text,
                   requests.get(url, timeout=5).text,
                   requests.post(url, data=b"<x/>", timeout=5,
                                 headers={"Content-Type": "text/xml", "SOAPAction": "x"}).text]
        assert call(url).return_code == 0
    finally:
        stop(proc)
    assert all(token not in text for text in [*replies, log.read_text()])
    assert "control: /_sandbox/ with the bearer token in " + VAR in log.read_text()


def test_help_says_how_to_turn_it_on() -> None:
    out = subprocess.run([sys.executable, "-m", "relay", "sandbox", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert VAR in re.sub(r"\s+", " ", out)


def test_compose_dev_profile_does_not_publish_it_anonymously() -> None:
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["sandbox"]
    # empty unless the operator sets one: then the API is off
    assert service["environment"] == {VAR: "${" + VAR + ":-}"}
    assert service["ports"] == ["127.0.0.1:8088:8088"]


def test_relay_dev_turns_it_on_behind_a_fresh_token(tmp_path: Path,
                                                     embedded_redis_url: str) -> None:
    dev, log = start_relay_dev(tmp_path, RELAY_REDIS_URL=embedded_redis_url,
                               RELAY_API_KEYS="control-test-key")
    try:
        found = re.search(r"control:\s+(http://\S+/_sandbox/config) "
                          r"\(Authorization: Bearer (\S+)\)", log.read_text())
        assert found, log.read_text()
        url, token = found.groups()
        assert len(token) >= 24
        assert requests.get(url, timeout=5).status_code == 401
        r = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert r.status_code == 200 and json.loads(r.text)["force_code"] is None
    finally:
        stop(dev, timeout=30)
