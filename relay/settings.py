"""Where the relay's Redis is, read from the environment (12-factor).

``relay dev`` writes the URLs of the servers it started to ``.relay/dev.env`` so that a second
terminal's ``relay send`` finds them without exporting anything; a variable set in the
environment always wins over that file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

DEV_ENV_FILE = Path(".relay") / "dev.env"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment, under the values ``relay dev`` left for this folder."""
    merged: dict[str, str] = {}
    if env is None and DEV_ENV_FILE.is_file():
        for line in DEV_ENV_FILE.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() and not name.startswith("#"):
                merged[name.strip()] = value.strip()
    merged.update(os.environ if env is None else env)
    return merged


def redis_url(env: Mapping[str, str] | None = None) -> str:
    values = environment(env)
    return values.get("RELAY_REDIS_URL") or values.get("REDIS_URL") or DEFAULT_REDIS_URL


def mask_url(url: str) -> str:
    """Hide the password of a ``scheme://user:password@host`` URL for logs and ``relay check``."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
