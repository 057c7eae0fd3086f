"""The `relay` command line as a user runs it: `relay check` and `relay dev` end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from relay.keys import Keys
from tests.helpers import ROOT, Sandbox, free_port, start_relay_dev, start_worker, stop, wait_until


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
        "default: token": True, "default: endpoint": True, "default: namespace": True,
        "default: soapAction": True}
    token = next(c for c in data["checks"] if c["name"] == "default: token")
    assert token["warning"] and "NOT verified" in token["detail"]  # says so, plainly
    assert "tok-visible?" not in ok.stdout and data["settings"]["tenants"]["default"][
        "token"] == "***"
    wrong = relay("check", env={**env, "RELAY_SOAP_NAMESPACE": "https://example.invalid/ns/"})
    assert wrong.returncode == 1
    assert "[FAIL] default: namespace" in wrong.stdout
    assert "[FAIL] default: soapAction" in wrong.stdout
    assert "hunter2" not in wrong.stdout + wrong.stderr


def test_relay_dev_from_nothing_then_send_from_a_second_terminal(tmp_path: Path) -> None:
    """What `make run` does on a fresh machine: no Redis URL, no SOAP URL, no keys."""
    dev, log = start_relay_dev(tmp_path)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAY_") and k not in ("REDIS_URL", "SENTRY_DSN")}
    env["PYTHONPATH"] = str(ROOT)
    try:
        banner = log.read_text()
        assert "embedded valkey" in banner and "sandbox at" in banner
        assert re.search(r"dashboard: +http://127\.0\.0\.1:\d+/ui/", banner), banner
        assert re.search(r"admin key: +dev-admin-key", banner)
        assert "relay send --account" in banner and "relay status" in banner
        sent = relay("send", "--account", "123456", "--location", "STORE-001", "--type",
                     "VISIT", "--json", env=env, cwd=tmp_path)  # finds .relay/dev.env
        assert sent.returncode == 0, sent.stderr
        event_id = json.loads(sent.stdout)["event_id"]
        wait_until(lambda: re.search(r"delivered=1\b", log.read_text()), 60, 0.2,
                   "the live counters to show the delivery")
        status = json.loads(relay("status", event_id, "--json", env=env, cwd=tmp_path).stdout)
        assert status["state"] == "delivered" and status["interaction_id"] > 0
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        try:
            dev.wait(timeout=60)
        finally:
            stop(dev, timeout=30)
    output = log.read_text()
    assert dev.returncode == 0 and "Traceback" not in output
    stopped = re.findall(r"^  (\w+) stopped$", output, re.M)
    assert stopped == ["worker", "api", "sandbox", "redis"], output  # the worker before Redis
    worker_log = (tmp_path / ".relay-data" / "logs" / "worker.log").read_text()
    assert "Traceback" not in worker_log and "ConnectionError" not in worker_log
    assert not (tmp_path / ".relay" / "dev.env").exists()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user who has configured nothing, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAY_") and k not in ("REDIS_URL", "SENTRY_DSN")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command, checking that it is a single line."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    return lines[0]


@pytest.mark.parametrize("command", [["status"], ["status", "e-1"], ["dlq", "list"],
                                     ["dlq", "export"], ["dlq", "replay", "--all"],
                                     ["send", "--account", "123456", "--location", "S",
                                      "--type", "VISIT"]])
def test_redis_down_is_one_line_and_exit_3(command: list[str], tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{free_port()}/4"
    result = relay(*command, env=clean_env(RELAY_REDIS_URL=down), cwd=tmp_path)
    assert result.returncode == 3  # exitcodes.UNAVAILABLE
    line = one_line_error(result)
    assert line.startswith("relay: Redis at " + down) and "RELAY_REDIS_URL" in line


@pytest.mark.parametrize("variable", ["RELAY_REDIS_URL", "REDIS_URL"])
def test_a_url_without_scheme_names_the_variable_and_the_rule(variable: str,
                                                               tmp_path: Path) -> None:
    result = relay("status", env=clean_env(**{variable: "localhost:6379"}), cwd=tmp_path)
    assert result.returncode == 4  # exitcodes.CONFIG
    line = one_line_error(result)
    assert f"{variable} must start with one of redis://" in line and "'localhost:6379'" in line


def test_a_worker_with_a_bad_url_stops_at_once_instead_of_retrying(tmp_path: Path) -> None:
    env = clean_env(RELAY_REDIS_URL="localhost:6379", RELAY_SECURITY_TOKEN="t")
    started = time.monotonic()
    result = relay("worker", "--processes", "2", env=env, cwd=tmp_path)
    assert result.returncode == 4 and time.monotonic() - started < 30
    assert "RELAY_REDIS_URL must start with" in one_line_error(result)


def test_a_worker_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    env = clean_env(RELAY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/4")
    result = relay("worker", env=env, cwd=tmp_path)
    assert result.returncode == 4
    assert "no security token for tenant(s) default" in one_line_error(result)
    table = '{"acme": {"token": "t"}, "lab": {"token": ""}}'
    result = relay("worker", env={**env, "RELAY_TENANTS": table}, cwd=tmp_path)
    assert result.returncode == 4 and "tenant(s) lab:" in one_line_error(result)


def test_a_stale_dev_env_is_named_not_silently_replaced(tmp_path: Path) -> None:
    """`relay dev` has stopped (killed: its file is left); a subfolder finds the file too."""
    (tmp_path / ".relay").mkdir()
    (tmp_path / ".relay" / "dev.env").write_text(
        f"RELAY_REDIS_URL=redis://127.0.0.1:{free_port()}/0\n")
    (tmp_path / "sub").mkdir()
    result = relay("status", env=clean_env(), cwd=tmp_path / "sub")
    assert result.returncode == 3
    line = one_line_error(result)
    assert str(tmp_path / ".relay" / "dev.env") in line and "is it still running?" in line


def test_help_lists_every_command_with_examples_and_exit_codes() -> None:
    top = relay("--help", env=clean_env())
    assert top.returncode == 0
    commands = ["api", "check", "dev", "dlq", "import", "sandbox", "send", "status", "worker"]
    for name in commands:
        assert re.search(rf"^  {name}\s", top.stdout, re.M), name
    assert "Exit codes:" in top.stdout and "3  Redis" in top.stdout
    assert "_RELAY_COMPLETE=bash_source relay" in top.stdout
    for command in [*([c] for c in commands if c != "dlq"),
                    *(["dlq", a] for a in ("list", "show", "replay", "purge", "export"))]:
        page = relay(*command, "--help", env=clean_env())
        assert page.returncode == 0 and "Example" in page.stdout, command
    worker = relay("worker", "--help", env=clean_env()).stdout
    assert worker.startswith("Usage: relay worker") and "--processes" in worker
    assert "celery --app" not in worker and "proj" not in worker


def test_version_and_shell_completion() -> None:
    from importlib.metadata import version

    assert relay("--version", env=clean_env()).stdout.strip() == \
        f"relay {version('interaction-relay')}"
    script = relay(env={**clean_env(), "_RELAY_COMPLETE": "bash_source"})
    assert "_relay_completion" in script.stdout
    words = relay(env={**clean_env(), "_RELAY_COMPLETE": "bash_complete",
                       "COMP_WORDS": "relay dlq ex", "COMP_CWORD": "2"})
    assert words.stdout.strip() == "plain,export"


def test_send_says_when_an_event_is_already_known(redis_url: str, tmp_path: Path) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    env = clean_env(RELAY_REDIS_URL=redis_url)
    args = ["send", "--account", "123456", "--location", "STORE-001", "--type", "VISIT",
            "--event-id", "twice-1"]
    first = relay(*args, env=env, cwd=tmp_path)
    assert first.returncode == 0 and first.stdout.strip() == "enqueued twice-1"
    again = relay(*args, env=env, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.startswith("already known: twice-1")
    data = json.loads(relay(*args, "--json", env=env, cwd=tmp_path).stdout)
    assert data == {"event_id": "twice-1", "tenant": "default", "enqueued": False,
                    "already_known": True}
    record = relay("status", "twice-1", env=env, cwd=tmp_path).stdout
    accepted = re.search(r"^accepted_at: (.*)$", record, re.M)
    assert accepted and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)",
                                     accepted.group(1)), record


def test_dead_letters_export_to_stdout_and_reimport(sandbox: Sandbox, redis_url: str,
                                                    tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    sandbox.configure(force_code=2)  # "required field missing": a dead letter at once
    env = clean_env(RELAY_REDIS_URL=redis_url, RELAY_SOAP_URL=sandbox.url,
                    RELAY_SECURITY_TOKEN="sandbox-token")
    for i in range(3):
        assert relay("send", "--account", "123456", "--location", "STORE-001", "--type",
                     "VISIT", "--event-id", f"dl-{i}", env=env, cwd=tmp_path).returncode == 0
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        wait_until(lambda: client.zcard(Keys().dlq) == 3, 30, 0.2, "three dead letters")
    finally:
        stop(worker.proc)
    listing = relay("dlq", "list", env=env, cwd=tmp_path).stdout
    assert re.search(r"dead \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)", listing), listing
    exported = relay("dlq", "export", "--output", "-", env=env, cwd=tmp_path)
    assert exported.returncode == 0 and not (tmp_path / "-").exists()
    assert sorted(json.loads(line)["event_id"] for line in exported.stdout.splitlines()) == \
        ["dl-0", "dl-1", "dl-2"]
    saved = tmp_path / "dead.txt"  # any name: the content says JSON lines
    saved.write_text(exported.stdout)
    again = json.loads(relay("import", str(saved), "--json", env=env, cwd=tmp_path).stdout)
    assert (again["duplicates"], again["rejected"]) == (3, 0)  # still dead letters here
    assert relay("dlq", "purge", "--all", "--yes", env=env, cwd=tmp_path).returncode == 0
    client.delete(*client.keys(Keys().pattern()))  # another relay, or the records expired
    result = relay("import", str(saved), "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["enqueued"] == 3


@pytest.mark.parametrize(("command", "says"), [
    (["import", "/no/such/file.csv"], "import: Invalid value for 'FILE'"),
    (["worker", "--processes", "0"], "worker: Invalid value for '--processes'"),
    (["dlq", "list", "--older-than", "3x"], "'3x' is not a duration like 90s"),
    (["sandbox", "--port", "x"], "sandbox: Invalid value for '--port'"),
    (["frobnicate"], "No such command 'frobnicate'"),
])
def test_usage_errors_are_one_line_and_exit_2(command: list[str], says: str) -> None:
    result = relay(*command, env=clean_env())
    assert result.returncode == 2
    line = one_line_error(result)
    assert says in line and "--help`" in line


def test_a_port_in_use_is_one_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = relay("sandbox", "--port", str(taken.getsockname()[1]), env=clean_env())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.splitlines() if line.startswith("relay: ")]
    assert "address already in use (choose another with --port)" in result.stderr
