"""Each .asmx behaviour the worker can meet, classified by the worker's own code.

The requests go out through ``worker.transport.AiohttpTransport`` to the sandbox; replies are read
by ``worker.client`` (``SoapClient`` or ``interpret``) and judged by ``Policy().classify``, so the
signal and the outcome asserted here are what a running worker would decide (design.md
section 3 for the table, section 11 for the behaviours).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

import pytest

from relay.errors import DeliveryError
from relay.events import Interaction
from tests.helpers import Sandbox
from worker.client import Endpoint, SoapClient, interpret
from worker.policy import Outcome, Policy, Verdict
from worker.secret import Secret
from worker.soap import DEFAULT_NAMESPACE, Reply, SoapRequest, build_request, default_action
from worker.transport import AiohttpTransport, TransportSettings

QUICK = TransportSettings(connect_timeout=1, read_timeout=3, total_timeout=5)
ACTION = default_action(DEFAULT_NAMESPACE)
TOKEN = Secret("sandbox-token")


def event(note: str = "classified") -> Interaction:
    return Interaction.create(account_id="123456", location="STORE-001",
                              interaction_type="VISIT", note=note)


Attempts = Callable[[AiohttpTransport], Iterable[Coroutine[Any, Any, Reply]]]


def judged(attempts: Attempts) -> list[Verdict]:
    """Await each call ``attempts`` makes on one real transport, in turn; classify each end."""

    async def run() -> list[Verdict]:
        transport = AiohttpTransport(QUICK)
        verdicts = []
        try:
            for attempt in attempts(transport):
                try:
                    verdicts.append(Policy().classify(await attempt))
                except DeliveryError as exc:
                    verdicts.append(Policy().classify(exc))
        finally:
            await transport.close()
        return verdicts

    return asyncio.run(run())


def deliver(*endpoints: Endpoint) -> list[Verdict]:
    """One call per endpoint through ``SoapClient``, as the worker makes it."""
    return judged(lambda t: (SoapClient(t).record_interaction(event(), e) for e in endpoints))


def exchange(sandbox: Sandbox, request: SoapRequest) -> Verdict:
    """Raw bytes through the worker's transport, the reply read by ``interpret``."""

    async def once(t: AiohttpTransport) -> Reply:
        return interpret(await t.send(sandbox.url, request))

    return judged(lambda t: [once(t)])[0]


def endpoint(sandbox: Sandbox, **options: str) -> Endpoint:
    return Endpoint(sandbox.url, TOKEN, **options)


def altered(version: str = "1.1", *, body: Callable[[bytes], bytes] = lambda b: b,
            headers: Mapping[str, str] | None = None, note: str = "classified") -> SoapRequest:
    """The worker's own request with its body or headers changed into another client's."""
    request = build_request(event(note), TOKEN, version=version)
    return SoapRequest(body(request.body), {**request.headers, **(headers or {})})


