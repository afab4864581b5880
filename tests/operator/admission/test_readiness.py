"""After a (re)start the operator admits nothing until it knows every TaskQueue's claims,
and `/readyz` says when it can admit correctly (the chart's readiness probe)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from harness import wait_for
from operator_harness import condition, get


def _status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def test_readyz_fails_until_the_claim_index_is_complete_then_a_clash_is_refused(
    control_plane, start_operator, namespace, make_manifest
):
    owner = make_manifest("owner")
    control_plane.kubectl_run("create", "-f", "-", input=json.dumps(owner))
    # The index's first list is held back 6 s: a start-up with many TaskQueues.
    process = start_operator(wait=False, claims_initial_delay=6)
    wait_for(lambda: _status(process.health_port, "/readyz") == 503, timeout=30)
    # Not ready is not served: kopf has not registered (or started) its webhook meanwhile.
    time.sleep(2)
    assert _status(process.health_port, "/readyz") == 503
    assert not process._webhook_registered()

    wait_for(lambda: _status(process.health_port, "/readyz") == 200, timeout=30)
    process.wait_ready()
    clash = control_plane.kubectl_run(
        "create", "-f", "-", input=json.dumps(make_manifest("clash")), check=False
    )
    assert clash.returncode != 0
    assert f"is also declared by TaskQueue {namespace}/owner" in clash.stderr
    owner_invalid = wait_for(
        lambda: condition(get(control_plane, "tq", "owner", namespace), "Invalid"), timeout=60
    )
    assert owner_invalid["status"] == "False"
