"""``?WSDL`` in the shape ASP.NET .asmx publishes: Soap and Soap12 bindings, document/literal.

Types as the real service declares them: request fields optional ``s:string``, ``ReturnCode``
``s:int`` and ``InteractionId`` ``s:long`` (a .NET long: ids can pass 2^31).
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

_TEMPLATE = """<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
 xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" xmlns:s="http://www.w3.org/2001/XMLSchema"
 xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:tns={ns} targetNamespace={ns}>
  <wsdl:types>
    <s:schema elementFormDefault="qualified" targetNamespace={ns}>
      <s:element name="RecordInteraction">
        <s:complexType><s:sequence>
          <s:element minOccurs="0" maxOccurs="1" name="preqRecordInteraction"
                     type="tns:reqRecordInteraction" />
        </s:sequence></s:complexType>
      </s:element>
      <s:complexType name="reqRecordInteraction"><s:sequence>
        <s:element minOccurs="0" maxOccurs="1" name="SecurityToken" type="s:string" />
        <s:element minOccurs="0" maxOccurs="1" name="AccountId" type="s:string" />
        <s:element minOccurs="0" maxOccurs="1" name="LocationExternalReference" type="s:string" />
        <s:element minOccurs="0" maxOccurs="1" name="InteractionTypeExternalReference"
                   type="s:string" />
        <s:element minOccurs="0" maxOccurs="1" name="InteractionNote" type="s:string" />
      </s:sequence></s:complexType>
      <s:element name="RecordInteractionResponse">
        <s:complexType><s:sequence>
          <s:element minOccurs="0" maxOccurs="1" name="RecordInteractionResult"
                     type="tns:respRecordInteraction" />
        </s:sequence></s:complexType>
      </s:element>
      <s:complexType name="respRecordInteraction"><s:sequence>
        <s:element minOccurs="1" maxOccurs="1" name="ReturnCode" type="s:int" />
        <s:element minOccurs="1" maxOccurs="1" name="InteractionId" type="s:long" />
      </s:sequence></s:complexType>
    </s:schema>
  </wsdl:types>
  <wsdl:message name="RecordInteractionSoapIn">
    <wsdl:part name="parameters" element="tns:RecordInteraction" />
  </wsdl:message>
  <wsdl:message name="RecordInteractionSoapOut">
    <wsdl:part name="parameters" element="tns:RecordInteractionResponse" />
  </wsdl:message>
  <wsdl:portType name="InteractionSoap">
    <wsdl:operation name="RecordInteraction">
      <wsdl:documentation xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
        >Records an interaction for a member or prospect.</wsdl:documentation>
      <wsdl:input message="tns:RecordInteractionSoapIn" />
      <wsdl:output message="tns:RecordInteractionSoapOut" />
    </wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="InteractionSoap" type="tns:InteractionSoap">
    <soap:binding transport="http://schemas.xmlsoap.org/soap/http" />
    <wsdl:operation name="RecordInteraction">
      <soap:operation soapAction={action} style="document" />
      <wsdl:input><soap:body use="literal" /></wsdl:input>
      <wsdl:output><soap:body use="literal" /></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:binding name="InteractionSoap12" type="tns:InteractionSoap">
    <soap12:binding transport="http://schemas.xmlsoap.org/soap/http" />
    <wsdl:operation name="RecordInteraction">
      <soap12:operation soapAction={action} style="document" />
      <wsdl:input><soap12:body use="literal" /></wsdl:input>
      <wsdl:output><soap12:body use="literal" /></wsdl:output>
    </wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="Interaction">
    <wsdl:port name="InteractionSoap" binding="tns:InteractionSoap">
      <soap:address location={location} />
    </wsdl:port>
    <wsdl:port name="InteractionSoap12" binding="tns:InteractionSoap12">
      <soap12:address location={location} />
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


def render(namespace: str, action: str, location: str) -> str:
    return _TEMPLATE.format(ns=quoteattr(namespace), action=quoteattr(action),
                            location=quoteattr(location))
