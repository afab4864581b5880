"""The webhook certificate when cert-manager is off: issued and renewed by the operator.

The certificate lives in one Secret shared by every replica, so they all serve the same one.
Each replica, every `check_interval`:
1. reads the Secret; when it is empty, unreadable, for other host names or within
   `renew_before` of expiry, issues a new one and writes it with the read resourceVersion —
   when two replicas renew at once, one write fails with a conflict and that replica takes
   the winner's certificate instead;
2. puts the CA bundle into the ValidatingWebhookConfiguration (JSON patch guarded by the
   read resourceVersion);
3. writes the files kopf's webhook server reads; kopf restarts its listener when they change.
The bundle keeps the previous CA until it expires, so a replica that has not yet picked up
a renewal is still trusted by the API server.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from kube_taskqueue_operator.certs import Issued, expires, issue, renewal_due

log = logging.getLogger(__name__)

#: Keys of the Secret: the usual names of a TLS Secret, ca.crt holding the whole bundle.
CERTIFICATE_KEY, PRIVATE_KEY, BUNDLE_KEY = "tls.crt", "tls.key", "ca.crt"
_ATTEMPTS = 5


class CertificateError(Exception):
    """The certificate cannot be stored; the message names the object and the fix."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CertificatePolicy:
    namespace: str
    secret: str
    configuration: str | None
    """ValidatingWebhookConfiguration to keep in step; None when kopf registers itself."""
    hosts: tuple[str, ...]
    validity: datetime.timedelta
    renew_before: datetime.timedelta
    check_interval: float
    propagation_seconds: float = 5.0
    """How long a renewed certificate waits, after its bundle is in the configuration, before
    it is served: the API server reads configurations through an informer, and must trust the
    new CA before it meets the new certificate."""


