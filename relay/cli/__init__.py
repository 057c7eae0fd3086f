"""``relay``: one command line for producers, workers, the sandbox and operators (a thin face
over ``producers``, ``worker`` and ``sandbox``; library code never imports it)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from relay.cli import exitcodes
from relay.cli.output import error
from relay.errors import ConfigError, EnqueueError, ValidationError

Handler = Callable[[argparse.Namespace], int]


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox.__main__ import serve

    return serve(args)


def _api(args: argparse.Namespace) -> int:
    from producers.api import serve

    print(f"api: http://{args.host}:{args.port}/v1/interactions", flush=True)
    serve(args.host, args.port)
    return exitcodes.OK


def _check(args: argparse.Namespace) -> int:
    from relay.cli.commands import check

    return check(args)


def build_parser() -> argparse.ArgumentParser:
    from relay.cli import commands
    from sandbox.__main__ import add_arguments as sandbox_arguments

    parser = argparse.ArgumentParser(prog="relay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(handler=handler)
        return p

    sandbox_arguments(command("sandbox", _sandbox, "run the Interaction.asmx emulator"))
    api = command("api", _api, "run the HTTP ingestion API")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    command("check", _check, "check settings, Redis, the SOAP endpoint and its WSDL")
    commands.register(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["worker"]:  # everything after `worker` belongs to Celery
            from relay.cli.commands import worker

            return worker(argv[1:])
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
    except ValidationError as exc:
        error(f"invalid input: {exc}")
        return exitcodes.USAGE
    except ConfigError as exc:
        error(f"configuration: {exc}")
        return exitcodes.CONFIG
    except EnqueueError as exc:
        error(str(exc))
        return exitcodes.UNAVAILABLE
    except KeyboardInterrupt:
        return exitcodes.OK
    return code
