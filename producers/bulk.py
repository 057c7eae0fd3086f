"""Bulk import of CSV or JSON-lines files (``relay import``): streamed, line by line.

Memory stays flat whatever the file size: rows are read, validated and enqueued one at a time,
and only counts (plus the first rejections, for the summary) are kept. A line without an
``event_id`` gets one derived from its line number and content, so importing the same file
again enqueues nothing new.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relay.errors import ValidationError
from relay.events import FIELDS, Interaction

ALIASES = {"account": "account_id", "accountid": "account_id", "type": "interaction_type",
           "interactiontype": "interaction_type", "interactiontypeexternalreference":
           "interaction_type", "locationexternalreference": "location",
           "interactionnote": "note", "id": "event_id"}
KEPT_REJECTIONS = 1000


@dataclass
class Report:
    lines: int = 0
    enqueued: int = 0
    duplicates: int = 0
    rejected: int = 0
    first_rejections: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "enqueued": self.enqueued, "duplicates": self.duplicates,
                "rejected": self.rejected,
                "first_rejections": [{"line": n, "reason": r} for n, r in self.first_rejections]}


def rows(path: Path, binary: io.BufferedReader) -> Iterator[tuple[int, Any, str]]:
    """(line number, parsed row or a ValidationError, raw text) for each data line."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="",
                            errors="surrogateescape")  # bad bytes fail validation per line
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line), line
            except ValueError as exc:
                yield number, ValidationError.one("line", "json", f"is not JSON ({exc})"), line
            except RecursionError:
                yield number, ValidationError.one("line", "depth", "is nested too deeply"), line
        return
    reader = csv.reader(text)
    header = [_column(c) for c in next(reader, [])]
    for values in reader:
        number = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield number, ValidationError.one(
                "line", "columns", f"has {len(values)} columns, the header has {len(header)}"), \
                ",".join(values)
            continue
        yield number, {k: v for k, v in zip(header, values, strict=True) if k}, ",".join(values)


def _column(name: str) -> str:
    key = name.strip().lower().replace(" ", "").replace("-", "_")
    return key if key in FIELDS else ALIASES.get(key.replace("_", ""), key)


def derive_event_id(number: int, raw: str) -> str:
    digest = hashlib.sha256(f"{number}\x00{raw.rstrip()}".encode(errors="surrogateescape"))
    return f"import-{digest.hexdigest()[:40]}"


def import_file(path: Path, enqueue: Callable[[Interaction], bool],
                progress: Callable[[Report, float], None] | None = None,
                reject: Callable[[int, str], None] | None = None) -> Report:
    """Validate and enqueue every line; ``progress`` gets the report and the fraction read."""
    report = Report()
    size = max(1, path.stat().st_size)
    with path.open("rb") as binary:
        for number, parsed, raw in rows(path, binary):
            report.lines += 1
            try:
                if isinstance(parsed, ValidationError):
                    raise parsed
                if not isinstance(parsed, dict):
                    raise ValidationError.one("line", "type", "must be an object")
                row = parsed if parsed.get("event_id") else {
                    **parsed, "event_id": derive_event_id(number, raw)}
                event = Interaction.from_message(row)
            except ValidationError as exc:
                report.rejected += 1
                if len(report.first_rejections) < KEPT_REJECTIONS:
                    report.first_rejections.append((number, str(exc)))
                if reject:
                    reject(number, str(exc))
                continue
            if enqueue(event):
                report.enqueued += 1
            else:
                report.duplicates += 1
            if progress and report.lines % 500 == 0:
                progress(report, min(1.0, binary.tell() / size))
    if progress:
        progress(report, 1.0)
    return report
