"""The ``relay`` entry point, importable from any install.

The base install (a producer only) has ``redis`` and nothing else; the command line needs
click, and most commands the worker's or the API's stack. A missing package is one line
naming the extra that brings it, not an ImportError traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

MISSING_PACKAGE = 4  # relay.cli.exitcodes.CONFIG: the install, not the input, is at fault


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from relay.cli import main as run

        return run(argv)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] in ("relay", "producers", "worker",
                                                          "sandbox"):
            raise  # our own code is broken: that is a bug, keep the traceback
        print(f"relay: this command needs the package {exc.name!r}, which this install lacks: "
              "pip install 'interaction-relay[worker]' (`relay api` alone: '[api]')",
              file=sys.stderr)
        return MISSING_PACKAGE
