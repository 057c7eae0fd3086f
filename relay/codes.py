"""What each return code and delivery signal means: one table for the worker's policy, the CLI
and the dashboard, so an operator reads the same words everywhere."""

from __future__ import annotations

from collections.abc import Mapping

# RecordInteraction's own codes plus the platform-wide ones it may return (design.md section 1).
REASONS: Mapping[int, str] = {
    0: "success", 1: "undefined error", 2: "required field missing", 5: "invalid parameter(s)",
    6: "feature not enabled", 100: "invalid security token",
    101: "invalid permission for method", 102: "security token suspended",
    103: "security token problem", 104: "security token problem",
    105: "security token problem", 106: "security token problem",
    300: "invalid account id", 301: "account id marked inactive",
    503: "invalid location external reference",
    1200: "invalid interaction type external reference",
}

# Signals that are not a return code: how a call failed before a platform answer was read.
SIGNALS: Mapping[str, str] = {
    "connect": "could not connect (DNS, refused, TLS handshake)",
    "timeout": "no reply in time (the call may have been recorded)",
    "reset": "connection reset (the call may have been recorded)",
    "fault:client": "SOAP client fault: the service could not route or read the request",
    "fault:server": "SOAP server fault: the service failed while processing",
    "reply:invalid": "unreadable reply",
    "reply:too_large": "reply larger than the limit",
    "budget": "retries or maximum age exhausted",
    "code:other": "a return code this relay does not know",
    "http:429": "HTTP 429: rate limited by the service",
    "http:502": "HTTP 502 from a proxy",
    "http:503": "HTTP 503 from a proxy",
    "http:504": "HTTP 504 from a proxy",
}


def meaning(signal: str) -> str:
    """The words for a signal (``code:503``, ``timeout``, ``http:500`` ...), never empty."""
    family, _, detail = signal.partition(":")
    if family == "code" and detail.lstrip("-").isdigit():
        return REASONS.get(int(detail), f"return code {detail}")
    if signal in SIGNALS:
        return SIGNALS[signal]
    if family == "http":
        return f"HTTP status {detail}"
    return signal
