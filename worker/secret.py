"""A string wrapper that cannot leak by accident: ``str``/``repr``/``format`` print a mask."""

from __future__ import annotations

MASK = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value; call it only where it goes on the wire."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK})" if self._value else "Secret('')"

    __str__ = __repr__

    def scrub(self, text: str) -> str:
        """Replace every occurrence of the secret in ``text`` (e.g. a fault echoing our body)."""
        return text.replace(self._value, MASK) if self._value else text
