"""`make bench`: every benchmark in one run on one SQS server; writes bench/RESULTS.md and
bench/throughput.png. Run as `python -m bench.run [--quick]` from the repository root."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import measure
from bench.countproxy import CountingProxy
from bench.sqsserver import SERVERS, sqs_server
from bench.systems import LABELS, SYSTEMS

HERE = Path(__file__).parent


def median_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def processor_benchmarks(
    options: argparse.Namespace, endpoint: str, proxy: CountingProxy, server: str
) -> dict[str, Any]:
    results: dict[str, Any] = {"throughput": {}, "sleep": {}, "sweep": {}, "latency": {}}
    log("warm-up (the SQS server's JIT)")
    measure.throughput(
        "handwritten",
        endpoint=endpoint,
        proxy=proxy,
        count=options.warmup,
        workers=options.workers,
        sleep_ms=0,
    )
    for kind, sleep_ms, key in (("no-op", 0, "throughput"), ("5 ms", 5, "sleep")):
        runs: dict[str, list[dict[str, float]]] = {system: [] for system in SYSTEMS}
        for run in range(options.runs):
            for system in SYSTEMS:  # interleaved, so drift of the server hits every system alike
                count = (
                    options.messages
                    if system in ("taskqueue", "handwritten")
                    else options.reference_messages
                )
                if sleep_ms:
                    count = min(count, options.sleep_messages)
                log(f"{kind} task, run {run + 1}/{options.runs}: {system}, {count} messages")
                runs[system].append(
                    measure.throughput(
                        system,
                        endpoint=endpoint,
                        proxy=proxy,
                        count=count,
                        workers=options.workers,
                        sleep_ms=sleep_ms,
                    )
                )
        results[key] = {
            system: {
                **median_runs(r),
                "messages": r
                and (
                    options.messages
                    if system in ("taskqueue", "handwritten")
                    else options.reference_messages
                ),
            }
            for system, r in runs.items()
        }
    if options.scale_workers:
        results["scale"] = [scale_benchmarks(options, endpoint, proxy, server)]
    for workers in options.sweep:
        for system in SYSTEMS:
            log(f"sweep: {system} with {workers} workers")
            result = measure.throughput(
                system,
                endpoint=endpoint,
                proxy=proxy,
                count=options.sweep_messages,
                workers=workers,
                sleep_ms=0,
                # Celery with 2 threads drains ~11 msg/s: measure its rate, not its patience.
                max_seconds=options.sweep_seconds,
            )
            results["sweep"].setdefault(system, {})[workers] = result["messages_per_second"]
    for system in SYSTEMS:
        log(f"latency at {options.rate:g} msg/s: {system}")
        results["latency"][system] = measure.latency(
            system,
            endpoint=endpoint,
            proxy=proxy,
            workers=options.workers,
            rate=options.rate,
            count=int(options.rate * 10),
        )
    log("TaskQueue idle: start-up, memory, receives while empty")
    results["idle"] = measure.idle(endpoint=endpoint, proxy=proxy)
    log("enqueue vs enqueue_many")
    results["enqueue"] = measure.enqueue_rates(endpoint=endpoint)
    return results


def scale_benchmarks(
    options: argparse.Namespace, endpoint: str, proxy: CountingProxy, server: str
) -> dict[str, Any]:
    """TaskQueue at its default settings next to the limit at each of `--scale-workers`,
    alternating run by run on one server, so drift hits both alike; medians, and the median
    of each round's own ratio."""
    results: dict[str, Any] = {"server": server, "workers": {}}
    measure.throughput(  # warm-up: the server's JIT, the page cache
        "handwritten",
        endpoint=endpoint,
        proxy=proxy,
        count=options.warmup,
        workers=options.workers,
        sleep_ms=0,
    )
    for workers in options.scale_workers:
        runs: dict[str, list[dict[str, float]]] = {"handwritten": [], "taskqueue": []}
        for run in range(options.scale_runs):
            # Which goes first alternates too: the first of a pair drains a fresher server.
            order = ("handwritten", "taskqueue") if run % 2 == 0 else ("taskqueue", "handwritten")
            for system in order:
                log(f"scale on {server}: {system}, {workers} workers, run {run + 1}")
                runs[system].append(
                    measure.throughput(
                        system,
                        endpoint=endpoint,
                        proxy=proxy,
                        count=options.scale_messages,
                        workers=workers,
                        sleep_ms=0,
                    )
                )
        ratios = [
            tq["messages_per_second"] / hw["messages_per_second"]
            for tq, hw in zip(runs["taskqueue"], runs["handwritten"], strict=True)
        ]
        results["workers"][workers] = {
            **{system: median_runs(r) for system, r in runs.items()},
            "ratio_of_medians": statistics.median(
                r["messages_per_second"] for r in runs["taskqueue"]
            )
            / statistics.median(r["messages_per_second"] for r in runs["handwritten"]),
            "median_ratio": statistics.median(ratios),
            "ratios": ratios,
        }
    return results


