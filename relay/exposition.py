"""Whole numbers in Prometheus text written as whole numbers.

prometheus_client (like Prometheus' Go client) writes 12 as ``12.0`` and a value of a million
or more as ``1.234567e+06``: exact, but not what an operator reading ``/metrics`` by eye or a
line-based tool expects of a counter. Such values are rewritten digit for digit (``12``,
``1234567``), never through a float. One place, used by the API and by each worker.
"""

from __future__ import annotations

import re

# A sample line's value (our collectors write no timestamps or exemplars, so it ends the line):
# ``12.0``, or Go's exponent form ``1.234567e+06`` / ``1e+06``.
_VALUE = re.compile(rb"^([^#\n][^\n]* )(?:(\d+)\.0|(\d)(?:\.(\d+))?e\+(\d+))$", re.MULTILINE)


def plain_integers(body: bytes) -> bytes:
    """``12.0`` -> ``12``, ``1.234567e+06`` -> ``1234567``, ``1e+06`` -> ``1000000``; a value
    with a fractional part is left as it is."""
    return _VALUE.sub(_rewrite, body)


def _rewrite(match: re.Match[bytes]) -> bytes:
    head, whole, lead, fraction, exponent = match.groups()
    if whole is not None:
        return head + whole
    fraction = fraction or b""
    places = int(exponent)
    if len(fraction) > places:  # not a whole number
        return match.group(0)
    return head + lead + fraction + b"0" * (places - len(fraction))
