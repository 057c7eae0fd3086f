"""Each .asmx behaviour (design.md section 11) met by a running worker, ending as the outcome
table (section 3) says: producer -> Redis -> real Celery worker -> sandbox process over HTTP.

``test_classification`` judges single replies with the worker's own code; here the whole
pipeline decides and records, so what is asserted is what an operator would read with
``relay status`` and ``relay dlq show``. Tenants stand for misconfigured endpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Sandbox, wait_until
from tests.integration.pipeline import Pipeline, reset, start_pipeline, stop_pipeline


@pytest.fixture(scope="module")
def redis_url(one_redis_url: str) -> str:
    """One Redis backend is enough here: the subject is not Redis (see conftest)."""
    return one_redis_url


NS = "https://app.smartbutton.com/Services/"
ACTION = NS + "RecordInteraction"
TOKEN = "sandbox-token"
TENANTS = {
    # the right SOAPAction, so the call routes, with RecordInteraction in another namespace
    "wrongns": {"token": TOKEN, "namespace": NS + "Interaction", "action": ACTION},
    "wrongns12": {"token": TOKEN, "namespace": NS + "Interaction", "action": ACTION,
                  "version": "1.2"},
    "wrongaction": {"token": TOKEN, "action": "urn:wrong"},
    "wrongaction12": {"token": TOKEN, "action": "urn:wrong", "version": "1.2"},
    "soap12": {"token": TOKEN, "version": "1.2"},
}
VERSION_TENANT = {"1.1": "default", "1.2": "soap12"}


@pytest.fixture(scope="module")
def running(redis_url: str, sandbox_server: Sandbox, module_tmp: Path) -> Iterator[Pipeline]:
    pipeline = start_pipeline(redis_url, sandbox_server, module_tmp / "worker.log",
                              RELAY_TENANTS=json.dumps(TENANTS))
    yield pipeline
    stop_pipeline(pipeline)


@pytest.fixture
def pipeline(running: Pipeline) -> Pipeline:
    reset(running)
    return running


def ended(pipeline: Pipeline, event_id: str, tenant: str = "default") -> dict[str, Any]:
    """The event's status record once it has ended."""
    wait_until(lambda: pipeline.state(event_id, tenant) in ("delivered", "rejected",
                                                            "dead_letter"),
               20, 0.05, f"{tenant}/{event_id} to end")
    record = pipeline.producer.status(event_id, tenant)
    assert record is not None
    return record


def dead_letter(pipeline: Pipeline, event_id: str, tenant: str = "default") -> dict[str, Any]:
    """What ``relay dlq show`` says of a dead-lettered event."""
    assert ended(pipeline, event_id, tenant)["state"] == "dead_letter"
    shown: dict[str, Any] = pipeline.relay_json("dlq", "show", event_id, "--tenant", tenant)
    info: dict[str, Any] = shown["dead_letter"]
    return info


@pytest.mark.parametrize(("fault", "status"), [("http400", 400), ("http415", 415)])
def test_bare_400_or_415_is_dead_lettered_at_once(pipeline: Pipeline, fault: str,
                                                  status: int) -> None:
    """Other 4xx: dead-letter, no retry; the empty body leaves only the status to report."""
    pipeline.sandbox.configure(rates={fault: 1.0})
    event_id = pipeline.send(note=fault)
    info = dead_letter(pipeline, event_id)
    assert (info["signal"], info["reason"], info["attempts"]) == (f"http:{status}",
                                                                  f"HTTP {status}", 1)
    assert pipeline.sandbox.calls()["requests"][f"fault:{fault}"] == 1  # called once, no retry
    assert pipeline.counters()[f"signal:http:{status}"] == 1


def test_a_throttle_429_is_retried_after_its_retry_after_without_spending_attempts(
        pipeline: Pipeline) -> None:
    """429: retry, honouring Retry-After; the front door refused it, so the call did not
    reach the service and costs no attempt (RELAY_MAX_ATTEMPTS=4 is never reached)."""
    pipeline.sandbox.configure(rates={"http429": 1.0}, retry_after_s=1)
    event_id = pipeline.send(note="throttled")
    wait_until(lambda: pipeline.sandbox.calls(limit=0)["requests"].get("fault:http429", 0) >= 5,
               15, 0.1, "five throttled calls")
    record = pipeline.producer.status(event_id)
    assert record is not None and record["state"] in ("waiting", "held")
    assert record["attempts"] >= 5 and record["charged"] <= 1  # one may be in flight
    stamps = [datetime.fromisoformat(h["at"]) for h in record["history"]]
    assert [h["signal"] for h in record["history"]] == ["http:429"] * len(stamps)
    gaps = [(b - a).total_seconds() for a, b in pairwise(stamps)]
    assert len(gaps) >= 3 and min(gaps) >= 0.95, gaps  # Retry-After: 1, over a 0.2 s backoff
    pipeline.sandbox.configure(rates={"http429": 0.0})
    assert ended(pipeline, event_id)["state"] == "delivered"


