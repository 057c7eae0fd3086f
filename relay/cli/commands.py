"""``relay send``, ``status``, ``import`` and ``check``: parse, call the library, print."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from relay.cli import exitcodes
from relay.cli.output import emit, error, when

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="One JSON document on stdout (stable shape, for scripts).")(f)


def producer() -> Any:
    """The producer for this command; says so on stderr when it falls back to the default
    Redis URL, which is never silent."""
    from producers import Producer
    from relay.settings import mask_url, redis_source

    p = Producer()
    if not redis_source():
        error(f"note: using {mask_url(p.url)}, the default (RELAY_REDIS_URL is not set and "
              "there is no .relay/dev.env here)")
    return p


@click.command()
@click.option("--account", required=True, help="AccountId (1-60 characters).")
@click.option("--location", required=True, help="LocationExternalReference.")
@click.option("--type", "interaction_type", required=True,
              help="InteractionTypeExternalReference.")
@click.option("--note", default="", help="InteractionNote (at most 256 characters).")
@click.option("--tenant", help="Tenant name (its token is in the workers' RELAY_TENANTS).")
@click.option("--event-id", help="Idempotency key; generated when absent. Sending the same one "
                                 "again enqueues nothing new.")
@json_option
def send(account: str, location: str, interaction_type: str, note: str, tenant: str | None,
         event_id: str | None, as_json: bool) -> int:
    """Validate and enqueue one interaction.

    Returns as soon as Redis holds it; a worker delivers it. An event id already known (within
    the retention window) is not enqueued again: the output says so, and ``--json`` has
    ``"already_known": true``.

    \b
    Example:
      relay send --account 123456 --location STORE-001 --type VISIT --event-id pos-42
    """
    from relay.events import Interaction

    fields = {"account_id": account, "location": location, "interaction_type": interaction_type,
              "note": note, "tenant": tenant, "event_id": event_id}
    event = Interaction.create(**{k: v for k, v in fields.items() if v is not None})
    new = producer().enqueue(event)
    text = (f"enqueued {event.event_id}" if new else
            f"already known: {event.event_id} (not enqueued again; see `relay status "
            f"{event.event_id}`" + ("" if event.tenant == "default" else
                                    f" --tenant {event.tenant}") + ")")
    emit({"event_id": event.event_id, "tenant": event.tenant, "enqueued": new,
          "already_known": not new}, as_json, text)
    return exitcodes.OK


@click.command()
@click.argument("event_id", required=False)
@click.option("--tenant", default="default", show_default=True, help="The event's tenant.")
@json_option
def status(event_id: str | None, tenant: str, as_json: bool) -> int:
    """Pool-wide counters, queue depths and circuits; or one event's record.

    \b
    Examples:
      relay status                     one line: queues, outcomes, circuits
      relay status pos-42 --tenant acme
      relay status --json | jq .dead_letters
    """
    from relay.overview import one_line, overview

    p = producer()
    if event_id:
        record = p.status(event_id, tenant)
        if record is None:
            error(f"no event {event_id!r} for tenant {tenant!r} (unknown, or its record "
                  "expired)")
            return exitcodes.NOT_FOUND
        emit(record, as_json)
        return exitcodes.OK
    view = overview(p.redis, p.keys)
    emit(view, as_json, one_line(view) + "".join(
        f"\n  circuit {c['tenant']}: {c['state']} since {when(c['since'])}: {c['reason']}"
        for c in view["circuits"]))
    return exitcodes.OK


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True,
                                        path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--id-prefix", metavar="TEXT", callback=lambda _c, _p, v: _not_blank(v),
              help="Prefix of the event_id derived for a line without one, PREFIX:LINE:HASH, "
                   "HASH being 16 hex digits of sha256(prefix, line number, line). Default: the "
                   "file's base name. Characters outside A-Za-z0-9._- become '_', 64 are kept. "
                   "The same prefix again enqueues nothing new: set it to keep ids across a "
                   "rename, or to tell apart files that share a name (a date, say).")
@json_option
def import_(file: Path, quiet: bool, id_prefix: str | None, as_json: bool) -> int:
    """Bulk-enqueue a CSV or JSON-lines file.

    CSV has a header row; .jsonl/.ndjson/.json (or any file whose first line is a JSON object)
    has one object per line. One record per line, at most 64 KiB. A line that cannot be read
    (bad quoting, not UTF-8, too long, a broken rule) is reported by number on stderr and
    skipped; the summary always prints. Exit 1 when any line was rejected. A `relay dlq
    export` file imports as it is.

    \b
    Examples:
      relay import visits.csv
      RELAY_REDIS_URL=redis://staging:6379/0 relay import dead.jsonl   # a dlq export
    """
    from producers.bulk import Report, import_file

    p = producer()
    report = Report()
    started = time.monotonic()
    show = not quiet and sys.stderr.isatty()

    def progress(so_far: Report, fraction: float) -> None:
        if show:
            bar = "#" * int(fraction * 30)
            rate = so_far.lines / max(1e-9, time.monotonic() - started)
            print(f"\r[{bar:<30}] {fraction:4.0%} {so_far.lines:,} lines {rate:,.0f}/s "
                  f"rejected {so_far.rejected:,}", end="", file=sys.stderr, flush=True)

    def reject(number: int, reason: str) -> None:
        print(("\n" if show else "") + f"line {number}: {reason}", file=sys.stderr)

    def summary(stopped: str | None = None) -> None:
        if show:
            print(file=sys.stderr)
        data = report.as_dict()
        data["seconds"] = round(time.monotonic() - started, 2)
        text = (f"{report.lines:,} lines: {report.enqueued:,} enqueued, "
                f"{report.duplicates:,} already known, {report.rejected:,} rejected "
                f"({data['seconds']} s)")
        if stopped:
            data["stopped"] = stopped
            text += f"; stopped early: {stopped}"
        emit(data, as_json, text)

    try:
        import_file(file, p.enqueue, progress, reject, id_prefix=id_prefix, report=report)
    except KeyboardInterrupt:  # not 0: the lines after this point were never read
        summary("interrupted")
        return exitcodes.FAILURE
    except BaseException as exc:  # Redis gone: say what was done, then fail as usual
        summary(str(exc) or type(exc).__name__)
        raise
    summary()
    return exitcodes.FAILURE if report.rejected else exitcodes.OK


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be blank")
    return value


@click.command()
@json_option
def check(as_json: bool) -> int:
    """Check settings, Redis, each tenant's SOAP endpoint and its WSDL.

    It cannot tell whether a security token is right: only a real RecordInteraction call
    would, and that records an interaction. It says so, for each tenant.

    \b
    Example:
      RELAY_SOAP_URL=https://test.example/Services/Interaction.asmx relay check
    """
    from worker.check import effective_settings, run_checks
    from worker.settings import Settings

    settings = Settings.from_env()
    results = run_checks(settings)
    data: dict[str, Any] = {"settings": effective_settings(settings),
                            "checks": [r.__dict__ for r in results],
                            "ok": all(r.ok for r in results)}
    lines = [f"[{'FAIL' if not r.ok else 'WARN' if r.warning else 'ok'}] {r.name}: {r.detail}"
             for r in results]
    emit(data, as_json, "\n".join(lines))
    return exitcodes.OK if data["ok"] else exitcodes.FAILURE
