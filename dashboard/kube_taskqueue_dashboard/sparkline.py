"""Queue depth over the last minutes, as a small inline SVG (no JavaScript, no chart
library)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

#: Points kept per queue: at the overview's 5 s refresh, about ten minutes.
HISTORY = 120


class DepthHistory:
    """Depth samples per queue URL, taken whenever the overview is rendered."""

    def __init__(self, size: int = HISTORY) -> None:
        self._size = size
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def add(self, url: str, depth: int, *, at: float | None = None) -> None:
        samples = self._samples.setdefault(url, deque(maxlen=self._size))
        samples.append((time.time() if at is None else at, depth))

    def depths(self, url: str) -> list[int]:
        return [depth for _, depth in self._samples.get(url, ())]


def svg(values: Sequence[int], *, width: int = 120, height: int = 24) -> str:
    """A polyline of `values` scaled to the box; a flat line when there is one value."""
    if not values:
        return ""
    if len(values) == 1:  # one sample: a flat line, not a lone invisible point
        values = [values[0], values[0]]
    top = max(*values, 1)
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{index * step:.1f},{height - 2 - (value / top) * (height - 4):.1f}"
        for index, value in enumerate(values)
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="depth, last {len(values)} samples, max {top}">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/>'
        "</svg>"
    )
