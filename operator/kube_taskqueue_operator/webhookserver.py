"""Where the webhook's certificate comes from, and kopf's webhook server that serves it.

Three sources, by settings:
- `webhook_cert_dir`: files someone else renews (cert-manager's Secret, mounted);
- `webhook_cert_secret`: the operator issues and renews it (`webhookcerts`);
- neither: a self-signed certificate made at start-up (development).
kopf re-reads the files every `FILE_CHECK_SECONDS` and restarts its listener when they
change, so a renewal from either source is served without a restart of the operator.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import shutil
import tempfile
from pathlib import Path

import kopf
import kubernetes

from kube_taskqueue_operator.certs import self_signed
from kube_taskqueue_operator.settings import OperatorSettings
from kube_taskqueue_operator.webhookcerts import CertificatePolicy, TlsFiles, WebhookCertificates

#: Reading two small files this often costs nothing and serves a renewal promptly.
FILE_CHECK_SECONDS = 2.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class WebhookTls:
    certfile: Path
    keyfile: Path
    cafile: Path
    """The bundle kopf puts into a configuration it registers itself (development)."""
    renewer: WebhookCertificates | None = None
    """Set when the operator issues the certificate; run its `keep_renewed` alongside kopf."""


def prepare(settings: OperatorSettings, api: kubernetes.client.ApiClient) -> WebhookTls:
    """Make the certificate files exist before kopf starts its server."""
    if settings.webhook_cert_dir:
        directory = Path(settings.webhook_cert_dir)
        cert, key, ca = directory / "tls.crt", directory / "tls.key", directory / "ca.crt"
        return WebhookTls(certfile=cert, keyfile=key, cafile=ca if ca.exists() else cert)
    if settings.webhook_cert_secret:
        assert settings.webhook_namespace  # checked by the settings
        validity = datetime.timedelta(seconds=settings.webhook_cert_validity)
        files = TlsFiles(_key_directory())
        renewer = WebhookCertificates(
            api,
            policy=CertificatePolicy(
                namespace=settings.webhook_namespace,
                secret=settings.webhook_cert_secret,
                configuration=settings.webhook_configuration,
                hosts=settings.webhook_hosts,
                validity=validity,
                renew_before=validity / 3,
                check_interval=settings.webhook_cert_check_interval,
            ),
            files=files,
        )
        renewer.ensure()
        return WebhookTls(
            certfile=files.serving, keyfile=files.serving, cafile=files.bundle, renewer=renewer
        )
    hosts = [settings.webhook_host or "localhost", "localhost", "127.0.0.1"]
    cert, key = self_signed(hosts, _key_directory())
    return WebhookTls(certfile=cert, keyfile=key, cafile=cert)


def _key_directory() -> Path:
    """A private directory for the webhook's certificate and key, removed when the operator
    exits: a private key is not left behind in /tmp by every run."""
    directory = Path(tempfile.mkdtemp(prefix="taskqueue-webhook-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def server(settings: OperatorSettings, tls: WebhookTls) -> kopf.WebhookServer:
    return kopf.WebhookServer(
        addr=settings.webhook_listen,
        port=settings.webhook_port,
        host=settings.webhook_host,
        certfile=str(tls.certfile),
        pkeyfile=str(tls.keyfile),
        cafile=str(tls.cafile),
        file_check_interval=FILE_CHECK_SECONDS,
    )
