"""The one-node cluster for the end-to-end tests: built, brought up once per session, torn down
whatever the tests did (tests/support/cluster.py; hack/cluster/)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import (
    HACK,
    Cluster,
    ClusterError,
    SqsInNamespace,
    Timings,
    existing_cluster,
    running_node,
    start_node,
)

#: What the node needs on this machine; hack/cluster/install-packages.sh installs it.
NODE_TOOLS = ("containerd", "runc", "ctr", "iptables", "buildah", "mmdebstrap", "nsenter", "ip")


def _node_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the one-node cluster needs root (network namespace, cgroups, mounts)"
    missing = [tool for tool in NODE_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}: run {HACK / 'install-packages.sh'}"
    return None


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    existing = existing_cluster() or running_node()
    if existing is not None:
        yield existing
        existing.close()
        return
    reason = _node_unavailable()
    if reason:
        # CI installs the packages and runs as root: there a missing piece is a failure, not
        # a quiet skip of every end-to-end test.
        if os.environ.get("CI"):
            raise ClusterError(reason)
        pytest.skip(reason)
    timings = Timings()
    try:
        yield from start_node(tmp_path_factory.mktemp("node"), timings)
    finally:
        sys.stderr.write(
            f"\n[cluster] images {timings.images:.0f} s, node up {timings.up:.0f} s, "
            f"down {timings.down:.0f} s\n"
        )


@pytest.fixture(scope="session")
def sqs(cluster: Cluster) -> SqsInNamespace:
    return cluster.sqs()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The user story runs in file order and each step builds on the one before.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs the one-node cluster (root, containerd; hack/cluster/)"
    )
