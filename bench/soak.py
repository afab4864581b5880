"""`make soak`: the reliability scenarios at full size on ElasticMQ; writes bench/SOAK.md.

The same scenario code as tests/reliability (small there, on moto): 100,000 messages through
20 SIGKILLs, a 30 s SQS outage, two replicas on 10,000 messages, poison messages, and raising
and slow handlers."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

import scenarios
from harness import ProcessorProcess, Records

from bench.sqsserver import sqs_server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--outage", type=float, default=30)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "SOAK.md")
    options = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1"
    )
    started = time.monotonic()
    figures = []
    with sqs_server() as (endpoint, server):
        port = int(endpoint.rsplit(":", 1)[1])
        runs = [
            lambda b: scenarios.kill_restart(
                b, messages=options.messages, kills=options.kills, workers=16, sleep=0
            ),
            scenarios.sigterm_handoff,
            lambda b: scenarios.outage(b, sqs_port=port, messages=2_000, seconds=options.outage),
            lambda b: scenarios.poison(b, good=1_000),
            lambda b: scenarios.two_processors(b, messages=10_000, sleep=0.002),
            lambda b: scenarios.failing_handlers(b, messages=200),
        ]
        for run in runs:
            directory = Path(tempfile.mkdtemp(prefix="soak-"))
            records = Records(directory / "records.log")
            os.environ["RECORD_FILE"] = str(records.path)
            spawned: list[ProcessorProcess] = []

            def spawn(config, directory=directory, spawned=spawned, records=records):
                process = ProcessorProcess(config, directory, {"RECORD_FILE": str(records.path)})
                spawned.append(process)
                return process

            try:
                result = run(scenarios.Bench(endpoint, records, spawn))
            finally:
                for process in spawned:
                    process.stop()
            print(result.line(), flush=True)
            figures.append(result)
    header = (
        f"# Soak results\n\nProduced by `make soak` on {datetime.date.today().isoformat()} in "
        f"{(time.monotonic() - started) / 60:.1f} min on {os.cpu_count()} cores ({platform.machine()}), "
        f"SQS server: {server}. Lost must be 0 everywhere; duplicates happen only where a SIGKILL "
        "stopped a task after it ran but before its delete was sent (counted as explained)."
    )
    scenarios.write_report(options.output, figures, header)
    print(f"wrote {options.output}")
    if any(f.lost for f in figures):
        raise SystemExit("messages were lost")


if __name__ == "__main__":
    main()
