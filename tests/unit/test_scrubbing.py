import pytest

from relay.sentry import SECRET, SOAP_BODY, Scrubber
from worker.secret import Secret
from worker.settings import Settings

TOKEN = "tok-SECRET-123"
SOAP = ('<soap:Envelope xmlns:soap="x"><soap:Body><RecordInteraction><preqRecordInteraction>'
        f"<SecurityToken>{TOKEN}</SecurityToken></preqRecordInteraction></RecordInteraction>"
        "</soap:Body></soap:Envelope>")


@pytest.mark.parametrize("event", [
    {"message": f"failed with {TOKEN}"},
    {"extra": {"nested": [f"x{TOKEN}y", {"deeper": TOKEN}]}},
    {"exception": {"values": [{"value": f"ClientFault: {SOAP}"}]}},
    {"breadcrumbs": [{"message": SOAP}]},
    {"request": {"data": SOAP.encode()}},
    {TOKEN: "as a key"},
])
def test_scrubber_removes_token_and_soap_bodies(event: dict[str, object]) -> None:
    cleaned = str(Scrubber([TOKEN, ""])(event))
    assert TOKEN not in cleaned
    assert "Envelope" not in cleaned
    assert SECRET in cleaned or SOAP_BODY in cleaned


def test_settings_and_secrets_never_print_the_token() -> None:
    settings = Settings.from_env({"RELAY_SECURITY_TOKEN": TOKEN,
                                  "RELAY_REDIS_URL": "redis://:pw-123@localhost:6379/0",
                                  "RELAY_TENANTS": '{"a": {"token": "other-secret"}}'})
    for text in (repr(settings), str(settings), f"{settings.tenants}", str(Secret(TOKEN))):
        assert TOKEN not in text and "other-secret" not in text and "pw-123" not in text
