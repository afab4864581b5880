"""The webhook certificate the operator issues and renews when cert-manager is off, against
the real API server: stored in a Secret, its CA bundle patched into the webhook
configuration, renewed before expiry without the API server ever distrusting the webhook."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from cryptography import x509
from harness import wait_for
from kube_taskqueue_operator.certs import issue
from kube_taskqueue_operator.webhookcerts import (
    CertificatePolicy,
    TlsFiles,
    WebhookCertificates,
)
from operator_harness import OperatorProcess

DAY = datetime.timedelta(days=1)
START = datetime.datetime.now(datetime.UTC)


def configuration(name: str, namespace: str, url: str) -> dict[str, Any]:
    """A registration like the chart's (no caBundle), limited to the test's namespace so a
    webhook that is not up never affects other tests."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "taskqueue.taskqueue.dev",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
                "clientConfig": {"url": url},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "rules": [
                    {
                        "apiGroups": ["taskqueue.dev"],
                        "apiVersions": ["v1alpha1"],
                        "resources": ["taskqueues"],
                        "operations": ["CREATE", "UPDATE"],
                    }
                ],
            }
        ],
    }


@pytest.fixture
def registration(control_plane, namespace):
    created: list[str] = []

    def register(url: str) -> str:
        name = f"webhook-{namespace}"
        control_plane.kubectl_run(
            "apply", "-f", "-", input=json.dumps(configuration(name, namespace, url))
        )
        created.append(name)
        return name

    yield register
    for name in created:
        control_plane.kubectl_run(
            "delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False
        )


def ca_bundle(control_plane, name: str) -> bytes:
    live = json.loads(
        control_plane.kubectl_run(
            "get", "validatingwebhookconfiguration", name, "-o", "json"
        ).stdout
    )
    return base64.b64decode(live["webhooks"][0]["clientConfig"].get("caBundle", ""))


class Clock:
    def __init__(self) -> None:
        self.now = START
        self.before_write: list[Any] = []

    def __call__(self) -> datetime.datetime:
        while self.before_write:
            self.before_write.pop()()
        return self.now


def certificates(kube_client, namespace: str, directory: Path, *, configuration_name=None, clock):
    return WebhookCertificates(
        kube_client,
        policy=CertificatePolicy(
            namespace=namespace,
            secret="webhook-tls",
            configuration=configuration_name,
            hosts=("hook.ops.svc", "127.0.0.1"),
            validity=90 * DAY,
            renew_before=30 * DAY,
            check_interval=60,
            propagation_seconds=0,
        ),
        files=TlsFiles(directory),
        clock=clock,
    )


def secret(kube_client, namespace: str) -> Any:
    return kubernetes.client.CoreV1Api(kube_client).read_namespaced_secret("webhook-tls", namespace)


def test_issues_stores_publishes_and_renews_only_when_due(
    control_plane, kube_client, namespace, registration, tmp_path
):
    # The chart creates the Secret empty; the operator fills it.
    kubernetes.client.CoreV1Api(kube_client).create_namespaced_secret(
        namespace, {"metadata": {"name": "webhook-tls"}, "type": "Opaque"}
    )
    name = registration("https://127.0.0.1:1/taskqueue")
    clock = Clock()
    renewer = certificates(kube_client, namespace, tmp_path, configuration_name=name, clock=clock)
    issued = renewer.ensure()
    stored = secret(kube_client, namespace)
    assert base64.b64decode(stored.data["tls.crt"]) == issued.certificate
    assert ca_bundle(control_plane, name) == issued.bundle
    assert renewer.files.serving.read_bytes() == issued.key + issued.certificate
    assert renewer.files.bundle.read_bytes() == issued.bundle
    # The files load as kopf loads them (one file holds key and certificate).
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
        renewer.files.serving, renewer.files.serving
    )

    # Not due: nothing is written.
    clock.now = START + 59 * DAY
    assert renewer.ensure() == issued
    assert secret(kube_client, namespace).metadata.resource_version == (
        stored.metadata.resource_version
    )

    # Due: a new CA and certificate; the bundle still trusts the previous CA. The API server
    # is given the new bundle before the new certificate is served.
    seen_when_served: list[bytes] = []
    write = renewer.files.write

    def write_and_record(issued):
        seen_when_served.append(ca_bundle(control_plane, name))
        return write(issued)

    renewer.files.write = write_and_record  # type: ignore[method-assign]
    clock.now = START + 61 * DAY
    renewed = renewer.ensure()
    assert seen_when_served == [renewed.bundle]
    assert renewed.certificate != issued.certificate
    bundle = x509.load_pem_x509_certificates(ca_bundle(control_plane, name))
    assert len(bundle) == 2
    assert bundle[1] == x509.load_pem_x509_certificates(issued.bundle)[0]
    assert renewer.files.serving.read_bytes() == renewed.key + renewed.certificate


