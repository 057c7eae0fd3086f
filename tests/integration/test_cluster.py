"""The pipeline on a cluster-mode endpoint: a real three-primary valkey cluster. Every key of
a scope shares one hash tag, so each script runs on one node; Celery's broker (remote control
only) is a plain Redis, as kombu cannot use a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.crc import key_slot

from producers import Producer
from relay import connect
from relay.deadletters import DeadLetters
from relay.keys import Keys, member
from relay.overview import overview
from relay.settings import StoreSettings
from tests.helpers import Sandbox, start_worker, stop, wait_until
from tests.integration.pipeline import FAST
from tests.topology import Cluster, cluster


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


def test_the_pipeline_runs_on_a_cluster(nodes: Cluster, sandbox: Sandbox, tmp_path: Path,
                                        embedded_redis_url: str) -> None:
    url = nodes.url
    env = {"RELAY_REDIS_URL": url, "RELAY_BROKER_URL": embedded_redis_url,
           "RELAY_SOAP_URL": sandbox.url, "RELAY_SECURITY_TOKEN": "sandbox-token", **FAST}
    worker = start_worker(env, tmp_path / "worker.log")
    producer = Producer(url, settings=StoreSettings(redis_url=url))
    try:
        good = [producer.record(account_id="123456", location="STORE-001",
                                interaction_type="VISIT", note=f"c{i}") for i in range(30)]
        bad = [producer.record(account_id="123456", location="MALL-1", interaction_type="VISIT",
                               note=f"b{i}") for i in range(5)]

        def states() -> set[str]:
            return {str((producer.status(i) or {}).get("state")) for i in good + bad}

        wait_until(lambda: states() == {"delivered", "dead_letter"}, 30, 0.1, "all ended")
        client = connect.client(url)
        store = DeadLetters(client, Keys())
        assert store.size() == 5
        sandbox.seed(add={"locations": ["MALL-1"]})
        assert len(store.replay([member("default", i) for i in bad])) == 5
        wait_until(lambda: states() == {"delivered"}, 30, 0.1, "replays delivered")
        view = overview(client, Keys())
        assert view["outcomes"]["delivered"] == 35 and view["dead_letters"] == 0
        assert sandbox.calls()["count"] == 35
        slots = {key_slot(k) for k in client.scan_iter(match=Keys().pattern())}
        assert len(slots) == 1  # one hash tag: every key in one slot
    finally:
        stop(worker.proc)
        producer.close()
