"""Event identity: keys built from (tenant, event_id) never collide, whatever the id holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relay.keys import Keys, member, split

tenants = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True)
event_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                    max_size=30)
KEYS = Keys()


@given(tenants, event_ids)
def test_a_member_splits_back(tenant: str, event_id: str) -> None:
    assert split(member(tenant, event_id)) == (tenant, event_id)
    assert split(member(tenant, event_id).encode()) == (tenant, event_id)


@given(tenants, event_ids, tenants, event_ids)
def test_distinct_events_have_distinct_keys(t1: str, e1: str, t2: str, e2: str) -> None:
    if (t1, e1) == (t2, e2):
        return
    first = {KEYS.record(t1, e1), KEYS.history(t1, e1)}
    second = {KEYS.record(t2, e2), KEYS.history(t2, e2)}
    assert not first & second
    assert KEYS.record(t1, e1) != KEYS.history(t1, e1)


def test_every_key_shares_one_hash_tag() -> None:
    names = [KEYS.due, KEYS.held, KEYS.dlq, KEYS.stats, KEYS.seq, KEYS.circuits, KEYS.parked,
             KEYS.record("acme", "x"), KEYS.history("acme", "x"), KEYS.park("acme"),
             KEYS.fails("acme"), KEYS.rate("acme")]
    assert {n[n.index("{"):n.index("}") + 1] for n in names} == {"{main}"}
    assert all(n.startswith("relay:") for n in names)
    assert Keys("blue").due == "relay:{blue}:due"
