"""The bulk importer's reading and parsing, pure: bytes in, rows or per-line errors out."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.bulk import (
    LINE_MAX,
    PREFIX_MAX,
    Report,
    decode,
    derive_event_id,
    import_file,
    parse_csv,
    parse_json,
    read_lines,
    rows,
    safe_prefix,
)
from relay.errors import ValidationError
from relay.events import EVENT_ID_MAX, Interaction

HEADER = b"account_id,location,type,note\n"
EVENT = {"account_id": "123456", "location": "STORE-001", "interaction_type": "VISIT"}
DEAD_LETTER = {"code": 503, "signal": "code:503", "reason": "account locked", "attempts": 1,
               "dead_at": 1764237600.0}


def csv_line(i: int) -> bytes:
    return f"{100000 + i},STORE-{i:03d},VISIT,note {i}\n".encode()


def rule(result: object) -> str:
    assert isinstance(result, ValidationError), result
    return result.errors[0].rule


def read(data: bytes, json_lines: bool = False, limit: int = LINE_MAX
         ) -> list[tuple[int, Any, str]]:
    return list(rows(io.BytesIO(data), json_lines, limit))


def collect(path: Path, **options: Any) -> tuple[Report, list[Interaction]]:
    events: list[Interaction] = []

    def enqueue(event: Interaction) -> bool:
        events.append(event)
        return True

    return import_file(path, enqueue, **options), events


# Reading lines


def test_lines_are_numbered_and_lose_only_their_endings() -> None:
    data = b"a\nb\r\n\nlast without ending"
    assert list(read_lines(io.BytesIO(data))) == [
        (1, b"a"), (2, b"b"), (3, b""), (4, b"last without ending")]


@pytest.mark.parametrize(("length", "ending"), [(16, b"\n"), (16, b""), (17, b"\n"), (17, b""),
                                                (100, b"\n"), (100, b"")])
def test_a_line_over_the_limit_is_refused_and_the_next_is_read(length: int,
                                                               ending: bytes) -> None:
    data = b"x" * length + ending + (b"next\n" if ending else b"")
    got = list(read_lines(io.BytesIO(data), limit=16))
    if length <= 16:
        assert got[0] == (1, b"x" * length)
    else:
        assert rule(got[0][1]) == "too_long"
        assert f"({length:,} bytes; the limit is 16)" in str(got[0][1])
    if ending:
        assert got[1] == (2, b"next")
    assert len(got) == (2 if ending else 1)


class CountingReader(io.BytesIO):
    """Remembers the largest read asked for: a long line is never held whole."""

    largest = 0

    def readline(self, size: int | None = -1, /) -> bytes:
        assert size is not None and size > 0
        self.largest = max(self.largest, size)
        return super().readline(size)


def test_a_huge_line_is_skipped_in_bounded_reads() -> None:
    binary = CountingReader(b"x" * (5 * LINE_MAX) + b"\nnext\n")
    got = list(read_lines(binary))
    assert rule(got[0][1]) == "too_long" and got[1] == (2, b"next")
    assert binary.largest <= LINE_MAX + 1


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400), st.integers(1, 40))
def test_any_bytes_make_numbered_lines_within_the_limit(data: bytes, limit: int) -> None:
    got = list(read_lines(io.BytesIO(data), limit))
    assert [n for n, _ in got] == list(range(1, len(got) + 1))
    assert len(got) == data.count(b"\n") + (not data.endswith(b"\n") and bool(data))
    for _, line in got:
        assert isinstance(line, ValidationError) or (len(line) <= limit and b"\n" not in line)


# Decoding


def test_decode_allows_a_bom_on_line_one_only() -> None:
    assert decode(1, b"\xef\xbb\xbfaccount_id") == "account_id"
    assert decode(2, b"\xef\xbb\xbfx") == "\ufeffx"  # later lines keep it: the contract judges


def test_decode_names_nul_bytes_and_bad_utf8_with_their_position() -> None:
    nul = decode(3, "a\0b".encode("utf-16-le"))
    assert rule(nul) == "nul" and "at byte 2" in str(nul) and "UTF-16" in str(nul)
    bad = decode(3, b"1,S,V,caf\xe9")
    assert rule(bad) == "encoding" and "byte 0xe9 at byte 10" in str(bad)


# Parsing one line


@pytest.mark.parametrize(("text", "values"), [
    ("a,b,c", ["a", "b", "c"]),
    ('a,"b, with comma",c', ["a", "b, with comma", "c"]),
    ('a,"say ""hi""",c', ["a", 'say "hi"', "c"]),
    ('a,b"c,d', ["a", 'b"c', "d"]),  # a quote inside an unquoted field is a character
    ('a,"x\rb"', ["a", "x\rb"]),
    ("a,,", ["a", "", ""]),
])
def test_csv_lines_that_parse(text: str, values: list[str]) -> None:
    assert parse_csv(text) == values


