"""The processor's guarantees under crashes, outages and bad input (CI sizes; `make soak`
runs the same scenarios large). Nothing is ever lost; duplicates only where a kill forces them."""

from __future__ import annotations

import pytest
import scenarios


@pytest.fixture
def bench(sqs_endpoint, records, spawn):
    return scenarios.Bench(sqs_endpoint, records, spawn)


def test_sigkill_at_random_points_loses_nothing(bench, report):
    figures = scenarios.kill_restart(bench, messages=150, kills=3)
    report(figures.line())
    assert figures.lost == 0
    assert figures.processed == 150
    assert figures.details["unexplained duplicates"] == 0
    assert figures.details["dead-lettered"] == 0


def test_sigterm_finishes_running_tasks_and_hands_over_the_rest(bench, report):
    figures = scenarios.sigterm_handoff(bench)
    report(figures.line())
    assert figures.lost == 0 and figures.duplicates == 0
    # The 60 s visibility window never had to run out: the rest was taken at once.
    assert figures.details["taken over after (s)"] < 15


def test_an_sqs_outage_is_survived(bench, moto_port, report):
    figures = scenarios.outage(bench, sqs_port=moto_port, messages=40, seconds=12)
    report(figures.line())
    assert figures.lost == 0 and figures.duplicates == 0


def test_poison_messages_end_in_the_dead_letter_queue(bench, report):
    figures = scenarios.poison(bench)
    report(figures.line())
    assert figures.lost == 0
    assert figures.details["dead-lettered"] == 5
    assert figures.duplicates == 0


def test_two_processors_never_process_a_message_twice(bench, report):
    figures = scenarios.two_processors(bench, messages=80)
    report(figures.line())
    assert figures.lost == 0 and figures.duplicates == 0
    assert figures.details["started twice"] == 0
    assert "/0" not in figures.details["share"] and not figures.details["share"].startswith("0/")


def test_raising_and_slow_handlers(bench, report):
    figures = scenarios.failing_handlers(bench, messages=16)
    report(figures.line())
    assert figures.lost == 0 and figures.duplicates == 0
    assert figures.details["slow tasks started twice"] == 0
    assert figures.details["failed attempts retried"] == 8
    assert figures.details["dead-lettered"] == 0
