"""The SQS transport: typed ids, the narrow client protocol we use, and the client factory.

Only the calls listed in `SqsClient` are used anywhere in the processor, so tests and
benchmarks can point it at any SQS-compatible server (moto, ElasticMQ, AWS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NewType, Protocol, cast

import boto3
import botocore.config
import botocore.exceptions

QueueUrl = NewType("QueueUrl", str)
ReceiptHandle = NewType("ReceiptHandle", str)

#: SQS's own limits.
MAX_BATCH = 10
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_SECONDS = 43_200

#: Error codes that mean "slow down / try later", not "you are wrong".
TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "SlowDown",
    }
)


class SqsClient(Protocol):
    """The subset of the boto3 SQS client the processor and the producer call."""

    def get_queue_url(self, *, QueueName: str) -> Mapping[str, Any]: ...

    def get_queue_attributes(
        self, *, QueueUrl: str, AttributeNames: Sequence[str]
    ) -> Mapping[str, Any]: ...

    def send_message(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def send_message_batch(
        self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]: ...

    def receive_message(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def delete_message_batch(
        self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]: ...

    def change_message_visibility_batch(
        self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]: ...


def make_client(
    *,
    region: str,
    endpoint: str | None,
    call_timeout_seconds: float,
    max_connections: int = 32,
    validate_parameters: bool = True,
) -> SqsClient:
    """Build a boto3 SQS client with a timeout on every call.

    Credentials come from the standard AWS chain (environment, profile, web identity).
    The read timeout leaves room for the longest long poll, so a slow answer is an error
    rather than a hang. botocore's own retries stay few: our loops retry with backoff.
    `validate_parameters=False` skips botocore's client-side check of every request, for
    callers whose requests are fixed in code (the processor): about 5 % of the CPU of a call.
    """
    config = botocore.config.Config(
        region_name=region,
        connect_timeout=call_timeout_seconds,
        read_timeout=call_timeout_seconds + MAX_WAIT_SECONDS,
        retries={"mode": "standard", "max_attempts": 2},
        max_pool_connections=max_connections,
        parameter_validation=validate_parameters,
    )
    client = boto3.session.Session().client("sqs", endpoint_url=endpoint or None, config=config)
    # boto3's generated signatures are stricter than the protocol's; the calls match.
    return cast(SqsClient, client)


def is_transient(error: BaseException) -> bool:
    """True when an SQS error is worth retrying: network trouble, throttling, 5xx."""
    if isinstance(
        error,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionError
        | botocore.exceptions.ReadTimeoutError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.HTTPClientError,
    ):
        return True
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return code in TRANSIENT_ERROR_CODES or status >= 500
    return False


#: Where boto3's default chain looks for credentials, for messages that say none were found.
CREDENTIAL_SOURCES = (
    "the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
    "the shared credentials and config files (~/.aws/credentials, ~/.aws/config; "
    "profile AWS_PROFILE), web identity (AWS_WEB_IDENTITY_TOKEN_FILE, as IRSA sets it in a pod), "
    "the container credentials endpoint (EKS Pod Identity, ECS) and the instance metadata service"
)


def describe_error(error: BaseException, *, endpoint: str | None = None) -> str:
    """One line naming the real cause of a failed SQS call, for people, not for code.

    Missing credentials are not a reachability problem, and a refused request is not a
    network one: each gets its own wording, so the message says what to fix.
    """
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return f"no AWS credentials were found; boto3 looks in {CREDENTIAL_SOURCES}"
    if isinstance(error, botocore.exceptions.PartialCredentialsError):
        return f"incomplete AWS credentials ({error}); boto3 looks in {CREDENTIAL_SOURCES}"
    if isinstance(error, botocore.exceptions.ClientError):
        detail = error.response.get("Error", {})
        return f"SQS refused the request: {detail.get('Code')}: {detail.get('Message')}"
    if is_transient(error):
        details = getattr(error, "kwargs", {})
        where = details.get("endpoint_url") or endpoint or "the AWS endpoint"
        # urllib3's text ends in the cause ("[Errno 111] Connection refused") after its own
        # description of the connection; botocore's repeats the URL.
        cause = details.get("error")
        reason = str(cause).rsplit(": ", 1)[-1] if cause is not None else str(error)
        return f"cannot reach SQS at {where}: {reason}"
    return str(error)
