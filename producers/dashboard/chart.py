"""The overview's rate chart as numbers for a server-rendered SVG (no script, no CDN).

Input is ``relay.overview.rates``: one dict per minute with a count per outcome. Delivered is
one line; failed is every other outcome of an attempt (retry, dead letter, rejected, systemic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, PAD = 600, 160, 24


@dataclass(frozen=True)
class Chart:
    delivered: str  # SVG polyline points
    failed: str
    peak: int
    total_delivered: int
    total_failed: int
    first: str  # label of the oldest minute (HH:MM UTC)
    last: str
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def _failed(minute: dict[str, Any]) -> int:
    return sum(int(v) for k, v in minute.items() if k not in ("minute", "delivered"))


def chart(minutes: list[dict[str, Any]]) -> Chart:
    delivered = [int(m.get("delivered", 0)) for m in minutes]
    failed = [_failed(m) for m in minutes]
    peak = max([1, *delivered, *failed])
    step = (WIDTH - 2 * PAD) / max(1, len(minutes) - 1)

    def points(values: list[int]) -> str:
        return " ".join(f"{PAD + i * step:.1f},{HEIGHT - PAD - v * (HEIGHT - 2 * PAD) / peak:.1f}"
                        for i, v in enumerate(values))

    def label(m: dict[str, Any]) -> str:
        return str(m.get("minute", ""))[11:16]

    return Chart(points(delivered), points(failed), peak, sum(delivered), sum(failed),
                 label(minutes[0]) if minutes else "", label(minutes[-1]) if minutes else "")