def test_two_replicas_renewing_at_once_end_with_the_same_certificate(
    control_plane, kube_client, namespace, tmp_path
):
    other_client = kubernetes.config.new_client_from_config(
        config_file=str(control_plane.kubeconfig)
    )
    first_clock, second_clock = Clock(), Clock()
    first = certificates(kube_client, namespace, tmp_path / "first", clock=first_clock)
    second = certificates(other_client, namespace, tmp_path / "second", clock=second_clock)
    # The Secret does not exist (a non-chart install): both create it. The second replica
    # gets in between the first one's read and write, so the first one's write conflicts.
    first_clock.before_write.append(second.ensure)
    mine = first.ensure()
    theirs = second.ensure()
    assert mine == theirs
    assert base64.b64decode(secret(kube_client, namespace).data["tls.crt"]) == mine.certificate
    assert first.files.serving.read_bytes() == second.files.serving.read_bytes()

    # The same when both renew an expiring certificate.
    first_clock.now = second_clock.now = START + 80 * DAY
    first_clock.before_write.append(second.ensure)
    renewed = first.ensure()
    assert renewed != mine and renewed == second.ensure()


def test_a_damaged_secret_is_replaced(control_plane, kube_client, namespace, tmp_path):
    kubernetes.client.CoreV1Api(kube_client).create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "webhook-tls"},
            "data": {
                k: base64.b64encode(b"junk").decode() for k in ("tls.crt", "tls.key", "ca.crt")
            },
        },
    )
    issued = certificates(kube_client, namespace, tmp_path, clock=Clock()).ensure()
    assert b"BEGIN CERTIFICATE" in issued.certificate
    assert base64.b64decode(secret(kube_client, namespace).data["tls.key"]) == issued.key


def served_certificate(port: int) -> bytes:
    return ssl.get_server_certificate(("127.0.0.1", port)).encode()


def test_the_api_server_keeps_calling_the_webhook_across_renewals(
    control_plane, crd, namespace, registration, tmp_path, make_manifest, kubectl_apply
):
    operator = OperatorProcess(
        control_plane,
        tmp_path,
        namespaces=namespace,
        webhook_managed="false",
        webhook_cert_secret="webhook-tls",
        webhook_namespace=namespace,
        webhook_configuration=f"webhook-{namespace}",
        # Renewed when a third is left: every ~16 s here.
        webhook_cert_validity="24",
        webhook_cert_check_interval="1",
    )
    try:
        name = registration(f"https://127.0.0.1:{operator.webhook_port}/taskqueue")
        operator.wait_ready()
        wait_for(lambda: ca_bundle(control_plane, name), timeout=30)

        split = make_manifest()
        split["spec"]["processors"] = [
            {"name": "main", "tasks": ["record:job", "other:job"]},
            {"name": "half", "tasks": ["record_async:job"]},
        ]

        def rejected_by_the_webhook() -> None:
            result = kubectl_apply(split)
            assert result.returncode != 0
            assert 'admission webhook "taskqueue.taskqueue.dev" denied the request' in (
                result.stderr
            ), result.stderr

        rejected_by_the_webhook()
        first = served_certificate(operator.webhook_port)
        wait_for(lambda: served_certificate(operator.webhook_port) != first, timeout=60)
        rejected_by_the_webhook()
        assert len(x509.load_pem_x509_certificates(ca_bundle(control_plane, name))) == 2
        assert kubectl_apply(make_manifest()).returncode == 0
        assert "Traceback" not in operator.output()
    finally:
        operator.stop()


def test_a_mounted_certificate_is_served_again_when_it_changes(
    control_plane, crd, namespace, tmp_path
):
    """cert-manager renews the Secret and the kubelet swaps the mounted files (a symlink to a
    new directory); the operator serves the new certificate without a restart."""
    mounted = tmp_path / "tls"

    def mount(generation: str) -> Any:
        issued = issue(
            ["127.0.0.1", "localhost"], validity=DAY, now=datetime.datetime.now(datetime.UTC)
        )
        directory = tmp_path / generation
        directory.mkdir()
        (directory / "tls.crt").write_bytes(issued.certificate)
        (directory / "tls.key").write_bytes(issued.key)
        (directory / "ca.crt").write_bytes(issued.bundle)
        link = tmp_path / f".{generation}"
        link.symlink_to(directory)
        link.replace(mounted)  # one atomic rename, as the kubelet does
        return x509.load_pem_x509_certificate(issued.certificate)

    first = mount("one")
    operator = OperatorProcess(
        control_plane,
        tmp_path,
        namespaces=namespace,
        webhook_managed="false",
        webhook_cert_dir=str(mounted),
    )
    try:
        operator.wait_ready()

        def served() -> x509.Certificate | None:
            try:
                return x509.load_pem_x509_certificate(served_certificate(operator.webhook_port))
            except OSError:
                return None

        wait_for(lambda: served() == first, timeout=30)
        second = mount("two")
        wait_for(lambda: served() == second, timeout=30)
        assert operator.process.poll() is None
    finally:
        operator.stop()
