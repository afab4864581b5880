"""A real one-node Kubernetes cluster for end-to-end tests (tests/cluster/).

hack/cluster/images.sh builds the images (no daemon, no registry) and hack/cluster/up.sh starts
the node inside a network namespace of its own, with the SQS server the pods use; down.sh tears
it all down. The test process stays in the host's namespace: its kubectl, helm and
kube-taskqueue commands run through `nsenter --net`, and its SQS calls go through one thread
that entered the namespace (a thread's sockets belong to the namespace it is in), so nothing
of the tests listens on or talks to an address outside the namespace.

Any other cluster (kind, a cloud one) can take the node's place: `ExistingCluster` settings come
from TASKQUEUE_E2E_KUBECONFIG, TASKQUEUE_E2E_SQS_ENDPOINT (reached by the pods and the tests)
and the image names (TASKQUEUE_E2E_OPERATOR_IMAGE, TASKQUEUE_E2E_APP_IMAGE,
TASKQUEUE_E2E_APP_IMAGE_NEXT).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack" / "cluster"
CHART = REPO / "charts" / "kube-taskqueue-operator"
REGION = "us-east-1"
#: The image tag images.sh builds (the chart's appVersion) and the app tag a GitOps edit bumps to.
TAG = "0.1.0"
NEXT_TAG = "0.1.1"

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000


class ClusterError(RuntimeError):
    pass


@dataclass
class Images:
    operator: str
    app: str
    #: The same app under another tag: a GitOps image bump without another build.
    app_next: str


@dataclass
class Cluster:
    kubeconfig: Path
    #: The SQS endpoint the pods and the tests use.
    sqs_endpoint: str
    images: Images
    #: Network namespace the cluster lives in (None: the cluster is reachable from here).
    netns: Path | None = None
    assets: Path | None = None
    containerd_socket: Path | None = None
    _namespace_thread: ThreadPoolExecutor | None = field(default=None, repr=False)

    # -- commands ------------------------------------------------------------------------

    def run(
        self,
        *command: str,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command where the cluster is (inside its network namespace)."""
        argv = list(command)
        if self.netns is not None:
            argv = ["nsenter", f"--net={self.netns}", "--", *argv]
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig), **(env or {})},
        )
        if check and result.returncode != 0:
            raise ClusterError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def tool(self, name: str) -> str:
        return str(self.assets / name) if self.assets else name

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(self.tool("kubectl"), *args, **kwargs)

    def helm(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(self.tool("helm"), *args, **kwargs)

    def get(self, *args: str) -> Any:
        """`kubectl get ... -o json`, parsed."""
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def apply(self, document: Mapping[str, Any], *, check: bool = True) -> Any:
        return self.kubectl("apply", "-f", "-", input=json.dumps(document), check=check)

    def node_log(self, name: str, lines: int = 60) -> str:
        """The last lines of a node component's log (hack/cluster/up.sh: $DIR/logs/NAME.log,
        e.g. keda-operator, keda-adapter, kube-controller-manager); "" on another cluster."""
        if self.netns is None:
            return ""
        path = state_dir() / "logs" / f"{name}.log"
        try:
            text = path.read_text(errors="replace")
        except OSError as error:
            return f"({path}: {error})"
        return "\n".join(text.splitlines()[-lines:])

    def tag_image(self, source: str, target: str) -> None:
        """A second name for an imported image (the node's containerd), as a registry push of
        the same build under a new tag would give."""
        if self.containerd_socket is None:
            raise ClusterError("tagging needs the node's containerd; push the tag instead")
        subprocess.run(
            ["ctr", "-a", str(self.containerd_socket), "-n", "k8s.io", "images", "tag",
             "--force", source, target],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip

    # -- SQS from the namespace ------------------------------------------------------------

    def in_namespace(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `function` on the thread that sits in the cluster's network namespace."""
        if self.netns is None:
            return function(*args, **kwargs)
        if self._namespace_thread is None:
            self._namespace_thread = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix="netns",
                initializer=_enter,
                initargs=(self.netns,),
            )
        return self._namespace_thread.submit(function, *args, **kwargs).result()

    def sqs(self) -> SqsInNamespace:
        return SqsInNamespace(self)

    def close(self) -> None:
        if self._namespace_thread is not None:
            self._namespace_thread.shutdown()
            self._namespace_thread = None

    # -- waiting -------------------------------------------------------------------------

    def wait_rollout(self, namespace: str, kind_name: str, timeout: int = 180) -> None:
        self.kubectl(
            "rollout", "status", "-n", namespace, kind_name, f"--timeout={timeout}s",
            timeout=timeout + 10,
        )  # fmt: skip


def _enter(netns: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    with netns.open("rb") as handle:
        if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({netns})")


class SqsInNamespace:
    """A boto3 SQS client made and used on the namespace thread: every call's connection is
    opened from inside the cluster's network namespace."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._client = cluster.in_namespace(
            boto3.client, "sqs", endpoint_url=cluster.sqs_endpoint, region_name=REGION
        )

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._cluster.in_namespace(method, *args, **kwargs)

        return call


def wait_until(
    what: str, check: Callable[[], T | None], *, timeout: float, interval: float = 1
) -> T:
    """Poll `check` until it returns something truthy; ClusterError naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values


def existing_cluster() -> Cluster | None:
    """The cluster named by TASKQUEUE_E2E_KUBECONFIG, if set (kind or any other)."""
    kubeconfig = os.environ.get("TASKQUEUE_E2E_KUBECONFIG")
    if not kubeconfig:
        return None
    try:
        images = Images(
            operator=os.environ["TASKQUEUE_E2E_OPERATOR_IMAGE"],
            app=os.environ["TASKQUEUE_E2E_APP_IMAGE"],
            app_next=os.environ["TASKQUEUE_E2E_APP_IMAGE_NEXT"],
        )
        endpoint = os.environ["TASKQUEUE_E2E_SQS_ENDPOINT"]
    except KeyError as missing:
        raise ClusterError(f"TASKQUEUE_E2E_KUBECONFIG is set but {missing} is not") from None
    return Cluster(kubeconfig=Path(kubeconfig), sqs_endpoint=endpoint, images=images)


@dataclass
class Timings:
    images: float = 0
    up: float = 0
    down: float = 0


def _node(env: Mapping[str, str]) -> Cluster:
    return Cluster(
        kubeconfig=Path(env["TASKQUEUE_KUBECONFIG"]),
        sqs_endpoint=env["TASKQUEUE_SQS_ENDPOINT"],
        images=Images(
            operator=f"localhost/kube-taskqueue-operator:{TAG}",
            app=f"localhost/taskqueue-example-app:{TAG}",
            app_next=f"localhost/taskqueue-example-app:{NEXT_TAG}",
        ),
        netns=Path(env["TASKQUEUE_NETNS_PATH"]),
        assets=Path(env["TASKQUEUE_ASSETS"]),
        containerd_socket=Path(env["TASKQUEUE_CONTAINERD_SOCK"]),
    )


def state_dir() -> Path:
    return Path(os.environ.get("TASKQUEUE_CLUSTER_DIR", "/tmp/taskqueue-cluster"))


def running_node() -> Cluster | None:
    """The node a developer brought up with `make cluster-up`, when TASKQUEUE_CLUSTER_REUSE=1:
    the tests then use it as it is and leave it up (`make cluster-down` removes it)."""
    env_file = state_dir() / "env.sh"
    if os.environ.get("TASKQUEUE_CLUSTER_REUSE") != "1" or not env_file.exists():
        return None
    cluster = _node(_env_file(env_file))
    cluster.tag_image(cluster.images.app, cluster.images.app_next)
    return cluster


def start_node(workdir: Path, timings: Timings) -> Iterator[Cluster]:
    """Build the images, bring the node up, yield it; tear it down whatever happened."""
    started = time.monotonic()
    archives = _run_script(HACK / "images.sh", str(workdir / "images"), TAG, timeout=1800)
    timings.images = time.monotonic() - started
    started = time.monotonic()
    cluster: Cluster | None = None
    try:
        # Long enough for a cold build of the node components, which up.sh waits for.
        _run_script(HACK / "up.sh", *archives, timeout=1500)
        timings.up = time.monotonic() - started
        cluster = _node(_env_file(state_dir() / "env.sh"))
        cluster.tag_image(cluster.images.app, cluster.images.app_next)
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        started = time.monotonic()
        _run_script(HACK / "down.sh", timeout=300)
        timings.down = time.monotonic() - started


def _run_script(script: Path, *args: str, timeout: float) -> list[str]:
    """Run one of hack/cluster's scripts; its stdout lines. Its log (stderr) is shown on failure."""
    result = subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise ClusterError(f"{script.name} exited {result.returncode}:\n{result.stderr[-6000:]}")
    return [line for line in result.stdout.splitlines() if line]
