"""Bulk import of CSV or JSON-lines files (``relay import``): streamed, line by line.

Reading. The file is read as bytes, one physical line at a time (at most ``LINE_MAX`` bytes of
it in memory), so memory stays flat whatever the file size and a broken line cannot take the
lines after it down with it. A line is reported by its number and skipped at its first problem:

- longer than ``LINE_MAX`` bytes, its line ending excluded (the rest of it is read and dropped);
- a NUL byte (often a UTF-16 file: save it as UTF-8), or bytes that are not UTF-8 (a byte-order
  mark opening the file is allowed);
- CSV: a quote still open at the end of the line, a carriage return inside an unquoted field,
  a column count unlike the header's. One line is one record: a quoted field cannot span
  lines, so that an unterminated quote costs its own line and not the rest of the file;
- JSON lines: not JSON, nested too deeply, or not an object;
- any rule of the event contract (``relay.events``), such as an unknown field.

Blank lines are skipped and not counted. The first non-blank CSV line is the header; when it is
unusable it is rejected, and every data line with it (they cannot be read without it).

Ids. A line without an ``event_id`` gets ``<prefix>:<line>:<digest>``, where ``prefix`` is the
file's base name (or ``id_prefix``, ``relay import --id-prefix``) with every character outside
``[A-Za-z0-9._-]`` replaced by ``_`` and cut to ``PREFIX_MAX`` characters, ``line`` is the line
number, and ``digest`` the first 16 hex digits of sha256(prefix NUL line NUL content), taken over
the prefix as given and the line without its ending. Importing the same file again enqueues
nothing new, while an equal line in another file (another name or prefix) is a new event; a
renamed file gets new ids unless its old name is passed as the prefix.

Dead-letter exports. A JSON line may carry a ``dead_letter`` key beside the event's fields (what
``relay dlq export`` writes); it is ignored, so an export imports as it is. Any other unknown
key is still an error. The line's ``event_id`` is kept, so the status record dedupes it as usual.
A file is read as JSON lines when its name ends in .jsonl, .ndjson or .json, or when it opens
with ``{`` (an export written to stdout and saved under any name); otherwise as CSV.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from relay.errors import ValidationError
from relay.events import FIELDS, Interaction

ALIASES = {"account": "account_id", "accountid": "account_id", "type": "interaction_type",
           "interactiontype": "interaction_type", "interactiontypeexternalreference":
           "interaction_type", "locationexternalreference": "location",
           "interactionnote": "note", "id": "event_id"}
KEPT_REJECTIONS = 1000
LINE_MAX = 64 * 1024  # bytes; a valid event is under 10 KiB even with every character escaped
PREFIX_MAX = 64  # keeps a derived id well under the contract's 128 characters
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
IGNORED_JSON_KEYS = ("dead_letter",)  # added by `relay dlq export`
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Row = dict[str, Any]
Texts = Iterator[tuple[int, str | ValidationError]]  # line number, decoded text or why not


@dataclass
class Report:
    """Counts of one import and its first ``KEPT_REJECTIONS`` rejections (line, reason)."""

    lines: int = 0
    enqueued: int = 0
    duplicates: int = 0
    rejected: int = 0
    first_rejections: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, number: int, reason: str) -> None:
        self.rejected += 1
        if len(self.first_rejections) < KEPT_REJECTIONS:
            self.first_rejections.append((number, reason))

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "enqueued": self.enqueued, "duplicates": self.duplicates,
                "rejected": self.rejected,
                "first_rejections": [{"line": n, "reason": r} for n, r in self.first_rejections]}


def _error(rule: str, message: str, name: str = "line") -> ValidationError:
    return ValidationError.one(name, rule, message)


def read_lines(binary: BinaryIO, limit: int = LINE_MAX
               ) -> Iterator[tuple[int, bytes | ValidationError]]:
    """(line number, the line's bytes without its ending, or why it cannot be read)."""
    number = 0
    while chunk := binary.readline(limit + 1):
        number += 1
        if chunk.endswith(b"\n") or len(chunk) <= limit:
            yield number, chunk.removesuffix(b"\n").removesuffix(b"\r")
            continue
        size = len(chunk)  # too long: count the rest without keeping it
        while not chunk.endswith(b"\n") and (chunk := binary.readline(limit)):
            size += len(chunk)
        if chunk.endswith(b"\n"):
            size -= 1
        yield number, _error("too_long", f"is too long ({size:,} bytes; the limit is {limit:,})")


def decode(number: int, data: bytes) -> str | ValidationError:
    """The line as text, or why it is not UTF-8 text."""
    if number == 1:
        data = data.removeprefix(codecs.BOM_UTF8)
    nul = data.find(b"\0")
    if nul >= 0:
        return _error("nul", f"has a NUL byte at byte {nul + 1} (a UTF-16 file? save it as UTF-8)")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        return _error("encoding", f"is not valid UTF-8 (byte 0x{data[exc.start]:02x} "
                                  f"at byte {exc.start + 1})")


def parse_json(text: str) -> Row | ValidationError:
    """One JSON-lines line: an object, minus the keys an export adds."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return _error("json", f"is not JSON ({exc})")
    except RecursionError:
        return _error("depth", "is nested too deeply")
    if not isinstance(value, dict):
        return _error("type", "must be an object")
    for key in IGNORED_JSON_KEYS:
        value.pop(key, None)
    return value


def parse_csv(text: str) -> list[str] | ValidationError:
    """One CSV line's values; a quote left open at its end is an error, not a longer record."""
    spilled = False

    def this_line_only() -> Iterator[str]:
        nonlocal spilled
        yield text
        spilled = True  # the reader asked for the next line: a quoted field is still open

    try:
        values = next(csv.reader(this_line_only()), [])
    except csv.Error as exc:
        if "new-line character" in str(exc):
            return _error("csv", "has a carriage return inside an unquoted field")
        return _error("csv", f"is not valid CSV ({exc})")
    if spilled:
        return _error("quote", "has a quoted field that is not closed on this line "
                               "(a quoted field cannot span lines)")
    return values


def _column(name: str) -> str:
    key = name.strip().lower().replace(" ", "").replace("-", "_")
    return key if key in FIELDS else ALIASES.get(key.replace("_", ""), key)


def _header(values: list[str]) -> list[str] | ValidationError:
    names = [_column(v) for v in values]
    twice = sorted(n for n, count in Counter(names).items() if n and count > 1)
    if twice:
        return _error("duplicate", f"names {', '.join(twice)} more than once", "header")
    return names


def rows(binary: BinaryIO, json_lines: bool, limit: int = LINE_MAX
         ) -> Iterator[tuple[int, Row | ValidationError, str]]:
    """(line number, the row or why it was refused, the line's text) for each non-blank line.

    Never raises for anything the file holds: every problem is one line's ``ValidationError``.
    """
    lines = _texts(binary, limit)
    return _json_rows(lines) if json_lines else _csv_rows(lines)


def _texts(binary: BinaryIO, limit: int) -> Texts:
    for number, data in read_lines(binary, limit):
        text = data if isinstance(data, ValidationError) else decode(number, data)
        if isinstance(text, ValidationError) or text.strip():
            yield number, text


def _json_rows(lines: Texts) -> Iterator[tuple[int, Row | ValidationError, str]]:
    for number, text in lines:
        if isinstance(text, ValidationError):
            yield number, text, ""
        else:
            yield number, parse_json(text), text


def _csv_rows(lines: Texts) -> Iterator[tuple[int, Row | ValidationError, str]]:
    header: list[str] | ValidationError | None = None
    header_line = 0
    for number, text in lines:
        values = text if isinstance(text, ValidationError) else parse_csv(text)
        if isinstance(values, list) and not any(v.strip() for v in values):
            continue
        if header is None:
            header = values if isinstance(values, ValidationError) else _header(values)
            header_line = number
            if isinstance(header, ValidationError):
                yield number, header, ""
            continue
        yield (number, _csv_row(header, header_line, values),
               text if isinstance(text, str) else "")


def _csv_row(header: list[str] | ValidationError, header_line: int,
             values: list[str] | ValidationError) -> Row | ValidationError:
    if isinstance(header, ValidationError):
        return _error("header", f"cannot be read: the header (line {header_line}) is unusable")
    if isinstance(values, ValidationError):
        return values
    if len(values) != len(header):
        return _error("columns", f"has {len(values)} columns, the header has {len(header)}")
    return {k: v for k, v in zip(header, values, strict=True) if k}


def safe_prefix(text: str) -> str:
    """``text`` made safe for an ``event_id``: ``[A-Za-z0-9._-]`` only, at most 64 characters."""
    return _UNSAFE.sub("_", text)[:PREFIX_MAX] or "import"


def derive_event_id(prefix: str, number: int, content: str) -> str:
    """``<safe prefix>:<line>:<16 hex of sha256(prefix NUL line NUL content)>``."""
    digest = hashlib.sha256(f"{prefix}\0{number}\0{content}".encode(errors="surrogateescape"))
    return f"{safe_prefix(prefix)}:{number}:{digest.hexdigest()[:16]}"


def to_event(parsed: Row | ValidationError, prefix: str, number: int, content: str
             ) -> Interaction | ValidationError:
    """The line's event (its id derived when it has none), or why there is none."""
    if isinstance(parsed, ValidationError):
        return parsed
    row = parsed if parsed.get("event_id") else {
        **parsed, "event_id": derive_event_id(prefix, number, content)}
    try:
        return Interaction.from_message(row)
    except ValidationError as exc:
        return exc


def is_json_lines(path: Path) -> bool:
    """By the name (.jsonl, .ndjson, .json), else by the first non-blank byte being ``{``:
    ``relay dlq export -o - > dead.txt`` still imports as JSON lines."""
    if path.suffix.lower() in JSON_SUFFIXES:
        return True
    with path.open("rb") as binary:
        start = binary.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    return start.startswith(b"{")


def import_file(path: Path, enqueue: Callable[[Interaction], bool],
                progress: Callable[[Report, float], None] | None = None,
                reject: Callable[[int, str], None] | None = None, *,
                id_prefix: str | None = None, report: Report | None = None) -> Report:
    """Validate and enqueue every line; ``progress`` gets the report and the fraction read.

    ``id_prefix`` (default: the file's base name) goes into derived ids. Pass ``report`` to
    keep the counts of an import that an exception (Redis gone, Ctrl-C) cut short; a line is
    counted once its outcome is known, so the counts always add up.
    """
    report = Report() if report is None else report
    prefix = path.name if id_prefix is None else id_prefix
    size = max(1, path.stat().st_size)
    with path.open("rb") as binary:
        for number, parsed, content in rows(binary, is_json_lines(path)):
            if progress and report.lines % 500 == 0:
                progress(report, min(1.0, binary.tell() / size))
            event = to_event(parsed, prefix, number, content)
            if not isinstance(event, ValidationError):
                try:
                    added = enqueue(event)
                except ValidationError as exc:  # e.g. a tenant the workers are not set up for
                    event = exc
            if isinstance(event, ValidationError):
                report.lines += 1
                report.reject(number, str(event))
                if reject:
                    reject(number, str(event))
                continue
            report.lines += 1
            if added:
                report.enqueued += 1
            else:
                report.duplicates += 1
    if progress:
        progress(report, 1.0)
    return report
