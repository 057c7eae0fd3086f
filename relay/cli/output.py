"""Printing for the CLI: human text by default, one JSON document with ``--json``."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(text if text is not None else _plain(data))


def error(message: str) -> None:
    print(f"relay: {message}", file=sys.stderr)


def _plain(data: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{key}:")
                lines.append(_plain(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {value}")
        return "\n".join(lines)
    if isinstance(data, list):
        return "\n".join(_plain(item, indent) if isinstance(item, dict | list)
                         else f"{pad}- {item}" for item in data)
    return f"{pad}{data}"