@pytest.mark.parametrize(("text", "expected"), [
    ('a,"unterminated', "quote"),
    ('"', "quote"),
    ('a,"ends in a newline inside', "quote"),
    ("a\rb,c", "csv"),
])
def test_csv_lines_that_do_not(text: str, expected: str) -> None:
    assert rule(parse_csv(text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("not json", "json"),
    ('{"account_id": "1"', "json"),
    ('["a list"]', "type"),
    ("null", "type"),
    ("[" * 5000 + "]" * 5000, "depth"),
    ("1" * 5000, "json"),  # past Python's int-string limit: a ValueError too
])
def test_json_lines_that_do_not_parse(text: str, expected: str) -> None:
    assert rule(parse_json(text)) == expected


def test_json_line_drops_only_the_dead_letter_key() -> None:
    line = json.dumps({**EVENT, "event_id": "e-1", "dead_letter": DEAD_LETTER, "extra": 1})
    assert parse_json(line) == {**EVENT, "event_id": "e-1", "extra": 1}


# Rows of a file


def test_rows_after_an_unterminated_quote_are_rows_of_their_own() -> None:
    data = HEADER + csv_line(1) + b'2,S,V,"never closed\n' + b"".join(
        csv_line(i) for i in range(3, 2000))
    got = read(data)
    assert rule(got[1][1]) == "quote" and got[1][0] == 3
    good = [(n, row) for n, row, _ in got if isinstance(row, dict)]
    assert len(good) == 1 + 1997
    assert good[-1] == (2000, {"account_id": "101999", "location": "STORE-1999",
                               "interaction_type": "VISIT", "note": "note 1999"})


def test_a_quoted_field_spanning_lines_is_refused_line_by_line() -> None:
    data = HEADER + b'1,S,V,"first line\nsecond line",x\n' + csv_line(3)
    got = read(data)
    assert [(n, rule(r) if isinstance(r, ValidationError) else "ok") for n, r, _ in got] == [
        (2, "quote"), (3, "columns"), (4, "ok")]


def test_every_kind_of_broken_line_costs_only_itself() -> None:
    data = (b"\xef\xbb\xbf" + HEADER + csv_line(2)
            + b"1,S,V,\xff\n"                       # 3: not UTF-8
            + b"1,S,\0V,x\n"                        # 4: NUL
            + b"1,S,V," + b"n" * 200 + b"\n"        # 5: too long (limit 100 here)
            + b"1,S,V\n"                            # 6: too few columns
            + b"1,S,V,x,y\n"                        # 7: too many
            + b'1,S,V,"open\n'                      # 8: unterminated quote
            + b"\n ,  , ,\n\n"                      # 9-11: blank, skipped
            + csv_line(12))
    got = read(data, limit=100)
    assert [(n, rule(r) if isinstance(r, ValidationError) else "ok") for n, r, _ in got] == [
        (2, "ok"), (3, "encoding"), (4, "nul"), (5, "too_long"), (6, "columns"),
        (7, "columns"), (8, "quote"), (12, "ok")]


@pytest.mark.parametrize("header", [b'account_id,"location\n', b"acc\xffount,location\n",
                                    b"account,account_id,location\n"])
def test_an_unusable_header_rejects_every_line(header: bytes) -> None:
    got = read(header + csv_line(2) + csv_line(3))
    assert [n for n, _, _ in got] == [1, 2, 3]
    assert all(isinstance(r, ValidationError) for _, r, _ in got)
    assert "the header (line 1) is unusable" in str(got[1][1])


def test_the_header_is_the_first_non_blank_line() -> None:
    got = read(b"\n\n" + HEADER + csv_line(4))
    assert [(n, r["account_id"]) for n, r, _ in got] == [(4, "100004")]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from([b'"', b",", b"\n", b"\r", b"\0", b"\xff", b"\xef\xbb\xbf", b"{",
                              b"}", b"[", b"a", b" ", b"\xc3", b'{"account_id": "1"}',
                              HEADER, csv_line(1), b"dead_letter"]),
             max_size=60).map(b"".join)),
    st.booleans(), st.sampled_from([8, 64, LINE_MAX]))
def test_random_bytes_never_raise_out_of_the_reader(data: bytes, json_lines: bool,
                                                    limit: int) -> None:
    got = read(data, json_lines, limit)
    numbers = [n for n, _, _ in got]
    assert numbers == sorted(set(numbers))
    assert all(1 <= n <= data.count(b"\n") + 1 for n in numbers)
    for _, row, text in got:
        assert isinstance(row, ValidationError) or (isinstance(row, dict) and text.strip())


