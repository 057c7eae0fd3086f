"""Interop with independent SOAP stacks: zeep calls the sandbox; xmlschema checks our requests."""

import io
import xml.etree.ElementTree as ET

import requests
import xmlschema
import zeep
from lxml import etree

from relay.events import Interaction
from tests.helpers import Sandbox
from worker.secret import Secret
from worker.soap import build_request


def test_zeep_calls_the_sandbox_through_its_wsdl(sandbox: Sandbox) -> None:
    client = zeep.Client(sandbox.url + "?WSDL")
    result = client.service.RecordInteraction(preqRecordInteraction={
        "SecurityToken": "sandbox-token", "AccountId": "123456",
        "LocationExternalReference": "STORE-002", "InteractionTypeExternalReference": "CHECKIN",
        "InteractionNote": "via zeep"})
    assert result.ReturnCode == 0 and result.InteractionId > 0
    soap12 = client.bind("Interaction", "InteractionSoap12")
    result = soap12.RecordInteraction(preqRecordInteraction={
        "SecurityToken": "sandbox-token", "AccountId": "123456",
        "LocationExternalReference": "STORE-404", "InteractionTypeExternalReference": "VISIT",
        "InteractionNote": ""})
    assert result.ReturnCode == 503
    assert sandbox.calls()["calls"][-1]["note"] == "via zeep"


def test_our_request_validates_against_the_wsdl_schema(sandbox: Sandbox) -> None:
    # lxml keeps the in-scope prefixes that QName attributes such as type="s:string" need.
    wsdl = etree.fromstring(requests.get(sandbox.url + "?WSDL", timeout=5).content)
    schema_el = wsdl.find("{http://schemas.xmlsoap.org/wsdl/}types/"
                          "{http://www.w3.org/2001/XMLSchema}schema")
    assert schema_el is not None
    schema = xmlschema.XMLSchema(io.BytesIO(etree.tostring(schema_el)))
    for version in ("1.1", "1.2"):
        event = Interaction.create(account_id="123456", location="STORE-001",
                                   interaction_type="VISIT", note="<&>")
        body = ET.fromstring(build_request(event, Secret("t"), version=version).body)
        payload = body[0][0]  # Envelope / Body / RecordInteraction
        schema.validate(ET.tostring(payload, encoding="unicode"))
        assert payload.tag == "{https://app.smartbutton.com/Services/}RecordInteraction"
