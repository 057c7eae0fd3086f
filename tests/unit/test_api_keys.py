"""API key configuration: bare keys, tenant-bound keys and the errors for broken entries."""

from __future__ import annotations

import re

import pytest

from producers.api import ApiSettings
from producers.auth import ApiKey, bearer, match, parse_keys
from relay.errors import ConfigError


def test_keys_may_be_bound_to_tenants() -> None:
    keys = parse_keys(" k1:acme+globex , k2,,k3:acme ", "RELAY_API_KEYS")
    assert keys == (ApiKey("k1", frozenset({"acme", "globex"})), ApiKey("k2"),
                    ApiKey("k3", frozenset({"acme"})))
    assert keys[0].allows("globex") and not keys[0].allows("default")
    assert keys[1].allows("anything")
    assert "k1" not in repr(keys)


@pytest.mark.parametrize(("raw", "message"), [
    ("k1:", "RELAY_API_KEYS: tenants after ':' must be names joined by '+'"),
    ("k1:acme+", "RELAY_API_KEYS: tenants after ':' must be names"),
    ("k1:ac me", "RELAY_API_KEYS: tenants after ':' must be names"),
    (":acme", "RELAY_API_KEYS: an entry has an empty key before ':'"),
])
def test_broken_entries_are_one_line_errors(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        ApiSettings.from_env({"RELAY_API_KEYS": raw})


def test_admin_keys_cannot_be_bound_and_timeouts_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"^RELAY_ADMIN_KEYS: keys cannot be bound"):
        ApiSettings.from_env({"RELAY_API_KEYS": "k", "RELAY_ADMIN_KEYS": "a:acme"})
    for value in ("0", "-1", "soon"):
        with pytest.raises(ConfigError, match=r"^RELAY_API_BODY_TIMEOUT must be a positive"):
            ApiSettings.from_env({"RELAY_API_KEYS": "k", "RELAY_API_BODY_TIMEOUT": value})
    settings = ApiSettings.from_env({"RELAY_API_KEYS": "k", "RELAY_API_HEADER_TIMEOUT": "3"})
    assert (settings.header_timeout, settings.body_timeout) == (3.0, 30.0)


def test_matching_takes_a_bearer_token_and_finds_its_key() -> None:
    keys = parse_keys("k1:acme,k2", "RELAY_API_KEYS")
    assert match(bearer("Bearer k1"), keys) == keys[0]
    assert match(bearer("bearer k2"), keys) == keys[1]
    for header in ("", "Bearer ", "Basic k1", "Bearer k1x", "k1"):
        assert match(bearer(header), keys) is None
