"""Benchmarks: TaskQueue against a hand-written boto3 loop, Celery and Dramatiq on one SQS server."""
