"""Sentry set-up shared by worker and API, scrubbing by default.

Every event passes ``before_send``: any configured secret (security tokens, API keys) and any
SOAP envelope anywhere in the event become placeholders before it leaves the process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger

from relay import __version__

SECRET = "[secret]"  # noqa: S105 - the placeholder, not a secret
SOAP_BODY = "[soap body]"
_ENVELOPE = re.compile(r"<(?:[\w.-]+:)?Envelope\b.*?(?:</(?:[\w.-]+:)?Envelope>|$)", re.S)


def release() -> str:
    return f"interaction-relay@{__version__}"


class Scrubber:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, SECRET)
        return _ENVELOPE.sub(SOAP_BODY, value) if "Envelope" in value else value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self(k): self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        return value


def init_sentry(dsn: str, *, component: str, environment: str, secrets: Iterable[str],
                integrations: list[Any]) -> bool:
    """Start the SDK when a DSN is set; returns whether it did."""
    if not dsn:
        return False
    scrub = Scrubber(secrets)

    def before_send(event: Any, _hint: Any) -> Any:
        return scrub(event)

    sentry_sdk.init(dsn=dsn, release=release(), environment=environment,
                    server_name=component, send_default_pii=False, include_local_variables=False,
                    max_request_body_size="never", before_send=before_send,
                    before_send_transaction=before_send, before_breadcrumb=before_send,
                    integrations=integrations)
    sentry_sdk.set_tag("component", component)
    # Alerts are sent as their own events (with tags and fingerprint); their log lines would
    # arrive a second time through the logging integration.
    ignore_logger("relay.alert")
    return True
