"""The `relay` command line as a user runs it: `relay check` and `relay dev` end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT, Sandbox, stop, wait_until


def relay(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=60, check=False, env=env)


def test_check_reads_the_wsdl_and_masks_secrets(sandbox: Sandbox, redis_url: str) -> None:
    env = {**os.environ, "RELAY_SOAP_URL": sandbox.url, "RELAY_SECURITY_TOKEN": "tok-visible?",
           "RELAY_REDIS_URL": redis_url.replace("redis://", "redis://:hunter2@", 1)
           if "@" not in redis_url else redis_url}
    ok = relay("check", "--json", env={**env, "RELAY_REDIS_URL": redis_url})
    data = json.loads(ok.stdout)
    assert ok.returncode == 0, ok.stdout
    assert {c["name"]: c["ok"] for c in data["checks"]} == {
        "redis": True, "redis: eviction": True, "redis: persistence": True,
        "default: endpoint": True, "default: namespace": True, "default: soapAction": True}
    assert "tok-visible?" not in ok.stdout and data["settings"]["tenants"]["default"][
        "token"] == "***"
    wrong = relay("check", env={**env, "RELAY_SOAP_NAMESPACE": "https://example.invalid/ns/"})
    assert wrong.returncode == 1
    assert "[FAIL] default: namespace" in wrong.stdout
    assert "[FAIL] default: soapAction" in wrong.stdout
    assert "hunter2" not in wrong.stdout + wrong.stderr


def test_relay_dev_from_nothing_then_send_from_a_second_terminal(tmp_path: Path) -> None:
    """What `make run` does on a fresh machine: no Redis URL, no SOAP URL, no keys."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAY_") and k not in ("REDIS_URL", "SENTRY_DSN")}
    env["PYTHONPATH"] = str(ROOT)
    log = tmp_path / "dev.out"
    with log.open("wb") as out:
        dev = subprocess.Popen([sys.executable, "-m", "relay", "dev"], cwd=tmp_path, env=env,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "send from another terminal" in log.read_text(), 60, 0.2, "relay dev")
        assert "embedded valkey" in log.read_text() and "sandbox at" in log.read_text()
        sent = relay("send", "--account", "123456", "--location", "STORE-001", "--type",
                     "VISIT", "--json", env=env, cwd=tmp_path)  # finds .relay/dev.env
        assert sent.returncode == 0, sent.stderr
        event_id = json.loads(sent.stdout)["event_id"]
        wait_until(lambda: re.search(r"delivered=1\b", log.read_text()), 30, 0.2,
                   "the live counters to show the delivery")
        status = json.loads(relay("status", event_id, "--json", env=env, cwd=tmp_path).stdout)
        assert status["state"] == "delivered" and status["interaction_id"] > 0
    finally:
        stop(dev, timeout=30)
    assert "stopping" in log.read_text()
    time.sleep(0.5)
    assert not (tmp_path / ".relay" / "dev.env").exists()
