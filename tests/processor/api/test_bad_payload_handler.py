"""A malformed message reaches the task's error handler only as `PayloadError`, which is not
a `ValueError`: a handler that deletes on `isinstance(error, ValueError)` (for its own code's
errors) no longer deletes malformed messages by accident; one written against `PayloadError`
still may. Against moto's SQS server, with a processor running in this test process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
from harness import processor_config, wait_for
from kube_taskqueue import Message, PayloadError, Provider
from kube_taskqueue.assignment import resolve
from kube_taskqueue.config import ProcessorConfig
from kube_taskqueue.runtime.app import Processor
from kube_taskqueue.task import JOB_NAME_ATTRIBUTE


class Strict(pydantic.BaseModel):
    n: int


def test_payload_error_is_not_a_value_error_and_carries_the_pydantic_error():
    provider = Provider()

    @provider.task("strict:job", queue="work")
    def strict(payload: Strict) -> None:
        pass

    with pytest.raises(PayloadError) as error:
        provider["strict:job"].parse_payload('{"n": "many"}')
    assert not isinstance(error.value, ValueError)
    assert isinstance(error.value.validation_error, pydantic.ValidationError)
    assert error.value.__cause__ is error.value.validation_error
    assert "n: Input should be a valid integer" in str(error.value)


@pytest.fixture
def run_with() -> Iterator[Callable[[Provider, dict[str, Any]], Processor]]:
    running: list[Processor] = []

    def start(provider: Provider, data: dict[str, Any]) -> Processor:
        config = ProcessorConfig.model_validate(data)
        provider, assignment = resolve(config, provider)
        processor = Processor(config=config, provider=provider, assignment=assignment)
        processor.start()
        running.append(processor)
        return processor

    yield start
    for processor in running:
        processor.stop(timeout=5)


def strict_provider(handler: Callable[[Exception, Message], bool], ran: list[Strict]) -> Provider:
    provider = Provider()

    @provider.task("strict:job", queue="work", handle_error=handler)
    def strict(payload: Strict) -> None:
        ran.append(payload)

    return provider


def send_malformed(sqs: Any, url: str) -> str:
    response = sqs.send_message(
        QueueUrl=url,
        MessageBody='{"n": "not a number"}',
        MessageAttributes={JOB_NAME_ATTRIBUTE: {"DataType": "String", "StringValue": "strict:job"}},
    )
    return str(response["MessageId"])


def config(endpoint: str, prefix: str) -> dict[str, Any]:
    return processor_config(
        endpoint=endpoint,
        prefix=prefix,
        app="unused:provider",  # the provider is given, not imported
        queues={
            "work": {"pollInterval": 1, "messageVisibilityTimeout": 10, "retryBackoffInitial": 0}
        },
    )


def test_a_handler_testing_for_value_error_keeps_a_malformed_message(
    sqs, sqs_endpoint, prefix, queues, run_with
):
    url = queues.create("work", max_receive_count=2)
    seen: list[Exception] = []
    ran: list[Strict] = []
    lock = threading.Lock()

    def delete_value_errors(error: Exception, message: Message) -> bool:
        with lock:
            seen.append(error)
        return isinstance(error, ValueError)  # meant for the task's own ValueErrors

    run_with(strict_provider(delete_value_errors, ran), config(sqs_endpoint, prefix))
    message_id = send_malformed(sqs, url)

    dead: dict[str, Any] = {}

    def dead_lettered() -> bool:
        dead.update({m["MessageId"]: m for m in queues.drain("work-dlq", wait=0.3)})
        return message_id in dead

    # Before: the handler's ValueError test matched the PayloadError and deleted it.
    wait_for(dead_lettered, timeout=30)
    assert len(seen) == 2  # one per receive, before the redrive policy moved it
    assert all(isinstance(error, PayloadError) for error in seen)
    assert all(isinstance(error.__cause__, pydantic.ValidationError) for error in seen)
    assert ran == []


def test_a_handler_written_against_payload_error_deletes_a_malformed_message(
    sqs, sqs_endpoint, prefix, queues, run_with
):
    url = queues.create("work", max_receive_count=2)
    seen: list[Exception] = []
    ran: list[Strict] = []

    def delete_bad_payloads(error: Exception, message: Message) -> bool:
        seen.append(error)
        return isinstance(error, PayloadError)

    processor = run_with(strict_provider(delete_bad_payloads, ran), config(sqs_endpoint, prefix))
    send_malformed(sqs, url)
    wait_for(lambda: processor.snapshot()["deleted"] == 1)
    wait_for(lambda: queues.counts("work") == (0, 0))
    assert [type(error) for error in seen] == [PayloadError]
    assert queues.counts("work-dlq") == (0, 0)
    assert ran == []
