import pytest

from relay.errors import ValidationError
from relay.events import Interaction

VALID = {"account_id": "123456", "location": "STORE-001", "interaction_type": "VISIT"}


def rules(**fields: object) -> set[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        Interaction.create(**{**VALID, **fields})
    return {(e.field, e.rule) for e in info.value.errors}


def test_valid_event_gets_an_id_and_defaults() -> None:
    event = Interaction.create(**VALID)
    assert len(event.event_id) == 32
    assert event.tenant == "default"
    assert event.note == ""
    assert Interaction.from_message(event.to_message()) == event


@pytest.mark.parametrize(("fields", "expected"), [
    ({"account_id": ""}, ("account_id", "required")),
    ({"account_id": "   "}, ("account_id", "blank")),
    ({"account_id": "1" * 61}, ("account_id", "max_length")),
    ({"account_id": 123}, ("account_id", "type")),
    ({"location": None}, ("location", "required")),
    ({"interaction_type": "x" * 101}, ("interaction_type", "max_length")),
    ({"note": "n" * 257}, ("note", "max_length")),
    ({"note": "bad\x00char"}, ("note", "xml_char")),
    ({"note": "bell\x07"}, ("note", "xml_char")),
    ({"note": "\ufffe"}, ("note", "xml_char")),
    ({"tenant": "a b"}, ("tenant", "pattern")),
    ({"event_id": "has space"}, ("event_id", "pattern")),
    ({"event_id": "x" * 129}, ("event_id", "max_length")),
    ({"occurred_at": "yesterday"}, ("occurred_at", "format")),
    ({"colour": "red"}, ("colour", "unknown")),
])
def test_each_rule_is_named(fields: dict[str, object], expected: tuple[str, str]) -> None:
    assert expected in rules(**fields)


def test_all_broken_rules_are_reported_at_once() -> None:
    found = rules(account_id="", location="", note="n" * 300)
    assert {("account_id", "required"), ("location", "required"), ("note", "max_length")} <= found


def test_message_names_field_and_rule() -> None:
    with pytest.raises(ValidationError, match="note: must be at most 256 characters"):
        Interaction.create(**VALID, note="n" * 257)


def test_limits_are_inclusive() -> None:
    event = Interaction.create(account_id="1" * 60, location="L", interaction_type="T",
                               note="n" * 256, event_id="e" * 128)
    assert len(event.note) == 256


def test_queue_message_without_id_is_invalid() -> None:
    with pytest.raises(ValidationError, match="event_id: is required"):
        Interaction.from_message(VALID)


def test_non_mapping_is_invalid() -> None:
    with pytest.raises(ValidationError, match="must be an object"):
        Interaction.from_message(["not", "a", "dict"])  # type: ignore[arg-type]
