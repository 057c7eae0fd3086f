"""``relay import`` as a user runs it: a real process, a real Redis-protocol server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from relay.keys import Keys
from tests.helpers import ROOT


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


def run_import(path: Path, redis_url: str) -> tuple[int, dict[str, object], str, float]:
    """Exit code, JSON summary, stderr and the child's peak RSS in MB."""
    with open(path.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "relay", "import", str(path), "--json"],
                                cwd=ROOT, env={**os.environ, "RELAY_REDIS_URL": redis_url},
                                stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, json.loads(out), path.with_suffix(".err").read_text(),
            usage.ru_maxrss / 1024)


def test_import_reports_bad_lines_and_is_idempotent(tmp_path: Path, redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    path = tmp_path / "visits.csv"
    bad = write_file(path, 3000)
    code, summary, err, _ = run_import(path, redis_url)
    assert code == 1  # some lines were rejected
    assert summary["enqueued"] == 3000 - len(bad) and summary["rejected"] == len(bad)
    reported = {int(line.split()[1].rstrip(":")) for line in err.splitlines()
                if line.startswith("line ")}
    assert reported == bad
    assert "account_id: is required" in err
    assert redis.Redis.from_url(redis_url).zcard(Keys().due) == 3000 - len(bad)
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
    assert "line 5: account_id" in err


@pytest.mark.slow
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
