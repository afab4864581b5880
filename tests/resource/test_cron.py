"""Cron schedules: validate accepts exactly what the API server takes in a CronJob, and says
which field is wrong."""

from __future__ import annotations

import json

import pytest
from kube_taskqueue_operator.resource.cron import schedule_problem

#: Accepted and refused schedules, with the edge cases of robfig/cron (the API server's
#: parser) that other cron libraries read differently.
SCHEDULES = [
    # accepted
    "0 * * * *",
    "*/5 * * * *",
    "0 0 ? * *",
    "* * * * ?",
    "0 0 1 jan mon",
    "0 0 1 JAN-MAR MON-FRI",
    "0 0 * * sun-sat",
    "0 0 * * MON,wed",
    "5/15 * * * *",
    "*/60 * * * *",
    "0/61 * * * *",
    "0 0 1-31/2 * *",
    "0,30 * * * *",
    "*/5,7 * * * *",
    ",5 * * * *",
    "+5 * * * *",
    "00 00 * * *",
    "0-0 * * * *",
    "  0 * * * * ",
    "0 0 31 2 *",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    "@every 1h30m",
    "@every 1.5h",
    "@every 0s",
    # refused
    "61 * * * *",
    "0 0 * * * *",
    "0 0 * * * * *",
    "whenever",
    "H * * * *",
    "0 0 L * *",
    "0 0 1W * *",
    "0 0 * * 1#2",
    "0 0 * * 5L",
    "0 0 * * 7",
    "0 0 * * 07",
    "0 0 * * 0-7",
    "0 0 * * MONDAY",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 * 13 *",
    "1-60 * * * *",
    "10-5 * * * *",
    "*/0 * * * *",
    "*/-1 * * * *",
    "*/a * * * *",
    "*/1-5 * * * *",
    "1-2-3 * * * *",
    "1/2/3 * * * *",
    "-1 * * * *",
    "5- * * * *",
    "a * * * *",
    "0,61 * * * *",
    "TZ=UTC 0 * * * *",
    "CRON_TZ=UTC 0 * * * *",
    "@reboot",
    "@Hourly",
    "@every 1x",
    "@every 1",
]


def test_validate_agrees_with_the_api_server_on_every_schedule(control_plane, namespace):
    disagreements = []
    for schedule in SCHEDULES:
        cronjob = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "probe", "namespace": namespace},
            "spec": {
                "schedule": schedule,
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [{"name": "c", "image": "registry.example/c"}],
                            }
                        }
                    }
                },
            },
        }
        result = control_plane.kubectl_run(
            "apply", "--dry-run=server", "-f", "-", input=json.dumps(cronjob), check=False
        )
        server_accepts = result.returncode == 0
        problem = schedule_problem(schedule)
        if server_accepts != (problem is None):
            disagreements.append((schedule, result.stderr.strip() or "accepted", problem))
    assert disagreements == []


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("61 * * * *", "minute field '61' is out of range 0-59"),
        ("0 0 * 13 *", "month field '13' is out of range 1-12 or jan-dec"),
        (
            "0 0 * * MONDAY",
            "day-of-week field 'MONDAY' is not a number or a name (sun-sat), a range such as "
            "1-5, or *",
        ),
        ("1/2/3 * * * *", "minute field '1/2/3' has more than one '/'"),
        ("@every 1x", "'@every 1x' needs a duration such as 90s, 15m or 1h30m"),
        (
            "@reboot",
            "'@reboot' is not a schedule Kubernetes knows: use five fields (minute hour "
            "day-of-month month day-of-week), one of @yearly, @monthly, @weekly, @daily, "
            "@hourly, or '@every <duration>'",
        ),
    ],
)
def test_the_message_names_the_field_and_its_range(schedule, problem):
    assert schedule_problem(schedule) == problem
