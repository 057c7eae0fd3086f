"""Redis URLs for every topology, and masking of every password form."""

from __future__ import annotations

import pytest

from relay.connect import celery_broker, parse
from relay.errors import ConfigError
from relay.settings import mask_url


@pytest.mark.parametrize(("url", "kind", "hosts", "service", "db"), [
    ("redis://127.0.0.1:6379/0", "single", [("127.0.0.1", 6379)], "", 0),
    ("rediss://:pw@h/5", "single", [("h", 6379)], "", 5),
    ("redis+sentinel://a:1,b/relay/3", "sentinel", [("a", 1), ("b", 26379)], "relay", 3),
    ("redis+sentinel://:pw@a:1/relay", "sentinel", [("a", 1)], "relay", 0),
    ("sentinel://:pw@h1:1;sentinel://h2:2/2?master_name=m", "sentinel",
     [("h1", 1), ("h2", 2)], "m", 2),
    ("redis+cluster://a:7000,b:7001", "cluster", [("a", 7000), ("b", 7001)], "", 0),
])
def test_every_topology_parses(url: str, kind: str, hosts: list[tuple[str, int]], service: str,
                               db: int) -> None:
    t = parse(url)
    assert (t.kind, t.hosts, t.service, t.db) == (kind, hosts, service, db)
    assert "pw" not in repr(t)


@pytest.mark.parametrize(("url", "message"), [
    ("localhost:6379", "must start with one of"),
    ("http://h/0", "must start with one of"),
    ("redis+sentinel://a:1", "needs the service name"),
    ("sentinel://a:1/0", "master_name"),
    ("redis+cluster://a:1/3", "only database 0"),
    ("redis+sentinel://a:x/relay", "bad host:port"),
    ("redis://127.0.0.1:notaport/9", "Port could not be cast"),
    ("redis://127.0.0.1:70000/9", "Port out of range"),
    ("redis://[::1/9", "Invalid IPv6 URL"),
    ("redis://127.0.0.1:6379/notadb", "database must be a number"),
    ("redis://127.0.0.1:6379/1/2", "only the database number"),
])
def test_bad_urls_say_what_a_good_one_looks_like(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(url)


@pytest.mark.parametrize(("url", "secret"), [
    ("redis://:hunter2@h:6379/0", "hunter2"),
    ("redis://user:p@ss:w@rd@h:1/0", "p@ss:w@rd"),
    ("redis://h:1/0?password=abc123&db=1", "abc123"),
    ("sentinel://:pw1@h1:1;sentinel://:pw1@h2:2/0?master_name=x", "pw1"),
    ("redis+sentinel://:s3cr3t@a:1,b:2/svc/0", "s3cr3t"),
    ("rediss://u:%40encoded@h:1/0", "%40encoded"),
    # Unencoded characters a URL parser would stop at: the whole password is still hidden.
    ("redis://u:p/ss@h:1/0", "p/ss"),
    ("redis://:pa?ss@h:1/0", "pa?ss"),
    ("redis://:pa#ss@h:1/0", "pa#ss"),
    ("redis://:pa;ss@h:1/0", "pa;ss"),
    ("redis://:pa@ss@h:1/0?password=qu@ery&db=1", "qu@ery"),
    ("redis://h:1/0?db=1&Password=abc", "abc"),
    ("unix://:s3cret@/tmp/redis.sock?db=0", "s3cret"),
])
def test_every_password_form_is_masked(url: str, secret: str) -> None:
    masked = mask_url(url)
    assert secret not in masked and "***" in masked


def test_unknown_url_errors_never_show_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse("redis:/:hunter2@h")  # one slash missing
    assert "hunter2" not in str(info.value)


def test_celery_follows_the_same_sentinels() -> None:
    url, options = celery_broker("redis+sentinel://:pw@a:1,b:2/relay/4")
    assert url == "sentinel://:pw@a:1;sentinel://:pw@b:2/4"
    assert options["master_name"] == "relay"
    with pytest.raises(ConfigError, match="RELAY_BROKER_URL"):
        celery_broker("redis+cluster://a:1")
    assert celery_broker("redis+cluster://a:1", "redis://b:1/0") == ("redis://b:1/0", {})
