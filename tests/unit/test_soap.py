import time

import pytest
import xmltodict
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.events import NOTE_MAX, Interaction
from worker.errors import ClientFault, ReplyError, ServerFault
from worker.secret import Secret
from worker.soap import (
    SOAP11_NS,
    SOAP12_NS,
    Reply,
    build_request,
    parse_fault,
    parse_reply,
)

TOKEN = Secret("tok-123")
NS = "https://app.smartbutton.com/Services/"


def event(**fields: str) -> Interaction:
    base = {"account_id": "123456", "location": "STORE-001", "interaction_type": "VISIT"}
    return Interaction.create(**{**base, **fields})


def request_fields(body: bytes) -> dict[str, str]:
    doc = xmltodict.parse(body, process_namespaces=True, strip_whitespace=False,
                          namespaces={SOAP11_NS: "s", SOAP12_NS: "s", NS: None})
    fields: dict[str, str] = doc["s:Envelope"]["s:Body"]["RecordInteraction"][
        "preqRecordInteraction"]
    return {k: v or "" for k, v in fields.items()}


def test_soap11_request_shape() -> None:
    req = build_request(event(note="hi"), TOKEN)
    assert req.headers["SOAPAction"] == f'"{NS}RecordInteraction"'
    assert req.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert request_fields(req.body) == {
        "SecurityToken": "tok-123", "AccountId": "123456", "LocationExternalReference": "STORE-001",
        "InteractionTypeExternalReference": "VISIT", "InteractionNote": "hi"}
    assert "tok-123" not in repr(req)


def test_soap12_request_carries_action_in_content_type() -> None:
    req = build_request(event(), TOKEN, version="1.2", namespace="urn:x/")
    assert req.headers["Content-Type"] == (
        'application/soap+xml; charset=utf-8; action="urn:x/RecordInteraction"')
    assert SOAP12_NS.encode() in req.body


def test_empty_note_element_is_always_sent() -> None:
    body = build_request(event(), TOKEN).body
    assert b"<InteractionNote></InteractionNote>" in body


@pytest.mark.parametrize("note", ["<b>&amp;</b>", "]]>", "\"quotes' ", "emoji 🎉✨", "a\r\nb\tc",
                                  " padded "])
def test_awkward_notes_round_trip(note: str) -> None:
    assert request_fields(build_request(event(note=note), TOKEN).body)["InteractionNote"] == note


xml_text = st.text(st.characters(blacklist_categories=["Cs"],
                                 blacklist_characters=[chr(c) for c in range(32) if c not in
                                                       (9, 10, 13)] + ["\ufffe", "\uffff"]))


@settings(max_examples=300, deadline=None)
@given(account=xml_text.filter(lambda s: s.strip()).map(lambda s: s[:60]),
       location=xml_text.filter(lambda s: s.strip()).map(lambda s: s[:100]),
       note=xml_text.map(lambda s: s[:NOTE_MAX]))
def test_any_valid_event_round_trips(account: str, location: str, note: str) -> None:
    ev = Interaction.create(account_id=account, location=location, interaction_type="VISIT",
                            note=note)
    fields = request_fields(build_request(ev, TOKEN).body)
    assert (fields["AccountId"], fields["LocationExternalReference"], fields["InteractionNote"]) \
        == (account, location, note)


def reply_xml(code: int, iid: int, *, prefix: str = "soap", ns: str = SOAP11_NS,
              extra: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><{prefix}:Envelope xmlns:{prefix}="{ns}">'
            f'<{prefix}:Body><RecordInteractionResponse xmlns="{NS}"><RecordInteractionResult>'
            f"<ReturnCode>{code}</ReturnCode><InteractionId>{iid}</InteractionId>{extra}"
            f"</RecordInteractionResult></RecordInteractionResponse></{prefix}:Body>"
            f"</{prefix}:Envelope>").encode()


@pytest.mark.parametrize("code", [0, 1, 2, 5, 6, 100, 101, 102, 103, 104, 105, 106, 300, 301,
                                  503, 1200, 9999])
def test_every_return_code_parses(code: int) -> None:
    iid = 42 if code == 0 else -1
    assert parse_reply(reply_xml(code, iid)) == Reply(code, iid)


@pytest.mark.parametrize("body", [
    reply_xml(0, 7, prefix="s"),
    reply_xml(0, 7, prefix="SOAP-ENV"),
    reply_xml(0, 7, ns=SOAP12_NS),
    b"\xef\xbb\xbf" + reply_xml(0, 7),
    b"\n  " + reply_xml(0, 7).replace(b"<ReturnCode>", b"<!-- c --><ReturnCode>  \n"),
    reply_xml(0, 7).replace(b"<InteractionId>7", b"<InteractionId><![CDATA[7]]>"),
    reply_xml(0, 7, extra="<Unknown>x</Unknown>"),
    (f'<Envelope xmlns="{SOAP11_NS}"><Body><RecordInteractionResponse xmlns="{NS}">'
     "<RecordInteractionResult><ReturnCode>0</ReturnCode><InteractionId>7</InteractionId>"
     "</RecordInteractionResult></RecordInteractionResponse></Body></Envelope>").encode(),
    (f'<a:Envelope xmlns:a="{SOAP11_NS}" xmlns:b="{NS}"><a:Header/><a:Body>'
     "<b:RecordInteractionResponse><b:RecordInteractionResult><b:ReturnCode>0</b:ReturnCode>"
     "<b:InteractionId>7</b:InteractionId></b:RecordInteractionResult>"
     "</b:RecordInteractionResponse></a:Body></a:Envelope>").encode(),
])
def test_odd_but_valid_replies(body: bytes) -> None:
    assert parse_reply(body) == Reply(0, 7)


