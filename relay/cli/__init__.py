"""``relay``: one command line for producers, workers, the sandbox and operators (a thin face
over ``producers``, ``worker`` and ``sandbox``; library code never imports it).

Built on click (Celery already depends on it). ``main`` is the one boundary where every
failure a user can cause or meet becomes one line on stderr and a documented exit code.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence

import click
import redis

from relay.cli import exitcodes
from relay.cli.output import error
from relay.errors import ConfigError, EnqueueError, ValidationError

EPILOG = "\b\nExit codes:\n" + "\n".join(
    f"  {code}  {text}" for code, text in exitcodes.DESCRIPTIONS.items()) + (
    "\n\n\b\nShell completion (zsh_source, fish_source for those shells):\n"
    '  eval "$(_RELAY_COMPLETE=bash_source relay)"')


def version() -> str:
    """``relay.__version__`` when packaging sets it, else the installed distribution's."""
    import relay

    found = getattr(relay, "__version__", None)
    if isinstance(found, str):
        return found
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("interaction-relay")
    except PackageNotFoundError:
        return "unknown (not installed)"


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(version(), "-V", "--version", prog_name="relay",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Fire-and-forget delivery of interactions to RecordInteraction: enqueue, run workers,
    inspect and repair.

    \b
    Start here:
      relay dev                      everything on this machine, from nothing
      relay send --account 123456 --location STORE-001 --type VISIT
      relay status                   what the pool is doing
    """


def _register() -> None:
    from relay.cli import commands, dlq, serve

    for command in (serve.dev, serve.worker, serve.api, serve.sandbox, commands.send,
                    commands.import_, commands.status, dlq.dlq, commands.check):
        cli.add_command(command)


_register()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="relay", complete_var="_RELAY_COMPLETE",
                        standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `relay`, `relay dlq`: the help page
        click.echo(exc.ctx.get_help() if exc.ctx else cli.get_help(click.Context(cli)))
        return exitcodes.USAGE
    except click.UsageError as exc:  # one line too, and where to read more
        path = exc.ctx.command_path if exc.ctx else "relay"
        what = path.removeprefix("relay").strip() or "usage"
        error(f"{what}: {exc.format_message().rstrip('.')} (see `{path} --help`)")
        return exitcodes.USAGE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        return exitcodes.OK
    except ValidationError as exc:
        error(f"invalid input: {exc}")
        return exitcodes.USAGE
    except ConfigError as exc:
        error(f"configuration: {exc}")
        return exitcodes.CONFIG
    except EnqueueError as exc:
        error(unreachable(str(exc)))
        return exitcodes.UNAVAILABLE
    except BrokenPipeError:  # `relay dlq export -o - | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exitcodes.FAILURE
    except OSError as exc:  # a port in use, a file that cannot be written: the system's words
        error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
              if exc.errno != errno.EADDRINUSE else f"{exc} (choose another with --port)")
        return exitcodes.FAILURE
    except redis.RedisError as exc:  # read paths (status, dlq) meet redis-py's own errors
        from relay.settings import mask_url, redis_url

        did = "did not answer" if isinstance(exc, redis.ConnectionError | redis.TimeoutError) \
            else "refused the command"
        error(unreachable(f"Redis at {mask_url(redis_url())} {did} ({type(exc).__name__}: "
                          f"{exc})"))
        return exitcodes.UNAVAILABLE
    return code if isinstance(code, int) else exitcodes.OK


def unreachable(problem: str) -> str:
    """``problem`` plus where the Redis URL came from and what to do, on one line."""
    if "Redis" not in problem:
        return problem
    return f"{problem}; {redis_advice()}"


def redis_advice() -> str:
    from relay.settings import redis_source

    source = redis_source()
    if source.endswith("REDIS_URL"):
        return f"the URL is {source}'s: start Redis there, or fix {source}"
    if source:
        return (f"the URL is from {source}, written by `relay dev`: is it still running? "
                "Start it again (make run), or delete that file")
    return ("that is the default: RELAY_REDIS_URL is not set and there is no .relay/dev.env "
            "here (`relay dev` writes it in its folder); set RELAY_REDIS_URL, or run "
            "`relay dev` in this folder")
