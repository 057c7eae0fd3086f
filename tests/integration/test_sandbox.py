"""The sandbox over real HTTP, driven through our client, and the transport's error mapping.

Raw requests check the sandbox against a real .asmx runtime (design.md section 11) where our
client would never send such a request; ``call`` drives it through the worker's client.
"""

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import Sandbox, free_port, wait_until
from tests.integration.wire import call
from worker.errors import (
    ClientFault,
    ConnectFailed,
    ConnectionLost,
    HttpStatusError,
    ReplyError,
    ReplyTooLarge,
    RequestTimeout,
    ServerFault,
)
from worker.policy import Outcome, Policy
from worker.transport import TransportSettings

QUICK = TransportSettings(connect_timeout=1, read_timeout=1, total_timeout=2)
NS = "https://app.smartbutton.com/Services/"
ACTION = NS + "RecordInteraction"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
VALID = {"SecurityToken": "sandbox-token", "AccountId": "123456",
         "LocationExternalReference": "STORE-001", "InteractionTypeExternalReference": "VISIT",
         "InteractionNote": "raw"}


def fields(values: Mapping[str, str] = VALID, attrs: str = "") -> str:
    return "".join(f"<{name}{attrs}>{text}</{name}>" for name, text in values.items())


def envelope(children: str | None = None, *, version: str = "1.1", ns: str = NS,
             request_attrs: str = "") -> bytes:
    """A RecordInteraction request; ``children`` replaces the valid fields."""
    soap = SOAP11 if version == "1.1" else SOAP12
    inner = fields() if children is None else children
    return (f'<soap:Envelope xmlns:soap="{soap}"><soap:Body><RecordInteraction xmlns="{ns}">'
            f"<preqRecordInteraction{request_attrs}>{inner}</preqRecordInteraction>"
            "</RecordInteraction></soap:Body></soap:Envelope>").encode()


def post(sandbox: Sandbox, body: bytes, *, version: str = "1.1", action: str | None = ACTION,
         content_type: str | None = None) -> requests.Response:
    """POST raw bytes with the headers of ``version`` (or the ``content_type`` given)."""
    headers = {"Content-Type": content_type or (
        "text/xml; charset=utf-8" if version == "1.1"
        else f'application/soap+xml; charset=utf-8; action="{ACTION}"')}
    if action is not None and version == "1.1":
        headers["SOAPAction"] = action
    return requests.post(sandbox.url, data=body, headers=headers, timeout=5)


def result(r: requests.Response) -> tuple[int, int]:
    """ReturnCode and InteractionId of a 200 reply, read with ElementTree."""
    assert r.status_code == 200, (r.status_code, r.text)
    res = ET.fromstring(r.content).find(f".//{{{NS}}}RecordInteractionResult")
    assert res is not None, r.text
    return int(res.findtext(f"{{{NS}}}ReturnCode", "")), int(
        res.findtext(f"{{{NS}}}InteractionId", ""))


@pytest.mark.parametrize(("fields", "code"), [
    ({}, 0),
    ({"token": "wrong"}, 100),
    ({"token": "sandbox-noperm"}, 101),
    ({"account": "12345"}, 300),
    ({"account": "ABC123456"}, 300),
    ({"account": "9123456"}, 301),
    ({"location": "STORE-051"}, 503),
    ({"kind": "PURCHASE"}, 1200),
    # validation order: token before account before location before type
    ({"token": "wrong", "account": "1", "location": "X", "kind": "Y"}, 100),
    ({"account": "9123456", "location": "X"}, 301),
    ({"location": "X", "kind": "Y"}, 503),
])
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_seed_rules(sandbox: Sandbox, fields: dict[str, str], code: int, version: str) -> None:
    reply = call(sandbox.url, version=version, token=fields.get("token", "sandbox-token"),
                 account=fields.get("account", "123456"),
                 location=fields.get("location", "STORE-001"), kind=fields.get("kind", "VISIT"))
    assert reply.return_code == code
    assert (reply.interaction_id > 0) == (code == 0)


def test_ids_increase_and_calls_are_recorded(sandbox: Sandbox) -> None:
    first = call(sandbox.url, note="a").interaction_id
    second = call(sandbox.url, note="b").interaction_id
    call(sandbox.url, note="b")
    assert second > first
    record = sandbox.calls()
    assert record["count"] == 3 and record["duplicates"] == 1
    assert [c["note"] for c in record["calls"]] == ["a", "b", "b"]


