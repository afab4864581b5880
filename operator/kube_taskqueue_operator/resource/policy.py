"""`TaskQueuePolicy`: what the platform team lets the TaskQueues of a namespace do.

A tenant who may edit TaskQueues must not be able to turn the operator against other teams
or the cluster: name another team's queues, send the operator's credentials to an address of
its choice, or get a Deployment with a Secret, ServiceAccount or image it could not use
itself. A policy is cluster-scoped (out of tenants' reach) and selects namespaces by name or
label; a namespace no policy selects gets the operator's default policy (the built-in one
below unless the platform sets its own). Where several policies select a namespace, a
TaskQueue must satisfy every one of them: a new policy can only narrow what is allowed.

`Tenancy.problems` is the one check, called by the admission webhook, the reconcile (also when
the webhook was bypassed or the policy tightened later) and `kube-taskqueue validate --policy`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field

from kube_taskqueue_operator.resource.identity import FALLBACK_REGION, normalise
from kube_taskqueue_operator.resource.models import DNS_LABEL, GROUP, VERSION, TaskQueue
from kube_taskqueue_operator.resource.validation import normalized_image

POLICY_KIND = "TaskQueuePolicy"
POLICY_PLURAL = "taskqueuepolicies"
POLICY_SINGULAR = "taskqueuepolicy"
POLICY_API_VERSION = f"{GROUP}/{VERSION}"

#: Endpoint entries with a meaning of their own: AWS's SQS (no endpoint, or any of AWS's SQS
#: URLs for the region), the operator's default endpoint (TASKQUEUE_DEFAULT_ENDPOINT, chosen by
#: the platform), and any endpoint at all (development clusters only).
AWS_ENDPOINTS = "aws"
DEFAULT_ENDPOINT = "default"
ANY = "*"
#: The placeholder of queue prefixes, replaced by the TaskQueue's namespace.
NAMESPACE_PLACEHOLDER = "{namespace}"
#: The built-in prefix rule. `_` cannot occur in a namespace name, so no namespace's prefix
#: begins another's (with `-`, namespace `team` would own `team-a-...`).
NAMESPACE_PREFIX = "{namespace}_"

_PREFIX_PATTERN = r"^([A-Za-z0-9_*-]|\{namespace\})*$"


class _Model(pydantic.BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, use_attribute_docstrings=True, frozen=True
    )


class LabelSelectorRequirement(_Model):
    """One expression of a label selector."""

    key: Annotated[str, Field(min_length=1, max_length=317)]
    """The label's key."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label's value relates to `values`."""
    values: Annotated[list[str], Field(max_length=100)] = []
    """Values for In and NotIn; empty for Exists and DoesNotExist."""


class LabelSelector(_Model):
    """A Kubernetes label selector; `{}` selects every namespace."""

    match_labels: Annotated[dict[str, str] | None, Field(alias="matchLabels")] = None
    """Labels a namespace must all carry, with these values."""
    match_expressions: Annotated[
        list[LabelSelectorRequirement] | None, Field(alias="matchExpressions", max_length=20)
    ] = None
    """Expressions a namespace's labels must all satisfy."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for requirement in self.match_expressions or []:
            present = requirement.key in labels
            found = labels.get(requirement.key)
            if requirement.operator == "In" and found not in requirement.values:
                return False
            if requirement.operator == "NotIn" and present and found in requirement.values:
                return False
            if requirement.operator == "Exists" and not present:
                return False
            if requirement.operator == "DoesNotExist" and present:
                return False
        return True


