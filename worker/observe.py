"""Logs and alerts: one structured line per outcome, one alert per circuit incident.

Observers never fail a delivery: every hook swallows its own errors (the task decides, the
observers only watch).
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

log = logging.getLogger("relay.outcome")
alerts = logging.getLogger("relay.alert")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage(), **getattr(record, "relay", {})}
        return json.dumps(data, default=str)


def configure_logging(as_json: bool, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("relay")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def outcome(outcome: str, **fields: Any) -> None:
    try:
        # A delivery is the common case (thousands a second): its line is DEBUG, the status
        # record answers for it; anything that went wrong is INFO (retries) or WARNING.
        level = (logging.DEBUG if outcome == "delivered" else
                 logging.INFO if outcome in ("retry", "waiting") else logging.WARNING)
        if not log.isEnabledFor(level):
            return  # nothing is built for a line nobody reads (one per event on the hot path)
        text = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
        log.log(level, "%s %s", outcome, text, extra={"relay": {"outcome": outcome, **fields}})
    except Exception:  # noqa: S110 - an observer must never fail the delivery
        pass


def alert(message: str, **fields: Any) -> None:
    """Operator-facing alert: an error log line and, when configured, a Sentry event."""
    try:
        alerts.error("%s %s", message, fields, extra={"relay": {"alert": message, **fields}})
        _to_sentry(message, "error", [message, str(fields.get("tenant"))], fields)
    except Exception:  # noqa: S110 - an observer must never fail the delivery
        pass


def dead_letter(**fields: Any) -> None:
    """Report a dead letter to Sentry, grouped by signal (the log line is ``outcome``'s)."""
    with contextlib.suppress(Exception):  # an observer must never fail the delivery
        _to_sentry(f"dead letter: {fields.get('reason', '')}"[:200], "warning",
                   ["dead-letter", str(fields.get("signal"))], fields)


def _to_sentry(message: str, level: str, fingerprint: list[str], tags: dict[str, Any]) -> None:
    import sentry_sdk

    if not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = fingerprint
        for key, value in tags.items():
            if value is not None:
                scope.set_tag(key, str(value)[:200])
        sentry_sdk.capture_message(message, level=level)  # type: ignore[arg-type]
