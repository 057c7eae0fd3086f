"""OpenAPI 3.1 description of the HTTP API; schemathesis checks it against the running server."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relay.events import (
    ACCOUNT_ID_MAX,
    BLANK_CHARS,
    DEFAULT_TENANT,
    EVENT_ID_MAX,
    NOTE_MAX,
    REFERENCE_MAX,
    TENANT_MAX,
)

_ERROR: dict[str, Any] = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"},
    "errors": {"type": "array", "items": {"type": "object", "required": ["field", "rule",
                                                                          "message"],
               "properties": {"field": {"type": "string"}, "rule": {"type": "string"},
                              "message": {"type": "string"}}}}}}


# Characters XML 1.0 can carry; required references must also hold a non-blank character.
# (Lone surrogates are refused too, but a surrogate range in a pattern defeats
# schemathesis' generator, so the document leaves them out.)
_BAD = "\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\uFFFE\\uFFFF"
_XML_TEXT = f"^[^{_BAD}]*$"
_BLANK = "".join(c if c == "-" else f"\\u{ord(c):04X}" for c in BLANK_CHARS)
_NOT_BLANK = f"^[^{_BAD}]*[^{_BAD}{_BLANK}][^{_BAD}]*$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_COMMON = {
    "401": _json(_ref("Error"), "missing or invalid API key"),
    "403": _json(_ref("Error"), "a valid key without the right: bound to other tenants, or "
                 "not an admin key on /v1/admin"),
    "503": _json(_ref("Error"), "Redis unreachable; retry after the Retry-After header"),
}
_BODY_ERRORS = {
    "408": _json(_ref("Error"), "body not received within RELAY_API_BODY_TIMEOUT"),
    "413": _json(_ref("Error"), "body larger than the configured cap"),
    "422": _json(_ref("Error"), "validation failed; each error names field and rule"),
}


def spec(tenants: Iterable[str] | None = None) -> dict[str, Any]:
    """The document; with ``tenants`` (those the workers serve) ``tenant`` lists them."""
    text = {"type": "string", "pattern": _XML_TEXT}
    reference = {**text, "minLength": 1, "maxLength": REFERENCE_MAX, "pattern": _NOT_BLANK}
    interaction: dict[str, Any] = {
        "type": "object", "additionalProperties": False,
        "required": ["account_id", "location", "interaction_type"],
        "properties": {
            "account_id": {**reference, "maxLength": ACCOUNT_ID_MAX},
            "location": reference,
            "interaction_type": reference,
            "note": {**text, "type": ["string", "null"], "maxLength": NOTE_MAX},
            "tenant": {"type": ["string", "null"], "maxLength": TENANT_MAX,
                       "pattern": "^([A-Za-z0-9][A-Za-z0-9_.-]*)?$",
                       "description": "maps to a security token in the workers; default "
                                      "'default'"},
            "event_id": {"type": ["string", "null"], "maxLength": EVENT_ID_MAX,
                         "pattern": "^[!-~]*$",
                         "description": "idempotency key; generated when absent"},
            "occurred_at": {"description": "RFC 3339 date-time with offset; empty or null "
                                           "means absent",
                            "anyOf": [{"type": "null"}, {"type": "string", "maxLength": 0},
                                      {"type": "string", "format": "date-time"}]},
        },
    }
    if tenants is not None:
        names = sorted(tenants)
        # an absent or empty tenant means "default": allowed only when default is served
        interaction["properties"]["tenant"]["enum"] = [
            *names, *([None, ""] if DEFAULT_TENANT in names else [])]

    accepted = {"type": "object", "required": ["event_id", "status", "status_url"],
                "properties": {"event_id": {"type": "string"},
                               "status": {"enum": ["accepted", "duplicate"]},
                               "status_url": {"type": "string"}}}
    batch_item = {"type": "object", "required": ["index", "status"], "properties": {
        "index": {"type": "integer"}, "event_id": {"type": "string"},
        "status": {"enum": ["accepted", "duplicate", "invalid"]},
        "status_url": {"type": "string"}, "errors": _ERROR["properties"]["errors"]}}
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "interaction-relay ingestion API", "version": "1.0.0",
                 "description": "Enqueue loyalty interactions for delivery to Kognitiv's "
                                "RecordInteraction. 202 means Redis holds the event."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "Interaction": interaction, "Accepted": accepted},
        },
        "paths": {
            "/v1/interactions": {"post": {
                "operationId": "recordInteraction", "security": secured,
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref("Interaction")}}},
                "responses": {"202": _json(_ref("Accepted"), "enqueued (or a known event_id)"),
                              **_BODY_ERRORS, **_COMMON}}},
            "/v1/interactions/batch": {"post": {
                "operationId": "recordInteractions", "security": secured,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["interactions"], "additionalProperties": False,
                    "properties": {"interactions": {
                        "type": "array", "minItems": 1, "maxItems": 1000,
                        "description": "items shaped like Interaction; each is validated on "
                                       "its own and a bad one is reported in results, never "
                                       "failing the rest"}}}}}},
                "responses": {
                    "202": _json({"type": "object", "required": ["accepted", "rejected",
                                                                 "results"],
                                  "properties": {"accepted": {"type": "integer"},
                                                 "rejected": {"type": "integer"},
                                                 "results": {"type": "array",
                                                             "items": batch_item}}},
                                 "a result per item, in order"),
                    **_BODY_ERRORS, **_COMMON}}},
            "/v1/interactions/{event_id}": {"get": {
                "operationId": "getInteraction", "security": secured,
                "parameters": [{"name": "event_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {
                    "200": _json({"type": "object", "required": ["event_id", "state",
                                                                 "history"],
                                  "properties": {"event_id": {"type": "string"},
                                                 "state": {"type": "string"},
                                                 "history": {"type": "array"}}},
                                 "status record with attempt history"),
                    "404": _json(_ref("Error"), "unknown event, or its record expired"),
                    **_COMMON}}},
            "/v1/admin/dead-letters": {"get": {
                "operationId": "listDeadLetters", "security": secured,
                "parameters": [
                    {"name": "code", "in": "query", "schema": {"type": "integer"}},
                    {"name": "tenant", "in": "query", "schema": {"type": "string"}},
                    {"name": "signal", "in": "query", "schema": {"type": "string"}},
                    {"name": "location", "in": "query", "schema": {"type": "string"}},
                    {"name": "interaction_type", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": {
                    "200": _json({"type": "object", "required": ["dead_letters", "total"],
                                  "properties": {"dead_letters": {"type": "array"},
                                                 "total": {"type": "integer"}}},
                                 "oldest first"),
                    "422": _BODY_ERRORS["422"], **_COMMON}}},
            "/v1/admin/dead-letters/replay": {"post": {
                "operationId": "replayDeadLetters", "security": secured,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "event_ids": {"type": "array", "items": {"type": "string"}},
                        "code": {"type": "integer"}, "tenant": {"type": "string"},
                        "all": {"type": "boolean"}}}}}},
                "responses": {
                    "200": _json({"type": "object", "required": ["replayed"],
                                  "properties": {"replayed": {"type": "array",
                                                              "items": {"type": "string"}}}},
                                 "the ids enqueued again"),
                    **_BODY_ERRORS, **_COMMON}}},
            "/healthz": {"get": {"operationId": "healthz", "responses": {
                "200": _json({"type": "object"}, "the process is up")}}},
            "/readyz": {"get": {"operationId": "readyz", "responses": {
                "200": _json({"type": "object"}, "Redis answers"),
                "503": _COMMON["503"]}}},
            "/metrics": {"get": {"operationId": "metrics", "responses": {
                "200": {"description": "Pool-wide metrics: Prometheus text format 0.0.4, or "
                                       "OpenMetrics 1.0 when the Accept header asks for it",
                        "content": {"text/plain": {"schema": {"type": "string"}},
                                    "application/openmetrics-text": {
                                        "schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"operationId": "openapi", "responses": {
                "200": _json({"type": "object"}, "this document")}}},
        },
    }