# Ids


def test_derived_id_is_readable_and_keyed_by_prefix_line_and_content() -> None:
    event_id = derive_event_id("visits 2026-11-27.csv", 42, "1,S,V,x")
    assert re.fullmatch(r"visits_2026-11-27\.csv:42:[0-9a-f]{16}", event_id)
    others = {derive_event_id("other.csv", 42, "1,S,V,x"), derive_event_id(
        "visits 2026-11-27.csv", 43, "1,S,V,x"), derive_event_id(
        "visits 2026-11-27.csv", 42, "1,S,V,y"), derive_event_id(
        "visits_2026-11-27.csv", 42, "1,S,V,x")}  # same look once sanitized, still its own id
    assert event_id not in others and len(others) == 4
    assert derive_event_id("visits 2026-11-27.csv", 42, "1,S,V,x") == event_id


@pytest.mark.parametrize(("text", "safe"), [("visits.csv", "visits.csv"),
                                            ("a b/c:d", "a_b_c_d"), ("é", "_"), ("", "import"),
                                            ("x" * 100, "x" * PREFIX_MAX)])
def test_prefix_is_sanitized(text: str, safe: str) -> None:
    assert safe_prefix(text) == safe


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(1, 10**12), st.text())
def test_any_derived_id_satisfies_the_event_contract(prefix: str, number: int,
                                                     content: str) -> None:
    event_id = derive_event_id(prefix, number, content)
    assert len(event_id) <= EVENT_ID_MAX
    assert Interaction.from_message({**EVENT, "event_id": event_id}).event_id == event_id


def test_reimporting_a_file_gives_the_same_ids_and_another_file_new_ones(tmp_path: Path) -> None:
    data = HEADER + b"".join(csv_line(i) for i in range(5))
    (tmp_path / "monday.csv").write_bytes(data)
    (tmp_path / "tuesday.csv").write_bytes(data)
    _, first = collect(tmp_path / "monday.csv")
    _, again = collect(tmp_path / "monday.csv")
    _, tuesday = collect(tmp_path / "tuesday.csv")
    _, as_monday = collect(tmp_path / "tuesday.csv", id_prefix="monday.csv")
    ids = [e.event_id for e in first]
    assert ids == [e.event_id for e in again] == [e.event_id for e in as_monday]
    assert all(i.startswith("monday.csv:") for i in ids) and len(set(ids)) == 5
    assert not set(ids) & {e.event_id for e in tuesday}


def test_a_given_event_id_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_bytes(b"id,account,location,type\nmine-1,1,S,V\n,2,S,V\n")
    _, events = collect(path)
    assert events[0].event_id == "mine-1" and events[1].event_id.startswith("ids.csv:3:")


# Whole files


def test_a_dead_letter_export_line_imports(tmp_path: Path) -> None:
    path = tmp_path / "dlq.jsonl"
    exported = {**EVENT, "tenant": "acme", "event_id": "e-1", "note": "n",
                "occurred_at": "2026-11-27T10:00:00+00:00", "dead_letter": DEAD_LETTER}
    path.write_text(json.dumps(exported) + "\n"
                    + json.dumps({**exported, "event_id": "e-2", "extra": 1}) + "\n")
    report, events = collect(path)
    assert (report.lines, report.enqueued, report.rejected) == (2, 1, 1)
    assert events[0].to_message() == {k: v for k, v in exported.items() if k != "dead_letter"}
    assert report.first_rejections[0][0] == 2 and "extra" in report.first_rejections[0][1]


def test_the_report_counts_every_line_and_calls_back_per_rejection(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(HEADER + csv_line(2) + b'1,S,V,"open\n' + b",S,V,x\n" + csv_line(5))
    told: list[int] = []
    report = import_file(path, lambda _: False, reject=lambda n, _: told.append(n))
    assert (report.lines, report.enqueued, report.duplicates, report.rejected) == (4, 0, 2, 2)
    assert told == [n for n, _ in report.first_rejections] == [3, 4]


def test_a_report_passed_in_keeps_the_counts_of_a_cut_short_import(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes(HEADER + b"".join(csv_line(i) for i in range(10)))
    report = Report()

    def enqueue(event: Interaction) -> bool:
        if report.enqueued == 3:
            raise KeyboardInterrupt
        return True

    with pytest.raises(KeyboardInterrupt):
        import_file(path, enqueue, report=report)
    assert (report.lines, report.enqueued) == (3, 3)  # the line cut short is not counted