def plot(sweep: dict[str, dict[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for system, points in sweep.items():
        workers = sorted(points)
        axes.plot(workers, [points[w] for w in workers], marker="o", label=LABELS[system])
    axes.set_xlabel("workers (threads)")
    axes.set_ylabel("messages / s (no-op task)")
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted({w for points in sweep.values() for w in points}))
    axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.grid(True, alpha=0.3)
    axes.legend()
    axes.set_title("Throughput vs workers, same SQS server (ElasticMQ), same run")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _build_note(build: dict[str, Any] | None) -> list[str]:
    if not build or not build["built"]:
        return []
    return [
        "",
        f"The test control plane ({', '.join(build['built'])}) was built from the Go module "
        "proxy during this run, at nice 19 alongside the processor benchmarks (it takes the "
        "CPU they leave; the operator benchmarks waited "
        f"{build['waited']:.0f} s more for it). Runs on a machine that has it built overlap "
        "nothing.",
    ]


def _scale_lines(scales: list[dict[str, Any]], options: argparse.Namespace) -> list[str]:
    if not scales:
        return []
    lines = [
        "",
        f"## TaskQueue at its default settings vs the limit, by workers and server (no-op task, "
        f"{options.scale_messages} messages, {options.scale_runs} alternating pairs per point)",
        "",
        "Default settings: `logLevel: INFO` (a task that succeeded is logged at DEBUG, its counts "
        "in /metrics; failures in full), `maxBatchSize: 10`. × limit is the median of each "
        "pair's own ratio (the pair ran back to back); the spread is the lowest and highest.",
        "",
        "| server | workers | TaskQueue msg/s | limit msg/s | × limit | spread | "
        "TaskQueue CPU s / 1,000 | limit CPU s / 1,000 | TaskQueue SQS calls / 1,000 |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for scale in scales:
        for workers, point in scale["workers"].items():
            tq, hw = point["taskqueue"], point["handwritten"]
            lines.append(
                f"| {scale['server']} | {workers} | {tq['messages_per_second']:.0f} | "
                f"{hw['messages_per_second']:.0f} | {point['median_ratio']:.2f} | "
                f"{min(point['ratios']):.2f}–{max(point['ratios']):.2f} | "
                f"{tq['cpu_per_1000']:.2f} | {hw['cpu_per_1000']:.2f} | {tq['calls_per_1000']:.0f} |"
            )
    return lines


#: The goals of one operator at scale (issue #21), checked on the largest row measured.
SCALE_GOAL_COUNT = 5000
STATUS_INTERVAL = 30  # seconds: the default status interval the scale rows run with


def _scale_targets(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        if row["count"] != SCALE_GOAL_COUNT:
            continue
        # One depth call per queue and per dead-letter queue each status interval.
        due = row["count"] * 2 * 60 / STATUS_INTERVAL
        by_action = row.get("sqs_calls_per_minute_by_action", {})
        share = by_action.get("GetQueueAttributes", row["sqs_calls_per_minute"]) / due
        lines += [
            f"| {row['count']:,} TaskQueues all Ready ≤ 300 s after a bulk apply | "
            f"{row['ready_seconds']:.0f} s | {verdict(row['ready_seconds'] <= 300)} |",
            f"| {row['count']:,} TaskQueues: operator idle CPU < 25 % of a core | "
            f"{row['idle_cpu_percent']:.1f} % | {verdict(row['idle_cpu_percent'] < 25)} |",
            f"| {row['count']:,} TaskQueues: operator RSS < 1 GB | {row['rss_mb']:.0f} MB | "
            f"{verdict(row['rss_mb'] < 1024)} |",
            f"| {row['count']:,} TaskQueues: status depths kept at their interval "
            f"(GetQueueAttributes while idle ≥ the {due:,.0f}/min due) | {share:.0%} | "
            f"{verdict(share >= 0.95)} |",
        ]
    return lines


def write_results(
    results: dict[str, Any], options: argparse.Namespace, server: str, started: float
) -> str:
    tq, limit = results["throughput"]["taskqueue"], results["throughput"]["handwritten"]
    celery = results["throughput"]["celery"]
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{options.command}` on {datetime.date.today().isoformat()} in "
        f"{(time.monotonic() - started) / 60:.1f} min. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}. "
        f"SQS server: {server} on loopback, the same for every system in this run"
        + "".join(
            f" (the scale table also on {scale['server']})"
            for scale in results.get("scale", [])[1:]
        )
        + "; SQS calls are counted by a proxy in front of it. Consumers run as separate "
        "processes; CPU and RSS are theirs (children included).",
        *_build_note(results.get("control_plane_build")),
        "",
        f"## Throughput: no-op task, {options.workers} workers (median of {options.runs} runs)",
        "",
        "| system | messages/s | × limit | CPU s / 1,000 msgs | SQS calls / 1,000 msgs | peak RSS MB | messages per run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for system in SYSTEMS:
        r = results["throughput"][system]
        lines.append(
            f"| {LABELS[system]} | {r['messages_per_second']:.0f} | {r['messages_per_second'] / limit['messages_per_second']:.2f} | "
            f"{r['cpu_per_1000']:.2f} | {r['calls_per_1000']:.0f} | {r['peak_rss_mb']:.0f} | {r['messages']} |"
        )
    lines += [
        "",
        f"## Throughput: task sleeping 5 ms (models I/O), {options.workers} workers (median of {options.runs} runs)",
        "",
        "| system | messages/s | × limit | CPU s / 1,000 msgs | SQS calls / 1,000 msgs | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    sleep_limit = results["sleep"]["handwritten"]["messages_per_second"]
    for system in SYSTEMS:
        r = results["sleep"][system]
        lines.append(
            f"| {LABELS[system]} | {r['messages_per_second']:.0f} | {r['messages_per_second'] / sleep_limit:.2f} | "
            f"{r['cpu_per_1000']:.2f} | {r['calls_per_1000']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += _scale_lines(results.get("scale", []), options)
    lines += [
        "",
        "## Throughput vs workers (no-op task)",
        "",
        "![throughput vs workers](throughput.png)",
        "",
        "| system | " + " | ".join(f"{w} workers" for w in options.sweep) + " |",
        "|---|" + "---:|" * len(options.sweep),
    ]
    for system in SYSTEMS:
        lines.append(
            f"| {LABELS[system]} | "
            + " | ".join(f"{results['sweep'][system][w]:.0f}" for w in options.sweep)
            + " |"
        )
    lines += [
        "",
        f"## Enqueue → start latency at {options.rate:g} msg/s (consumers idle and long-polling)",
        "",
        "| system | p50 ms | p99 ms | samples |",
        "|---|---:|---:|---:|",
    ]
    for system in SYSTEMS:
        r = results["latency"][system]
        lines.append(
            f"| {LABELS[system]} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['samples']} |"
        )
    idle, enqueue = results["idle"], results["enqueue"]
    lines += [
        "",
        "## TaskQueue alone",
        "",
        f"- start-up to ready (`/readyz` 200): {idle['ready_seconds']:.2f} s; RSS while idle: {idle['idle_rss_mb']:.0f} MB",
        f"- receives per queue per 20 s while the queue is empty: {idle['receives_per_20s']:.2f} (long polling)",
        f"- `Producer.enqueue` one by one: {enqueue['single_per_second']:.0f} msg/s; `enqueue_many` (SendMessageBatch): {enqueue['batch_per_second']:.0f} msg/s "
        f"({enqueue['batch_per_second'] / enqueue['single_per_second']:.1f}×)",
    ]
    operator = results.get("operator")
    if operator:
        lines += [
            "",
            "## Operator (test control plane + the same SQS server)",
            "",
            f"- apply → Ready for one TaskQueue: p50 {operator['apply_ready_p50']:.2f} s, p90 {operator['apply_ready_p90']:.2f} s over {operator['apply_runs']} runs",
            f"- {operator['bulk']} TaskQueues created at once, all Ready after {operator['bulk_seconds']:.1f} s",
            f"- operator while idle with {operator['bulk']} TaskQueues: RSS {operator['idle_rss_mb']:.0f} MB, CPU {operator['idle_cpu_percent']:.1f} % of one core (timers included)",
        ]
        if operator.get("scale"):
            lines += [
                "",
                "### At scale (fresh control plane and operator per row; default intervals: "
                "drift 180 s, queue drift 900 s, status 30 s; one queue with a DLQ each)",
                "",
                "| TaskQueues | applied → all Ready | operator RSS | operator CPU while idle "
                "| SQS calls/min while idle |",
                "|---:|---:|---:|---:|---:|",
                *(
                    f"| {row['count']:,} | {row['ready_seconds']:.0f} s | {row['rss_mb']:.0f} MB "
                    f"| {row['idle_cpu_percent']:.1f} % | {row['sqs_calls_per_minute']:,.0f} |"
                    for row in operator["scale"]
                ),
                "",
                "SQS calls per minute while idle, by action: "
                + "; ".join(
                    f"{row['count']:,}: "
                    + ", ".join(
                        f"{action} {calls:,.0f}"
                        for action, calls in sorted(
                            row.get("sqs_calls_per_minute_by_action", {}).items(),
                            key=lambda item: -item[1],
                        )
                    )
                    for row in operator["scale"]
                ),
            ]
    ratio = tq["messages_per_second"] / limit["messages_per_second"]
    lines += [
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| throughput ≥ 0.9× the hand-written limit (no-op) | {ratio:.2f}× | {verdict(ratio >= 0.9)} |",
        f"| throughput ≥ 3× Celery (no-op) | {tq['messages_per_second'] / celery['messages_per_second']:.1f}× | {verdict(tq['messages_per_second'] >= 3 * celery['messages_per_second'])} |",
        f"| ≤ 0.22 SQS calls per message under load | {tq['calls_per_1000'] / 1000:.3f} | {verdict(tq['calls_per_1000'] <= 220)} |",
        f"| ≤ 1 receive per queue per 20 s when idle | {idle['receives_per_20s']:.2f} | {verdict(idle['receives_per_20s'] <= 1.05)} |",
        f"| p50 enqueue→start < 100 ms at low rate | {results['latency']['taskqueue']['p50_ms']:.1f} ms | {verdict(results['latency']['taskqueue']['p50_ms'] < 100)} |",
        f"| RSS while idle < 80 MB | {idle['idle_rss_mb']:.0f} MB | {verdict(idle['idle_rss_mb'] < 80)} |",
        f"| start-up to ready < 2 s | {idle['ready_seconds']:.2f} s | {verdict(idle['ready_seconds'] < 2)} |",
    ]
    for scale in results.get("scale", []):
        for workers, point in scale["workers"].items():
            lines.append(
                f"| throughput ≥ 0.9× the limit, default settings, {workers} workers, "
                f"{scale['server']} | {point['median_ratio']:.2f}× | "
                f"{verdict(point['median_ratio'] >= 0.9)} |"
            )
    if operator:
        lines += [
            f"| operator apply→Ready p50 < 2 s | {operator['apply_ready_p50']:.2f} s | {verdict(operator['apply_ready_p50'] < 2)} |",
            f"| {operator['bulk']} TaskQueues reconciled < 60 s | {operator['bulk_seconds']:.1f} s | {verdict(operator['bulk_seconds'] < 60)} |",
        ]
        lines += _scale_targets(operator.get("scale", []))
    for notes in (HERE / "NOTES.md", HERE / "SCALE.md"):
        if notes.exists():
            lines += ["", notes.read_text().strip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument(
        "--messages", type=int, default=20_000, help="messages per run for TaskQueue and the limit"
    )
    parser.add_argument(
        "--reference-messages",
        type=int,
        default=4_000,
        help="messages per run for Celery and Dramatiq (slower; rates compare)",
    )
    parser.add_argument("--sleep-messages", type=int, default=4_000)
    parser.add_argument("--sweep-messages", type=int, default=8_000)
    parser.add_argument("--sweep", type=int, nargs="+", default=[2, 4, 10, 16, 20])
    parser.add_argument(
        "--sweep-seconds", type=float, default=10, help="at most this long per sweep point"
    )
    parser.add_argument("--runs", type=int, default=2, help="runs per measurement (median)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument(
        "--scale-workers",
        type=int,
        nargs="*",
        default=[10, 16, 20],
        help="TaskQueue (default settings) vs the limit at these worker counts, on each server",
    )
    parser.add_argument(
        "--scale-servers",
        nargs="+",
        choices=SERVERS,
        default=list(SERVERS),
        help="SQS servers for the scale benchmark; the first serves every other benchmark",
    )
    parser.add_argument("--scale-messages", type=int, default=15_000)
    parser.add_argument("--scale-runs", type=int, default=2, help="alternating pairs per point")
    parser.add_argument("--no-operator", action="store_true", help="skip the operator benchmarks")
    parser.add_argument("--quick", action="store_true", help="small counts, one run (a smoke test)")
    parser.add_argument("--output", type=Path, default=HERE)
    options = parser.parse_args()
    # The local SQS server takes any credentials; never use real ones here.
    os.environ.update(
        AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1"
    )
    arguments = sys.argv[1:]
    options.command = (
        "make bench" if not arguments else " ".join(["python -m bench.run", *arguments])
    )
    if options.quick:
        options.messages = options.reference_messages = options.sleep_messages = 600
        options.sweep_messages, options.sweep, options.runs, options.warmup = 300, [2, 4], 1, 300
        options.scale_messages, options.scale_runs = 600, 1
    started = time.monotonic()
    build = None
    if not options.no_operator:
        from bench.controlplane_build import ControlPlaneBuild

        build = ControlPlaneBuild(Path(tempfile.mkdtemp()) / "controlplane-build.log")
        if build.missing:
            log(f"building {', '.join(build.missing)} at nice 19 alongside (first run only)")
    with sqs_server(options.scale_servers[0]) as (endpoint, server):
        log(f"SQS server: {server} at {endpoint}")
        proxy = CountingProxy(int(endpoint.rsplit(":", 1)[1]))
        results = processor_benchmarks(options, endpoint, proxy, server)
        if build is not None:
            from bench.operator_bench import operator_benchmarks

            build.wait()
            if build.missing:
                log(f"control plane built; waited {build.waited:.0f} s for it")
            results["control_plane_build"] = {"built": build.missing, "waited": build.waited}
            results["operator"] = operator_benchmarks(
                endpoint=endpoint, quick=options.quick, log=log
            )
    for second in options.scale_servers[1:] if options.scale_workers else []:
        # Names of their own: `server` stays the first one's, which RESULTS.md names.
        with sqs_server(second) as (second_endpoint, second_server):
            log(f"second SQS server: {second_server} at {second_endpoint}")
            results.setdefault("scale", []).append(
                scale_benchmarks(
                    options,
                    second_endpoint,
                    CountingProxy(int(second_endpoint.rsplit(":", 1)[1])),
                    second_server,
                )
            )
    options.output.mkdir(parents=True, exist_ok=True)
    (options.output / "results.json").write_text(json.dumps(results, indent=2, default=str))
    plot(results["sweep"], options.output / "throughput.png")
    (options.output / "RESULTS.md").write_text(write_results(results, options, server, started))
    log(f"wrote {options.output / 'RESULTS.md'}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
