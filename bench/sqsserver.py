"""The SQS servers the benchmarks run on, each on a loopback port, never AWS:
- ElasticMQ (from Maven Central, run with java), the first; moto's server when it cannot be had;
- fauxqs (an in-memory SQS emulator on Node, from npm, pinned in bench/fauxqs/package.json),
  the second and faster one: the hand-written limit drains about three times as fast on it
  (bench/NOTES.md), so the consumers' own cost shows more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskqueue" / "elasticmq"
FAUXQS_CACHE = CACHE.parent / "fauxqs"
#: The servers `sqs_server` can start, by name.
SERVERS = ("elasticmq", "fauxqs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def elasticmq_classpath() -> str:
    """Resolve ElasticMQ with plain Maven once; the classpath is cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    pom = HERE / "elasticmq" / "pom.xml"
    # hashlib, not hash(): str hashes differ between processes, so the cache never hit.
    cached = CACHE / f"classpath-{hashlib.sha256(pom.read_bytes()).hexdigest()[:16]}.txt"
    if not cached.exists():
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:build-classpath",
                f"-Dmdep.outputFile={cached}",
            ],
            check=True,
            timeout=900,
        )
    return cached.read_text().strip()


def fauxqs_directory() -> Path:
    """Install the pinned fauxqs (and its lock file's dependencies) with npm once, beside a
    copy of bench/fauxqs/serve.mjs."""
    sources = [
        HERE / "fauxqs" / name for name in ("package.json", "package-lock.json", "serve.mjs")
    ]
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:16]
    directory = FAUXQS_CACHE / digest
    if not (directory / "node_modules" / "fauxqs").exists():
        directory.mkdir(parents=True, exist_ok=True)
        for path in sources:
            (directory / path.name).write_bytes(path.read_bytes())
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )
    return directory


def _wait(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/?Action=ListQueues", timeout=1).read()
            return
        except urllib.error.HTTPError:  # an answer all the same (fauxqs has no GET /)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"SQS server on port {port} did not start in {timeout} s")


@contextlib.contextmanager
def sqs_server(prefer: str = "elasticmq") -> Iterator[tuple[str, str]]:
    """Yields (endpoint, server name)."""
    port = free_port()
    if prefer == "elasticmq":
        try:
            classpath = elasticmq_classpath()
        except (OSError, subprocess.SubprocessError) as error:
            print(f"ElasticMQ unavailable ({error}); falling back to moto")
            prefer = "moto"
    if prefer == "fauxqs":
        version = json.loads((HERE / "fauxqs" / "package.json").read_text())["dependencies"]
        command = ["node", str(fauxqs_directory() / "serve.mjs"), str(port)]
        name = f"fauxqs {version['fauxqs']}"
    elif prefer == "elasticmq":
        config = Path(tempfile.mkdtemp()) / "elasticmq.conf"
        config.write_text(
            'include classpath("application.conf")\n'
            f'node-address {{ protocol = http, host = "127.0.0.1", port = {port}, context-path = "" }}\n'
            f'rest-sqs {{ enabled = true, bind-port = {port}, bind-hostname = "127.0.0.1", sqs-limits = strict }}\n'
            "rest-stats { enabled = false }\n"
        )
        command = [
            "java",
            "-Xmx1g",
            f"-Dconfig.file={config}",
            "-cp",
            classpath,
            "org.elasticmq.server.Main",
        ]
        name = "ElasticMQ 1.7.1"
    else:
        command = ["python", "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        name = "moto server"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, 60)
        yield f"http://127.0.0.1:{port}", name
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:  # a busy JVM can ignore SIGTERM for a while
            process.kill()
            process.wait(10)
