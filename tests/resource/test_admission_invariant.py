"""Admission is the one gate: whatever validation accepts renders into objects the API server
accepts and queues SQS creates; whatever it refuses, it refuses naming a field.

Hypothesis builds TaskQueue manifests from the model, at and past every limit (name lengths,
SQS's 80 characters, the message size), with unusual but legal characters, many queues,
tasks and processors, FIFO queues, schedules and env, and checks both ways on the test
control plane (server-side dry run) and moto over HTTP. It runs a bounded number of examples
here; `make fuzz` (TASKQUEUE_FUZZ_EXAMPLES) runs many more. Every counterexample it found is
kept below as a fixed regression case. Hypothesis's example database is off: nothing is
written to the repository.
"""

from __future__ import annotations

import copy
import json
import os
import re
import string
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from kube_taskqueue_operator.resource import naming
from kube_taskqueue_operator.resource.models import API_VERSION, GROUP, PLURAL, VERSION
from kube_taskqueue_operator.resource.render import queue_plan, render
from kube_taskqueue_operator.resource.validation import InvalidDocument, parse, validate_all

#: Examples per run: a few seconds' worth in `make test`, many more in `make fuzz`.
EXAMPLES = int(os.environ.get("TASKQUEUE_FUZZ_EXAMPLES", "300"))

#: How every refusal starts: a field path, or the queue, task or processor at fault.
NAMES_A_FIELD = re.compile(
    r"^(metadata\.|spec\.|\(document\)|task '|queue '|processor '|scheduled tasks |SQS queue )"
)

# -- the manifests -----------------------------------------------------------------------------

LABEL_CHARS = string.ascii_lowercase + string.digits + "-"
QUEUE_CHARS = string.ascii_letters + string.digits + "_-"
TASK_CHARS = string.ascii_letters + string.digits + "_.:/-"