@pytest.mark.parametrize("tenant", ["wrongns", "wrongns12"])
def test_wrong_namespace_is_code_2_dead_letter(pipeline: Pipeline, tenant: str) -> None:
    """.asmx drops the unknown element silently and the method finds every field missing."""
    event_id = pipeline.send(tenant=tenant)
    info = dead_letter(pipeline, event_id, tenant)
    assert (info["signal"], info["code"], info["reason"]) == ("code:2", 2,
                                                              "required field missing")
    assert info["attempts"] == 1
    assert pipeline.sandbox.calls()["count"] == 0


def test_wrong_soapaction_is_client_fault_dead_letter_and_others_still_flow(
        pipeline: Pipeline) -> None:
    """Each fault comes with ``Connection: close``: the worker's pooled connections must not
    fail the events sharing them."""
    wrong = [pipeline.send(tenant="wrongaction", note=f"wrong-{i}") for i in range(3)]
    good = [pipeline.send(note=f"good-{i}") for i in range(30)]
    for event_id in wrong:
        info = dead_letter(pipeline, event_id, "wrongaction")
        assert info["signal"] == "fault:client" and info["attempts"] == 1
        assert info["reason"].startswith("soap:Client: System.Web.Services.Protocols."
                                         "SoapException: Server did not recognize the value "
                                         "of HTTP Header SOAPAction: urn:wrong.")
    states = pipeline.wait_states(good)
    assert set(states.values()) == {"delivered"}
    # none failed on a connection closed under it: a retried delivery keeps its history
    assert all(pipeline.producer.status(e)["history"] == [] for e in good)  # type: ignore[index]
    calls = pipeline.sandbox.calls()
    assert (calls["count"], calls["duplicates"]) == (30, 0)


def test_a_burst_of_client_faults_opens_the_tenant_circuit(pipeline: Pipeline) -> None:
    """A wrong action is wrong for every event: after a burst, the rest wait."""
    burst = [pipeline.send(tenant="wrongaction", note=f"burst-{i}") for i in range(6)]
    wait_until(lambda: pipeline.counters().get("circuit_opened:wrongaction") == 1, 15, 0.05,
               "the circuit to open")
    later = [pipeline.send(tenant="wrongaction", note=f"later-{i}") for i in range(6)]
    time.sleep(0.3)
    states = [pipeline.state(e, "wrongaction") for e in later]
    # parked or waiting, apart from at most the one probe the half-open circuit lets through
    assert sum(s == "dead_letter" for s in states) <= 1, states
    view = pipeline.relay_json("status")
    assert "wrongaction" in [c["tenant"] for c in view["circuits"]]
    assert ended(pipeline, pipeline.send(note="not held back"))["state"] == "delivered"
    assert {pipeline.state(e, "wrongaction") for e in burst} <= {"dead_letter", "parked",
                                                                 "waiting", "held"}


def test_soap12_action_parameter_is_not_checked_so_it_is_delivered(pipeline: Pipeline) -> None:
    record = ended(pipeline, pipeline.send(tenant="wrongaction12"), "wrongaction12")
    assert record["state"] == "delivered"
    assert record["interaction_id"] == pipeline.sandbox.calls()["calls"][-1]["interaction_id"]


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_server_fault_is_retried_until_attempts_run_out(pipeline: Pipeline,
                                                        version: str) -> None:
    """soap:Server / soap:Receiver: retry with backoff (RELAY_MAX_ATTEMPTS=4), then
    dead-letter; one poison event never opens the circuit."""
    tenant = VERSION_TENANT[version]
    pipeline.sandbox.configure(poison_accounts=["7777777"])
    poison = pipeline.send(tenant=tenant, account_id="7777777")
    fine = pipeline.send(tenant=tenant)
    info = dead_letter(pipeline, poison, tenant)
    code = "soap:Server" if version == "1.1" else "soap:Receiver"
    assert (info["signal"], info["attempts"]) == ("fault:server", 4)
    assert info["reason"] == (f"retries exhausted after 4 attempts: {code}: Server was unable "
                              "to process request. ---> sandbox: injected exception in "
                              "RecordInteraction.")
    history = pipeline.producer.status(poison, tenant)["history"]  # type: ignore[index]
    assert [h["signal"] for h in history] == ["fault:server"] * 4
    assert [h["outcome"] for h in history] == ["retry"] * 3 + ["dead_letter"]
    assert ended(pipeline, fine, tenant)["state"] == "delivered"
    assert not pipeline.relay_json("status")["circuits"]