FAULT11 = (f'<soap:Envelope xmlns:soap="{SOAP11_NS}"><soap:Body><soap:Fault>'
           "<faultcode>soap:{code}</faultcode><faultstring>{text}</faultstring><detail/>"
           "</soap:Fault></soap:Body></soap:Envelope>")
FAULT12 = (f'<soap:Envelope xmlns:soap="{SOAP12_NS}"><soap:Body><soap:Fault><soap:Code>'
           "<soap:Value>soap:{code}</soap:Value></soap:Code><soap:Reason>"
           '<soap:Text xml:lang="en">{text}</soap:Text></soap:Reason></soap:Fault></soap:Body>'
           "</soap:Envelope>")


@pytest.mark.parametrize(("template", "code", "kind"), [
    (FAULT11, "Client", ClientFault), (FAULT11, "Server", ServerFault),
    (FAULT12, "Sender", ClientFault), (FAULT12, "Receiver", ServerFault),
    (FAULT11, "VersionMismatch", ClientFault),
])
def test_fault_shapes(template: str, code: str, kind: type) -> None:
    body = template.format(code=code, text="Server did not recognize the value").encode()
    with pytest.raises(kind, match="did not recognize"):
        parse_reply(body)
    fault = parse_fault(body)
    assert isinstance(fault, kind) and fault is not None and fault.code == f"soap:{code}"


BOMB = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
        + "]><r>&i;</r>").encode()
EXTERNAL = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'


@pytest.mark.parametrize(("body", "found"), [
    (BOMB, "DTD"),
    (EXTERNAL, "DTD"),
    (reply_xml(0, 7)[:-30], "not well-formed"),
    (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "found <html>"),
    (b"", "not well-formed"),
    (b"<html><body><br></body></html>", "not well-formed"),
    (reply_xml(0, 7).replace(b"RecordInteractionResponse", b"OtherResponse"),
     "found <OtherResponse>"),
    (reply_xml(0, 7).replace(b"<ReturnCode>0</ReturnCode>", b""), "no <ReturnCode>"),
    (reply_xml(0, 7).replace(b"<ReturnCode>0", b"<ReturnCode>zero"), "not an integer"),
    (f'<soap:Envelope xmlns:soap="{SOAP11_NS}"><soap:Body/></soap:Envelope>'.encode(), "empty"),
])
def test_hostile_or_foreign_replies_give_a_typed_error_fast(body: bytes, found: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ReplyError, match=found):
        parse_reply(body)
    assert time.perf_counter() - started < 0.5


def test_large_reply_parses_without_blowup() -> None:
    body = reply_xml(0, 7, extra="<Junk>" + "x" * 500_000 + "</Junk>")
    assert parse_reply(body) == Reply(0, 7)


def _slow_reply(body: bytes) -> object:
    """What the xmltodict path makes of a body (the oracle for the fast path)."""
    from worker import soap

    try:
        return soap._parse_reply_xml(body)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_the_canonical_reply_takes_the_fast_path_and_reads_the_same(version: str) -> None:
    from worker import soap

    ns = soap.SOAP11_NS if version == "1.1" else soap.SOAP12_NS
    body = (f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{ns}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>'
            '<RecordInteractionResponse xmlns="https://app.smartbutton.com/Services/">'
            "<RecordInteractionResult><ReturnCode>0</ReturnCode>"
            "<InteractionId>9007199254740993</InteractionId></RecordInteractionResult>"
            "</RecordInteractionResponse></soap:Body></soap:Envelope>").encode()
    assert soap._canonical_reply(body) == soap.Reply(0, 9007199254740993)
    assert soap.parse_reply(body) == _slow_reply(body)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_fast_path_never_disagrees_with_xmltodict(data: st.DataObject) -> None:
    """Canonical replies and near-misses: the fast path either reads exactly what xmltodict
    reads, or steps aside."""
    from worker import soap

    prefix = data.draw(st.sampled_from(["soap", "s", "env", "x1"]))
    ns = data.draw(st.sampled_from([soap.SOAP11_NS, soap.SOAP12_NS, "urn:not-soap"]))
    extra = data.draw(st.sampled_from(["", f' xmlns:{prefix}="{ns}"', ' xmlns="urn:d"',
                                       ' xmlns:xsi="urn:i"']))
    binding = data.draw(st.sampled_from([f' xmlns:{prefix}="{ns}"', "", ' xmlns:other="u"']))
    code = data.draw(st.integers(-(2**31), 2**31 - 1))
    iid = data.draw(st.integers(-1, 2**63 - 1))
    decl = data.draw(st.sampled_from(["", '<?xml version="1.0" encoding="utf-8"?>']))
    tail = data.draw(st.sampled_from(["", "\n", "  ", "<!-- x -->"]))
    body = (f"{decl}<{prefix}:Envelope{binding}{extra}><{prefix}:Body>"
            '<RecordInteractionResponse xmlns="urn:svc"><RecordInteractionResult>'
            f"<ReturnCode>{code}</ReturnCode><InteractionId>{iid}</InteractionId>"
            f"</RecordInteractionResult></RecordInteractionResponse></{prefix}:Body>"
            f"</{prefix}:Envelope>{tail}").encode()
    fast = soap._canonical_reply(body)
    if fast is not None:
        assert fast == _slow_reply(body)
