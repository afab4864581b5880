"""`kube-taskqueue dashboard`: serve the dashboard locally, with the user's kubeconfig."""

from __future__ import annotations

import sys

import kubernetes
import uvicorn

from kube_taskqueue_dashboard.app import Settings, create_app
from kube_taskqueue_dashboard.cluster import Cluster, default_clients


def serve(*, namespace: str | None, host: str, port: int, read_only: bool) -> int:
    try:
        kubernetes.config.load_kube_config()
    except (kubernetes.config.ConfigException, OSError, ValueError) as error:
        print(f"kube-taskqueue: error: no usable kubeconfig: {error}", file=sys.stderr)
        return 2
    cluster = Cluster(kubernetes.client.ApiClient(), namespace=namespace, clients=default_clients())
    app = create_app(cluster, Settings(read_only=read_only))
    where = f"http://{host}:{port}/"
    print(f"TaskQueue dashboard on {where} ({'read-only' if read_only else 'actions enabled'})")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except (OSError, SystemExit) as error:
        print(f"kube-taskqueue: error: cannot serve on {host}:{port}: {error}", file=sys.stderr)
        return 2
    return 0