class PolicyRules(_Model):
    """What the TaskQueues of the selected namespaces may do. Every field left out takes the
    built-in default, which lets a namespace use only its own queues (`<namespace>_...`),
    AWS or the operator's default endpoint, the operator's identity, no credentials Secret,
    any image and the namespace's `default` ServiceAccount."""

    queue_prefixes: Annotated[
        list[Annotated[str, Field(pattern=_PREFIX_PATTERN, max_length=80)]],
        Field(alias="queuePrefixes", min_length=1, max_length=50),
    ] = [NAMESPACE_PREFIX]
    """Every SQS queue name (spec.sqs.queuePrefix) must start with one of these; `{namespace}`
    is the TaskQueue's namespace and `*` any characters. The default, `{namespace}_`, keeps
    each namespace to names no other namespace can make."""

    endpoints: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255)]], Field(max_length=50)
    ] = [AWS_ENDPOINTS, DEFAULT_ENDPOINT]
    """SQS endpoints the operator and processors may be sent to: `aws` (AWS's own SQS, the
    endpoint left out), `default` (the operator's default endpoint), exact URLs, or `*`
    (any: development only, as a tenant could then point the operator's signed requests at
    any address)."""

    regions: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z0-9-]+$", max_length=32)]],
        Field(max_length=50),
    ] = []
    """AWS regions allowed; empty allows any."""

    allow_adoption: Annotated[bool, Field(alias="allowAdoption")] = False
    """Whether `adoptExistingQueues: true` is allowed: adoption takes over (re-tags and
    re-configures) a queue this TaskQueue did not create."""

    allow_deletion: Annotated[bool, Field(alias="allowDeletion")] = True
    """Whether `deletionPolicy: Delete` is allowed. The operator deletes only queues tagged as
    the TaskQueue's own, so with the prefix rule a namespace can delete only its own queues."""

    operator_credentials: Annotated[
        Literal["Allowed", "Forbidden"], Field(alias="operatorCredentials")
    ] = "Allowed"
    """Whether a TaskQueue without `credentialsSecret` may have its queues managed with the
    operator's own AWS identity (Forbidden: each TaskQueue brings its own Secret)."""

    credentials_secrets: Annotated[
        list[Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]],
        Field(alias="credentialsSecrets", max_length=50),
    ] = []
    """Names of the Secrets `spec.sqs.credentialsSecret` may name (in the TaskQueue's own
    namespace). Exact names: the chart grants the operator `get` on these names only."""

    images: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=512)]], Field(max_length=50)
    ] = [ANY]
    """Image patterns the processors may run (`*` any characters), matched against the
    reference with its registry made explicit (`app:1` is `docker.io/library/app:1`), e.g.
    `registry.example.com/team-a/*`."""

    service_accounts: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253)]],
        Field(alias="serviceAccounts", max_length=50),
    ] = ["default"]
    """ServiceAccount patterns the processors may run as (`serviceAccountName` left out is
    `default`). A ServiceAccount mapped to an IAM role (IRSA, EKS Pod Identity) gives its
    pods that role: list it only where the namespace may use that role."""


