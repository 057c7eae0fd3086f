"""``relay import`` as a user runs it: a real process, a real Redis-protocol server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from relay.events import Interaction
from relay.keys import Keys, split
from tests.helpers import ROOT, free_port, members, wait_until

KEYS = Keys()


def queued(client: redis.Redis) -> list[dict[str, Any]]:
    """The events waiting in the queue, oldest first, as their messages."""
    out = []
    for member in members(client, KEYS.due):
        tenant, event_id = split(member)
        payload = client.hget(KEYS.record(tenant, event_id), "m")
        assert isinstance(payload, bytes)
        out.append(Interaction.from_payload(tenant, event_id, payload).to_message())
    return out


def write_file(path: Path, lines: int) -> set[int]:
    """CSV with 1% bad lines (missing account, or a bad location); returns their numbers."""
    bad: set[int] = set()
    with path.open("w") as f:
        f.write("account_id,location,type,note\n")
        for i in range(lines):
            number = i + 2  # the header is line 1
            if i % 100 == 37:
                bad.add(number)
                f.write(f",STORE-001,VISIT,missing account {i}\n")
            else:
                f.write(f"{100000 + i},STORE-{1 + i % 50:03d},VISIT,note {i}\n")
    return bad


def run_import(path: Path, redis_url: str, *args: str
               ) -> tuple[int, dict[str, Any], str, float]:
    """Exit code, JSON summary, stderr and the child's peak RSS in MB."""
    env = {k: v for k, v in os.environ.items() if k != "RELAY_SPOOL_DIR"}
    with open(path.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "relay", "import", str(path), "--json",
                                 *args],
                                cwd=ROOT, env={**env, "RELAY_REDIS_URL": redis_url},
                                stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, json.loads(out), path.with_suffix(".err").read_text(),
            usage.ru_maxrss / 1024)


def reported(err: str) -> dict[int, str]:
    """Line number -> reason, from the ``line N: reason`` lines on stderr."""
    found = (re.fullmatch(r"line (\d+): (.*)", line) for line in err.splitlines())
    return {int(m.group(1)): m.group(2) for m in found if m}


