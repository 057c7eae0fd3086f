"""Server-side SOAP for the emulated Interaction.asmx, written apart from the worker's codec.

It uses ElementTree rather than xmltodict, so a bug in our client codec cannot hide by being
mirrored here. Texts of faults follow what ASP.NET .asmx says.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
FIELDS = ("SecurityToken", "AccountId", "LocationExternalReference",
          "InteractionTypeExternalReference", "InteractionNote")
_STACK = "\n   at System.Web.Services.Protocols.SoapServerProtocol.Initialize()"


class AsmxFault(Exception):
    """A fault the .asmx stack itself would produce; ``client`` picks Client/Sender."""

    def __init__(self, message: str, client: bool = True) -> None:
        super().__init__(message)
        self.client = client


@dataclass(frozen=True)
class Call:
    version: str  # "1.1" or "1.2"
    fields: dict[str, str | None]  # None: element absent


def unrecognized_action(action: str) -> AsmxFault:
    return AsmxFault("System.Web.Services.Protocols.SoapException: Server did not recognize the "
                     f"value of HTTP Header SOAPAction: {action}.{_STACK}")


def method_exception(message: str) -> AsmxFault:
    """What .asmx says when the web method itself throws: a soap:Server / soap:Receiver fault."""
    return AsmxFault(f"Server was unable to process request. ---> {message}", client=False)


def read_request(body: bytes, version: str, namespace: str) -> Call:
    if b"<!DOCTYPE" in body:
        raise AsmxFault("Server was unable to read request. ---> There is an error in XML "
                        "document (1, 1). ---> DTD is prohibited in this XML document.")
    try:
        root = ET.fromstring(body)  # noqa: S314 - DTDs refused above, expat caps expansion
    except ET.ParseError as exc:
        line, column = exc.position
        raise AsmxFault("System.InvalidOperationException: Server was unable to read request. "
                        f"---> There is an error in XML document ({line}, {column + 1}).") from None
    envelope_ns = SOAP11 if version == "1.1" else SOAP12
    if root.tag != f"{{{envelope_ns}}}Envelope":
        raise AsmxFault("Possible SOAP version mismatch: Envelope namespace "
                        f"{root.tag.partition('}')[0].lstrip('{')} was unexpected. "
                        f"Expecting {envelope_ns}.")
    body_el = root.find(f"{{{envelope_ns}}}Body")
    method = body_el[0] if body_el is not None and len(body_el) else None
    if method is None:
        raise AsmxFault("Server was unable to read request. ---> Body is empty.")
    if method.tag != f"{{{namespace}}}RecordInteraction":
        local = method.tag.rpartition("}")[2]
        uri = method.tag.partition("}")[0].lstrip("{")
        raise AsmxFault("System.InvalidOperationException: Server was unable to read request. "
                        "---> There is an error in XML document (1, 1). ---> "
                        f"<{local} xmlns='{uri}'> was not expected.")
    request = method.find(f"{{{namespace}}}preqRecordInteraction")
    values: dict[str, str | None] = dict.fromkeys(FIELDS)
    if request is not None:
        for name in FIELDS:
            element = request.find(f"{{{namespace}}}{name}")
            if element is not None:
                values[name] = element.text or ""
    return Call(version, values)


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
