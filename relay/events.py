"""The interaction event: the contract producers and workers both import.

Limits follow RecordInteraction (design.md section 1). Characters XML 1.0 cannot carry are
refused here, at the edge, because no escaping can put them on the wire.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from relay.errors import FieldError, ValidationError

ACCOUNT_ID_MAX = 60
REFERENCE_MAX = 100  # location / interaction-type external references (not published; generous)
NOTE_MAX = 256
EVENT_ID_MAX = 128
TENANT_MAX = 64
DEFAULT_TENANT = "default"

# Anything outside XML 1.0's Char production (tab, LF, CR and the ranges below are allowed).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# "Blank" means only these (the union of Python's and ECMAScript's \s, so the OpenAPI pattern
# and this check agree on every string).
BLANK_CHARS = ("\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
               "\u3000\ufeff")
_NOT_BLANK = re.compile(f"[^{BLANK_CHARS}]")
_EVENT_ID = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# RFC 3339 date-time with an offset: an event time without a zone is ambiguous.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def is_tenant_name(name: str) -> bool:
    """Whether ``name`` can be a tenant (configuration checks it with the events' rule)."""
    return len(name) <= TENANT_MAX and _TENANT.fullmatch(name) is not None


FIELDS = ("account_id", "location", "interaction_type", "note", "tenant", "event_id",
          "occurred_at")
_KNOWN = frozenset(FIELDS)


@dataclass(frozen=True, slots=True)
class Interaction:
    """One validated interaction; build it with :meth:`create` or :meth:`from_message`."""

    account_id: str
    location: str
    interaction_type: str
    note: str
    tenant: str
    event_id: str
    occurred_at: str | None = None

    @classmethod
    def create(cls, **fields: Any) -> Interaction:
        """Validate caller input; generate ``event_id`` when absent."""
        return cls.from_message(fields, generate_id=True)

    @classmethod
    def from_message(cls, data: Mapping[str, Any], *, generate_id: bool = False) -> Interaction:
        """Validate a mapping (queue message, JSON body, CSV row); raise on any broken rule."""
        if not isinstance(data, Mapping):
            raise ValidationError([FieldError("event", "type", "must be an object")])
        errors: list[FieldError] = []
        if not _KNOWN.issuperset(data):
            unknown = sorted(str(k) for k in data if k not in _KNOWN)
            errors += [FieldError(k if k.strip() else repr(k), "unknown",
                                  f"is not a known field (known: {', '.join(FIELDS)})")
                       for k in unknown]
        get = data.get
        account_id = _text(get("account_id"), "account_id", True, ACCOUNT_ID_MAX, errors)
        location = _text(get("location"), "location", True, REFERENCE_MAX, errors)
        interaction_type = _text(get("interaction_type"), "interaction_type", True,
                                 REFERENCE_MAX, errors)
        note = _text(get("note"), "note", False, NOTE_MAX, errors)
        tenant = _text(get("tenant"), "tenant", False, TENANT_MAX, errors) or DEFAULT_TENANT
        if not _TENANT.fullmatch(tenant):
            errors.append(FieldError("tenant", "pattern",
                                     "must be letters, digits, '_', '.' or '-'"))
        event_id = _text(get("event_id"), "event_id", False, EVENT_ID_MAX, errors)
        if event_id and not _EVENT_ID.fullmatch(event_id):
            errors.append(FieldError("event_id", "pattern",
                                     "must be printable ASCII without spaces"))
        if not event_id and all(e.field != "event_id" for e in errors):
            if generate_id:
                event_id = uuid.uuid4().hex
            else:
                errors.append(FieldError("event_id", "required", "is required"))
        occurred_at = _timestamp(data.get("occurred_at"), errors)
        if errors:
            raise ValidationError(errors)
        return cls(account_id, location, interaction_type, note, tenant, event_id, occurred_at)

    def to_message(self) -> dict[str, Any]:
        """The JSON-safe form of the whole event (spool lines, exports, API answers)."""
        message = asdict(self)
        if message["occurred_at"] is None:
            del message["occurred_at"]
        return message

    def payload(self) -> str:
        """What the event's record keeps (``m``): its fields as a compact JSON array. Tenant and
        event_id are not repeated: they are the record's key. Never a token."""
        fields: list[str | None] = [self.account_id, self.location, self.interaction_type,
                                    self.note]
        if self.occurred_at is not None:
            fields.append(self.occurred_at)
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_payload(cls, tenant: str, event_id: str, payload: str | bytes) -> Interaction:
        """Rebuild (and validate again) an event from its record; ``ValidationError`` when the
        stored payload is not one we wrote."""
        try:
            fields = json.loads(payload)
        except ValueError:
            raise ValidationError.one("payload", "json", "is not JSON") from None
        if not isinstance(fields, list) or not 4 <= len(fields) <= 5:
            raise ValidationError.one("payload", "shape", "is not an event's field array")
        names = ("account_id", "location", "interaction_type", "note", "occurred_at")
        return cls.from_message({"tenant": tenant, "event_id": event_id,
                                 **dict(zip(names, fields, strict=False))})


def _text(value: Any, name: str, required: bool, maximum: int, errors: list[FieldError]) -> str:
    """One text field checked against its rules; a broken rule is added to ``errors``."""
    if value is None or value == "":
        if required:
            errors.append(FieldError(name, "required", "is required"))
        return ""
    if not isinstance(value, str):
        errors.append(FieldError(name, "type", "must be a string"))
        return ""
    if required and not _NOT_BLANK.search(value):
        errors.append(FieldError(name, "blank", "must not be blank"))
    elif len(value) > maximum:
        errors.append(FieldError(name, "max_length", f"must be at most {maximum} characters"))
    elif _NOT_XML.search(value):
        errors.append(FieldError(name, "xml_char", "contains a character XML 1.0 cannot carry"))
    return value


def _timestamp(value: Any, errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.append(FieldError("occurred_at", "type", "must be an ISO 8601 string"))
        return None
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError(value)
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        errors.append(FieldError("occurred_at", "format",
                                 "must be an RFC 3339 date-time with offset, "
                                 "e.g. 2026-11-27T10:00:00Z"))
        return None
    return parsed.isoformat()
