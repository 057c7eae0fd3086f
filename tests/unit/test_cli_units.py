"""The CLI's pure parts: readable times, where a Redis URL came from, tenant tokens, the
supervisor's stop on a configuration error, JSON-lines detection."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from producers.bulk import is_json_lines
from relay.cli import redis_advice
from relay.cli.output import _plain, ago, when
from relay.errors import ConfigError
from relay.settings import StoreSettings, redis_source
from worker.processes import CONFIG_EXIT, supervise
from worker.settings import Settings

NOW = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s ago"), (59, "59 s ago"), (60, "1 min ago"), (7200, "2 h ago"),
    (3 * 86400 + 5, "3 d ago"), (-30, "in 30 s")])
def test_ago(seconds: float, text: str) -> None:
    assert ago(seconds) == text


@pytest.mark.parametrize("value", ["2026-11-28T09:57:00.000+00:00", "2026-11-28T09:57:00Z",
                                   1795859820, 1795859820000])
def test_times_read_as_utc_and_how_long_ago(value: object) -> None:
    assert when(value, NOW) == "2026-11-28 09:57:00 UTC (3 min ago)"


def test_human_output_never_shows_an_epoch_in_a_time_field() -> None:
    text = _plain({"accepted_at": 1795859820000, "history": [{"at": "2026-11-28T09:57:00Z"}],
                   "attempts": 3})
    assert "1795859820000" not in text and "attempts: 3" in text
    assert text.count("UTC (") == 2


def test_the_source_of_the_redis_url_is_always_known(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("RELAY_REDIS_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    assert redis_source() == "" and "RELAY_REDIS_URL is not set" in redis_advice()
    (tmp_path / ".relay").mkdir()
    (tmp_path / ".relay" / "dev.env").write_text("RELAY_REDIS_URL=redis://127.0.0.1:1/0\n")
    (tmp_path / "deeper").mkdir()
    monkeypatch.chdir(tmp_path / "deeper")
    assert redis_source() == str(tmp_path / ".relay" / "dev.env")
    assert StoreSettings.from_env().redis_url == "redis://127.0.0.1:1/0"
    assert "still running" in redis_advice()
    monkeypatch.setenv("REDIS_URL", "redis://h:2/0")
    assert redis_source() == "REDIS_URL" and StoreSettings.from_env().redis_url == "redis://h:2/0"


def test_a_tenant_needs_a_token_unless_its_table_entry_says_otherwise() -> None:
    with pytest.raises(ConfigError, match=r"tenant\(s\) default"):
        Settings.from_env({}).check_tokens()
    with pytest.raises(ConfigError, match=r"tenant\(s\) lab"):
        Settings.from_env({"RELAY_TENANTS": '{"lab": {"token": ""}}'}).check_tokens()
    tokenless = Settings.from_env({"RELAY_TENANTS": '{"lab": {"token_required": false}}'})
    tokenless.check_tokens()
    assert tokenless.tokenless == {"lab"} and not tokenless.endpoint("lab").token
    with pytest.raises(ConfigError, match="true or false"):
        Settings.from_env({"RELAY_TENANTS": '{"lab": {"token_required": 0}}'})
    with pytest.raises(ConfigError, match="RELAY_BROKER_URL must be a URL"):
        Settings.from_env({"RELAY_BROKER_URL": "broker:6379"})


def test_the_supervisor_stops_when_a_child_says_its_configuration_cannot_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child exiting 4 is not restarted (it would fail again, forever)."""
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho started >> {tmp_path / 'runs'}\nexit {CONFIG_EXIT}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)}
    try:
        assert supervise(2, []) == CONFIG_EXIT
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert (tmp_path / "runs").read_text().count("started") == 2


def test_json_lines_by_name_or_by_content(tmp_path: Path) -> None:
    cases = {"a.jsonl": "", "b.txt": '\ufeff  {"event_id": "x"}\n', "c.csv": "account_id\n1\n",
             "d": "\n\n{}\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    assert [is_json_lines(tmp_path / n) for n in cases] == [True, True, False, True]