NOT_WELL_FORMED = {
    "truncated": altered(body=lambda b: b[:-20]),
    "empty": altered(body=lambda b: b""),
    "stray ampersand": altered(body=lambda b: b.replace(b"classified", b"a & b")),
    "soap 1.2 truncated": altered("1.2", body=lambda b: b[:-20]),
}
UNSUPPORTED_MEDIA = {
    "soap 1.1 envelope as application/soap+xml": altered(
        headers={"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION}"'}),
    "text/plain": altered(headers={"Content-Type": "text/plain; charset=utf-8"}),
    "soap 1.2 envelope as text/plain": altered(
        "1.2", headers={"Content-Type": "text/plain"}),
}
FIELDS_MISSING = {
    "preqRecordInteraction in no namespace": altered(body=lambda b: b.replace(
        b"<preqRecordInteraction>", b'<preqRecordInteraction xmlns="">')),
    "note left out": altered(body=lambda b: b.replace(
        b"<InteractionNote>classified</InteractionNote>", b"")),
}


@pytest.mark.parametrize("case", NOT_WELL_FORMED)
def test_body_not_well_formed_is_http_400_dead_letter(sandbox: Sandbox, case: str) -> None:
    verdict = exchange(sandbox, NOT_WELL_FORMED[case])
    assert (verdict.signal, verdict.outcome) == ("http:400", Outcome.DEAD_LETTER)
    assert verdict.reason == "HTTP 400"  # the empty body leaves nothing to quote


@pytest.mark.parametrize("case", UNSUPPORTED_MEDIA)
def test_unsupported_media_is_http_415_dead_letter(sandbox: Sandbox, case: str) -> None:
    verdict = exchange(sandbox, UNSUPPORTED_MEDIA[case])
    assert (verdict.signal, verdict.outcome) == ("http:415", Outcome.DEAD_LETTER)
    assert verdict.reason == "HTTP 415"


@pytest.mark.parametrize("case", FIELDS_MISSING)
def test_unknown_or_missing_elements_are_code_2_dead_letter(sandbox: Sandbox,
                                                           case: str) -> None:
    verdict = exchange(sandbox, FIELDS_MISSING[case])
    assert (verdict.signal, verdict.outcome, verdict.code) == ("code:2", Outcome.DEAD_LETTER, 2)
    assert verdict.interaction_id is None
    assert sandbox.calls()["count"] == 0


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_wrong_namespace_is_code_2_dead_letter(sandbox: Sandbox, version: str) -> None:
    # The right action (so 1.1 routes) with the method element in another namespace.
    wrong = endpoint(sandbox, namespace="https://app.smartbutton.com/Services/Interaction",
                     action=ACTION, version=version)
    [verdict] = deliver(wrong)
    assert (verdict.signal, verdict.outcome) == ("code:2", Outcome.DEAD_LETTER)
    assert sandbox.calls()["count"] == 0


def test_wrong_soapaction_is_fault_client_dead_letter(sandbox: Sandbox) -> None:
    [verdict] = deliver(endpoint(sandbox, action="urn:wrong"))
    assert (verdict.signal, verdict.outcome) == ("fault:client", Outcome.DEAD_LETTER)
    assert "did not recognize the value of HTTP Header SOAPAction: urn:wrong." in verdict.reason
    assert verdict.trips_breaker  # a burst of them means a wrong action for everyone


def test_soap12_sender_fault_is_fault_client_dead_letter(sandbox: Sandbox) -> None:
    request = altered("1.2", body=lambda b: b.replace(b"RecordInteraction", b"RecordOther"))
    verdict = exchange(sandbox, request)
    assert (verdict.signal, verdict.outcome) == ("fault:client", Outcome.DEAD_LETTER)
    assert verdict.reason.startswith("soap:Sender: ")


@pytest.mark.parametrize(("version", "code"), [("1.1", "soap:Server"), ("1.2", "soap:Receiver")])
def test_server_fault_is_fault_server_retry(sandbox: Sandbox, version: str, code: str) -> None:
    sandbox.configure(rates={"exception": 1.0})
    [verdict] = deliver(endpoint(sandbox, version=version))
    assert (verdict.signal, verdict.outcome) == ("fault:server", Outcome.RETRY)
    assert verdict.reason.startswith(f"{code}: Server was unable to process request. ---> ")
    assert sandbox.calls()["count"] == 0


def test_a_fault_closes_the_connection_and_the_next_call_still_goes_through(
        sandbox: Sandbox) -> None:
    # Faults come with "Connection: close": the worker's pooled transport must open a new
    # connection for the next event rather than fail it on the closed one.
    wrong, right = endpoint(sandbox, action="urn:wrong"), endpoint(sandbox)
    verdicts = deliver(wrong, right, wrong, right)
    assert [v.outcome for v in verdicts] == [Outcome.DEAD_LETTER, Outcome.DELIVERED] * 2


@pytest.mark.parametrize(("case", "request_"), [
    ("unquoted SOAPAction", altered(headers={"SOAPAction": ACTION})),
    ("soap 1.2 with a wrong action parameter", altered(
        "1.2", headers={"Content-Type": 'application/soap+xml; charset=utf-8; action="urn:x"'})),
    ("token sent last", altered(body=lambda b: b.replace(
        b"<SecurityToken>sandbox-token</SecurityToken>", b"").replace(
        b"</InteractionNote>",
        b"</InteractionNote><SecurityToken>sandbox-token</SecurityToken>"))),
    ("invalid UTF-8 in the note", altered(body=lambda b: b.replace(b"classified", b"caf\xe9!"))),
])
def test_requests_asmx_accepts_are_delivered(sandbox: Sandbox, case: str,
                                             request_: SoapRequest) -> None:
    verdict = exchange(sandbox, request_)
    assert (verdict.signal, verdict.outcome) == ("code:0", Outcome.DELIVERED), case
    assert verdict.interaction_id == sandbox.calls()["calls"][-1]["interaction_id"]


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_interaction_id_past_2_to_the_31_is_delivered_with_that_id(sandbox: Sandbox,
                                                                   version: str) -> None:
    start = max(2**40, sandbox.configure()["next_id"]) + 3  # never back over ids given out
    sandbox.configure(next_id=start)
    [verdict] = deliver(endpoint(sandbox, version=version))
    assert (verdict.signal, verdict.outcome) == ("code:0", Outcome.DELIVERED)
    assert verdict.interaction_id == start
    assert sandbox.calls()["calls"][-1]["interaction_id"] == start
