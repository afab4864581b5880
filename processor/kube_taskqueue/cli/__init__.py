"""The `kube-taskqueue` command: run, enqueue, dev, and the operator's commands."""

from kube_taskqueue.cli.main import main

__all__ = ["main"]
