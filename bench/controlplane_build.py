"""The test control plane for the operator benchmarks, built while the processor benchmarks run.

On a fresh machine kube-apiserver, etcd and kubectl are compiled from the Go module proxy
(minutes on 2 cores). Started first at the lowest CPU priority (nice 19), the build takes
the CPU the processor benchmarks leave (their start-ups, low-rate and idle phases), and the
operator benchmarks wait for whatever is left. With the binaries already built nothing runs
alongside the measurements.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.operator_bench import CONTROL_PLANE

ROOT = Path(__file__).resolve().parents[1]


class ControlPlaneBuild:
    def __init__(self, log_path: Path) -> None:
        self.missing = _missing()
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            ["nice", "-n", "19", str(ROOT / "hack" / "envtest" / "build.sh"), *CONTROL_PLANE],
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self.waited = 0.0

    def wait(self) -> Path:
        """Wait for the build; points KUBEBUILDER_ASSETS at the binaries."""
        started = time.monotonic()
        output, _ = self.process.communicate()
        self.waited = time.monotonic() - started
        self._log.close()
        if self.process.returncode != 0:
            raise RuntimeError(f"building the test control plane failed; see {self._log.name}")
        assets = Path(output.decode().strip().splitlines()[-1])
        os.environ["KUBEBUILDER_ASSETS"] = str(assets)
        return assets


def _missing() -> list[str]:
    # tests/support is on sys.path once bench.operator_bench is imported.
    from controlplane import DEFAULT_ASSETS

    directory = Path(os.environ.get("KUBEBUILDER_ASSETS") or DEFAULT_ASSETS)
    return [name for name in CONTROL_PLANE if not (directory / name).exists()]