def test_import_reports_bad_lines_and_is_idempotent(tmp_path: Path, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    path = tmp_path / "visits.csv"
    bad = write_file(path, 3000)
    code, summary, err, _ = run_import(path, redis_url)
    assert code == 1  # some lines were rejected
    assert summary["enqueued"] == 3000 - len(bad) and summary["rejected"] == len(bad)
    assert set(reported(err)) == bad
    assert "account_id: is required" in err
    assert redis.Redis.from_url(redis_url).zcard(KEYS.due) == 3000 - len(bad)
    code, summary, _, _ = run_import(path, redis_url)
    assert (summary["enqueued"], summary["duplicates"]) == (0, 3000 - len(bad))


def test_jsonl_with_broken_lines(tmp_path: Path, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"account_id": "123456", "location": "STORE-001", '
                     b'"interaction_type": "VISIT", "event_id": "j-1"}\n'
                     b"not json\n\n"
                     b'["a list"]\n'
                     b'{"account_id": "1\xff2", "location": "S", "interaction_type": "V"}\n')
    code, summary, err, _ = run_import(path, redis_url)
    assert code == 1 and summary["enqueued"] == 1 and summary["rejected"] == 3
    assert "line 2: line: is not JSON" in err and "line 4: line: must be an object" in err
    assert "line 5: line: is not valid UTF-8 (byte 0xff at byte 18)" in err


def test_rows_after_an_unterminated_quote_are_imported(tmp_path: Path, redis_url: str) -> None:
    """The quote at 75% used to swallow the rest into one field and crash with no summary."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    path, broken = tmp_path / "quotes.csv", 6000
    lines = [f"{100000 + n},STORE-{n % 50:03d},VISIT,{'n' * 120} {n}" for n in range(2, 8002)]
    lines[broken - 2] = '1,STORE-001,VISIT,"never closed'
    path.write_text("account_id,location,type,note\n" + "\n".join(lines) + "\n")
    code, summary, err, _ = run_import(path, redis_url)
    assert code == 1 and "Traceback" not in err
    assert (summary["lines"], summary["enqueued"], summary["rejected"]) == (8000, 7999, 1)
    assert reported(err) == {broken: "line: has a quoted field that is not closed on this line "
                                     "(a quoted field cannot span lines)"}
    sent = {m["account_id"] for m in queued(client)}
    assert len(sent) == 7999 and {str(100000 + n) for n in (broken + 1, 8001)} <= sent


def test_every_malformed_line_is_reported_and_skipped(tmp_path: Path, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    path = tmp_path / "hostile.csv"
    path.write_bytes(b"\xef\xbb\xbfaccount,location,type,note\n"
                     b"1001,STORE-001,VISIT,ok\n"          # 2
                     b"1002,STORE-001,VISIT,caf\xe9\n"      # 3: Latin-1, not UTF-8
                     b"1003,STORE-\x00001,VISIT,x\n"       # 4: NUL
                     b"1004,STORE-001,VISIT," + b"n" * 70_000 + b"\n"  # 5: too long
                     b"1005,STORE-001\n"                   # 6: too few columns
                     b"1006,STORE-001,VISIT,x,extra\n"      # 7: too many
                     b'1007,STORE-001,VISIT,"two\nlines"\n'  # 8-9: refused, both
                     b"\n"                                 # 10: blank, skipped
                     b"1011,STORE-001,VISIT,ok")            # 11: no final newline
    code, summary, err, _ = run_import(path, redis_url)
    assert code == 1 and "Traceback" not in err
    assert (summary["lines"], summary["enqueued"], summary["rejected"]) == (9, 2, 7)
    why = reported(err)
    assert sorted(why) == [3, 4, 5, 6, 7, 8, 9]
    assert "not valid UTF-8" in why[3] and "NUL byte" in why[4]
    assert why[5] == "line: is too long (70,021 bytes; the limit is 65,536)"
    assert "has 2 columns, the header has 4" in why[6] and "has 5 columns" in why[7]
    assert "cannot span lines" in why[8] and "has 1 columns" in why[9]
    assert [r["line"] for r in summary["first_rejections"]] == sorted(why)


def test_ids_derive_from_the_file_name_or_prefix(tmp_path: Path, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    monday, tuesday = tmp_path / "monday.csv", tmp_path / "tuesday.csv"
    write_file(monday, 50)
    shutil.copy(monday, tuesday)
    counts = [run_import(path, redis_url, *args)[:2] for path, args in [
        (monday, ()), (monday, ()), (tuesday, ()), (tuesday, ("--id-prefix", "monday.csv"))]]
    assert [(code, s["enqueued"], s["duplicates"], s["rejected"]) for code, s in counts] == [
        (1, 49, 0, 1), (1, 0, 49, 1), (1, 49, 0, 1), (1, 0, 49, 1)]
    ids = [m["event_id"] for m in queued(redis.Redis.from_url(redis_url))]
    assert {i.split(":")[0] for i in ids} == {"monday.csv", "tuesday.csv"}
    assert all(re.fullmatch(r"[a-z]+\.csv:\d+:[0-9a-f]{16}", i) for i in ids)


def test_a_clean_file_exits_0_and_prints_its_summary(tmp_path: Path, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    path = tmp_path / "clean.csv"
    path.write_text("account,location,type\n1,STORE-001,VISIT\n2,STORE-001,VISIT\n")
    for expected in ("2 enqueued, 0 already known", "0 enqueued, 2 already known"):
        done = subprocess.run([sys.executable, "-m", "relay", "import", str(path),
                               "--id-prefix", "a day/with slashes"],
                              cwd=ROOT, env={**os.environ, "RELAY_REDIS_URL": redis_url},
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert f"2 lines: {expected}, 0 rejected" in done.stdout
    [message, _] = queued(redis.Redis.from_url(redis_url))
    assert message["event_id"].startswith("a_day_with_slashes:")


def test_a_dead_letter_export_reimports(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    event = {"tenant": "default", "event_id": "dl-1", "account_id": "123456",
             "location": "STORE-001", "interaction_type": "VISIT", "note": "fixed",
             "occurred_at": "2026-11-27T10:00:00+00:00"}
    dead = {"code": 503, "signal": "code:503", "reason": "account locked", "attempts": 1,
            "dead_at": 1764237600.0}
    path = tmp_path / "dlq.jsonl"
    path.write_text(json.dumps({**event, "dead_letter": dead}) + "\n"
                    + json.dumps({**event, "event_id": "dl-2", "dead_letter": dead}) + "\n")
    code, summary, err, _ = run_import(path, redis_url)
    assert code == 0, err
    assert (summary["enqueued"], summary["rejected"]) == (2, 0)
    sent = queued(client)
    assert sorted(sent, key=lambda m: m["event_id"]) == [event, {**event, "event_id": "dl-2"}]
    path.write_text(json.dumps({**event, "event_id": "dl-3", "dead_letter": dead,
                                "comment": "not a field"}) + "\n")
    code, summary, err, _ = run_import(path, redis_url)
    assert code == 1 and "line 1: comment: is not a known field" in err


def test_the_summary_prints_when_redis_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    write_file(path, 10)
    code, summary, err, _ = run_import(path, f"redis://127.0.0.1:{free_port()}/13")
    assert code == 3  # exitcodes.UNAVAILABLE, as before
    assert summary["enqueued"] == 0 and "unreachable" in summary["stopped"]
    assert "unreachable" in err and "Traceback" not in err


def test_ctrl_c_prints_the_summary_and_exits_1(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    path = tmp_path / "long.csv"
    write_file(path, 50_000)
    # A child inherits an ignored SIGINT (as under a non-interactive shell), a handler not.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "relay", "import", str(path), "--json"],
                                cwd=ROOT, env={**os.environ, "RELAY_REDIS_URL": redis_url},
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        wait_until(lambda: client.zcard(KEYS.due) >= 100, 60, message="the import to start")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    summary = json.loads(out)
    assert proc.returncode == 1 and summary["stopped"] == "interrupted"
    assert 100 <= summary["lines"] < 50_000
    assert summary["lines"] == summary["enqueued"] + summary["duplicates"] + summary["rejected"]


@pytest.mark.slow
@pytest.mark.timeout(900)  # 310,000 lines through Redis: minutes on a loaded machine, not 120 s
def test_100k_lines_flat_memory(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    write_file(small, 10_000)
    bad = write_file(large, 100_000)
    _, _, _, small_rss = run_import(small, redis_url)
    client.flushdb()
    code, summary, err, large_rss = run_import(large, redis_url)
    assert code == 1
    assert summary["enqueued"] == 100_000 - len(bad) and summary["rejected"] == len(bad)
    assert len([x for x in err.splitlines() if x.startswith("line ")]) == len(bad)
    assert large_rss < small_rss + 20, (small_rss, large_rss)  # flat: 10x lines, same memory
    _, summary, _, _ = run_import(large, redis_url)
    assert summary["enqueued"] == 0 and summary["duplicates"] == 100_000 - len(bad)
    print(f"peak RSS: 10k lines {small_rss:.0f} MB, 100k lines {large_rss:.0f} MB")
