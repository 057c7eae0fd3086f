"""Whole numbers in the metrics text are written digit for digit, whatever their size, and
nothing else on the page changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.utils import floatToGoString

from relay.exposition import plain_integers


def go_string(value: float) -> str:
    """How prometheus_client writes a sample's value."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


@given(st.integers(min_value=0, max_value=2**53))
def test_a_whole_number_reads_as_itself(n: int) -> None:
    line = f'relay_calls_total{{scope="pool"}} {go_string(float(n))}\n'.encode()
    assert plain_integers(line) == f'relay_calls_total{{scope="pool"}} {n}\n'.encode()


@given(st.floats(min_value=1e6, max_value=1e15).filter(lambda v: not v.is_integer()))
def test_a_fraction_is_left_alone(v: float) -> None:
    line = f"relay_latency_seconds_sum {go_string(v)}\n".encode()
    assert plain_integers(line) == line


def test_comments_are_left_alone() -> None:
    text = b"# HELP relay_x 1.5e+06 of them\n# TYPE relay_x counter\nrelay_x 1e+06\n"
    assert plain_integers(text) == b"# HELP relay_x 1.5e+06 of them\n# TYPE relay_x counter\n" \
        b"relay_x 1000000\n"
