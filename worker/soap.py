"""SOAP codec for RecordInteraction (ASP.NET .asmx, document/literal).

Requests come from a template compiled once per (namespace, action, version): only the five
values are escaped and spliced in per call, because building a tree and serialising it with
xmltodict cost a third of the client's CPU. Requests always carry every element: the platform
answers code 2 when one is missing, so an absent note goes out as an empty
``<InteractionNote>``. Replies are parsed with xmltodict, whatever prefixes the server chose;
a DTD is refused before parsing so no entity is ever expanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict

from relay.events import Interaction
from worker.errors import ClientFault, ReplyError, ServerFault, SoapFault
from worker.secret import Secret

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
DEFAULT_NAMESPACE = "https://app.smartbutton.com/Services/"
METHOD = "RecordInteraction"
VERSIONS = ("1.1", "1.2")
_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XSD_NS = "http://www.w3.org/2001/XMLSchema"

_CLIENT_CODES = frozenset({"Client", "Sender", "VersionMismatch", "MustUnderstand"})
_EXCERPT = 200


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """Bytes and headers ready to POST. Holds the token: never log or store one."""

    body: bytes
    headers: Mapping[str, str]

    def __repr__(self) -> str:
        return f"SoapRequest(<{len(self.body)} bytes>)"


@dataclass(frozen=True, slots=True)
class Reply:
    """A parsed RecordInteraction reply: the platform's return code and the interaction id."""

    return_code: int
    interaction_id: int


def default_action(namespace: str) -> str:
    """.asmx SOAPAction: the namespace, a slash, the method."""
    return namespace.rstrip("/") + "/" + METHOD


def build_request(event: Interaction, token: Secret, *, namespace: str = DEFAULT_NAMESPACE,
                  action: str | None = None, version: str = "1.1") -> SoapRequest:
    """The RecordInteraction request for one event, from the endpoint's cached template."""
    return request_template(namespace, action, version).render(event, token)


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """One endpoint's request, precompiled: the XML around the five values, and the headers.

    Holds no token, so it can be cached and shared; :meth:`render` makes each request.
    """

    pieces: tuple[str, str, str, str, str, str]  # XML before, between and after the values
    headers: Mapping[str, str]

    def render(self, event: Interaction, token: Secret) -> SoapRequest:
        p = self.pieces
        xml = "".join((p[0], _escape_text(token.reveal()), p[1], _escape_text(event.account_id),
                       p[2], _escape_text(event.location), p[3],
                       _escape_text(event.interaction_type), p[4], _escape_text(event.note), p[5]))
        return SoapRequest(xml.encode("utf-8"), self.headers)


@lru_cache(maxsize=64)  # a handful of endpoints per worker; bounded all the same
def request_template(namespace: str, action: str | None, version: str) -> RequestTemplate:
    """The template for one (namespace, action, version); ``action`` None means the default."""
    if version not in VERSIONS:
        raise ValueError(f"SOAP version must be one of {VERSIONS}, not {version!r}")
    action = action or default_action(namespace)
    envelope_ns = SOAP11_NS if version == "1.1" else SOAP12_NS
    # The text around the five values, in the order render() fills them in.
    pieces = ('<?xml version="1.0" encoding="utf-8"?>\n'
              f'<soap:Envelope xmlns:xsi="{_XSI_NS}" xmlns:xsd="{_XSD_NS}" '
              f'xmlns:soap="{envelope_ns}"><soap:Body>'
              f'<{METHOD} xmlns="{_escape_attribute(namespace)}"><preqRecordInteraction>'
              "<SecurityToken>",
              "</SecurityToken><AccountId>",
              "</AccountId><LocationExternalReference>",
              "</LocationExternalReference><InteractionTypeExternalReference>",
              "</InteractionTypeExternalReference><InteractionNote>",
              f"</InteractionNote></preqRecordInteraction></{METHOD}></soap:Body></soap:Envelope>")
    if version == "1.1":
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    else:
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    return RequestTemplate(pieces, MappingProxyType(headers))


def _escape_text(value: str) -> str:
    # "&" first, so the entities added after it are not escaped again. A raw CR would reach the
    # server as LF (XML end-of-line handling); a character reference keeps it.
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def _escape_attribute(value: str) -> str:
    # Inside a "-quoted attribute: the quote too, and tab/LF/CR as references, since attribute
    # value normalisation would turn raw ones into spaces.
    return (_escape_text(value).replace('"', "&quot;").replace("\t", "&#9;")
            .replace("\n", "&#10;"))


# The reply an .asmx service sends, byte for byte (design.md section 11: one line, prefix
# `soap`, the result in the default namespace). Only this exact shape takes the fast path;
# anything else (faults, other prefixes or spacing, comments, CDATA) is read by xmltodict.
_CANONICAL_REPLY = re.compile(
    rb'(?:<\?xml version="1\.0" encoding="utf-8"\?>)?'
    rb"<(?P<p>[A-Za-z_][\w.-]*):Envelope(?P<attrs>(?: xmlns(?::[A-Za-z_][\w.-]*)?=\"[^\"<>&]*\")*)>"
    rb"<(?P=p):Body><RecordInteractionResponse xmlns=\"[^\"<>&]*\">"
    rb"<RecordInteractionResult><ReturnCode>(?P<code>-?\d{1,10})</ReturnCode>"
    rb"<InteractionId>(?P<id>-?\d{1,19})</InteractionId></RecordInteractionResult>"
    rb"</RecordInteractionResponse></(?P=p):Body></(?P=p):Envelope>")
