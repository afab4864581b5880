"""The limits of what a TaskQueue renders into: names SQS and the API server accept, the size
of a scheduled message, region and image shapes. Each rule is refused by the one validation
function, with a message naming the field and the limit."""

from __future__ import annotations

import pytest
from kube_taskqueue_operator.resource import naming
from kube_taskqueue_operator.resource.defaults import SqsDefaults, with_defaults
from kube_taskqueue_operator.resource.validation import parse, validate_one


def problems_of(manifest) -> list[str]:
    return [problem.message for problem in validate_one(parse(manifest))]


def single_queue(manifest, name: str = "work", **queue) -> dict:
    """The example cut to one queue, one task and one processor."""
    spec = manifest["spec"]
    spec["queues"] = [{"name": name, **queue}]
    spec["tasks"] = [{"name": "job", "queue": name}]
    spec["processors"] = [{"name": "main", "tasks": ["job"]}]
    return manifest


# -- SQS queue names --------------------------------------------------------------------------


def test_a_dead_letter_name_past_80_characters_is_refused(manifest):
    single_queue(manifest, name="q" * 40, deadLetter={"maxReceiveCount": 3})
    manifest["spec"]["sqs"]["queuePrefix"] = "p" * 40
    assert problems_of(manifest) == [
        f"spec.queues.0.name {'q' * 40!r}: the SQS queue name {'p' * 40 + 'q' * 40 + '-dlq'!r} "
        "(spec.sqs.queuePrefix + name + '-dlq', its dead-letter queue) is 84 characters; SQS "
        "allows at most 80, '.fifo' included"
    ]


def test_the_fifo_suffix_counts(manifest):
    single_queue(manifest, name="q" * 35 + ".fifo", deadLetter={})
    manifest["spec"]["sqs"]["queuePrefix"] = "p" * 40
    # The queue itself is 80 characters: allowed.
    assert problems_of(manifest) == [
        f"spec.queues.0.name {'q' * 35 + '.fifo'!r}: the SQS queue name "
        f"{'p' * 40 + 'q' * 35 + '-dlq.fifo'!r} (spec.sqs.queuePrefix + name + '-dlq', before "
        "'.fifo', its dead-letter queue) is 84 characters; SQS allows at most 80, '.fifo' "
        "included"
    ]


def test_a_queue_name_past_80_characters_is_refused(manifest):
    single_queue(manifest, name="q" * 41)
    manifest["spec"]["sqs"]["queuePrefix"] = "p" * 40
    assert problems_of(manifest) == [
        f"spec.queues.0.name {'q' * 41!r}: the SQS queue name {'p' * 40 + 'q' * 41!r} "
        "(spec.sqs.queuePrefix + name) is 81 characters; SQS allows at most 80, '.fifo' "
        "included"
    ]


def test_names_of_exactly_80_characters_pass(manifest):
    single_queue(manifest, name="q" * 36, deadLetter={})
    manifest["spec"]["sqs"]["queuePrefix"] = "p" * 40
    resource = parse(manifest)
    assert len(naming.dead_letter_name(resource, "q" * 36)) == naming.MAX_SQS_QUEUE_NAME
    assert validate_one(resource) == []


def test_the_operators_default_prefix_counts_too(manifest):
    single_queue(manifest, name="q" * 41)
    del manifest["spec"]["sqs"]["queuePrefix"]
    resource = with_defaults(parse(manifest), SqsDefaults(queue_prefix="p" * 40))
    [problem] = validate_one(resource)
    assert "is 81 characters; SQS allows at most 80" in problem.message


def test_a_default_prefix_sqs_refuses_is_refused(manifest):
    del manifest["spec"]["sqs"]["queuePrefix"]
    resource = with_defaults(parse(manifest), SqsDefaults(queue_prefix="dev."))
    assert [p.message for p in validate_one(resource)] == [
        "spec.sqs.queuePrefix 'dev.' may hold only letters, digits, '-' and '_' (it begins "
        "every SQS queue name)"
    ]


def test_a_queue_named_like_another_queues_dead_letter_queue_is_refused(manifest):
    """A processor would poll `work`'s dead letters as the work of `work-dlq`."""
    spec = single_queue(manifest, deadLetter={})["spec"]
    spec["queues"].append({"name": "work-dlq"})
    spec["tasks"].append({"name": "other", "queue": "work-dlq"})
    spec["processors"][0]["tasks"].append("other")
    assert problems_of(manifest) == [
        "spec.queues.0.name: the SQS queue name 'accounts-dev-work-dlq' is used by the "
        "dead-letter queue of queue 'work' and queue 'work-dlq'; every queue and dead-letter "
        "queue needs a name of its own"
    ]


def test_fifo_and_standard_queues_of_one_stem_are_distinct(manifest):
    spec = single_queue(manifest, deadLetter={})["spec"]
    spec["queues"].append({"name": "work.fifo", "deadLetter": {}})
    spec["tasks"].append({"name": "other", "queue": "work.fifo"})
    spec["processors"][0]["tasks"].append("other")
    assert problems_of(manifest) == []


