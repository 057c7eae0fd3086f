"""Handlers of the ``relay`` subcommands: parse, call the library, print."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from relay.cli import exitcodes
from relay.cli.output import emit, error

Command = Callable[..., argparse.ArgumentParser]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def register(command: Command) -> None:
    send = command("send", cmd_send, "validate and enqueue one interaction")
    send.add_argument("--account", required=True, help="AccountId (1-60 characters)")
    send.add_argument("--location", required=True, help="LocationExternalReference")
    send.add_argument("--type", required=True, dest="interaction_type",
                      help="InteractionTypeExternalReference")
    send.add_argument("--note", default="", help="InteractionNote (<= 256 characters)")
    send.add_argument("--tenant", help="tenant name (maps to its token in RELAY_TENANTS)")
    send.add_argument("--event-id", help="idempotency key; generated when absent")

    status = command("status", cmd_status, "pool-wide counters, or one event's record")
    status.add_argument("event_id", nargs="?")
    status.add_argument("--tenant", default="default", help="the event's tenant")

    dlq = command("dlq", cmd_dlq, "inspect, replay, purge or export dead letters")
    dlq.add_argument("action", choices=["list", "show", "replay", "purge", "export"])
    dlq.add_argument("ids", nargs="*", metavar="EVENT_ID")
    dlq.add_argument("--code", type=int, help="only this return code")
    dlq.add_argument("--tenant", help="only this tenant")
    dlq.add_argument("--signal", help="only this signal, e.g. http:502 or fault:client")
    dlq.add_argument("--location", help="only this location reference")
    dlq.add_argument("--type", dest="interaction_type", help="only this interaction type")
    dlq.add_argument("--older-than", type=duration, help="e.g. 30m, 2h, 1d")
    dlq.add_argument("--newer-than", type=duration, help="e.g. 30m, 2h, 1d")
    dlq.add_argument("--limit", type=int, help="at most this many (list, export)")
    dlq.add_argument("--all", action="store_true", help="replay/purge every entry")
    dlq.add_argument("--yes", action="store_true", help="purge without asking")
    dlq.add_argument("--output", help="export to this file (JSON lines) instead of stdout")

    imp = command("import", cmd_import, "bulk-enqueue a CSV or JSON-lines file")
    imp.add_argument("file", help="CSV with a header row, or .jsonl/.ndjson/.json with one "
                                  "object per line; one record per line, at most 64 KiB")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.add_argument("--id-prefix", type=id_prefix, metavar="TEXT",
                     help="prefix of the event_id derived for a line without one, "
                          "PREFIX:LINE:HASH, HASH being 16 hex digits of sha256(prefix, line "
                          "number, line). Default: the file's base name. Characters outside "
                          "A-Za-z0-9._- become '_', 64 are kept. The same prefix again enqueues "
                          "nothing new: set it to keep ids across a rename, or to tell apart "
                          "files that share a name (a date, say)")

    dev = command("dev", cmd_dev, "all-in-one: embedded Redis, sandbox, worker, live counters")
    dev.add_argument("--no-api", action="store_true", help="do not start the HTTP API")


def duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 2h, 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def id_prefix(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be blank")
    return text


def _producer() -> Any:
    from producers import Producer

    return Producer()


def cmd_send(args: argparse.Namespace) -> int:
    producer = _producer()
    fields = {"account_id": args.account, "location": args.location,
              "interaction_type": args.interaction_type, "note": args.note,
              "tenant": args.tenant, "event_id": args.event_id}
    event_id = producer.record(**{k: v for k, v in fields.items() if v is not None})
    emit({"event_id": event_id}, args.json, f"enqueued {event_id}")
    return exitcodes.OK


def cmd_status(args: argparse.Namespace) -> int:
    from relay.overview import one_line, overview

    producer = _producer()
    if args.event_id:
        record = producer.status(args.event_id, args.tenant)
        if record is None:
            error(f"no event {args.event_id!r} (unknown, or its record expired)")
            return exitcodes.NOT_FOUND
        emit(record, args.json)
        return exitcodes.OK
    view = overview(producer.redis, producer.keys)
    emit(view, args.json, one_line(view))
    return exitcodes.OK


def cmd_dlq(args: argparse.Namespace) -> int:
    from relay import keys
    from relay.deadletters import DeadLetters, Filter

    producer = _producer()
    store = DeadLetters(producer.redis, producer.keys)
    flt = Filter(code=args.code, tenant=args.tenant, signal=args.signal, location=args.location,
                 interaction_type=args.interaction_type, older_than=args.older_than,
                 newer_than=args.newer_than)
    tenant = args.tenant or "default"  # of the EVENT_IDs named
    if args.action == "show":
        found = [e for e in (store.get(tenant, i) for i in args.ids) if e is not None]
        if len(found) < len(args.ids) or not args.ids:
            error("no such dead letter" if args.ids else "dlq show needs an EVENT_ID")
            return exitcodes.NOT_FOUND if args.ids else exitcodes.USAGE
        emit(found if len(found) > 1 else found[0], args.json)
        return exitcodes.OK
    if args.action in ("list", "export"):
        return _listing(store, flt, args)
    if args.ids:
        members = [keys.member(tenant, i) for i in args.ids]
    elif not flt.empty or args.all:
        members = store.members(flt)
    else:
        error(f"dlq {args.action}: name EVENT_IDs, a filter (--code, --tenant ...) or --all")
        return exitcodes.USAGE
    if args.action == "replay":
        done = [keys.split(m)[1] for m in store.replay(members)]
        emit({"replayed": done}, args.json, f"replayed {len(done)} event(s)")
        return exitcodes.OK if done or not args.ids else exitcodes.NOT_FOUND
    if not args.yes:
        if not sys.stdin.isatty():
            error(f"refusing to purge {len(members)} dead letter(s) without --yes")
            return exitcodes.USAGE
        if input(f"purge {len(members)} dead letter(s) for good? [y/N] ").strip().lower() != "y":
            return exitcodes.FAILURE
    removed = store.purge(members)
    emit({"purged": removed}, args.json, f"purged {removed} dead letter(s)")
    return exitcodes.OK


def _listing(store: Any, flt: Any, args: argparse.Namespace) -> int:
    entries = store.entries(flt, args.limit)
    if args.action == "export":
        out = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
        try:
            count = 0
            for entry in entries:
                out.write(json.dumps(entry) + "\n")
                count += 1
        finally:
            if args.output:
                out.close()
        if args.output:
            print(f"exported {count} dead letter(s) to {args.output}", file=sys.stderr)
        return exitcodes.OK
    rows = list(entries)
    lines = [f"{e['event_id']}  tenant={e['tenant']}  code={e['dead_letter']['code']}  "
             f"signal={e['dead_letter']['signal']}  attempts={e['dead_letter']['attempts']}  "
             f"{e['dead_letter']['dead_at']}  {e['dead_letter']['reason']}" for e in rows]
    emit(rows, args.json, "\n".join(lines) or "no dead letters")
    return exitcodes.OK


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from producers.bulk import Report, import_file

    path = Path(args.file)
    if not path.is_file():
        error(f"no such file: {path}")
        return exitcodes.USAGE
    try:
        path.open("rb").close()
    except OSError as exc:
        error(f"cannot read {path}: {exc.strerror or exc}")
        return exitcodes.USAGE
    producer = _producer()
    report = Report()
    started = time.monotonic()
    show = not args.quiet and sys.stderr.isatty()

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
        emit(data, args.json, text)

    try:
        import_file(path, producer.enqueue, progress, reject, id_prefix=args.id_prefix,
                    report=report)
    except KeyboardInterrupt:  # not 0: the lines after this point were never read
        summary("interrupted")
        return exitcodes.FAILURE
    except BaseException as exc:  # Redis gone: say what was done, then fail as usual
        summary(str(exc) or type(exc).__name__)
        raise
    summary()
    return exitcodes.FAILURE if report.rejected else exitcodes.OK


def cmd_dev(args: argparse.Namespace) -> int:
    from relay.cli.dev import run_dev

    return run_dev(with_api=not args.no_api)


def check(args: argparse.Namespace) -> int:
    from worker.check import effective_settings, run_checks
    from worker.settings import Settings

    settings = Settings.from_env()
    results = run_checks(settings)
    data: dict[str, Any] = {"settings": effective_settings(settings),
                            "checks": [r.__dict__ for r in results],
                            "ok": all(r.ok for r in results)}
    lines = [f"[{'FAIL' if not r.ok else 'WARN' if r.warning else 'ok'}] {r.name}: {r.detail}"
             for r in results]
    emit(data, args.json, "\n".join(lines))
    return exitcodes.OK if data["ok"] else exitcodes.FAILURE


def worker(argv: list[str]) -> int:
    """``relay worker [--processes N] [celery worker options]``."""
    from worker.processes import default_processes, supervise

    processes, rest = default_processes(), []
    args = iter(argv)
    for arg in args:
        if arg == "--processes" or arg.startswith("--processes="):
            value = arg.partition("=")[2] if "=" in arg else next(args, "")
            if not value.isdigit() or int(value) < 1:
                error(f"--processes needs a whole number of at least 1, not {value!r}")
                return exitcodes.USAGE
            processes = int(value)
        else:
            rest.append(arg)
    if processes > 1:
        return supervise(processes, rest)
    from worker.app import start_worker

    return start_worker(rest)
