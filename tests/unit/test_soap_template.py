"""The precompiled request template against the construction it replaced.

``reference_request`` is the former ``build_request`` (a nested dict through
``xmltodict.unparse``), kept here only as the oracle: for any event the contract accepts, any
token and any namespace, both bodies must read back as the same document.
"""

import xml.etree.ElementTree as ET
from typing import Any

import xmltodict
from hypothesis import example, given, settings
from hypothesis import strategies as st

from relay.events import ACCOUNT_ID_MAX, NOTE_MAX, REFERENCE_MAX, Interaction
from worker.secret import Secret
from worker.soap import (
    DEFAULT_NAMESPACE,
    SOAP11_NS,
    SOAP12_NS,
    VERSIONS,
    build_request,
    default_action,
    request_template,
)

# The reserved namespaces cannot be bound as a default namespace: every parser refuses both
# bodies alike, which proves nothing about the template.
RESERVED = {"http://www.w3.org/XML/1998/namespace", "http://www.w3.org/2000/xmlns/"}


def reference_request(event: Interaction, token: Secret, namespace: str, action: str | None,
                      version: str) -> tuple[bytes, dict[str, str]]:
    action = action or default_action(namespace)
    fields = {
        "SecurityToken": token.reveal(),
        "AccountId": event.account_id,
        "LocationExternalReference": event.location,
        "InteractionTypeExternalReference": event.interaction_type,
        "InteractionNote": event.note,
    }
    envelope = {
        "soap:Envelope": {
            "@xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "@xmlns:xsd": "http://www.w3.org/2001/XMLSchema",
            "@xmlns:soap": SOAP11_NS if version == "1.1" else SOAP12_NS,
            "soap:Body": {"RecordInteraction": {"@xmlns": namespace,
                                                "preqRecordInteraction": fields}},
        }
    }
    xml: str = xmltodict.unparse(envelope, encoding="utf-8")
    body = xml.replace("\r", "&#13;").encode("utf-8")
    if version == "1.1":
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    else:
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    return body, headers


def element_tree(element: ET.Element) -> tuple[Any, ...]:
    """Everything ElementTree reads: qualified tag, attributes, text, tail, children."""
    return (element.tag, sorted(element.attrib.items()), element.text, element.tail,
            [element_tree(child) for child in element])


# Any text XML 1.0 can carry (astral planes included), with the awkward pieces made common.
xml_chars = st.characters(blacklist_categories=["Cs"],
                          blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
                          + ["\ufffe", "\uffff"])
awkward = st.sampled_from(["&", "<", ">", '"', "'", "\r", "\n", "\t", "\r\n", "]]>", "&amp;",
                           "&#13;", " ", "\U0001f389", "\U0010fffd", "\u2028", "\x85"])
xml_text = st.lists(xml_chars | awkward).map("".join)


def required(maximum: int) -> st.SearchStrategy[str]:
    return xml_text.map(lambda s: s[:maximum]).filter(lambda s: bool(s.strip()))


namespaces = (st.sampled_from([DEFAULT_NAMESPACE, "urn:x/", "https://h/a&b/", 'urn:say "hi"/',
                               "urn:it's/", """urn:both'"&<>/""", "urn:tab\tlf\ncr\r/"])
              # ElementTree joins namespace and tag with "}": a namespace holding one cannot be
              # read back by it at all (neither body), so it proves nothing either.
              | xml_text.filter(lambda s: s not in RESERVED and "}" not in s))


@settings(max_examples=300, deadline=None)
@given(account=required(ACCOUNT_ID_MAX), location=required(REFERENCE_MAX),
       interaction_type=required(REFERENCE_MAX), note=xml_text.map(lambda s: s[:NOTE_MAX]),
       token=xml_text, namespace=namespaces, action=st.none() | xml_text,
       version=st.sampled_from(VERSIONS))
@example(account="a&b<c>d", location='"q" \'a\'', interaction_type="\r\n\t\U0001f389",
         note="", token="", namespace='urn:a&b"c/', action=None, version="1.1")
@example(account="a&b<c>d", location='"q" \'a\'', interaction_type="\r\n\t\U0001f389",
         note="", token="", namespace='urn:a&b"c/', action=None, version="1.2")
def test_template_body_reads_as_the_reference_body(
        account: str, location: str, interaction_type: str, note: str, token: str,
        namespace: str, action: str | None, version: str) -> None:
    event = Interaction.create(account_id=account, location=location,
                               interaction_type=interaction_type, note=note)
    new = build_request(event, Secret(token), namespace=namespace, action=action,
                        version=version)
    old_body, old_headers = reference_request(event, Secret(token), namespace, action, version)

    assert dict(new.headers) == old_headers
    for options in ({}, {"process_namespaces": True}):
        assert xmltodict.parse(new.body, strip_whitespace=False, **options) \
            == xmltodict.parse(old_body, strip_whitespace=False, **options)
    new_root, old_root = ET.fromstring(new.body), ET.fromstring(old_body)
    assert element_tree(new_root) == element_tree(old_root)
    assert ET.canonicalize(new.body.decode()) == ET.canonicalize(old_body.decode())
    # And both say what was meant, not merely the same thing as each other.
    values = [child.text or "" for child in new_root[0][0][0]]
    assert values == [token, account, location, interaction_type, note]
    assert new_root[0][0].tag == (f"{{{namespace}}}RecordInteraction" if namespace  # xmlns=""
                                  else "RecordInteraction")
    # The bytes themselves differ only where xmltodict single-quotes an attribute holding '"'.
    if '"' not in namespace:
        assert new.body == old_body


def test_template_is_built_once_per_endpoint() -> None:
    event = Interaction.create(account_id="1", location="L", interaction_type="T")
    request_template.cache_clear()
    for _ in range(3):
        build_request(event, Secret("a"), namespace="urn:once/")
        build_request(event, Secret("b"), namespace="urn:once/", version="1.2")
    info = request_template.cache_info()
    assert (info.misses, info.hits) == (2, 4)


def test_template_and_request_never_show_the_token() -> None:
    event = Interaction.create(account_id="1", location="L", interaction_type="T")
    request = build_request(event, Secret("tok-secret-9"))
    assert b"tok-secret-9" in request.body
    template = request_template(DEFAULT_NAMESPACE, None, "1.1")
    for text in (repr(request), str(request), repr(template), str(template)):
        assert "tok-secret-9" not in text