# -- region and image -------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["-", "us", "us-east", "east-1", "us-east-1-", "us-east-100"])
def test_a_malformed_region_is_refused(manifest, region):
    manifest["spec"]["sqs"]["region"] = region
    assert problems_of(manifest) == [
        f"spec.sqs.region {region!r} is not an AWS region name such as eu-west-1, "
        r"us-gov-west-1 (pattern [a-z]{2,4}(-[a-z]+){1,2}-[0-9]{1,2})"
    ]


def problems_of_parsed(manifest) -> list[str]:
    """Problems of the schema (parse) or of the rules, as one list of messages."""
    from kube_taskqueue_operator.resource.validation import InvalidDocument

    try:
        return problems_of(manifest)
    except InvalidDocument as error:
        return [p.message for p in error.problems]


@pytest.mark.parametrize(
    "region",
    [
        "us-east-1",
        "eu-central-2",
        "ap-southeast-7",
        "us-gov-west-1",
        "cn-northwest-1",
        "us-iso-east-1",
        "us-isob-east-1",
        "eu-isoe-west-1",
        "us-isof-south-1",
        "eusc-de-east-1",
    ],
)
def test_aws_regions_pass(manifest, region):
    manifest["spec"]["sqs"]["region"] = region
    assert problems_of(manifest) == []


def test_a_malformed_default_region_is_refused(manifest):
    del manifest["spec"]["sqs"]["region"]
    resource = with_defaults(parse(manifest), SqsDefaults(region="local"))
    [problem] = validate_one(resource)
    assert problem.message.startswith("spec.sqs.region 'local' is not an AWS region name")


REFUSED_IMAGES = [
    "registry.example.com/app:1.0 ",
    "registry.example.com/app: 1.0",
    "registry example.com/app",
    "Registry.example.com/App:1",
    "app:",
    "app@sha256:abc",
    "app@md5:" + "a" * 32,
    "app@sha256:" + "A" * 64,
    ":1.0",
    "app:1.0\n",
    "apü",
    "registry.example.com//app",
    "app:" + "t" * 129,
    "r.io/" + "a" * 256,
    "a" * 250,  # library/ + 250 characters
    "a" * 64,  # an image id, not a name
]
ACCEPTED_IMAGES = [
    "app",
    "library/app:latest",
    "registry.example.com:5000/team/app_x.y-z:1.4.2-rc_1",
    "localhost/app@sha256:" + "a" * 64,
    "ghcr.io/o/app:v1@sha256:" + "0" * 64,
    "app@sha512:" + "0" * 128,
    "[::1]:5000/app:1",
    "Registry/app",  # an upper-case first component is a registry
    "r.io/" + "a" * 255,
    "a" * 247,
    "index.docker.io/app",
]


@pytest.mark.parametrize("image", REFUSED_IMAGES)
def test_a_malformed_image_reference_is_refused(manifest, image):
    manifest["spec"]["image"] = image
    assert problems_of(manifest) == [
        f"spec.image {image!r} is not an image reference: [registry[:port]/]repository[:tag]"
        "[@sha256:<64 hex>], with a lower-case repository of at most 255 characters after the "
        "registry (library/ counts when it names none), no spaces"
    ]


@pytest.mark.parametrize("image", ACCEPTED_IMAGES)
def test_image_references_pass(manifest, image):
    manifest["spec"]["image"] = image
    assert problems_of(manifest) == []


def test_the_image_rule_agrees_with_the_kubelets_parser(image_parser):
    """The rule is a port; distribution/reference itself is the judge."""
    said = image_parser(REFUSED_IMAGES + ACCEPTED_IMAGES)
    assert [answer == "ok" for answer in said] == [False] * len(REFUSED_IMAGES) + [True] * len(
        ACCEPTED_IMAGES
    ), said


# -- metadata ---------------------------------------------------------------------------------


def test_a_namespace_the_api_server_refuses_is_refused(manifest):
    manifest["metadata"]["namespace"] = "Billing"
    assert problems_of(manifest) == [
        "metadata.namespace 'Billing' is not a DNS label: at most 63 lower-case letters, digits "
        "and '-', starting and ending with a letter or digit"
    ]


def test_a_name_of_63_characters_passes_when_its_objects_fit(manifest):
    """The name's own limit is the label value's; the Deployment names have their own rule."""
    manifest["metadata"]["name"] = "a" * 63
    problems = problems_of(manifest)
    assert not [p for p in problems if p.startswith("metadata.name")]
    assert len(problems) == 2  # accounts-main and accounts-examples: longer than 63


