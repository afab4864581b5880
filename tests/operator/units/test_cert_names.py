"""Webhook certificates for long Service names: release + chart name + namespace easily pass
X.509's 64-character limit of a common name, which only the subjectAltNames need to carry."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store
from kube_taskqueue_operator.certs import issue

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
LONG = "taskqueue-kube-taskqueue-operator-webhook.taskqueue-system.svc"  # 62 characters


def test_a_service_name_near_the_limit_gets_a_certificate_that_verifies():
    hosts = [LONG, f"{LONG}.cluster.local"]
    issued = issue(hosts, validity=datetime.timedelta(days=90), now=NOW)
    store = Store(x509.load_pem_x509_certificates(issued.bundle))
    for host in hosts:
        verifier = PolicyBuilder().store(store).time(NOW).build_server_verifier(x509.DNSName(host))
        verifier.verify(x509.load_pem_x509_certificate(issued.certificate), [])