def test_wrong_soapaction_is_an_http_500_client_fault(sandbox: Sandbox) -> None:
    r = requests.post(sandbox.url, data=b"<x/>", timeout=5,
                      headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"nope"'})
    assert r.status_code == 500
    assert "<faultcode>soap:Client</faultcode>" in r.text
    assert "Server did not recognize the value of HTTP Header SOAPAction: nope." in r.text
    with pytest.raises(ClientFault, match="did not recognize"):
        call(sandbox.url, action="urn:wrong")


@pytest.mark.parametrize(("header", "shown"), [
    ('"urn:wrong"', "urn:wrong"), ("urn:wrong", "urn:wrong"), ('""', ""), ("", ""), (None, ""),
    (f'"{NS}Other"', f"{NS}Other"),
])
def test_wrong_or_empty_soapaction_names_the_value(sandbox: Sandbox, header: str | None,
                                                   shown: str) -> None:
    r = post(sandbox, envelope(), action=header)
    assert r.status_code == 500
    assert "<faultcode>soap:Client</faultcode>" in r.text
    assert f"Server did not recognize the value of HTTP Header SOAPAction: {shown}." in r.text
    assert sandbox.calls()["count"] == 0


def test_unquoted_soapaction_is_accepted(sandbox: Sandbox) -> None:
    code, interaction_id = result(post(sandbox, envelope(), action=ACTION))
    assert code == 0 and interaction_id > 0


@pytest.mark.parametrize("content_type", [
    'application/soap+xml; charset=utf-8; action="urn:wrong"',
    "application/soap+xml; charset=utf-8",
    'application/soap+xml; action=""',
])
def test_soap12_action_parameter_is_not_checked(sandbox: Sandbox, content_type: str) -> None:
    code, _ = result(post(sandbox, envelope(version="1.2"), version="1.2",
                          content_type=content_type))
    assert code == 0
    assert call(sandbox.url, action="urn:wrong", version="1.2").return_code == 0


@pytest.mark.parametrize("body", [
    b"", b"   ", b"not xml", b"<soap:Envelope", envelope()[:-10], envelope() + b"<extra/>",
    envelope(fields({**VALID, "InteractionNote": "a & b"})),
    envelope(fields({**VALID, "InteractionNote": "&#1;"})),
])
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_body_that_is_not_well_formed_is_400_with_no_body(sandbox: Sandbox, body: bytes,
                                                          version: str) -> None:
    r = post(sandbox, body, version=version)
    assert (r.status_code, r.content) == (400, b"")
    assert sandbox.calls()["count"] == 0


@pytest.mark.parametrize(("body", "content_type"), [
    (envelope(), f'application/soap+xml; charset=utf-8; action="{ACTION}"'),
    (envelope(), "application/soap+xml"),
    (envelope(), "text/plain; charset=utf-8"),
    (envelope(version="1.2"), "text/plain"),
    (b"hello", "text/plain"),
    (b"", "text/plain"),
])
def test_unsupported_media_is_415_with_no_body(sandbox: Sandbox, body: bytes,
                                               content_type: str) -> None:
    r = post(sandbox, body, content_type=content_type)
    assert (r.status_code, r.content) == (415, b"")
    assert sandbox.calls()["count"] == 0


@pytest.mark.parametrize(("body", "what"), [
    (envelope(ns="urn:wrong"), "wrong namespace on RecordInteraction"),
    (envelope(ns=""), "RecordInteraction in no namespace"),
    (envelope(ns=NS.rstrip("/")), "namespace without its trailing slash"),
    (envelope(request_attrs=' xmlns=""'), "preqRecordInteraction in no namespace"),
    (envelope(fields(attrs=' xmlns=""')), "fields in no namespace"),
    (envelope(fields(attrs=' xmlns="urn:wrong"')), "fields in a wrong namespace"),
])
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_unknown_elements_are_dropped_so_fields_are_missing(sandbox: Sandbox, body: bytes,
                                                            what: str, version: str) -> None:
    if version == "1.2":
        body = body.replace(SOAP11.encode(), SOAP12.encode())
    assert result(post(sandbox, body, version=version)) == (2, -1), what
    assert sandbox.calls()["count"] == 0


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_success_is_one_line_with_soap_prefix(sandbox: Sandbox, version: str) -> None:
    r = post(sandbox, envelope(version=version), version=version)
    media = "text/xml" if version == "1.1" else "application/soap+xml"
    assert r.status_code == 200
    assert r.headers["Content-Type"] == f"{media}; charset=utf-8"
    assert b"\n" not in r.content.strip()
    soap = SOAP11 if version == "1.1" else SOAP12
    assert f'<soap:Envelope xmlns:soap="{soap}"'.encode() in r.content
    reply = (f'<soap:Body><RecordInteractionResponse xmlns="{NS}"><RecordInteractionResult>'
             "<ReturnCode>0</ReturnCode><InteractionId>")
    assert reply.encode() in r.content


def fault_of(r: requests.Response, version: str) -> ET.Element:
    """The Fault element of a fault reply, after the checks every fault must pass."""
    assert r.status_code == 500
    assert r.headers["Connection"].lower() == "close"
    media = "text/xml" if version == "1.1" else "application/soap+xml"
    assert r.headers["Content-Type"] == f"{media}; charset=utf-8"
    soap = SOAP11 if version == "1.1" else SOAP12
    fault = ET.fromstring(r.content).find(f"{{{soap}}}Body/{{{soap}}}Fault")
    assert fault is not None, r.text
    return fault


def test_soap11_fault_is_unqualified_with_empty_detail(sandbox: Sandbox) -> None:
    fault = fault_of(post(sandbox, envelope(), action="urn:wrong"), "1.1")
    assert [child.tag for child in fault] == ["faultcode", "faultstring", "detail"]
    assert fault.findtext("faultcode") == "soap:Client"
    detail = fault.find("detail")
    assert detail is not None and len(detail) == 0 and not (detail.text or "").strip()
    sandbox.configure(rates={"exception": 1.0})
    fault = fault_of(post(sandbox, envelope()), "1.1")
    assert fault.findtext("faultcode") == "soap:Server"
    assert (fault.findtext("faultstring") or "").startswith(
        "Server was unable to process request. ---> ")


@pytest.mark.parametrize(("trigger", "value"), [
    ("exception", "soap:Receiver"), ("unknown method element", "soap:Sender"),
])
def test_soap12_fault_has_code_value_and_reason_text_in_english(
        sandbox: Sandbox, trigger: str, value: str) -> None:
    body = envelope(version="1.2")
    if trigger == "exception":
        sandbox.configure(rates={"exception": 1.0})
    else:
        body = body.replace(b"RecordInteraction ", b"RecordOther ").replace(
            b"</RecordInteraction>", b"</RecordOther>")
    fault = fault_of(post(sandbox, body, version="1.2"), "1.2")
    assert fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") == value
    text = fault.find(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text")
    assert text is not None and text.text
    assert text.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert sandbox.calls()["count"] == 0


def test_seed_changes_at_runtime(sandbox: Sandbox) -> None:
    assert call(sandbox.url, location="MALL-9").return_code == 503
    sandbox.seed(add={"locations": ["MALL-9"], "tokens": ["new-token"]})
    assert call(sandbox.url, location="MALL-9", token="new-token").return_code == 0
    sandbox.seed(remove={"accounts": ["123456"]})
    assert call(sandbox.url).return_code == 300


def test_wsdl_is_served(sandbox: Sandbox) -> None:
    r = requests.get(sandbox.url + "?WSDL", timeout=5)
    assert r.status_code == 200
    assert 'targetNamespace="https://app.smartbutton.com/Services/"' in r.text
    assert 'elementFormDefault="qualified"' in r.text
    assert 'binding name="InteractionSoap12"' in r.text


def test_wsdl_declares_the_types_and_actions_of_asmx(sandbox: Sandbox) -> None:
    wsdl, xs = "http://schemas.xmlsoap.org/wsdl/", "http://www.w3.org/2001/XMLSchema"
    doc = ET.fromstring(requests.get(sandbox.url + "?WSDL", timeout=5).content)
    assert doc.get("targetNamespace") == NS

    def elements(type_name: str) -> dict[str, dict[str, str]]:
        found = doc.find(f".//{{{xs}}}complexType[@name='{type_name}']")
        assert found is not None, type_name
        return {e.get("name", ""): dict(e.attrib) for e in found.iter(f"{{{xs}}}element")}

    request = elements("reqRecordInteraction")
    assert list(request) == list(VALID)
    assert all(e["type"] == "s:string" and e["minOccurs"] == "0" for e in request.values())
    response = elements("respRecordInteraction")
    assert response["ReturnCode"]["type"] == "s:int"
    assert response["InteractionId"]["type"] == "s:long"
    actions = {b.get("name"): [op.get("soapAction") for op in b.iter() if op.get("soapAction")]
               for b in doc.iter(f"{{{wsdl}}}binding")}
    assert actions == {"InteractionSoap": [ACTION], "InteractionSoap12": [ACTION]}


def test_interaction_ids_go_past_2_to_the_31(sandbox: Sandbox) -> None:
    start = max(2**31, sandbox.configure()["next_id"]) + 5  # never back over ids given out
    sandbox.configure(next_id=start)
    assert result(post(sandbox, envelope())) == (0, start)
    reply = call(sandbox.url)  # the worker's codec reads it as the long it is
    assert reply.return_code == 0 and reply.interaction_id == start + 1
    assert [c["interaction_id"] for c in sandbox.calls()["calls"]] == [start, start + 1]
    for bad in (0, -1, 2**63, "many"):
        r = sandbox.control("POST", "config", json={"next_id": bad})
        assert r.status_code == 400, bad
    sandbox.reset()
    assert call(sandbox.url).interaction_id == start + 2  # a reset never repeats an id


@pytest.fixture
def ids_restored(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox, its next InteractionId put back afterwards (a reset keeps it)."""
    before = sandbox.configure()["next_id"]
    yield sandbox
    sandbox.configure(next_id=before)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_past_the_largest_long_the_method_throws(ids_restored: Sandbox, version: str) -> None:
    sandbox = ids_restored
    sandbox.configure(next_id=2**63 - 1)
    assert result(post(sandbox, envelope(version=version), version=version)) == (0, 2**63 - 1)
    fault = fault_of(post(sandbox, envelope(version=version), version=version), version)
    text = "".join(fault.itertext())
    assert "Server was unable to process request. ---> System.OverflowException" in text
    assert sandbox.calls()["count"] == 1


def test_next_id_must_be_a_whole_number(sandbox: Sandbox) -> None:
    bad: object
    for bad in (1.5, True, None, [], "2.0"):
        r = sandbox.control("POST", "config", json={"next_id": bad})
        assert r.status_code == 400 and "next_id must be" in r.json()["error"], bad
    assert sandbox.control("POST", "config", json={"next_id": str(2**40)}).json()[
        "next_id"] == 2**40


def test_omitted_note_is_null_and_empty_note_is_empty(sandbox: Sandbox) -> None:
    without = {k: v for k, v in VALID.items() if k != "InteractionNote"}
    assert result(post(sandbox, envelope(fields(without)))) == (2, -1)
    for empty in ("<InteractionNote />", "<InteractionNote></InteractionNote>"):
        code, _ = result(post(sandbox, envelope(fields(without) + empty)))
        assert code == 0
    assert [c["note"] for c in sandbox.calls()["calls"]] == ["", ""]


@pytest.mark.parametrize(("body", "what"), [
    (envelope(fields() + "<LoyaltyTier>gold</LoyaltyTier>"), "an unknown field"),
    (envelope(fields() + '<AccountId xmlns="urn:other">999</AccountId>'),
     "a known name in another namespace, after the real one"),
    (envelope().replace(b"</RecordInteraction>", b"<Extra>1</Extra></RecordInteraction>"),
     "an unknown sibling of preqRecordInteraction"),
    (envelope(request_attrs=' note="x" xmlns:foo="urn:foo"'), "unknown attributes"),
])
def test_unknown_extra_elements_are_ignored(sandbox: Sandbox, body: bytes, what: str) -> None:
    code, _ = result(post(sandbox, body))
    assert code == 0, what
    assert sandbox.calls()["calls"][-1]["account_id"] == "123456"


def test_order_of_children_does_not_matter(sandbox: Sandbox) -> None:
    reversed_fields = dict(reversed(VALID.items()))
    code, interaction_id = result(post(sandbox, envelope(fields(reversed_fields))))
    assert code == 0
    recorded = sandbox.calls()["calls"][-1]
    assert (recorded["interaction_id"], recorded["account_id"], recorded["note"]) == (
        interaction_id, "123456", "raw")


@pytest.mark.parametrize(("raw", "stored"), [
    ("<![CDATA[<b>bold</b> & more]]>", "<b>bold</b> & more"),
    ("x<![CDATA[ ]]>y", "x y"),
    ("caf\u00e9 \u4e2d\u6587 \u05e9\u05dc\u05d5\u05dd \U0001f600 e\u0301 \u200d",
     "caf\u00e9 \u4e2d\u6587 \u05e9\u05dc\u05d5\u05dd \U0001f600 e\u0301 \u200d"),
    ("&#x1F600;&lt;&amp;&gt;", "\U0001f600<&>"),
])
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_cdata_and_unicode_arrive_intact(sandbox: Sandbox, raw: str, stored: str,
                                         version: str) -> None:
    body = envelope(fields({**VALID, "InteractionNote": raw}), version=version)
    assert result(post(sandbox, body, version=version))[0] == 0
    assert sandbox.calls()["calls"][-1]["note"] == stored


def test_invalid_utf8_is_accepted_and_stored_as_replacement_char(sandbox: Sandbox) -> None:
    body = envelope(fields({**VALID, "InteractionNote": "NOTE"})).replace(
        b"NOTE", b"caf\xe9 ok \xff\xfe end")
    assert result(post(sandbox, body))[0] == 0
    assert sandbox.calls()["calls"][-1]["note"] == "caf\ufffd ok \ufffd\ufffd end"


@pytest.mark.parametrize(("fault", "error", "match", "recorded"), [
    # in front of the service: the call never arrives
    ("html502", HttpStatusError, "HTTP 502", 0),
    ("reset", ConnectionLost, "lost", 0),
    ("malformed", ReplyError, "not well-formed", 0),
    ("huge", ReplyTooLarge, "exceeds cap", 0),
    ("bomb", ReplyError, "DTD", 0),
    # after the service committed the call: it answers late or never
    ("hang", RequestTimeout, "no reply", 1),
    ("trickle", RequestTimeout, "no reply", 1),
    # inside the method: a fault, not an accepted call
    ("exception", ServerFault, "unable to process request", 0),
])
def test_fault_injection(sandbox: Sandbox, fault: str, error: type, match: str,
                         recorded: int) -> None:
    sandbox.configure(rates={fault: 1.0}, hang_s=3)
    started = time.monotonic()
    with pytest.raises(error, match=match):
        call(sandbox.url, transport=QUICK)
    assert time.monotonic() - started < 3
    assert sandbox.calls()["count"] == recorded
    sandbox.configure(rates={fault: 0.0})
    assert call(sandbox.url).return_code == 0


@pytest.mark.parametrize(("fault", "status"), [("http400", 400), ("http415", 415)])
def test_bare_refusals_can_be_injected(sandbox: Sandbox, fault: str, status: int) -> None:
    """The refusals .asmx gives a spoiled body or media type, for a request sent intact: so a
    client's handling of them can be tried with its own well-formed requests."""
    sandbox.configure(rates={fault: 1.0})
    for version in ("1.1", "1.2"):
        r = post(sandbox, envelope(version=version), version=version)
        assert (r.status_code, r.content) == (status, b"")
    with pytest.raises(HttpStatusError, match=f"HTTP {status}"):
        call(sandbox.url)
    assert sandbox.calls()["count"] == 0
    assert sandbox.calls()["requests"][f"fault:{fault}"] == 3


def test_a_throttle_answers_429_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.configure(rates={"http429": 1.0}, retry_after_s=7)
    r = post(sandbox, envelope())
    assert (r.status_code, r.headers["Retry-After"]) == (429, "7")
    with pytest.raises(HttpStatusError, match="HTTP 429") as throttled:
        call(sandbox.url)
    assert throttled.value.retry_after == 7
    assert sandbox.calls()["count"] == 0
    for bad in (-1, 1.5, "2", True):
        assert sandbox.control("POST", "config", json={"retry_after_s": bad}).status_code == 400


def test_chunked_requests_are_counted(sandbox: Sandbox) -> None:
    """Some .asmx hosts mishandle chunked requests (design.md section 11): the sandbox serves
    them but counts them, so a test can prove a client sends ``Content-Length``."""
    body = envelope()
    r = requests.post(sandbox.url, data=iter([body[:50], body[50:]]), timeout=5, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}"'})
    assert r.request.headers["Transfer-Encoding"] == "chunked"
    assert result(r)[0] == 0
    assert post(sandbox, body).status_code == 200
    assert call(sandbox.url).return_code == 0  # the worker's client: Content-Length
    assert sandbox.calls()["requests"]["chunked"] == 1


def test_error_rate_forced_code_and_outage(sandbox: Sandbox) -> None:
    sandbox.configure(rates={"error": 1.0})
    assert call(sandbox.url).return_code == 1
    sandbox.configure(rates={"error": 0.0}, force_code=6)
    assert call(sandbox.url).return_code == 6
    sandbox.configure(force_code=None, outage_seconds=0.5)
    with pytest.raises(HttpStatusError, match="HTTP 503"):
        call(sandbox.url)
    wait_until(lambda: sandbox.configure()["outage_remaining_s"] == 0, 5, message="outage over")
    assert call(sandbox.url).return_code == 0


@pytest.mark.parametrize("change", [
    {"force_code": 6}, {"force_code": 1}, {"force_code": 2}, {"rates": {"error": 1.0}},
    {"outage_seconds": 60, "outage_mode": "error"},
])
def test_a_non_zero_code_records_nothing(sandbox: Sandbox, change: dict[str, object]) -> None:
    sandbox.configure(**change)
    reply = call(sandbox.url)
    assert reply.return_code != 0 and reply.interaction_id == -1
    assert sandbox.calls()["count"] == 0


def test_a_forced_code_0_is_an_accepted_call(sandbox: Sandbox) -> None:
    sandbox.configure(force_code=0)
    reply = call(sandbox.url, location="NOWHERE")
    assert reply.return_code == 0 and reply.interaction_id > 0
    assert sandbox.calls()["calls"][-1]["interaction_id"] == reply.interaction_id


def test_a_call_is_recorded_before_its_late_reply_which_carries_its_id(sandbox: Sandbox) -> None:
    sandbox.configure(latency_ms=1500)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(call, sandbox.url, note="late")
        recorded = wait_until(lambda: sandbox.calls()["calls"], 1.0, message="call recorded")
        assert not pending.done()  # on the record while its reply is still held up
        reply = pending.result(timeout=10)
    assert reply.return_code == 0
    assert [(c["interaction_id"], c["note"]) for c in recorded] == [(reply.interaction_id,
                                                                     "late")]


@pytest.mark.parametrize("change", [{"latency_ms": 1500}, {"rates": {"hang": 1.0}, "hang_s": 2}])
def test_a_call_the_client_gave_up_on_is_still_counted(sandbox: Sandbox,
                                                        change: dict[str, object]) -> None:
    sandbox.configure(**change)
    impatient = TransportSettings(connect_timeout=1, read_timeout=0.3, total_timeout=0.5)
    with pytest.raises(RequestTimeout) as timed_out:
        call(sandbox.url, note="given up", transport=impatient)
    # Already counted when the client gives up, long before the late reply would go out.
    assert [c["note"] for c in sandbox.calls()["calls"]] == ["given up"]
    verdict = Policy().classify(timed_out.value)
    assert (verdict.signal, verdict.outcome, verdict.ambiguous) == ("timeout", Outcome.RETRY,
                                                                   True)


def test_latency_with_jitter(sandbox: Sandbox) -> None:
    sandbox.configure(latency_ms=200, jitter_ms=20)
    started = time.monotonic()
    call(sandbox.url)
    assert 0.17 < time.monotonic() - started < 1.5


def test_control_rejects_unknown_settings(sandbox: Sandbox) -> None:
    r = sandbox.control("POST", "config", json={"rates": {"meteor": 1}})
    assert r.status_code == 400 and "unknown fault 'meteor'" in r.text


def test_nothing_listening_is_connect_failed() -> None:
    with pytest.raises(ConnectFailed, match="cannot connect"):
        call(f"http://127.0.0.1:{free_port()}/Services/Interaction.asmx", transport=QUICK)


def test_a_poison_account_always_faults_and_records_nothing(sandbox: Sandbox) -> None:
    sandbox.configure(poison_accounts=["7777777"])
    for _ in range(3):
        poison = fields({**VALID, "AccountId": "7777777"})
        fault = fault_of(post(sandbox, envelope(poison)), "1.1")
        assert fault.findtext("faultcode") == "soap:Server"
    assert post(sandbox, envelope()).status_code == 200  # every other account is fine
    assert sandbox.calls()["count"] == 1