# -- scheduled tasks --------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["::", "__:", "-", "ü"])
def test_a_scheduled_task_needs_a_usable_cronjob_name(manifest, task):
    spec = single_queue(manifest)["spec"]
    spec["tasks"] = [{"name": task, "queue": "work", "schedule": "@hourly"}]
    spec["processors"][0]["tasks"] = [task]
    problems = problems_of_parsed(manifest)
    if task == "ü":  # the schema's pattern refuses it first
        assert problems[0].startswith("spec.tasks.0.name: String should match pattern")
        return
    assert problems == [
        f"spec.tasks.0.name {task!r}: a scheduled task's name needs a letter or a digit: its "
        "CronJob is named <metadata.name>-<the letters, digits and dashes of the task name>"
    ]


def test_an_unscheduled_task_needs_no_slug(manifest):
    spec = single_queue(manifest)["spec"]
    spec["tasks"] = [{"name": "::", "queue": "work"}]
    spec["processors"][0]["tasks"] = ["::"]
    assert problems_of(manifest) == []


def test_a_payload_past_the_sqs_message_limit_is_refused(manifest):
    task = manifest["spec"]["tasks"][0]
    # {"x":"..."} is 8 bytes around the text.
    task["payload"] = {"x": "a" * (naming.MAX_SCHEDULED_PAYLOAD_BYTES - 8)}
    assert problems_of(manifest) == []
    task["payload"] = {"x": "a" * (naming.MAX_SCHEDULED_PAYLOAD_BYTES - 7)}
    assert problems_of(manifest) == [
        "spec.tasks.0.payload of task 'partitions_maintenance:job' is 261121 bytes as JSON; a "
        "scheduled message may be at most 261120 bytes (SQS's 262144, less room for its "
        "JobName and TraceId attributes)"
    ]


def test_the_payload_is_measured_as_the_utf8_json_the_cronjob_sends(manifest):
    task = manifest["spec"]["tasks"][0]
    task["payload"] = {"x": "é" * 50_000}  # \u00e9 in JSON: six bytes each
    [problem] = problems_of(manifest)
    assert "is 300008 bytes as JSON" in problem


def test_a_payload_python_cannot_send_as_json_is_refused(manifest):
    resource = parse(manifest)
    task = resource.spec.tasks[0].model_copy(update={"payload": {"x": float("nan")}})
    spec = resource.spec.model_copy(update={"tasks": [task, *resource.spec.tasks[1:]]})
    [problem] = validate_one(resource.model_copy(update={"spec": spec}))
    assert problem.message == (
        "spec.tasks.0.payload of task 'partitions_maintenance:job' is not JSON: Out of range "
        "float values are not JSON compliant"
    )


# -- what an earlier change refused: kept ----------------------------------------------------


def test_six_fields_are_refused(manifest):
    manifest["spec"]["tasks"][0]["schedule"] = "0 0 * * * *"
    [problem] = problems_of(manifest)
    assert "it has six fields" in problem


@pytest.mark.parametrize("name", naming.OPERATOR_ENV)
def test_every_variable_the_operator_sets_is_refused_in_env(manifest, name):
    manifest["spec"]["processors"][0]["env"] = [{"name": name, "value": "x"}]
    [problem] = problems_of(manifest)
    assert problem.startswith(f"processor 'main': env variable {name!r} ")


# -- SQS tags ---------------------------------------------------------------------------------


def test_tags_sqs_or_the_operator_refuses_are_refused(manifest):
    manifest["spec"]["queues"][0]["tags"] = {
        "k" * 129: "v",
        "aws:team": "x",
        naming.TAG_OWNER: "someone/else",
        "team": "v" * 257,
        "k" * 128: "v" * 256,  # at the limits: fine
    }
    assert problems_of(manifest) == [
        f"spec.queues.0.tags {'k' * 129!r}: a tag key is 1 to 128 characters",
        "spec.queues.0.tags 'aws:team': keys starting 'aws:' are reserved by AWS",
        "spec.queues.0.tags 'taskqueue.dev/owner': set by the operator (the queue's owner); use "
        "another key",
        "spec.queues.0.tags 'team': the value is 257 characters; SQS allows at most 256",
    ]


# -- endpoint ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint", ["http://", "https://", "http://a b", "http://h:99999", "http://h:0", "http://[::1"]
)
def test_an_endpoint_the_processor_cannot_use_is_refused(manifest, endpoint):
    """The schema asks only for http(s):// at the start; before, render raised on these."""
    manifest["spec"]["sqs"]["endpoint"] = endpoint
    assert problems_of(manifest) == [
        f"spec.sqs.endpoint {endpoint!r} is not an http(s) URL with a host, such as "
        "http://sqs.example.net:9324 (no spaces, a port of 1 to 65535)"
    ]


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:9324", "https://sqs.example.net", "http://[::1]:4566/sqs"]
)
def test_endpoints_pass_and_render(manifest, endpoint):
    from kube_taskqueue_operator.resource.render import render

    manifest["spec"]["sqs"]["endpoint"] = endpoint
    assert problems_of(manifest) == []
    assert render(parse(manifest))
