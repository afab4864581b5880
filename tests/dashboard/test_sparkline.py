"""The depth sparkline: scaled into its box, the newest sample last, bounded history."""

from __future__ import annotations

import re

from kube_taskqueue_dashboard.sparkline import DepthHistory, svg


def points(markup: str) -> list[tuple[float, float]]:
    found = re.search(r'points="([^"]+)"', markup)
    assert found
    return [tuple(map(float, p.split(","))) for p in found.group(1).split()]  # type: ignore[misc]


def test_values_are_scaled_into_the_box():
    drawn = points(svg([0, 5, 10], width=100, height=24))
    assert [x for x, _ in drawn] == [0.0, 50.0, 100.0]
    assert drawn[0][1] == 22.0 and drawn[2][1] == 2.0  # empty at the bottom, peak at the top
    assert 'aria-label="depth, last 3 samples, max 10"' in svg([0, 5, 10])


def test_one_sample_is_a_flat_line_and_none_draws_nothing():
    assert len(points(svg([4]))) == 2
    assert svg([]) == ""


def test_history_keeps_the_newest_samples_per_queue():
    history = DepthHistory(size=3)
    for depth in range(5):
        history.add("q1", depth, at=float(depth))
    history.add("q2", 9)
    assert history.depths("q1") == [2, 3, 4]
    assert history.depths("q2") == [9]
    assert history.depths("unknown") == []
