"""Prometheus metrics as scraped: the API's pool-wide ``/metrics`` and each worker process's
own endpoint, over a real worker, real Redis and the sandbox; and the alert rules against them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from producers import Producer
from relay.deadletters import DeadLetters
from relay.keys import Keys
from relay.settings import StoreSettings
from tests.helpers import ROOT, Sandbox, free_port, port_open, start, stop, wait_until
from tests.integration.pipeline import Pipeline, reset, start_pipeline, stop_pipeline
from tests.integration.test_api import Api, start_api


@pytest.fixture(scope="module")
def redis_url(one_redis_url: str) -> str:
    """One Redis backend is enough here: the subject is not Redis (see conftest)."""
    return one_redis_url


ALERTS = ROOT / "docs" / "alerts.yml"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def running(redis_url: str, sandbox_server: Sandbox, module_tmp: Path
            ) -> Iterator[tuple[Pipeline, Api, str]]:
    port = free_port()
    pipeline = start_pipeline(redis_url, sandbox_server, module_tmp / "worker.log",
                              RELAY_METRICS_PORT=str(port))
    try:
        # with a dead-letter cap, so its gauge (and the alert on it) is served
        api, proc = start_api(redis_url, module_tmp / "api.log", RELAY_DLQ_MAX="1000")
        try:
            wait_until(lambda: port_open(port), 10, message="worker metrics port")
            yield pipeline, api, f"http://127.0.0.1:{port}/metrics"
        finally:
            stop(proc)  # type: ignore[arg-type]
    finally:
        stop_pipeline(pipeline)


@pytest.fixture
def live(running: tuple[Pipeline, Api, str]) -> tuple[Pipeline, Api, str]:
    reset(running[0])
    return running


def scrape(url: str, accept: str | None = None) -> requests.Response:
    response = requests.get(url, headers={"Accept": accept} if accept else {}, timeout=10)
    assert response.status_code == 200, response.text
    return response


def samples(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_large_counters_are_exported_exactly(live: tuple[Pipeline, Api, str]) -> None:
    """Every digit kept, written as the whole number it is: the old ``{:g}`` wrote 1234567 as
    ``1.23457e+06`` (1234570 to Prometheus); prometheus_client alone would write
    ``1.234567e+06`` (``relay.exposition`` rewrites it)."""
    pipeline, api, _ = live
    pipeline.redis.hset(Keys().stats, mapping={"tenant:default:delivered": 1234567,
                                                 "accepted:default": 9007199254740993 - 1})
    text = api.get("/metrics", key=None).text
    assert "1.23457e+06" not in text  # the old {:g} rendering lost the last digits
    assert re.search(r'^relay_outcomes_total\{[^}]*"delivered"[^}]*\} 1234567$', text, re.M), text
    found = samples(text)
    assert value(found, "relay_outcomes_total", scope="pool", tenant="default",
                 outcome="delivered") == 1234567
    assert value(found, "relay_accepted_total", scope="pool",
                 tenant="default") == 2**53  # exact up to a float64's 53 bits


def test_content_type_and_openmetrics_negotiation(live: tuple[Pipeline, Api, str]) -> None:
    _, api, worker_url = live
    for url in (api.base + "/metrics", worker_url):
        plain = scrape(url)
        assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert not plain.text.rstrip().endswith("# EOF")
        om = scrape(url, f"{OPENMETRICS},text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
        assert om.headers["Content-Type"].startswith(OPENMETRICS)
        assert om.text.endswith("# EOF\n")
        names = {f.name for f in om_families(om.text)}  # type: ignore[no-untyped-call]
        assert ("relay_queue_depth" in names) or ("relay_worker_calls" in names)


def test_counters_move_on_dead_letter_replay_and_purge(live: tuple[Pipeline, Api, str]) -> None:
    pipeline, api, _ = live
    good = pipeline.send()
    before = samples(api.get("/metrics", key=None).text)
    # accepted tenants get every dead-letter counter at 0 before the first one (increase())
    assert ("relay_dead_lettered_total",
            frozenset({"scope": "pool", "tenant": "default"}.items())) in before
    bad = [pipeline.send(location="STORE-404", note=f"dl-{i}") for i in range(3)]
    pipeline.wait_states([good, *bad])
    store = DeadLetters(pipeline.redis, Keys())
    members = [f"default/{e}" for e in bad]
    assert store.replay(members[:1]) == members[:1]
    pipeline.wait_states(bad[:1], ("dead_letter",))  # fails the same way: dead again
    assert store.purge(members[1:]) == 2
    found = samples(api.get("/metrics", key=None).text)
    pool = {"scope": "pool", "tenant": "default"}
    assert value(found, "relay_dead_lettered_total", **pool) == 4
    assert value(found, "relay_dead_letters_replayed_total", **pool) == 1
    assert value(found, "relay_dead_letters_purged_total", **pool) == 2
    assert value(found, "relay_dead_letters", scope="pool") == 1
    assert value(found, "relay_outcomes_total", outcome="dead_letter", **pool) == 4


def test_worker_process_serves_its_own_figures(live: tuple[Pipeline, Api, str]) -> None:
    pipeline, _, worker_url = live
    before = samples(scrape(worker_url).text)
    events = [pipeline.send(note=f"w-{i}") for i in range(5)]
    dead = pipeline.send(location="STORE-404")
    pipeline.wait_states([*events, dead])
    found = samples(scrape(worker_url).text)

    def moved(name: str, **labels: str) -> float:
        return value(found, name, **labels) - value(before, name, **labels)

    assert moved("relay_worker_calls_total") == 6
    assert moved("relay_worker_outcomes_total", outcome="delivered", signal="code:0") == 5
    assert moved("relay_worker_outcomes_total", outcome="dead_letter", signal="code:503") == 1
    assert moved("relay_worker_call_seconds_count") == 6
    assert moved("relay_worker_call_seconds_bucket", le="+Inf") == 6
    assert moved("relay_worker_claimed_total") == 6
    assert value(found, "relay_worker_in_flight") == 0
    assert value(found, "process_resident_memory_bytes") > 0


def test_each_worker_process_has_its_own_port(running: tuple[Pipeline, Api, str],
                                              module_tmp: Path) -> None:
    """``--processes 2`` serves two endpoints (base port, base + 1); their sum is the pool's.
    A scope of its own keeps the module's worker away from these events."""
    env = {**running[0].env, "RELAY_SCOPE": "two"}
    base = free_port()
    while port_open(base + 1):
        base = free_port()
    proc = start(["-m", "relay", "worker", "--processes", "2"],
                 env={**env, "RELAY_METRICS_PORT": str(base)}, log=module_tmp / "two.log")
    producer = Producer(settings=StoreSettings.from_env(env))
    try:
        wait_until(lambda: port_open(base) and port_open(base + 1), 30, 0.1, "both ports")
        urls = [f"http://127.0.0.1:{p}/metrics" for p in (base, base + 1)]
        events = [producer.record(account_id="123456", location="STORE-001",
                                  interaction_type="VISIT", note=f"two-{i}") for i in range(40)]
        wait_until(lambda: all((producer.status(e) or {}).get("state") == "delivered"
                               for e in events), 30, 0.1, "delivered")
        calls = [value(samples(scrape(u).text), "relay_worker_calls_total") for u in urls]
        assert sum(calls) == 40
    finally:
        producer.close()
        stop(proc)