class TaskQueuePolicySpec(PolicyRules):
    """The namespaces a policy applies to, and its rules."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.namespaceSelector) || "
                    "(has(self.namespaces) && size(self.namespaces) > 0)",
                    "message": "a TaskQueuePolicy selects namespaces: set namespaces (names), "
                    "namespaceSelector (labels; {} for all) or both",
                }
            ]
        }
    )

    namespaces: Annotated[
        list[Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]], Field(max_length=500)
    ] = []
    """Namespaces selected by name."""

    namespace_selector: Annotated[LabelSelector | None, Field(alias="namespaceSelector")] = None
    """Namespaces selected by label (`{}`: every namespace)."""


class PolicyMetadata(pydantic.BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, Field(min_length=1)]


class TaskQueuePolicy(pydantic.BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: Annotated[Literal["taskqueue.dev/v1alpha1"], Field(alias="apiVersion")] = (
        "taskqueue.dev/v1alpha1"
    )
    kind: Literal["TaskQueuePolicy"] = "TaskQueuePolicy"
    metadata: PolicyMetadata
    spec: TaskQueuePolicySpec

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        spec = self.spec
        if namespace in spec.namespaces:
            return True
        return spec.namespace_selector is not None and spec.namespace_selector.matches(labels)


class InvalidPolicy(ValueError):
    """A policy document that does not parse; one line per problem."""


def parse_policy(document: Mapping[str, Any]) -> TaskQueuePolicy:
    try:
        return TaskQueuePolicy.model_validate(document)
    except pydantic.ValidationError as error:
        metadata = document.get("metadata") if isinstance(document, Mapping) else None
        name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
        raise InvalidPolicy(
            "; ".join(
                f"TaskQueuePolicy {name}: {'.'.join(str(p) for p in item['loc'])}: {item['msg']}"
                for item in error.errors()
            )
        ) from None


def parse_rules(document: Mapping[str, Any]) -> PolicyRules:
    """The operator's default policy (TASKQUEUE_DEFAULT_POLICY; the chart's
    `tenancy.defaultPolicy`)."""
    return PolicyRules.model_validate(document)


@dataclasses.dataclass(frozen=True)
class _Applied:
    """A policy as it applies to one namespace, with the words that name it."""

    rules: PolicyRules
    by: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tenancy:
    """The policies of a cluster at one moment, and the namespaces' labels they select by."""

    policies: Sequence[TaskQueuePolicy] = ()
    default: PolicyRules = dataclasses.field(default_factory=PolicyRules)
    namespace_labels: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    default_endpoint: str | None = None
    """The operator's default endpoint (what `default` in `endpoints` means)."""
    broken: Sequence[str] = ()
    """Policies that could not be read: while one is broken nothing is admitted, as what it
    would forbid is unknown (fail closed)."""

    def applied(self, namespace: str) -> list[_Applied]:
        labels = self.namespace_labels.get(namespace, {})
        chosen = [
            _Applied(policy.spec, f"TaskQueuePolicy {policy.metadata.name!r}")
            for policy in sorted(self.policies, key=lambda p: p.metadata.name)
            if policy.selects(namespace, labels)
        ]
        return chosen or [
            _Applied(
                self.default,
                f"the default policy (no TaskQueuePolicy selects namespace {namespace!r})",
            )
        ]

    def problems(self, resource: TaskQueue) -> list[str]:
        """Why the policies of `resource`'s namespace refuse it (resolved: the operator's
        defaults filled in); empty when every one allows it."""
        if self.broken:
            return [
                f"TaskQueuePolicy {name} cannot be read, so no TaskQueue is admitted until it "
                "is fixed" + (f" ({why})" if why else "")
                for name, _, why in (entry.partition(": ") for entry in self.broken)
            ]
        problems: list[str] = []
        for applied in self.applied(resource.namespace):
            problems += [
                f"{applied.by}: {problem}"
                for problem in _problems(resource, applied.rules, self.default_endpoint)
            ]
        return problems

    def allows_endpoint(self, resource: TaskQueue) -> bool:
        """Whether the operator may send requests (its credentials, or the Secret's) to the
        resource's SQS endpoint: the last guard before any SQS client is made."""
        return not any(
            _endpoint_problem(resource, applied.rules, self.default_endpoint)
            for applied in self.applied(resource.namespace)
        )


def _problems(resource: TaskQueue, rules: PolicyRules, default_endpoint: str | None) -> list[str]:
    spec = resource.spec
    sqs = spec.sqs
    namespace = resource.namespace
    problems: list[str] = []
    prefixes = [p.replace(NAMESPACE_PLACEHOLDER, namespace) for p in rules.queue_prefixes]
    if not any(fnmatch.fnmatchcase(sqs.queue_prefix, f"{p}*") for p in prefixes):
        problems.append(
            f"spec.sqs.queuePrefix {sqs.queue_prefix!r} is not allowed in namespace "
            f"{namespace!r}: its SQS queue names must start with {_one_of(prefixes)}"
        )
    endpoint = _endpoint_problem(resource, rules, default_endpoint)
    if endpoint:
        problems.append(endpoint)
    region = sqs.region or FALLBACK_REGION
    if rules.regions and region not in rules.regions:
        problems.append(f"spec.sqs.region {region!r} is not allowed: {_one_of(rules.regions)}")
    if spec.adopt_existing_queues and not rules.allow_adoption:
        problems.append(
            "spec.adoptExistingQueues is not allowed: adoption would take over queues this "
            "TaskQueue did not create"
        )
    if spec.deletion_policy == "Delete" and not rules.allow_deletion:
        problems.append("spec.deletionPolicy 'Delete' is not allowed: use Retain")
    if sqs.credentials_secret is None and rules.operator_credentials == "Forbidden":
        problems.append(
            "spec.sqs.credentialsSecret is required: the operator's own AWS identity may not "
            "be used for this namespace's queues"
        )
    if sqs.credentials_secret is not None and sqs.credentials_secret not in (
        rules.credentials_secrets
    ):
        allowed = _one_of(rules.credentials_secrets) if rules.credentials_secrets else "none"
        problems.append(
            f"spec.sqs.credentialsSecret {sqs.credentials_secret!r} is not allowed "
            f"(allowed: {allowed})"
        )
    image = normalized_image(spec.image)
    images = [p.replace(NAMESPACE_PLACEHOLDER, namespace) for p in rules.images]
    if not any(
        fnmatch.fnmatchcase(image, pattern) or fnmatch.fnmatchcase(spec.image, pattern)
        for pattern in images
    ):
        problems.append(
            f"spec.image {spec.image!r} is not allowed: it must match {_one_of(images)}"
        )
    account = spec.service_account_name or "default"
    accounts = [p.replace(NAMESPACE_PLACEHOLDER, namespace) for p in rules.service_accounts]
    if not any(fnmatch.fnmatchcase(account, pattern) for pattern in accounts):
        problems.append(
            f"spec.serviceAccountName {account!r} is not allowed: it must match {_one_of(accounts)}"
        )
    return problems


