"""The processor runtime: the pipeline that runs tasks from SQS.

poller (receive, long poll, ≤ free workers) → workers (one bounded pool for all queues) →
outcomes (delete, retry, give back; each settled once through the in-flight table) → acker
(batched deletes and visibility changes); heartbeat renews the in-flight set; clients sizes
and bounds the SQS clients; health serves /healthz, /readyz and /metrics; runner wires
signals to the shutdown order in app. Never imported by the task API (task, provider,
producer, config).
"""
