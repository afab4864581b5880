"""Tasks of the example app image, used by the one-node cluster tests (tests/cluster/).

Every task sends one message to the queue named by the `RESULTS_QUEUE_URL` environment
variable (set on the processor in the TaskQueue), naming the task, the payload's id, the pod
(its host name) and the attempt. A test reads that queue to see which messages were processed
where, without reaching into any pod.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import boto3
from kube_taskqueue import Provider, current_message
from pydantic import BaseModel


class Job(BaseModel):
    id: str
    #: Seconds the task takes, so a test can have messages in flight during a rollout.
    seconds: float = 0


@cache
def _results() -> tuple[Any, str]:
    url = os.environ["RESULTS_QUEUE_URL"]
    parts = urlsplit(url)
    # The endpoint is the queue URL's origin, so the one variable says where and which queue.
    client = boto3.client("sqs", endpoint_url=f"{parts.scheme}://{parts.netloc}")
    return client, url


async def _report(task: str, job: Job) -> None:
    if job.seconds:
        await asyncio.sleep(job.seconds)
    client, url = _results()
    message = current_message()
    body = {
        "task": task,
        "id": job.id,
        "pod": socket.gethostname(),
        "receiveCount": message.receive_count if message else None,
    }
    await asyncio.to_thread(client.send_message, QueueUrl=url, MessageBody=json.dumps(body))


provider = Provider()


@provider.task("echo:job", queue="work")
async def echo(payload: Job) -> None:
    await _report("echo:job", payload)


@provider.task("other:job", queue="other")
async def other(payload: Job) -> None:
    await _report("other:job", payload)


@provider.task("tick:job", queue="ticks")
async def tick(payload: Job) -> None:
    await _report("tick:job", payload)