def test_server_fault_then_recovery_is_delivered(pipeline: Pipeline) -> None:
    pipeline.sandbox.configure(rates={"exception": 1.0})
    event_id = pipeline.send(note="exception then fine")
    wait_until(lambda: pipeline.counters().get("signal:fault:server", 0) >= 1, 10, 0.05,
               "a server fault")
    pipeline.sandbox.configure(rates={"exception": 0.0})
    record = ended(pipeline, event_id)
    assert record["state"] == "delivered"
    assert "fault:server" in [h["signal"] for h in record["history"]]
    assert pipeline.sandbox.calls()["count"] == 1


@pytest.fixture
def ids_restored(pipeline: Pipeline) -> Iterator[Pipeline]:
    """The session's sandbox gets its next InteractionId back afterwards (a reset keeps it)."""
    before = pipeline.sandbox.configure()["next_id"]
    yield pipeline
    pipeline.sandbox.configure(next_id=before)


@pytest.mark.parametrize("first", [2**31 + 7, 2**53 + 1, 2**63 - 2],
                         ids=["past int32", "past a double's integers", "largest long"])
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_large_interaction_ids_are_recorded_exactly(ids_restored: Pipeline, first: int,
                                                    version: str) -> None:
    """``InteractionId`` is an ``s:long``: no 32-bit read, no trip through a double (Lua and
    JSON numbers are doubles past 2^53)."""
    pipeline, tenant = ids_restored, VERSION_TENANT[version]
    pipeline.sandbox.configure(next_id=first)
    events = [pipeline.send(tenant=tenant, note=f"id-{i}") for i in range(2)]
    given = sorted(ended(pipeline, e, tenant)["interaction_id"] for e in events)
    assert given == [first, first + 1]
    assert sorted(c["interaction_id"] for c in pipeline.sandbox.calls()["calls"]) == given
    # what an operator reads: the same integer, not a rounded float
    shown = pipeline.relay_json("status", events[0], "--tenant", tenant)
    assert shown["interaction_id"] in given and isinstance(shown["interaction_id"], int)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_notes_arrive_intact_and_a_missing_note_goes_as_an_empty_element(
        pipeline: Pipeline, version: str) -> None:
    """The platform answers code 2 when an element is left out, so the worker always sends
    ``InteractionNote``; any Unicode and markup-like text arrive as they were sent."""
    tenant = VERSION_TENANT[version]
    tricky = "]]> <![CDATA[x]]> &amp; <b> \u05e9\u05dc\u05d5\u05dd \U0001f600 e\u0301 \"'"
    without = pipeline.send(tenant=tenant)
    with_note = pipeline.send(tenant=tenant, note=tricky)
    assert ended(pipeline, without, tenant)["state"] == "delivered"
    assert ended(pipeline, with_note, tenant)["state"] == "delivered"
    assert sorted(c["note"] for c in pipeline.sandbox.calls()["calls"]) == sorted(["", tricky])


def test_requests_carry_content_length_never_chunked(pipeline: Pipeline) -> None:
    """Some .asmx hosts mishandle chunked requests: every call states its length."""
    events = [pipeline.send(tenant=t, note=f"length-{i}") for i, t in
              enumerate(["default", "soap12"] * 5)]
    for i, event_id in enumerate(events):
        assert ended(pipeline, event_id, ["default", "soap12"][i % 2])["state"] == "delivered"
    requests_seen = pipeline.sandbox.calls()["requests"]
    assert requests_seen["total"] == 10 and requests_seen.get("chunked", 0) == 0
