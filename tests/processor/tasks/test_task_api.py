"""Writing tasks: the class and decorator forms, the provider, payload validation, sends."""

from __future__ import annotations

import pytest
from kube_taskqueue import DuplicateTaskError, PayloadError, Producer, Provider, SendRequest, Task
from kube_taskqueue.logs import log_context
from kube_taskqueue.task import JOB_NAME_ATTRIBUTE, TRACE_ID_ATTRIBUTE
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Payload(BaseModel):
    param: str


class ExampleTask(Task[Payload]):
    name = "example:job"
    queue = "example_queue"
    payload_model = Payload

    def process(self, payload: Payload) -> None:
        pass


def producer() -> Producer:
    # build_request does no I/O; the client is never called.
    return Producer(client=None, queue_prefix="dev-")  # type: ignore[arg-type]


def test_decorator_infers_the_payload_model_from_the_annotation():
    provider = Provider()

    @provider.task("a:job", queue="q")
    def handler(payload: Payload) -> None:
        pass

    assert provider["a:job"].payload_model is Payload
    assert provider["a:job"].queue == "q"
    assert handler.__name__ == "handler"  # the decorator returns the function itself


def test_decorator_without_a_model_annotation_is_refused():
    provider = Provider()
    with pytest.raises(TypeError, match="annotated with a pydantic model"):

        @provider.task("a:job", queue="q")
        def handler(payload: dict) -> None:  # type: ignore[type-arg]
            pass


def test_duplicate_names_raise_naming_both_definitions():
    provider = Provider([ExampleTask()])
    with pytest.raises(DuplicateTaskError) as error:

        @provider.task("example:job", queue="other")
        def clash(payload: Payload) -> None:
            pass

    message = str(error.value)
    assert "'example:job' is defined twice" in message
    assert "ExampleTask" in message and "clash" in message
    assert "test_task_api.py" in message


def test_tasks_by_queue_groups_names():
    provider = Provider([ExampleTask()])

    @provider.task("c:job", queue="shared")
    def c(payload: Payload) -> None:
        pass

    @provider.task("b:job", queue="shared")
    def b(payload: Payload) -> None:
        pass

    assert provider.tasks_by_queue() == {
        "example_queue": ["example:job"],
        "shared": ["b:job", "c:job"],
    }


def test_payload_is_validated_before_sending_with_the_field_named():
    with pytest.raises(PayloadError, match=r"param: Field required"):
        producer().build_request(ExampleTask(), {"other": 1})


def test_unknown_keys_and_invalid_fields_are_reported_together():
    with pytest.raises(PayloadError) as error:
        producer().build_request(ExampleTask(), {"parma": "x"})
    assert str(error.value) == (
        "payload of task 'example:job' is invalid: parma: not a field of Payload (fields: "
        "param); set model_config extra='ignore' on the model to drop unknown keys; "
        "param: Field required"
    )


def test_send_request_carries_body_job_name_and_trace_id():
    request = producer().build_request(ExampleTask(), {"param": "value"})
    assert request["MessageBody"] == '{"param":"value"}'
    attributes = request["MessageAttributes"]
    assert attributes[JOB_NAME_ATTRIBUTE] == {"DataType": "String", "StringValue": "example:job"}
    assert len(attributes[TRACE_ID_ATTRIBUTE]["StringValue"]) == 32


def test_trace_id_is_inherited_inside_a_handler_context():
    with log_context(trace_id="abc123"):
        request = producer().build_request(ExampleTask(), Payload(param="x"))
    assert request["MessageAttributes"][TRACE_ID_ATTRIBUTE]["StringValue"] == "abc123"


