"""The long-running commands: ``relay dev``, ``worker``, ``api`` and ``sandbox``."""

from __future__ import annotations

import argparse
import os
from typing import Any

import click

from relay.cli import exitcodes

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.command()
@click.option("--no-api", is_flag=True, help="Do not start the HTTP API.")
def dev(no_api: bool) -> int:
    """All-in-one: embedded Redis, sandbox, worker, HTTP API and live counters.

    Starts what is not configured: the embedded Redis-compatible server unless RELAY_REDIS_URL
    is set, the sandbox unless RELAY_SOAP_URL is set. Prints the URLs, a dev API key and admin
    key; writes .relay/dev.env so that `relay` in another terminal (in this folder) finds them.
    Ctrl-C stops the worker first, then the rest.

    \b
    Example:
      relay dev          (or: make run)
    """
    from relay.cli.dev import run_dev

    return run_dev(with_api=not no_api)


@click.command(context_settings=PASS_THROUGH)
@click.option("--processes", type=click.IntRange(min=1), metavar="N",
              help="Worker processes (default: one per core available).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED, metavar="[CELERY OPTIONS]...")
def worker(processes: int | None, celery_args: tuple[str, ...]) -> int:
    """Deliver queued events: Celery workers running the batch consumer.

    Configured by the environment (RELAY_REDIS_URL, RELAY_SOAP_URL, RELAY_SECURITY_TOKEN or
    RELAY_TENANTS; see README). Refuses to start, with one line, when a tenant has no token or
    a URL is malformed. Any other option goes to `celery worker` (e.g. --loglevel,
    --hostname); our defaults come first, so yours win.

    \b
    Examples:
      RELAY_SECURITY_TOKEN=... relay worker
      relay worker --processes 2 --hostname relay-a@%h
    """
    from worker.processes import default_processes, supervise
    from worker.settings import Settings

    # Check here, once, so that a supervisor never restarts children that cannot work.
    Settings.from_env().check_tokens()
    count = processes or default_processes()
    if count > 1:
        return supervise(count, list(celery_args))
    from worker.app import start_worker

    return start_worker(list(celery_args))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface, as in a container).")
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8080")),
              show_default="$PORT or 8080", help="Port to listen on.")
def api(host: str, port: int) -> int:
    """HTTP ingestion API: POST /v1/interactions, status reads, admin, /metrics.

    Keys: RELAY_API_KEYS (producers) and RELAY_ADMIN_KEYS (dead-letter admin).

    \b
    Example:
      RELAY_API_KEYS=k1 relay api --port 8080
    """
    from producers.api import serve

    click.echo(f"api: http://{host}:{port}/v1/interactions", err=False)
    serve(host, port)
    return exitcodes.OK


class ArgparseCommand(click.Command):
    """A click command whose options are read, on first use only, from an argparse parser
    (the sandbox owns its flags; ``relay --help`` must not import it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not self._loaded:
            from sandbox.__main__ import add_arguments

            parser = argparse.ArgumentParser(add_help=False)
            add_arguments(parser)
            self.params[:0] = [_option(a) for a in parser._actions]
            self.epilog = self.epilog or parser.epilog
            self._loaded = True
        return super().get_params(ctx)


def _option(action: argparse.Action) -> click.Parameter:
    if not action.option_strings:
        return click.Argument([action.dest], required=action.nargs not in ("?", "*"),
                              nargs=-1 if action.nargs in ("*", "+") else 1,
                              type=action.type or str)
    common: dict[str, Any] = {"help": action.help, "show_default": action.default not in
                              (None, False, 0.0, "")}
    names = [*action.option_strings, action.dest]
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        on = isinstance(action, argparse._StoreTrueAction)
        return click.Option(names, is_flag=True, flag_value=on, default=not on, **common)
    kind: Any = click.Choice(list(action.choices)) if action.choices else (action.type or str)
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
    return click.Option(names, type=kind, default=action.default, metavar=action.metavar,
                        multiple=many, required=action.required, **common)


@click.command(cls=ArgparseCommand)
def sandbox(**options: Any) -> int:
    """The Interaction.asmx emulator: a SOAP stub for tests and `relay dev`.

    \b
    Examples:
      relay sandbox --port 8088
      relay sandbox --latency-ms 200 --hang-rate 0.05
    """
    from sandbox.__main__ import serve

    values = {k: (list(v) or None) if isinstance(v, tuple) else v for k, v in options.items()}
    code: int = serve(argparse.Namespace(**values))
    return code
