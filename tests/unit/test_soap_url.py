"""The SOAP URL rule: the token is in every request, so it travels over https only."""

from __future__ import annotations

import pytest

from relay.errors import ConfigError
from worker.settings import Settings

TOKEN = {"RELAY_SECURITY_TOKEN": "s3cret-token"}


@pytest.mark.parametrize("url", [
    "https://app.kognitivloyalty.com/Services/Interaction.asmx",
    "http://127.0.0.1:8088/Services/Interaction.asmx",
    "http://127.9.9.9/Services/Interaction.asmx",
    "http://localhost:8088/Services/Interaction.asmx",
    "http://[::1]:8088/Services/Interaction.asmx",
])
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    assert Settings.from_env({**TOKEN, "RELAY_SOAP_URL": url}).endpoint("default").url == url


@pytest.mark.parametrize("url", [
    "http://soap.example.com/Services/Interaction.asmx",
    "http://10.0.0.5/Services/Interaction.asmx",
    "http://localhost.example.com/Services/Interaction.asmx",
    "http://user:pw@sandbox:8088/Services/Interaction.asmx",
])
def test_plain_http_elsewhere_is_a_one_line_error_naming_variable_and_rule(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**TOKEN, "RELAY_SOAP_URL": url})
    message = str(info.value)
    assert message.startswith("RELAY_SOAP_URL must use https://")
    assert "RELAY_ALLOW_INSECURE_SOAP=1" in message and "\n" not in message
    assert "pw" not in message and "s3cret" not in message


@pytest.mark.parametrize("url", ["ftp://x/y", "app.kognitivloyalty.com/Services", "https://",
                                 "http://[::1/x"])
def test_a_url_that_is_no_http_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^RELAY_SOAP_URL must be an https:// URL with a host"):
        Settings.from_env({**TOKEN, "RELAY_SOAP_URL": url})


def test_insecure_http_can_be_allowed_explicitly() -> None:
    url = "http://sandbox:8088/Services/Interaction.asmx"
    for flag in ("1", "true", "yes"):
        settings = Settings.from_env({**TOKEN, "RELAY_SOAP_URL": url,
                                      "RELAY_ALLOW_INSECURE_SOAP": flag})
        assert settings.endpoint("default").url == url
    with pytest.raises(ConfigError):
        Settings.from_env({**TOKEN, "RELAY_SOAP_URL": url, "RELAY_ALLOW_INSECURE_SOAP": "0"})


def test_each_tenant_url_is_held_to_the_same_rule() -> None:
    tenants = '{"acme": {"token": "t", "url": "http://acme.example.com/x.asmx"}}'
    with pytest.raises(ConfigError, match=r"^RELAY_TENANTS\['acme'\].url must use https://"):
        Settings.from_env({**TOKEN, "RELAY_TENANTS": tenants})
