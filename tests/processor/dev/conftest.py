"""`kube-taskqueue dev` as a user runs it: the real console script in a subprocess, its output
read back, and its printed command pasted into a fresh terminal's environment."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import readme
from harness import wait_for

# The console script installed next to this interpreter (the venv's bin/), as `make dev` runs it.
TASKQUEUE = Path(sys.executable).parent / "kube-taskqueue"

# The example app and configuration of docs/getting-started/local.md ("Write a task", "Run a
# processor"), as a new user copies them.
LOCAL = readme.Markdown("docs/getting-started/local.md")
README_TASKS = LOCAL.block_starting("python", "# myapp/tasks.py")
README_CONFIG = LOCAL.block_starting("yaml", "# processor.yaml")


# A user's app on a FIFO queue, with a required field of each common type.
FIFO_TASKS = """\
from pydantic import BaseModel
from kube_taskqueue import Provider


class TickPayload(BaseModel):
    when: str
    count: int
    ratio: float
    urgent: bool
    tags: list[str]


provider = Provider()


@provider.task("tick:job", queue="ticks.fifo")
def tick(payload: TickPayload) -> None:
    assert payload.count == 1
"""

FIFO_CONFIG = """\
app: fifoapp:provider
queues:
  ticks.fifo: {pollInterval: 1, url: "https://sqs.eu-west-1.amazonaws.com/123456789012/ticks.fifo"}
"""


@pytest.fixture
def readme_app(tmp_path: Path) -> Path:
    """The local page's myapp package and processor.yaml in a directory; returns the config."""
    directory = tmp_path / "project"
    (directory / "myapp").mkdir(parents=True)
    (directory / "myapp" / "__init__.py").write_text("")
    (directory / "myapp" / "tasks.py").write_text(README_TASKS)
    config = directory / "processor.yaml"
    config.write_text(README_CONFIG)
    return config


@pytest.fixture
def fifo_app(tmp_path: Path) -> Path:
    directory = tmp_path / "fifo-project"
    directory.mkdir()
    (directory / "fifoapp.py").write_text(FIFO_TASKS)
    config = directory / "fifo.yaml"
    config.write_text(FIFO_CONFIG)
    return config


class DevRun:
    """One `kube-taskqueue dev` subprocess with its own temporary directory (TMPDIR), so a
    test can see that the effective configuration it writes there is gone afterwards."""

    def __init__(self, args: list[str], *, cwd: Path, tmpdir: Path) -> None:
        tmpdir.mkdir(parents=True, exist_ok=True)
        self.tmpdir = tmpdir
        self._stdout = tmpdir.parent / f"{tmpdir.name}.stdout"
        self._stderr = tmpdir.parent / f"{tmpdir.name}.stderr"
        # The app must be importable from the working directory alone, as for a user.
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env["TMPDIR"] = str(tmpdir)
        with self._stdout.open("wb") as out, self._stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [str(TASKQUEUE), "dev", *args], stdout=out, stderr=err, cwd=cwd, env=env
            )

    @property
    def stdout(self) -> str:
        return self._stdout.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self._stderr.read_text(errors="replace")

    def wait_banner(self, timeout: float = 60) -> None:
        wait_for(
            lambda: "Ctrl-C stops" in self.stdout or self.process.poll() is not None,
            timeout=timeout,
        )
        assert "Ctrl-C stops" in self.stdout, self.stdout + self.stderr

    def command(self) -> str:
        """The enqueue command exactly as printed (the line after the invitation)."""
        lines = self.stdout.splitlines()
        index = next(i for i, line in enumerate(lines) if "from another terminal" in line)
        return lines[index + 1].strip()

    def http_port(self) -> int:
        match = re.search(r"http://127\.0\.0\.1:(\d+)/healthz", self.stdout)
        assert match, self.stdout
        return int(match.group(1))

    def progress(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("processed ")]

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 90) -> int:
        return self.process.wait(timeout)

    def leftovers(self) -> list[Path]:
        return sorted(self.tmpdir.iterdir())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[..., DevRun]]:
    runs: list[DevRun] = []

    def start(*args: str, cwd: Path | None = None) -> DevRun:
        run = DevRun(list(args), cwd=cwd or tmp_path, tmpdir=tmp_path / f"tmp{len(runs)}")
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()


def fresh_terminal_env(home: Path) -> dict[str, str]:
    """A new terminal's environment: no AWS_* variables, no venv on PATH, no PYTHONPATH, and a
    home without ~/.aws (so nothing but the printed line can supply credentials)."""
    venv_bin = Path(sys.executable).parent.resolve()
    path = [
        part
        for part in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        if part and Path(part).resolve() != venv_bin
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AWS_")
        and key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "TMPDIR", "PATH", "HOME"}
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(PATH=os.pathsep.join(path), HOME=str(home))
    # The test proves nothing if another kube-taskqueue is on that PATH.
    assert shutil.which("kube-taskqueue", path=env["PATH"]) is None
    return env


@pytest.fixture
def paste(tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Run a printed command as pasted into a fresh terminal, elsewhere in the filesystem."""

    def run(command: str) -> subprocess.CompletedProcess[str]:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(exist_ok=True)
        return subprocess.run(
            ["bash", "-c", command],
            env=fresh_terminal_env(tmp_path / "home"),
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run
