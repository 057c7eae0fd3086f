"""Printing for the CLI: human text by default, one JSON document with ``--json``.

Human output shows times as ISO 8601 UTC plus how long ago (``... (3 min ago)``); JSON keeps
the bare ISO strings, which scripts parse.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

TIME_KEYS = ("at", "since", "now")  # and every key ending in "_at"


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        click.echo(text if text is not None else _plain(data))


def error(message: str) -> None:
    """One line on stderr, ``relay: <what happened>[: <what to do>]``."""
    click.echo(f"relay: {message}", err=True)


def when(value: Any, now: datetime | None = None) -> str:
    """An ISO time (or epoch seconds/ms) as ``2026-11-28 09:40:48 UTC (3 min ago)``."""
    moment = _parse_time(value)
    if moment is None:
        return str(value)
    now = now or datetime.now(UTC)
    seconds = (now - moment).total_seconds()
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({ago(seconds)})"


def ago(seconds: float) -> str:
    """``12 s ago``, ``3 min ago``, ``2 h ago``, ``4 d ago``; ``in 5 s`` for the future."""
    span = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if span >= size:
            text = f"{span // size:.0f} {unit}"
            break
    else:
        text = f"{span:.0f} s"
    return f"in {text}" if seconds < -1 else f"{text} ago"


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = value / 1000 if value > 1e11 else value  # milliseconds or seconds
        return datetime.fromtimestamp(stamp, UTC)
    if isinstance(value, str) and value[:1].isdigit():
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _is_time(key: Any) -> bool:
    return isinstance(key, str) and (key in TIME_KEYS or key.endswith("_at"))


def _plain(data: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines.append(_plain(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {when(value) if _is_time(key) else value}")
        return "\n".join(lines)
    if isinstance(data, list):
        return "\n".join(_plain(item, indent) if isinstance(item, dict | list)
                         else f"{pad}- {item}" for item in data)
    return f"{pad}{data}"
