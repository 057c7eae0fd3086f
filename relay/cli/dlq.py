"""``relay dlq list|show|replay|purge|export``: dead letters, found by filter or by id."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from relay.cli import exitcodes
from relay.cli.commands import json_option, producer
from relay.cli.output import emit, error, when

F = TypeVar("F", bound=Callable[..., Any])
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Duration(click.ParamType):  # type: ignore[type-arg]
    """``90s``, ``30m``, ``2h``, ``1d`` (bare numbers are seconds), as seconds."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        match = _DURATION.fullmatch(str(value).strip())
        if not match:
            self.fail(f"{value!r} is not a duration like 90s, 30m, 2h, 1d", param, ctx)
        return float(match.group(1)) * _UNITS[match.group(2)]


def filters(f: F) -> F:
    """The options that select dead letters (every one given must match)."""
    for decorator in reversed([
        click.option("--code", type=int, help="Only this return code."),
        click.option("--tenant", help="Only this tenant (and the tenant of EVENT_IDs named)."),
        click.option("--signal", help="Only this signal, e.g. http:502 or fault:client."),
        click.option("--location", help="Only this location reference."),
        click.option("--type", "interaction_type", help="Only this interaction type."),
        click.option("--older-than", type=Duration(), help="Dead for at least this long "
                                                            "(30m, 2h, 1d)."),
        click.option("--newer-than", type=Duration(), help="Dead for at most this long."),
    ]):
        f = decorator(f)
    return f


def _store_and_filter(options: dict[str, Any]) -> tuple[Any, Any]:
    from relay.deadletters import DeadLetters, Filter

    p = producer()
    names = ("code", "tenant", "signal", "location", "interaction_type", "older_than",
             "newer_than")
    return DeadLetters(p.redis, p.keys), Filter(**{n: options.get(n) for n in names})


@click.group()
def dlq() -> None:
    """Inspect, replay, purge or export dead letters.

    \b
    Examples:
      relay dlq list --code 503 --newer-than 1h
      relay dlq replay --signal http:502
      relay dlq export --tenant acme -o - | gzip > acme-dead.jsonl.gz
    """


@dlq.command("list")
@filters
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@json_option
def list_(limit: int | None, as_json: bool, **options: Any) -> int:
    """One line per dead letter, newest first.

    \b
    Example:
      relay dlq list --tenant acme --older-than 1d --limit 20
    """
    store, flt = _store_and_filter(options)
    rows = list(store.entries(flt, limit))
    lines = [f"{e['event_id']}  tenant={e['tenant']}  code={e['dead_letter']['code']}  "
             f"signal={e['dead_letter']['signal']}  attempts={e['dead_letter']['attempts']}  "
             f"dead {when(e['dead_letter']['dead_at'])}  {e['dead_letter']['reason']}"
             for e in rows]
    emit(rows, as_json, "\n".join(lines) or "no dead letters")
    return exitcodes.OK


@dlq.command()
@click.argument("ids", nargs=-1, required=True, metavar="EVENT_ID...")
@click.option("--tenant", default="default", show_default=True, help="The events' tenant.")
@json_option
def show(ids: tuple[str, ...], tenant: str, as_json: bool) -> int:
    """One or more dead letters in full (event, code, signal, reason, attempts).

    \b
    Example:
      relay dlq show pos-42 --tenant acme
    """
    store, _ = _store_and_filter({})
    found = [e for e in (store.get(tenant, i) for i in ids) if e is not None]
    if len(found) < len(ids):
        missing = sorted(set(ids) - {e["event_id"] for e in found})
        error(f"no dead letter {', '.join(missing)} for tenant {tenant!r}")
        return exitcodes.NOT_FOUND
    emit(found if len(found) > 1 else found[0], as_json)
    return exitcodes.OK


def _members(store: Any, flt: Any, ids: tuple[str, ...], tenant: str | None, every: bool,
             action: str) -> list[Any] | None:
    from relay import keys

    if ids:
        return [keys.member(tenant or "default", i) for i in ids]
    if not flt.empty or every:
        members: list[Any] = store.members(flt)
        return members
    error(f"dlq {action}: name EVENT_IDs, a filter (--code, --tenant ...) or --all")
    return None


@dlq.command()
@click.argument("ids", nargs=-1, metavar="[EVENT_ID]...")
@filters
@click.option("--all", "every", is_flag=True, help="Every dead letter.")
@json_option
def replay(ids: tuple[str, ...], every: bool, as_json: bool, **options: Any) -> int:
    """Queue dead letters again (attempts start over; the history is kept).

    \b
    Examples:
      relay dlq replay pos-42 pos-43
      relay dlq replay --code 503 --newer-than 2h
    """
    from relay import keys

    store, flt = _store_and_filter(options)
    members = _members(store, flt, ids, options["tenant"], every, "replay")
    if members is None:
        return exitcodes.USAGE
    done = [keys.split(m)[1] for m in store.replay(members)]
    emit({"replayed": done}, as_json, f"replayed {len(done)} event(s)")
    return exitcodes.OK if done or not ids else exitcodes.NOT_FOUND


@dlq.command()
@click.argument("ids", nargs=-1, metavar="[EVENT_ID]...")
@filters
@click.option("--all", "every", is_flag=True, help="Every dead letter.")
@click.option("--yes", is_flag=True, help="Do not ask (needed when stdin is not a terminal).")
@json_option
def purge(ids: tuple[str, ...], every: bool, yes: bool, as_json: bool, **options: Any) -> int:
    """Delete dead letters for good (export them first if in doubt).

    \b
    Example:
      relay dlq purge --older-than 30d --yes
    """
    store, flt = _store_and_filter(options)
    members = _members(store, flt, ids, options["tenant"], every, "purge")
    if members is None:
        return exitcodes.USAGE
    if not yes:
        if not sys.stdin.isatty():
            error(f"refusing to purge {len(members)} dead letter(s) without --yes")
            return exitcodes.USAGE
        if not click.confirm(f"purge {len(members)} dead letter(s) for good?"):
            return exitcodes.FAILURE
    removed = store.purge(members)
    emit({"purged": removed}, as_json, f"purged {removed} dead letter(s)")
    return exitcodes.OK


@dlq.command()
@filters
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@click.option("--output", "-o", default="-", show_default=True, metavar="FILE",
              help="Write JSON lines to FILE; '-' is stdout.")
@click.option("--json", "as_json", is_flag=True, hidden=True)  # output is JSON lines already
def export(limit: int | None, output: str, as_json: bool, **options: Any) -> int:
    """Write dead letters as JSON lines, one event per line, that `relay import` takes back.

    \b
    Examples:
      relay dlq export --code 503 -o dead.jsonl
      relay dlq export | jq -r .event_id
    """
    store, flt = _store_and_filter(options)
    count = 0
    with click.open_file(output, "w") as out:
        for entry in store.entries(flt, limit):
            out.write(json.dumps(entry) + "\n")
            count += 1
    if output != "-":
        click.echo(f"exported {count} dead letter(s) to {output}", err=True)
    return exitcodes.OK
