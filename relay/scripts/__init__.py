"""The state machine's moves as Lua scripts: one ``.lua`` file each, loaded here and only here.

Each file opens with a shebang line. A script declared with ``#!lua`` is refused whole by a
Redis over ``maxmemory`` or in read-only mode before it runs, instead of failing at its first
write with the earlier writes applied: a move happens entirely or not at all. After the
shebang comes the map of the keys it touches and what it returns; ``_lib.lua`` (helpers every
script shares) is put right after the shebang when the script is loaded.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Any

NAMES = ("enqueue", "claim", "extend", "complete", "reap", "unpark", "replay", "purge",
         "prune", "overview")


@functools.cache
def source(name: str) -> str:
    """The full text of a script, shared helpers included."""
    if name not in NAMES:
        raise KeyError(name)
    folder = files(__package__)
    shebang, _, body = folder.joinpath(f"{name}.lua").read_text().partition("\n")
    return f"{shebang}\n{folder.joinpath('_lib.lua').read_text()}{body}"


def register(client: Any) -> dict[str, Any]:
    """Every script bound to ``client`` (sync, asyncio or cluster): ``Script`` objects that
    load themselves on first use and again after a failover (NOSCRIPT)."""
    return {name: client.register_script(source(name)) for name in NAMES}
