"""A real Kubernetes control plane for tests: etcd + kube-apiserver from KUBEBUILDER_ASSETS.

Follows controller-runtime's envtest: the binaries sit in one directory (built by
`make envtest`, or downloaded by `setup-envtest use 1.34 -p path`); there is no kubelet or
controller-manager, so Deployments are stored and validated but never run pods.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

#: Where hack/envtest/build.sh puts the binaries (same variables, same default).
DEFAULT_ASSETS = (
    Path(
        os.environ.get("TASKQUEUE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskqueue"
    )
    / "envtest/1.34.4"
)

ADMIN_USER = "admin"
#: A user with no rights but those a test binds to it (e.g. the chart's RBAC).
LIMITED_USER = "kube-taskqueue-operator"


class ControlPlaneError(RuntimeError):
    pass


#: What the tests use; the benchmarks need no helm.
ALL_BINARIES = ("etcd", "kube-apiserver", "kubectl", "helm")


def assets_dir(required: tuple[str, ...] = ALL_BINARIES) -> Path:
    directory = Path(os.environ.get("KUBEBUILDER_ASSETS") or DEFAULT_ASSETS)
    missing = [name for name in required if not (directory / name).exists()]
    if missing:
        raise ControlPlaneError(
            f"test control plane binaries missing in {directory}: {', '.join(missing)}; "
            "run `make envtest` (or set KUBEBUILDER_ASSETS)"
        )
    return directory


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControlPlane:
    """Starts etcd and kube-apiserver on free loopback ports; `stop()` removes everything."""

    def __init__(self, required: tuple[str, ...] = ALL_BINARIES) -> None:
        self.assets = assets_dir(required)
        self.root = Path(tempfile.mkdtemp(prefix="taskqueue-envtest-"))
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.tokens = {ADMIN_USER: os.urandom(16).hex(), LIMITED_USER: os.urandom(16).hex()}
        self.kubeconfig = self.root / "kubeconfig"
        self.limited_kubeconfig = self.root / "kubeconfig-limited"
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def kubectl(self) -> Path:
        return self.assets / "kubectl"

    @property
    def helm(self) -> Path:
        return self.assets / "helm"

    def start(self, timeout: float = 60) -> None:
        try:
            etcd_port, peer_port = _free_port(), _free_port()
            self._spawn(
                "etcd",
                [
                    str(self.assets / "etcd"),
                    f"--data-dir={self.root / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
            )
            self._write_credentials()
            self._spawn(
                "kube-apiserver",
                [
                    str(self.assets / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    f"--cert-dir={self.root / 'certs'}",
                    f"--secure-port={self.port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={self.root / 'sa.pub'}",
                    f"--service-account-signing-key-file={self.root / 'sa.key'}",
                    f"--token-auth-file={self.root / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    "--allow-privileged=true",
                    "--disable-admission-plugins=ServiceAccount",
                    # As OpenShift has it on: blockOwnerDeletion needs rights on the owner.
                    "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
                    "--v=0",
                ],
            )
            self._wait_ready(timeout)
            self._write_kubeconfig(self.kubeconfig, ADMIN_USER)
            self._write_kubeconfig(self.limited_kubeconfig, LIMITED_USER)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        self._processes.clear()
        for log in self.root.glob("*.log"):
            with contextlib.suppress(OSError):
                log.unlink()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kubectl_run(
        self, *args: str, input: str | None = None, limited: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        config = self.limited_kubeconfig if limited else self.kubeconfig
        result = subprocess.run(
            [str(self.kubectl), f"--kubeconfig={config}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    # -- internals -------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.root / f"{name}.log").open("wb")
        self._processes.append(
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        )

    def _write_credentials(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.root / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (self.root / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (self.root / "tokens.csv").write_text(
            f'{self.tokens[ADMIN_USER]},{ADMIN_USER},1,"system:masters"\n'
            f"{self.tokens[LIMITED_USER]},{LIMITED_USER},2\n"
        )

    def _wait_ready(self, timeout: float) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(
            f"{self.url}/readyz",
            headers={"Authorization": f"Bearer {self.tokens[ADMIN_USER]}"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, name in zip(self._processes, ("etcd", "kube-apiserver"), strict=False):
                if process.poll() is not None:
                    raise ControlPlaneError(f"{name} exited:\n{self.logs(name)[-3000:]}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise ControlPlaneError(
            f"kube-apiserver not ready in {timeout} s:\n{self.logs('kube-apiserver')[-3000:]}"
        )

    def _write_kubeconfig(self, path: Path, user: str) -> None:
        certificate = self.root / "certs" / "apiserver.crt"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.url, "certificate-authority": str(certificate)},
                }
            ],
            "users": [{"name": user, "user": {"token": self.tokens[user]}}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": user}}],
            "current-context": "envtest",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
