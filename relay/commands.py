"""Handlers of the ``relay`` subcommands that touch the pipeline."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from relay import exitcodes
from relay.output import emit

Command = Callable[..., argparse.ArgumentParser]


def register(command: Command) -> None:
    """Add the pipeline subcommands (filled in as the pipeline grows)."""


def check(args: argparse.Namespace) -> int:
    from worker.check import effective_settings, run_checks
    from worker.settings import Settings

    settings = Settings.from_env()
    results = run_checks(settings)
    data: dict[str, Any] = {"settings": effective_settings(settings),
                            "checks": [r.__dict__ for r in results],
                            "ok": all(r.ok for r in results)}
    lines = [f"[{'ok' if r.ok else 'FAIL'}] {r.name}: {r.detail}" for r in results]
    emit(data, args.json, "\n".join(lines))
    return exitcodes.OK if data["ok"] else exitcodes.FAILURE


def worker(argv: list[str]) -> int:
    from worker.app import start_worker

    return start_worker(argv)