def test_a_custom_builder_shapes_the_request_but_cannot_drop_routing():
    class Delayed(ExampleTask):
        def build_message(self, payload: Payload, request: SendRequest) -> SendRequest:
            return SendRequest(
                body=request.body,
                delay_seconds=5,
                attributes={"Custom": "1", JOB_NAME_ATTRIBUTE: "hijacked"},
                group_id="g",
                deduplication_id="d",
            )

    request = producer().build_request(Delayed(), {"param": "v"})
    assert request["DelaySeconds"] == 5
    assert request["MessageGroupId"] == "g"
    assert request["MessageDeduplicationId"] == "d"
    attributes = request["MessageAttributes"]
    assert attributes["Custom"]["StringValue"] == "1"
    assert attributes[JOB_NAME_ATTRIBUTE]["StringValue"] == "example:job"
    assert TRACE_ID_ATTRIBUTE in attributes


def test_an_oversized_body_is_refused_before_sending():
    with pytest.raises(PayloadError, match="at most 262144"):
        producer().build_request(ExampleTask(), {"param": "x" * 300_000})


def test_parse_payload_reports_bad_json_and_wrong_shape():
    task = ExampleTask()
    with pytest.raises(PayloadError, match="Invalid JSON"):
        task.parse_payload("not json")
    with pytest.raises(PayloadError, match="param"):
        task.parse_payload('{"param": 5}')
    assert task.parse_payload('{"param": "ok"}') == Payload(param="ok")


class Cleanup(BaseModel):
    older_than_days: int = 30


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")
    a: int = 1


class Aliased(BaseModel):
    value: int = Field(alias="Value")


class Other(BaseModel):
    x: int


class Narrower(Payload):
    extra: int = 0


def test_payload_error_is_not_a_value_error():
    # The error handler sees bad payloads as PayloadError; a handler's ValueError test (for
    # its own code, or pydantic's ValidationError) must not match it by accident.
    with pytest.raises(PayloadError) as error:
        ExampleTask().parse_payload('{"param": 5}')
    assert not isinstance(error.value, ValueError)
    assert isinstance(error.value.validation_error, ValidationError)
    assert error.value.__cause__ is error.value.validation_error


def test_a_misspelt_payload_key_is_refused_before_sending():
    # Before, pydantic dropped the unknown key and the field's default was sent.
    provider = Provider()

    @provider.task("cleanup:job", queue="q")
    def cleanup(payload: Cleanup) -> None:
        pass

    with pytest.raises(PayloadError) as error:
        producer().build_request(provider["cleanup:job"], {"older_then_days": 7})
    assert "older_then_days: not a field of Cleanup (fields: older_than_days)" in str(error.value)
    request = producer().build_request(provider["cleanup:job"], {"older_than_days": 7})
    assert request["MessageBody"] == '{"older_than_days":7}'


def test_unknown_keys_follow_the_model_s_own_policy_and_aliases():
    provider = Provider()

    @provider.task("lenient:job", queue="q")
    def lenient(payload: Lenient) -> None:
        pass

    @provider.task("aliased:job", queue="q")
    def aliased(payload: Aliased) -> None:
        pass

    # The model chose to ignore unknown keys: that is deliberate.
    assert producer().build_request(provider["lenient:job"], {"a": 2, "extra": 1})
    assert producer().build_request(provider["aliased:job"], {"Value": 2})
    # By name, without populate_by_name, pydantic would drop it: refused, naming the alias.
    with pytest.raises(PayloadError, match=r"value: not a field of Aliased \(fields: Value\)"):
        producer().build_request(provider["aliased:job"], {"value": 2})


def test_a_payload_model_contradicting_the_annotation_is_refused():
    provider = Provider()
    with pytest.raises(TypeError, match="takes a Payload but is given payload_model=Other"):

        @provider.task("a:job", queue="q", payload_model=Other)
        def handler(payload: Payload) -> None:
            pass

    # A subclass of the annotation is what the function can take.
    @provider.task("b:job", queue="q", payload_model=Narrower)
    def narrower(payload: Payload) -> None:
        pass

    assert provider["b:job"].payload_model is Narrower
