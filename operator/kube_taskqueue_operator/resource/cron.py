"""Cron schedules as Kubernetes reads them, with a message that says what is wrong.

A scheduled task becomes a CronJob, and the API server parses its schedule with
robfig/cron's standard parser: five fields, or a descriptor (`@hourly`, `@every 90m`). This
module accepts exactly that, so a schedule `kube-taskqueue validate` passes is one the API
server takes (croniter, say, also takes seconds, `L` and `H`, which the API server refuses
when the operator applies the CronJob).
"""

from __future__ import annotations

import dataclasses
import re

FIELD_NAMES = "minute hour day-of-month month day-of-week"
EXAMPLE = "'0 * * * *'"
#: robfig/cron's descriptors, in the order the message lists them (aliases last).
DESCRIPTORS = ("@yearly", "@monthly", "@weekly", "@daily", "@hourly", "@annually", "@midnight")
#: Go's time.ParseDuration, which `@every` uses.
_GO_DURATION = re.compile(r"^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$")
#: Go's strconv.Atoi (an optional sign, ASCII digits).
_GO_INT = re.compile(r"^[-+]?[0-9]+$")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def name_range(self) -> str:
        words = list(self.names)
        return f"{words[0]}-{words[-1]}" if words else ""

    @property
    def bounds(self) -> str:
        numbers = f"{self.low}-{self.high}"
        return f"{numbers} or {self.name_range}" if self.names else numbers


_FIELDS = (
    _Field(name="minute", low=0, high=59),
    _Field(name="hour", low=0, high=23),
    _Field(name="day-of-month", low=1, high=31),
    _Field(name="month", low=1, high=12, names={m: i + 1 for i, m in enumerate(_MONTHS)}),
    _Field(name="day-of-week", low=0, high=6, names={d: i for i, d in enumerate(_DAYS)}),
)


def schedule_problem(schedule: str) -> str | None:
    """Why Kubernetes would refuse `schedule`, or None when it is a valid CronJob schedule."""
    if "TZ" in schedule:
        return (
            "a time zone (TZ= or CRON_TZ=) cannot be part of a Kubernetes CronJob schedule; "
            "schedules run in the time zone of the cluster's controller manager"
        )
    if schedule.startswith("@"):
        return _descriptor_problem(schedule)
    fields = schedule.split()
    if len(fields) == 6:
        return (
            "it has six fields, but Kubernetes CronJobs have no seconds field: use five "
            f"({FIELD_NAMES}), e.g. {EXAMPLE}"
        )
    if len(fields) != 5:
        count = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
        return f"it has {count}; expected five ({FIELD_NAMES}), e.g. {EXAMPLE}"
    for text, field in zip(fields, _FIELDS, strict=True):
        problem = _field_problem(text, field)
        if problem is not None:
            return problem
    return None


def _descriptor_problem(schedule: str) -> str | None:
    if schedule in DESCRIPTORS:
        return None
    if schedule.startswith("@every "):
        duration = schedule.removeprefix("@every ")
        if _GO_DURATION.match(duration):
            return None
        return f"'@every {duration}' needs a duration such as 90s, 15m or 1h30m"
    return (
        f"'{schedule}' is not a schedule Kubernetes knows: use five fields ({FIELD_NAMES}), "
        f"one of {', '.join(DESCRIPTORS[:5])}, or '@every <duration>'"
    )


def _field_problem(text: str, field: _Field) -> str | None:
    # Empty list items are ignored, as robfig/cron's strings.FieldsFunc does.
    for part in (item for item in text.split(",") if item):
        problem = _range_problem(part, field)
        if problem is not None:
            where = f"{field.name} field" if part == text else f"{field.name} field '{text}':"
            return f"{where} {problem}"
    return None


def _range_problem(expression: str, field: _Field) -> str | None:
    """One `a`, `a-b` or `*`, optionally `/step`, checked as robfig/cron's getRange does."""
    range_part, *steps = expression.split("/")
    if len(steps) > 1:
        return f"'{expression}' has more than one '/'"
    span = _span(range_part, field)
    if isinstance(span, str):
        return f"'{expression}' {span}"
    start, end = span
    if steps:
        if not _GO_INT.match(steps[0]):
            return f"'{expression}': the step '{steps[0]}' is not a number"
        if "-" not in range_part and range_part not in ("*", "?"):
            end = field.high  # `N/step` means from N to the maximum, every step
    if start < field.low or end > field.high:
        return f"'{expression}' is out of range {field.bounds}"
    if start > end:
        return f"'{expression}' starts after it ends"
    if steps and int(steps[0]) <= 0:
        return f"'{expression}': the step must be a positive number"
    return None


def _span(range_part: str, field: _Field) -> tuple[int, int] | str:
    """(start, end) of `*`, `a` or `a-b`, or what is wrong with it."""
    low_high = range_part.split("-")
    if low_high[0] in ("*", "?"):
        return field.low, field.high
    if len(low_high) > 2:
        return "has more than one '-'"
    values = [_value(item, field) for item in low_high]
    if values[0] is None or values[-1] is None:
        names = f" or a name ({field.name_range})" if field.names else ""
        return f"is not a number{names}, a range such as 1-5, or *"
    return values[0], values[-1]


def _value(text: str, field: _Field) -> int | None:
    if text.lower() in field.names:
        return field.names[text.lower()]
    if _GO_INT.match(text):
        return int(text)
    return None
