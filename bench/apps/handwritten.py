"""The limit: a minimal hand-written boto3 consumer. Receive 10, run them on a thread pool,
delete them in one batch; one receive loop per ten workers. No retries, no visibility
extension, no graceful shutdown: what a perfect framework would cost."""

from __future__ import annotations

import json
import math
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config

from bench.apps.work import work


def main(endpoint: str, queue_url: str, workers: int) -> None:
    client = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=botocore.config.Config(max_pool_connections=workers + 4),
    )
    pool = ThreadPoolExecutor(workers)

    def handle(message: dict) -> None:
        body = json.loads(message["Body"])
        work(body.get("sleep_ms", 0), body.get("sent", 0))

    def loop() -> None:
        while True:
            messages = client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=20
            ).get("Messages", [])
            if not messages:
                continue
            list(pool.map(handle, messages))
            client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(math.ceil(workers / 10))]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