class TlsFiles:
    """The files kopf's webhook server reads. Key and certificate share one file so a
    renewal replaces both in one atomic rename: never a key of one with a certificate of
    another."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.serving = directory / "serving.pem"
        self.bundle = directory / "ca.pem"

    def replaces(self, issued: Issued) -> bool:
        """True when `issued` would replace a certificate being served (a renewal)."""
        return self.serving.exists() and self.serving.read_bytes() != _serving(issued)

    def write(self, issued: Issued) -> bool:
        """Write `issued` when it differs from what is there; True when something changed."""
        changed = _replace(self.bundle, issued.bundle)
        return _replace(self.serving, _serving(issued)) or changed


def _serving(issued: Issued) -> bytes:
    return issued.key + issued.certificate


def _replace(path: Path, content: bytes) -> bool:
    if path.exists() and path.read_bytes() == content:
        return False
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    os.replace(temporary, path)  # mkstemp made it 0600
    return True


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class WebhookCertificates:
    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        policy: CertificatePolicy,
        files: TlsFiles,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.admission = kubernetes.client.AdmissionregistrationV1Api(api)
        self.policy = policy
        self.files = files
        self.clock = clock

    @property
    def _where(self) -> str:
        return f"Secret {self.policy.namespace}/{self.policy.secret}"

    def ensure(self) -> Issued:
        """Renew when due, then publish the certificate to the configuration and the files."""
        for _ in range(_ATTEMPTS):
            secret = self._read()
            stored = _decode(secret)
            now = self.clock()
            reason = (
                renewal_due(
                    stored,
                    hosts=self.policy.hosts,
                    now=now,
                    renew_before=self.policy.renew_before,
                )
                if stored
                else "no certificate is stored yet"
            )
            if stored and reason is None:
                issued = stored
                break
            log.info("issuing a new webhook certificate: %s", reason, extra={"secret": self._where})
            issued = issue(
                self.policy.hosts,
                validity=self.policy.validity,
                now=now,
                previous_bundle=stored.bundle if stored else b"",
            )
            if self._write(secret, issued):
                break
            # Another replica renewed it between our read and write: read theirs.
        else:
            raise CertificateError(f"{self._where} kept changing under {_ATTEMPTS} renewals")
        self._publish(issued)
        return issued

    async def keep_renewed(self) -> None:
        """Run `ensure` until cancelled; failures are logged and retried, never fatal (the
        certificate in use stays valid for `renew_before` after a renewal was due)."""
        while True:
            delay = self.policy.check_interval
            try:
                issued = await asyncio.to_thread(self.ensure)
                due = expires(issued) - self.policy.renew_before - self.clock()
                delay = max(0.5, min(delay, due.total_seconds()))
            except (ApiException, urllib3.exceptions.HTTPError, OSError, CertificateError) as e:
                log.warning("cannot renew the webhook certificate: %s", _reason(e))
            await asyncio.sleep(delay)

    def _read(self) -> Any | None:
        try:
            return self.core.read_namespaced_secret(self.policy.secret, self.policy.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise CertificateError(f"cannot read {self._where}: {_reason(error)}") from error

    def _write(self, secret: Any | None, issued: Issued) -> bool:
        """Store `issued`; False when someone else changed the Secret first."""
        data = {
            CERTIFICATE_KEY: base64.b64encode(issued.certificate).decode(),
            PRIVATE_KEY: base64.b64encode(issued.key).decode(),
            BUNDLE_KEY: base64.b64encode(issued.bundle).decode(),
        }
        try:
            if secret is None:
                self.core.create_namespaced_secret(
                    self.policy.namespace,
                    kubernetes.client.V1Secret(
                        metadata=kubernetes.client.V1ObjectMeta(name=self.policy.secret),
                        type="Opaque",
                        data=data,
                    ),
                )
            else:
                secret.data = data
                self.core.replace_namespaced_secret(
                    self.policy.secret, self.policy.namespace, secret
                )
        except ApiException as error:
            if error.status == 409:
                return False
            hint = (
                " (the chart creates it when webhook.certManager.enabled is false)"
                if secret is None
                else ""
            )
            raise CertificateError(f"cannot write {self._where}{hint}: {_reason(error)}") from error
        return True

    def _publish(self, issued: Issued) -> None:
        if self.policy.configuration:
            self._patch_configuration(base64.b64encode(issued.bundle).decode())
        if self.files.replaces(issued):
            time.sleep(self.policy.propagation_seconds)
        if self.files.write(issued):
            log.info("serving the webhook certificate valid until %s", expires(issued))

    def _patch_configuration(self, bundle: str) -> None:
        name = self.policy.configuration
        assert name
        for _ in range(_ATTEMPTS):
            try:
                current = self.admission.read_validating_webhook_configuration(name)
            except ApiException as error:
                if error.status == 404:
                    # Not fatal: the operator validates in its handlers too; retried later.
                    log.warning(
                        "ValidatingWebhookConfiguration %s does not exist: the API server "
                        "does not call the webhook until it does",
                        name,
                    )
                    return
                raise CertificateError(
                    f"cannot read ValidatingWebhookConfiguration {name}: {_reason(error)}"
                ) from error
            operations: list[dict[str, Any]] = [
                {
                    "op": "test",
                    "path": "/metadata/resourceVersion",
                    "value": current.metadata.resource_version if current.metadata else None,
                }
            ]
            for position, webhook in enumerate(current.webhooks or []):
                if webhook.client_config.ca_bundle != bundle:
                    operations.append(
                        {
                            "op": "add",
                            "path": f"/webhooks/{position}/clientConfig/caBundle",
                            "value": bundle,
                        }
                    )
            if len(operations) == 1:
                return
            try:
                self.admission.patch_validating_webhook_configuration(name, operations)
                return
            except ApiException as error:
                if error.status not in (409, 422):  # a failed `test` is 422 or 409
                    raise CertificateError(
                        f"cannot update ValidatingWebhookConfiguration {name}: {_reason(error)}"
                    ) from error
        raise CertificateError(f"ValidatingWebhookConfiguration {name} kept changing")


def _decode(secret: Any | None) -> Issued | None:
    data = (secret.data if secret is not None else None) or {}
    try:
        parts = [base64.b64decode(data[key]) for key in (CERTIFICATE_KEY, PRIVATE_KEY, BUNDLE_KEY)]
    except (KeyError, ValueError):
        return None
    return Issued(certificate=parts[0], key=parts[1], bundle=parts[2])


def _reason(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    return str(error) or type(error).__name__