def _endpoint_problem(
    resource: TaskQueue, rules: PolicyRules, default_endpoint: str | None
) -> str | None:
    sqs = resource.spec.sqs
    if _endpoint_allowed(sqs.region, sqs.endpoint, rules.endpoints, default_endpoint):
        return None
    shown = repr(sqs.endpoint) if sqs.endpoint else "AWS's (none set)"
    allowed = [
        "AWS's SQS endpoints"
        if entry == AWS_ENDPOINTS
        else (repr(default_endpoint) if entry == DEFAULT_ENDPOINT else repr(entry))
        for entry in rules.endpoints
        if entry != DEFAULT_ENDPOINT or default_endpoint
    ]
    return (
        f"spec.sqs.endpoint {shown} is not allowed: the operator sends requests signed with "
        "AWS credentials only to " + (" or ".join(allowed) if allowed else "no endpoint at all")
    )


def _endpoint_allowed(
    region: str | None, endpoint: str | None, allowed: Iterable[str], default: str | None
) -> bool:
    """Compared as queue identities compare them, so another spelling of an allowed URL is
    allowed and a look-alike (another port, host or path) is not."""
    wanted = normalise(region=region, endpoint=endpoint, name="").endpoint
    for entry in allowed:
        if entry == ANY:
            return True
        if entry == AWS_ENDPOINTS:
            if wanted == AWS_ENDPOINTS:
                return True
            continue
        url = default if entry == DEFAULT_ENDPOINT else entry
        if url is not None and normalise(region=region, endpoint=url, name="").endpoint == wanted:
            return True
    return False


def _one_of(values: Iterable[str]) -> str:
    shown = [repr(v) for v in values]
    if len(shown) == 1:
        return shown[0]
    return "one of " + ", ".join(shown)


def tenancy_from_documents(
    documents: Iterable[Mapping[str, Any]],
    *,
    default: PolicyRules | None = None,
    default_endpoint: str | None = None,
) -> Tenancy:
    """The tenancy a set of documents describes: TaskQueuePolicies, and Namespace objects whose
    labels the policies' namespaceSelector is matched against (`validate` has no cluster to
    ask); other kinds are ignored. Raises InvalidPolicy."""
    policies: list[TaskQueuePolicy] = []
    labels: dict[str, dict[str, str]] = {}
    for document in documents:
        kind = document.get("kind")
        if kind == POLICY_KIND:
            policies.append(parse_policy(document))
        elif kind == "Namespace":
            metadata = document.get("metadata") or {}
            labels[str(metadata.get("name"))] = dict(metadata.get("labels") or {})
    for name, own in labels.items():
        own.setdefault("kubernetes.io/metadata.name", name)
    return Tenancy(
        policies=policies,
        default=default or PolicyRules(),
        namespace_labels=labels,
        default_endpoint=default_endpoint,
    )
