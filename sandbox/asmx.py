"""Server-side SOAP for the emulated Interaction.asmx, written apart from the worker's codec.

It uses ElementTree rather than xmltodict, so a bug in our client codec cannot hide by being
mirrored here. What it accepts, refuses and says follows a real .asmx runtime as measured in
design.md section 11: a body that is not XML, or a SOAP 1.1 envelope under the 1.2 media type, is
refused with a bare HTTP status (``Refusal``), not a fault; an element in the wrong namespace is
dropped silently, so the method sees its fields as missing; texts of faults are .asmx's own.
"""

from __future__ import annotations

import codecs
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
METHOD = "RecordInteraction"
FIELDS = ("SecurityToken", "AccountId", "LocationExternalReference",
          "InteractionTypeExternalReference", "InteractionNote")
_STACK = "\n   at System.Web.Services.Protocols.SoapServerProtocol.Initialize()"


class AsmxFault(Exception):
    """A fault the .asmx stack itself would produce; ``client`` picks Client/Sender."""

    def __init__(self, message: str, client: bool = True) -> None:
        super().__init__(message)
        self.client = client


class Refusal(Exception):
    """A request the runtime turns away before any SOAP processing: a bare HTTP status with an
    empty body (400: not well-formed XML; 415: a media type or envelope it does not serve)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True)
class Call:
    version: str  # "1.1" or "1.2"
    fields: dict[str, str | None]  # None: element absent (or dropped as unknown)


def unrecognized_action(action: str) -> AsmxFault:
    return AsmxFault("System.Web.Services.Protocols.SoapException: Server did not recognize the "
                     f"value of HTTP Header SOAPAction: {action}.{_STACK}")


def method_exception(message: str) -> AsmxFault:
    """What .asmx says when the web method itself throws: a soap:Server / soap:Receiver fault."""
    return AsmxFault(f"Server was unable to process request. ---> {message}", client=False)


def read_request(body: bytes, version: str, namespace: str, charset: str | None = None) -> Call:
    """The call in a request body; raises ``Refusal`` or ``AsmxFault`` as .asmx would."""
    root = _parse(body, charset)
    envelope_ns = SOAP11 if version == "1.1" else SOAP12
    if version == "1.2" and root.tag == f"{{{SOAP11}}}Envelope":
        raise Refusal(415)  # .asmx does not read a 1.1 envelope sent as application/soap+xml
    if root.tag != f"{{{envelope_ns}}}Envelope":
        raise AsmxFault("Possible SOAP version mismatch: Envelope namespace "
                        f"{root.tag.partition('}')[0].lstrip('{')} was unexpected. "
                        f"Expecting {envelope_ns}.")
    method = _method(root, envelope_ns)
    if method.tag != f"{{{namespace}}}{METHOD}":
        return Call(version, dict.fromkeys(FIELDS))  # an unknown wrapper: dropped, nothing read
    return Call(version, _fields(method, namespace))


def _parse(body: bytes, charset: str | None) -> ET.Element:
    text = _decode(body, charset)
    if "<!DOCTYPE" in text:
        raise AsmxFault("Server was unable to read request. ---> There is an error in XML "
                        "document (1, 1). ---> DTD is prohibited in this XML document.")
    try:
        return ET.fromstring(text)  # noqa: S314 - DTDs refused above, expat caps expansion
    except ET.ParseError:
        raise Refusal(400) from None  # measured: no fault, just 400 with an empty body


def _decode(body: bytes, charset: str | None) -> str:
    """The body as text in the declared charset (UTF-8 by default). .NET's decoder replaces
    bytes that are not valid in it with U+FFFD instead of failing, so the call goes through."""
    try:
        name = codecs.lookup(charset or "utf-8").name
    except LookupError:
        name = "utf-8"
    return body.decode("utf-8-sig" if name == "utf-8" else name, errors="replace")


def _method(root: ET.Element, envelope_ns: str) -> ET.Element:
    body_el = root.find(f"{{{envelope_ns}}}Body")
    if body_el is None or not len(body_el):
        raise AsmxFault("Server was unable to read request. ---> Body is empty.")
    method = body_el[0]
    uri, _, local = method.tag.rpartition("}")
    if local != METHOD:  # only a RecordInteraction in a foreign namespace passes as unknown
        raise AsmxFault("System.InvalidOperationException: Server was unable to read request. "
                        "---> There is an error in XML document (1, 1). ---> "
                        f"<{local} xmlns='{uri.lstrip('{')}'> was not expected.")
    return method


def _fields(method: ET.Element, namespace: str) -> dict[str, str | None]:
    """Each field's text, in any order; absent or foreign-namespace elements stay None."""
    values: dict[str, str | None] = dict.fromkeys(FIELDS)
    request = method.find(f"{{{namespace}}}preqRecordInteraction")
    if request is not None:
        for name in FIELDS:
            element = request.find(f"{{{namespace}}}{name}")
            if element is not None:
                values[name] = element.text or ""
    return values


def reply(version: str, namespace: str, code: int, interaction_id: int) -> bytes:
    inner = (f'<RecordInteractionResponse xmlns="{escape(namespace)}"><RecordInteractionResult>'
             f"<ReturnCode>{code}</ReturnCode><InteractionId>{interaction_id}</InteractionId>"
             "</RecordInteractionResult></RecordInteractionResponse>")
    return _envelope(version, inner)


def fault(version: str, exc: AsmxFault) -> bytes:
    text = escape(str(exc))
    if version == "1.1":
        code = "soap:Client" if exc.client else "soap:Server"
        inner = (f"<soap:Fault><faultcode>{code}</faultcode><faultstring>{text}</faultstring>"
                 "<detail /></soap:Fault>")
    else:
        code = "soap:Sender" if exc.client else "soap:Receiver"
        inner = (f"<soap:Fault><soap:Code><soap:Value>{code}</soap:Value></soap:Code>"
                 f'<soap:Reason><soap:Text xml:lang="en">{text}</soap:Text></soap:Reason>'
                 "<soap:Detail /></soap:Fault>")
    return _envelope(version, inner)


def content_type(version: str) -> str:
    return "text/xml" if version == "1.1" else "application/soap+xml"


def _envelope(version: str, inner: str) -> bytes:
    ns = SOAP11 if version == "1.1" else SOAP12
    return ('<?xml version="1.0" encoding="utf-8"?>'
            f'<soap:Envelope xmlns:soap="{ns}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
            f"<soap:Body>{inner}</soap:Body></soap:Envelope>").encode()