_XMLNS = re.compile(rb' xmlns(?::([A-Za-z_][\w.-]*))?="([^"]*)"')
_ENVELOPE_NAMESPACES = frozenset({SOAP11_NS.encode(), SOAP12_NS.encode()})


def _canonical_reply(body: bytes) -> Reply | None:
    """The reply read without a parser when it has the canonical shape, else None."""
    match = _CANONICAL_REPLY.fullmatch(body.rstrip())
    if match is None:
        return None
    declared = _XMLNS.findall(match["attrs"])
    prefixes = [prefix for prefix, _ in declared]
    if len(set(prefixes)) != len(prefixes):
        return None  # a prefix declared twice is not well-formed: let the parser say so
    if dict(declared).get(match["p"]) not in _ENVELOPE_NAMESPACES:
        return None
    return Reply(int(match["code"]), int(match["id"]))


def parse_reply(body: bytes) -> Reply:
    """Read a reply body; raise ``SoapFault`` for a Fault, ``ReplyError`` for anything else odd.

    The canonical success reply (what the service sends every time it answers) is recognised
    by one anchored pattern; every other body goes through xmltodict, as before."""
    fast = _canonical_reply(body)
    return fast if fast is not None else _parse_reply_xml(body)


def _parse_reply_xml(body: bytes) -> Reply:
    payload = _body_element(body)
    name, content = payload
    if name == "Fault":
        raise _fault(content)
    if name != f"{METHOD}Response":
        raise ReplyError(f"expected <{METHOD}Response>, found <{name}>")
    result = _child(content, f"{METHOD}Result")
    if not isinstance(result, Mapping):
        raise ReplyError(f"<{METHOD}Response> has no <{METHOD}Result>")
    return Reply(_integer(result, "ReturnCode"), _integer(result, "InteractionId", default=-1))


def parse_fault(body: bytes) -> SoapFault | None:
    """The Fault in a body, or None when the body holds no readable Fault (e.g. an HTML page)."""
    try:
        name, content = _body_element(body)
    except ReplyError:
        return None
    return _fault(content) if name == "Fault" else None


def _body_element(body: bytes) -> tuple[str, Any]:
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ReplyError("reply declares a DTD or entities; refused unparsed")
    # Servers and proxies sometimes put a BOM or blank lines before the XML declaration.
    body = body.removeprefix(b"\xef\xbb\xbf").lstrip()
    try:
        doc = xmltodict.parse(body, process_namespaces=True, namespace_separator=" ",
                              postprocessor=_local_name, disable_entities=True)
    except (ExpatError, ValueError) as exc:
        raise ReplyError(f"reply is not well-formed XML ({exc}): {_excerpt(body)!r}") from exc
    if not isinstance(doc, Mapping) or not doc:
        raise ReplyError("reply is empty")
    root, envelope = next(iter(doc.items()))
    if root != "Envelope":
        raise ReplyError(f"expected a SOAP <Envelope>, found <{root}>")
    if not isinstance(envelope, Mapping) or "Body" not in envelope:
        raise ReplyError("SOAP envelope has no <Body>")
    soap_body = envelope["Body"] or {}
    children = [(k, v) for k, v in soap_body.items() if not k.startswith("@")]
    if not children:
        raise ReplyError("SOAP <Body> is empty")
    return children[0]


def _local_name(_path: Any, key: str, value: Any) -> tuple[str, Any]:
    # Namespaced names arrive as "uri name"; attributes keep their "@".
    if " " in key:
        prefix = "@" if key.startswith("@") else ""
        key = prefix + key.rsplit(" ", 1)[1]
    return key, value


def _child(node: Any, name: str) -> Any:
    return node.get(name) if isinstance(node, Mapping) else None


def _text(node: Any) -> str:
    if isinstance(node, Mapping):
        node = node.get("#text", "")
    return node.strip() if isinstance(node, str) else ""


def _integer(result: Mapping[str, Any], name: str, default: int | None = None) -> int:
    raw = _text(result.get(name))
    if not raw:
        if default is not None:
            return default
        raise ReplyError(f"<{METHOD}Result> has no <{name}>")
    try:
        return int(raw)
    except ValueError:
        raise ReplyError(f"<{name}> is not an integer: {raw[:40]!r}") from None


def _fault(content: Any) -> SoapFault:
    if _child(content, "faultcode") is not None:  # SOAP 1.1
        code, reason = _text(content["faultcode"]), _text(_child(content, "faultstring"))
    else:  # SOAP 1.2
        code = _text(_child(_child(content, "Code"), "Value"))
        text = _child(_child(content, "Reason"), "Text")
        reason = _text(text[0] if isinstance(text, list) else text)
    local = code.rsplit(":", 1)[-1]
    kind = ClientFault if local in _CLIENT_CODES else ServerFault
    return kind(code or "soap:Server", reason)


def _excerpt(body: bytes) -> str:
    return body[:_EXCERPT].decode("utf-8", "replace")
