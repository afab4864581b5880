"""`kube-taskqueue dev` (= `make dev`) as a new user meets it: the printed command works when
pasted into a fresh terminal, the getting-started page's example runs, two runs do not clash, a
failure is one line and leaves no temporary file, and the output says what happened."""

from __future__ import annotations

import itertools
import re
import signal
import socket
import time

import pytest
from harness import wait_for

MESSAGE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def occupied_port() -> socket.socket:
    """A listening socket on a loopback port (the caller closes it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("app", ["bundled", "readme", "fifo"])
def test_the_printed_enqueue_command_works_pasted_into_a_fresh_terminal(
    app, start_dev, paste, readme_app, fifo_app
):
    config = {"bundled": None, "readme": readme_app, "fifo": fifo_app}[app]
    args = ["--demo", "0"] + (["--config", str(config)] if config else [])
    dev = start_dev(*args, cwd=config.parent if config else None)
    dev.wait_banner()
    command = dev.command()

    result = paste(command)

    assert result.returncode == 0, f"{command}\n{result.stderr}"
    message_id = result.stdout.strip()
    assert MESSAGE_ID.match(message_id), result.stdout
    # The example task (docs/getting-started/local.md) delays its messages by 5 s; the wait is a bound, not a measurement.
    done = re.compile(rf"task done task=\S+ message={message_id} ")
    wait_for(lambda: done.search(dev.stderr), timeout=60)
    dev.signal(signal.SIGINT)
    assert dev.wait() == 0, dev.stderr
    assert dev.leftovers() == []  # the effective configuration went with the run


def test_the_readme_example_runs_in_dev_mode_and_leaves_nothing_behind(start_dev, readme_app):
    dev = start_dev("--config", str(readme_app), "--duration", "3", cwd=readme_app.parent)
    assert dev.wait() == 0, dev.stderr
    assert "queues: example_queue (dead-letter queues after 3 receives)" in dev.stdout
    assert "no demo messages" in dev.stdout  # the bundled example's demo is not sent to it
    assert "Traceback" not in dev.stderr
    assert dev.leftovers() == []


def test_a_failed_start_is_one_line_and_leaves_no_temporary_file(start_dev):
    with occupied_port() as busy:
        port = busy.getsockname()[1]
        dev = start_dev("--http-port", str(port), "--duration", "30")
        code = dev.wait()
    assert code == 2
    [line] = dev.stderr.strip().splitlines()[-1:]
    assert line.startswith("kube-taskqueue: error: cannot serve /healthz and /metrics on port")
    assert "--http-port" in line
    assert "Traceback" not in dev.stderr
    assert dev.leftovers() == []


def test_a_closed_terminal_leaves_no_temporary_file(start_dev):
    dev = start_dev("--demo", "1")
    dev.wait_banner()
    assert len(dev.leftovers()) == 1  # the effective configuration of the printed command
    dev.signal(signal.SIGHUP)
    dev.wait()
    assert dev.leftovers() == []
    assert "Traceback" not in dev.stderr


def test_a_busy_sqs_port_is_one_line_not_a_hang(start_dev):
    with occupied_port() as busy:
        dev = start_dev("--sqs-port", str(busy.getsockname()[1]), "--duration", "5")
        code = dev.wait(timeout=60)
    assert code == 2
    assert "--sqs-port" in dev.stderr
    assert "Traceback" not in dev.stderr
    assert dev.leftovers() == []


def processed(run) -> int:
    progress = run.progress()
    return int(progress[-1].split()[1]) if progress else 0


def test_two_dev_runs_at_once_both_work(start_dev):
    runs = [start_dev("--demo", "1"), start_dev("--demo", "1")]
    for run in runs:
        run.wait_banner()
    for run in runs:
        # example:job and report:job 'acme' always succeed (cleanup:job fails at random).
        wait_for(lambda run=run: processed(run) >= 2, timeout=60)
    for run in runs:
        run.signal(signal.SIGINT)
        assert run.wait() == 0, run.stderr
        assert "Traceback" not in run.stderr
    assert runs[0].http_port() != runs[1].http_port()


def test_dev_output_names_task_and_message_and_prints_progress_on_change(start_dev):
    dev = start_dev("--demo", "1")
    dev.wait_banner()
    wait_for(lambda: "task failed: LookupError" in dev.stderr and processed(dev) >= 2, timeout=60)
    # Idle for a few progress intervals (2 s): unchanged counts must not be printed again.
    time.sleep(5)
    dev.signal(signal.SIGINT)
    assert dev.wait() == 0, dev.stderr
    logs = dev.stderr.splitlines()

    done = [line for line in logs if "task done" in line]
    for line in done:
        assert re.search(
            r"task done task=\S+:job message=[0-9a-f-]{36} (attempt=\d+ )?duration=", line
        ), line

    # The bundled report:job fails for good on an unknown account: one line, no traceback.
    [failed] = [line for line in logs if "task failed: LookupError" in line]
    assert "task=report:job" in failed and "raised_at=" in failed
    assert "Traceback" not in dev.stderr
    assert not any(line.startswith("  File ") for line in logs)

    progress = dev.progress()
    assert all(a != b for a, b in itertools.pairwise(progress)), progress
    # The counts are of attempts and receives, and say so.
    assert "failed attempts" in progress[-1] and "unroutable receives" in progress[-1]


def test_debug_level_shows_the_traceback_of_a_failed_attempt(start_dev):
    dev = start_dev("--demo", "1", "--log-level", "DEBUG")
    dev.wait_banner()
    wait_for(lambda: "task failed: LookupError" in dev.stderr, timeout=60)
    dev.signal(signal.SIGINT)
    assert dev.wait() == 0, dev.stderr
    assert "Traceback (most recent call last)" in dev.stderr
    assert "LookupError: account 'unknown' does not exist" in dev.stderr