def dns_label(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Mostly valid DNS labels (the ends fixed) of `min_size` to `max_size` characters."""
    return st.text(LABEL_CHARS, min_size=min_size, max_size=max_size).map(
        lambda s: (
            ("a" + s[1:] if s[0] == "-" else s)[:-1] + ("z" if s[-1] == "-" else s[-1])
            if len(s) > 1
            else s.replace("-", "a")
        )
    )


def mostly(valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` seven times in eight: each field is past its limit now and then, and most
    manifests are still accepted, so both sides of the invariant are exercised. (Shrinking
    goes towards `valid`.)"""
    return st.integers(0, 7).flatmap(lambda i: odd if i == 7 else valid)


def short_or_long(
    make: Any, short: tuple[int, int], long: tuple[int, int]
) -> st.SearchStrategy[str]:
    """Names mostly short, now and then near, at and past the limit: `make(min, max)`."""
    return st.integers(0, 3).flatmap(lambda i: make(*long) if i == 3 else make(*short))


NAMES = mostly(
    short_or_long(dns_label, (1, 12), (40, 70)),
    st.sampled_from(["Accounts_X", "accoünts", "accounts\n", "a.b", "-x", "x" * 254, "a\x07"]),
)
IMAGES = mostly(
    st.builds(
        "{}{}{}".format,
        st.sampled_from(["", "registry.example.com/", "localhost:5000/", "[::1]:5000/", "R.io/"]),
        st.sampled_from(["app", "team/app_x.y-z", "a" * 250, "a__b", "a--b"]),
        st.sampled_from(["", ":1.4.2", ":latest", "@sha256:" + "0" * 64, ":v1@sha256:" + "a" * 64]),
    ),
    st.sampled_from(["app:1 ", "app: 1", "a b", "App", "app:", "app@sha256:1", "apü", "\tapp"]),
)
REGIONS = mostly(
    st.sampled_from(["us-east-1", "eu-west-1", "us-gov-west-1", "eusc-de-east-1"]),
    st.sampled_from(["-", "us", "local", "us-east"]),
)
ENDPOINTS = mostly(
    st.sampled_from([None, "http://127.0.0.1:9324", "https://sqs.example.net", "http://[::1]:1/x"]),
    st.sampled_from(["http://", "http://a b", "https://h:99999", "http://[::1"]),
)
SCHEDULES = mostly(
    st.sampled_from(
        ["0 * * * *", "*/5 * * * *", "@hourly", "@every 90m", "30 18-23 * * mon-fri", "0 0 1 jan *"]
    ),
    st.sampled_from(["0 0 * * * *", "61 * * * *", "0 0 L * *", "TZ=UTC 0 * * * *", "@weekly2"]),
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
#: `{"x":"…"}` at the payload limit, a byte past it, and a byte past SQS's own limit (which
#: moto enforces on the body); the JSON around the text is 8 bytes.
AT_LIMIT = {"x": "a" * (naming.MAX_SCHEDULED_PAYLOAD_BYTES - 8)}
PAST_LIMIT = {"x": "a" * (naming.MAX_SCHEDULED_PAYLOAD_BYTES - 7)}
PAST_SQS = {"x": "a" * (naming.MAX_SQS_MESSAGE_BYTES - 7)}
#: One payload in four at a limit: few examples get past every other rule with one.
PAYLOADS = st.integers(0, 3).flatmap(
    lambda i: (
        st.sampled_from([AT_LIMIT, PAST_LIMIT, PAST_SQS, PAST_SQS])
        if i == 3
        else st.none() | st.dictionaries(st.text(max_size=10), JSON, max_size=4)
    )
)
ENV_NAMES = mostly(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
    st.sampled_from(naming.OPERATOR_ENV),
)
TASK_NAMES = mostly(
    short_or_long(lambda lo, hi: st.text(TASK_CHARS, min_size=lo, max_size=hi), (1, 16), (60, 82)),
    st.sampled_from(["::", "__:", "--help", "-x", "a" * 80, "a:" * 40]),
)
QUEUE_NAMES = short_or_long(
    lambda lo, hi: st.text(QUEUE_CHARS, min_size=lo, max_size=hi), (1, 12), (30, 50)
)
PREFIXES = short_or_long(
    lambda lo, hi: st.text(QUEUE_CHARS, min_size=lo, max_size=hi), (0, 8), (30, 42)
)


@st.composite
def queues(draw: st.DrawFn) -> list[dict[str, Any]]:
    result = []
    for stem in draw(st.lists(QUEUE_NAMES, min_size=1, max_size=6, unique=True)):
        queue: dict[str, Any] = {"name": stem + draw(st.sampled_from(["", naming.FIFO_SUFFIX]))}
        if draw(st.booleans()):
            queue["deadLetter"] = {"maxReceiveCount": draw(st.integers(1, 10))}
        result.append(queue)
    if draw(st.integers(0, 7)) == 0:  # another queue on the first one's dead-letter name
        stem = result[0]["name"].removesuffix(naming.FIFO_SUFFIX)
        fifo = naming.FIFO_SUFFIX if result[0]["name"].endswith(naming.FIFO_SUFFIX) else ""
        result.append({"name": stem + naming.DEAD_LETTER_SUFFIX + fifo})
    return result


@st.composite
def tasks(draw: st.DrawFn, queue_names: list[str]) -> list[dict[str, Any]]:
    result = []
    names = draw(st.lists(TASK_NAMES, min_size=1, max_size=8, unique=True))
    if draw(st.integers(0, 15)) == 15:
        names.append(names[0])  # declared twice
    for name in names:
        task: dict[str, Any] = {
            "name": name,
            "queue": draw(st.sampled_from(queue_names)),
        }
        if draw(st.booleans()):
            task["schedule"] = draw(SCHEDULES)
            payload = draw(PAYLOADS)
            if payload is not None:
                task["payload"] = payload
        result.append(task)
    return result


@st.composite
def processors(draw: st.DrawFn, task_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Processors that own whole queues (mostly: sometimes a task goes to a second one)."""
    names = draw(
        st.lists(short_or_long(dns_label, (1, 10), (20, 45)), min_size=1, max_size=4, unique=True)
    )
    count = len(names)
    owner_of_queue = {t["queue"]: draw(st.integers(0, count - 1)) for t in task_list}
    owned: list[list[str]] = [[] for _ in names]
    for task in task_list:
        owned[owner_of_queue[task["queue"]]].append(task["name"])
    if draw(st.integers(0, 15)) == 0:
        owned[draw(st.integers(0, count - 1))].append(task_list[0]["name"])
    result = []
    for name, owned_tasks in zip(names, owned, strict=True):
        if not owned_tasks:
            continue
        processor: dict[str, Any] = {"name": name, "tasks": list(dict.fromkeys(owned_tasks))}
        if draw(st.booleans()):
            processor["env"] = [
                {"name": draw(ENV_NAMES), "value": draw(st.text(max_size=10))}
                for _ in range(draw(st.integers(0, 3)))
            ]
        processor["autoscaling"] = draw(
            st.sampled_from(
                [None, {"minReplicas": 1, "maxReplicas": 3}, {"minReplicas": 0, "external": True}]
            )
        )
        if processor["autoscaling"] is None:
            del processor["autoscaling"]
        result.append(processor)
    return result


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    queue_list = draw(queues())
    task_list = draw(tasks([q["name"] for q in queue_list]))
    return {
        "apiVersion": API_VERSION,
        "kind": "TaskQueue",
        "metadata": {"name": draw(NAMES)},
        "spec": {
            "image": draw(IMAGES),
            "app": "app.tasks:provider",
            "sqs": {
                "region": draw(REGIONS),
                "queuePrefix": draw(PREFIXES),
                **({"endpoint": endpoint} if (endpoint := draw(ENDPOINTS)) else {}),
            },
            "queues": queue_list,
            "tasks": task_list,
            "processors": draw(processors(task_list)),
        },
    }


# -- the invariant -----------------------------------------------------------------------------


def refusals(document: dict[str, Any]) -> list[str]:
    """What validation says (the schema's problems, then the rules'); [] when accepted."""
    try:
        resource = parse(document)
    except InvalidDocument as error:
        return [problem.message for problem in error.problems]
    return [problem.message for problem in validate_all([resource])]


CREATE = {
    "ConfigMap": lambda c: kubernetes.client.CoreV1Api(c).create_namespaced_config_map,
    "Deployment": lambda c: kubernetes.client.AppsV1Api(c).create_namespaced_deployment,
    "HorizontalPodAutoscaler": lambda c: (
        kubernetes.client.AutoscalingV2Api(c).create_namespaced_horizontal_pod_autoscaler
    ),
    "CronJob": lambda c: kubernetes.client.BatchV1Api(c).create_namespaced_cron_job,
}


def dry_run_create(kube_client: Any, namespace: str, body: dict[str, Any]) -> None:
    try:
        if body["kind"] == "TaskQueue":
            kubernetes.client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body, dry_run="All"
            )
        else:
            CREATE[body["kind"]](kube_client)(namespace, body, dry_run="All")
    except kubernetes.client.ApiException as error:
        pytest.fail(
            f"validation accepted it, the API server refused {body['kind']} "
            f"{body['metadata']['name']!r}: {error.body}"
        )


def create_queues(sqs: Any, resource: Any, urls: dict[str, str]) -> None:
    """Every queue of the plan, as the operator makes it (dead-letter queue and redrive
    policy included), into `urls` (SQS name → URL) as they are made."""
    # moto, like AWS since 2025, takes 1 MiB messages by default; the queues here take the
    # 256 KiB that SQS always took (and compatible services take), the limit validation holds
    # scheduled payloads to.
    limit = {"MaximumMessageSize": str(naming.MAX_SQS_MESSAGE_BYTES)}
    for definition in queue_plan(resource):
        attributes = {**definition.attributes, **limit}
        if definition.dead_letter is not None:
            dead = definition.dead_letter
            dead_attributes = {**dead.attributes, **limit}
            url = sqs.create_queue(QueueName=dead.name, Attributes=dead_attributes, tags=dead.tags)
            urls[dead.name] = url["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url["QueueUrl"], AttributeNames=["QueueArn"])
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                    "maxReceiveCount": str(definition.max_receive_count),
                }
            )
        url = sqs.create_queue(
            QueueName=definition.name, Attributes=attributes, tags=definition.tags
        )
        urls[definition.name] = url["QueueUrl"]


def send_scheduled(sqs: Any, resource: Any, objects: list[dict[str, Any]], urls: dict[str, str]):
    """One message per CronJob, with the body its command holds (the kubelet turns `$$` into
    `$`) and the attributes the processor's producer sets."""
    cronjobs = {o["metadata"]["name"]: o for o in objects if o["kind"] == "CronJob"}
    queues = {queue.name: queue for queue in resource.spec.queues}
    for task in resource.spec.tasks:
        if task.schedule is None:
            continue
        cronjob = cronjobs[naming.cronjob_name(resource, task.name)]
        container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        fields: dict[str, Any] = {
            "QueueUrl": urls[naming.physical_name(resource, task.queue)],
            "MessageBody": container["command"][-1].replace("$$", "$"),
            "MessageAttributes": {
                "JobName": {"DataType": "String", "StringValue": task.name},
                "TraceId": {"DataType": "String", "StringValue": "0" * 32},
            },
        }
        if queues[task.queue].fifo:
            fields.update(MessageGroupId=task.name, MessageDeduplicationId="run-1")
        sqs.send_message(**fields)


def check(
    document: dict[str, Any],
    *,
    namespace: str,
    kube_client: Any,
    sqs: Any,
    image_parser: Callable[[list[str]], list[str]],
) -> str:
    """The invariant for one manifest; "accepted" or "refused", for the statistics."""
    document = copy.deepcopy(document)
    document["metadata"]["namespace"] = namespace
    problems = refusals(document)
    if problems:
        unnamed = [p for p in problems if not NAMES_A_FIELD.match(p)]
        assert not unnamed, f"refusals that name no field: {unnamed}"
        return "refused"
    resource = parse(document)
    dry_run_create(kube_client, namespace, document)
    objects = render(resource)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), f"rendered twice: {names}"
    for body in objects:
        dry_run_create(kube_client, namespace, body)
    # The API server takes any image string; the kubelet parses it when it pulls.
    [parsed] = image_parser([resource.spec.image])
    assert parsed == "ok", f"the kubelet refuses image {resource.spec.image!r}: {parsed}"
    plan = [d.name for q in queue_plan(resource) for d in (q, q.dead_letter) if d is not None]
    # SQS would take a second create of one name (same attributes) as the same queue.
    assert len(plan) == len(set(plan)), f"two queues on one SQS queue: {plan}"
    urls: dict[str, str] = {}
    try:
        create_queues(sqs, resource, urls)
        send_scheduled(sqs, resource, objects, urls)
    except sqs.exceptions.ClientError as error:
        pytest.fail(f"validation accepted it, SQS refused: {error}")
    finally:
        for url in urls.values():
            sqs.delete_queue(QueueUrl=url)
    return "accepted"


@settings(
    max_examples=EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(document=manifests())
def test_what_validation_accepts_the_api_server_and_sqs_accept(
    document, crd, namespace, kube_client, sqs, image_parser
):
    event(
        check(
            document,
            namespace=namespace,
            kube_client=kube_client,
            sqs=sqs,
            image_parser=image_parser,
        )
    )


# -- counterexamples Hypothesis found, kept ------------------------------------------------------


def base() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TaskQueue",
        "metadata": {"name": "app"},
        "spec": {
            "image": "registry.example.com/app:1.0",
            "app": "app.tasks:provider",
            "sqs": {"region": "us-east-1", "queuePrefix": ""},
            "queues": [{"name": "work"}],
            "tasks": [{"name": "job", "queue": "work"}],
            "processors": [{"name": "main", "tasks": ["job"]}],
        },
    }


def changed(*changes: Any) -> dict[str, Any]:
    """`base()` with each change (a function of the spec) applied."""
    document = base()
    for change in changes:
        change(document["spec"])
    return document


def renamed(name: str) -> dict[str, Any]:
    document = base()
    document["metadata"]["name"] = name
    return document


def scheduled(name: str, **task: Any) -> Any:
    def change(spec: dict[str, Any]) -> None:
        spec["tasks"] = [{"name": name, "queue": "work", "schedule": "@hourly", **task}]
        spec["processors"][0]["tasks"] = [name]

    return change


def queue(**fields: Any) -> Any:
    """Changes to the first queue; a new name moves its task along."""

    def change(spec: dict[str, Any]) -> None:
        spec["queues"][0].update(fields)
        spec["tasks"][0]["queue"] = spec["queues"][0]["name"]

    return change


def prefix(value: str) -> Any:
    return lambda spec: spec["sqs"].update(queuePrefix=value)


def second_queue(name: str) -> Any:
    def change(spec: dict[str, Any]) -> None:
        spec["queues"].append({"name": name})
        spec["tasks"].append({"name": "other", "queue": name})
        spec["processors"][0]["tasks"].append("other")

    return change


#: Counterexamples: the issue's (each admitted before this change, then refused by the API
#: server or SQS), and what Hypothesis found with each rule disabled in turn. Each with the
#: refusal expected (a part of the message), or None when it must be accepted and work.
REGRESSIONS: dict[str, tuple[dict[str, Any], str | None]] = {
    "dlq-past-80": (
        changed(prefix("p" * 40), queue(name="q" * 40, deadLetter={})),
        "is 84 characters; SQS allows at most 80",
    ),
    "fifo-dlq-past-80": (
        changed(prefix("p" * 40), queue(name="q" * 35 + ".fifo", deadLetter={})),
        "is 84 characters; SQS allows at most 80",
    ),
    "fifo-at-80": (changed(prefix("p" * 40), queue(name="q" * 35 + ".fifo")), None),
    "queue-past-80": (changed(prefix("0" * 31), queue(name="0" * 50)), "is 81 characters"),
    "six-fields": (changed(scheduled("job", schedule="0 0 * * * *")), "it has six fields"),
    "no-slug-colons": (changed(scheduled("::")), "a scheduled task's name needs a letter"),
    "no-slug-underscores": (changed(scheduled("__:")), "a scheduled task's name needs a letter"),
    "task-named-help": (changed(scheduled("--help")), None),
    "task-named-dash-x": (changed(scheduled("-x")), None),
    "operator-env": (
        changed(lambda s: s["processors"][0].update(env=[{"name": "AWS_REGION", "value": "x"}])),
        "env variable 'AWS_REGION' is set by the operator",
    ),
    "region-dash": (changed(lambda s: s["sqs"].update(region="-")), "spec.sqs.region '-'"),
    "region-local": (changed(lambda s: s["sqs"].update(region="local")), "not an AWS region"),
    "queue-on-a-dlq-name": (
        changed(queue(deadLetter={}), second_queue("work-dlq")),
        "is used by the dead-letter queue of queue 'work' and queue 'work-dlq'",
    ),
    "queue-on-a-dlq-name-0": (
        changed(queue(name="0", deadLetter={}), second_queue("0-dlq")),
        "the SQS queue name '0-dlq' is used by",
    ),
    "fifo-and-standard-stem": (changed(queue(deadLetter={}), second_queue("work.fifo")), None),
    "name-underscore": (renamed("Accounts_X"), "metadata.name 'Accounts_X' is not a DNS label"),
    "name-non-ascii": (renamed("accoünts"), "is not a DNS label"),
    "name-newline": (renamed("accounts\n"), "is not a DNS label"),
    "name-bell": (renamed("a\x07"), "is not a DNS label"),
    "name-dotted": (renamed("a.b"), "is not a DNS label"),
    "name-63": (renamed("a" * 58), None),  # app-main: 63
    "deployment-64": (renamed("a" * 59), "is 64 characters, longer than 63"),
    "payload-at-limit": (changed(scheduled("job", payload=AT_LIMIT)), None),
    "payload-past-limit": (changed(scheduled("job", payload=PAST_LIMIT)), "261121 bytes"),
    "payload-past-sqs": (changed(scheduled("job", payload=PAST_SQS)), "262145 bytes"),
    "payload-dollars": (changed(scheduled("job", payload={"x": "$(AWS_REGION) $$"})), None),
    "image-trailing-space": (
        changed(lambda s: s.update(image="app:1 ")),
        "spec.image 'app:1 ' is not an image reference",
    ),
    "image-inner-space": (changed(lambda s: s.update(image="a b")), "not an image reference"),
    "image-long-without-registry": (
        changed(lambda s: s.update(image="a" * 250)),
        "not an image reference",
    ),
    "cronjob-name-hashed": (changed(scheduled("t" * 80)), None),
    # Found by reading the processor's configuration model: rendering raised on it.
    "endpoint-bare-scheme": (
        changed(lambda s: s["sqs"].update(endpoint="http://")),
        "spec.sqs.endpoint 'http://' is not an http(s) URL with a host",
    ),
    # Found by Hypothesis in CI: the cross-resource identity parsed the endpoint before the
    # endpoint rule could refuse it, and urllib raised.
    "endpoint-open-ipv6": (
        changed(lambda s: s["sqs"].update(endpoint="http://[::1")),
        "spec.sqs.endpoint 'http://[::1'",
    ),
}


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_counterexamples_stay_fixed(case, crd, namespace, kube_client, sqs, image_parser):
    document, refusal = REGRESSIONS[case]
    document = {**document, "metadata": {**document["metadata"], "namespace": namespace}}
    problems = refusals(document)
    if refusal is None:
        assert problems == []
    else:
        assert any(refusal in problem for problem in problems), problems
    check(
        document,
        namespace=namespace,
        kube_client=kube_client,
        sqs=sqs,
        image_parser=image_parser,
    )