# -- alert rules ---------------------------------------------------------------------------

RANGE_FUNCTIONS = ("rate", "increase", "irate")


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _types(texts: list[str]) -> dict[str, str]:
    """Every sample name a scrape can carry -> its family's type (also for empty families)."""
    types: dict[str, str] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
            for suffix in suffixes.get(family.type, [""]):
                types[family.name + suffix] = family.type
    return types


def test_alert_rules_use_real_metrics_and_counters_for_rates(
        live: tuple[Pipeline, Api, str]) -> None:
    pipeline, api, worker_url = live
    pipeline.wait_states([pipeline.send()])
    types = _types([api.get("/metrics", key=None).text, scrape(worker_url).text])
    rules = _rules()
    assert len(rules) >= 8
    for rule in rules:
        expr = rule["expr"]
        used = set(re.findall(r"\b(relay_[a-z_]+)", expr))
        assert used, rule["alert"]
        missing = used - types.keys()
        assert not missing, f"{rule['alert']}: {sorted(missing)} not on any scrape"
        for fn, metric in re.findall(rf"\b({'|'.join(RANGE_FUNCTIONS)})\(\s*(relay_[a-z_]+)",
                                     expr):
            assert types[metric] in ("counter", "histogram"), \
                f"{rule['alert']}: {fn}() over {metric}, a {types[metric]}"
        for gauge in re.findall(r"\bderiv\(\s*(relay_[a-z_]+)", expr):
            assert types[gauge] == "gauge", f"{rule['alert']}: deriv() over a counter"
        for metric, selector in re.findall(r"\b(relay_(?!worker_)[a-z_]+)(\{[^}]*\})?", expr):
            assert 'scope="pool"' in selector, \
                f"{rule['alert']}: select {metric} by scope=\"pool\" (one value per replica)"
    readme = (ROOT / "README.md").read_text()
    assert "docs/alerts.yml" in readme


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not on PATH")
@pytest.mark.parametrize("command", [["check", "rules", str(ALERTS)],
                                     ["test", "rules", str(ALERTS.with_name("alerts_test.yml"))]])
def test_promtool_accepts_and_replays_the_rules(command: list[str]) -> None:
    """``check``: the rules parse; ``test``: replayed series fire (or not) as intended, e.g.
    dead letters replayed still alert, and two API replicas count once."""
    result = subprocess.run(["promtool", *command], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
