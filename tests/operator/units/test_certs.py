"""Webhook certificates: issued chains verify, renewal is due for the right reasons, the
trusted bundle keeps the previous CA only while it is valid."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from kube_taskqueue_operator.certs import Issued, issue, merge_bundle, renewal_due

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
HOSTS = ["hook.ops.svc", "hook.ops.svc.cluster.local"]


def verify(issued: Issued, host: str, at: datetime.datetime) -> None:
    store = Store(x509.load_pem_x509_certificates(issued.bundle))
    verifier = PolicyBuilder().store(store).time(at).build_server_verifier(x509.DNSName(host))
    verifier.verify(x509.load_pem_x509_certificate(issued.certificate), [])


def test_the_serving_certificate_verifies_against_its_bundle_for_every_host():
    issued = issue(HOSTS, validity=90 * DAY, now=NOW)
    for host in HOSTS:
        verify(issued, host, NOW)
    with pytest.raises(VerificationError):
        verify(issued, "other.ops.svc", NOW)
    with pytest.raises(VerificationError):
        verify(issued, HOSTS[0], NOW + 91 * DAY)


def test_a_fresh_certificate_is_not_due():
    issued = issue(HOSTS, validity=90 * DAY, now=NOW)
    assert renewal_due(issued, hosts=HOSTS, now=NOW, renew_before=30 * DAY) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda i: Issued(certificate=i.certificate, key=i.key, bundle=i.bundle), None),
        (lambda i: Issued(certificate=b"junk", key=i.key, bundle=i.bundle), "cannot be read"),
        (
            lambda i: Issued(
                certificate=i.certificate,
                key=issue(HOSTS, validity=DAY, now=NOW).key,
                bundle=i.bundle,
            ),
            "key does not match",
        ),
        (
            lambda i: Issued(
                certificate=i.certificate,
                key=i.key,
                bundle=issue(HOSTS, validity=DAY, now=NOW).bundle,
            ),
            "does not hold the certificate's issuer",
        ),
    ],
)
def test_damaged_secrets_are_due(change, reason):
    issued = change(issue(HOSTS, validity=90 * DAY, now=NOW))
    due = renewal_due(issued, hosts=HOSTS, now=NOW, renew_before=30 * DAY)
    assert (due is None) if reason is None else (reason in (due or ""))


def test_renewal_is_due_a_third_before_expiry_and_for_new_host_names():
    issued = issue(HOSTS, validity=90 * DAY, now=NOW)
    assert renewal_due(issued, hosts=HOSTS, now=NOW + 59 * DAY, renew_before=30 * DAY) is None
    due = renewal_due(issued, hosts=HOSTS, now=NOW + 61 * DAY, renew_before=30 * DAY)
    assert due and "expires in" in due
    due = renewal_due(issued, hosts=[*HOSTS, "new.ops.svc"], now=NOW, renew_before=30 * DAY)
    assert due and "new.ops.svc" in due


def test_the_bundle_keeps_the_previous_ca_until_it_expires():
    first = issue(HOSTS, validity=90 * DAY, now=NOW)
    second = issue(HOSTS, validity=90 * DAY, now=NOW + 60 * DAY, previous_bundle=first.bundle)
    assert len(x509.load_pem_x509_certificates(second.bundle)) == 2
    # Both serving certificates verify against the new bundle: replicas that still serve the
    # first one are trusted while they catch up.
    verify(
        Issued(certificate=first.certificate, key=first.key, bundle=second.bundle),
        HOSTS[0],
        NOW + 60 * DAY,
    )
    verify(second, HOSTS[0], NOW + 60 * DAY)
    third = issue(HOSTS, validity=90 * DAY, now=NOW + 120 * DAY, previous_bundle=second.bundle)
    # The first CA expired at day 90: dropped. The second is still valid: kept.
    assert len(x509.load_pem_x509_certificates(third.bundle)) == 2
    assert (
        x509.load_pem_x509_certificates(third.bundle)[1]
        == x509.load_pem_x509_certificates(second.bundle)[0]
    )


def test_merging_ignores_duplicates_and_garbage():
    issued = issue(HOSTS, validity=DAY, now=NOW)
    assert merge_bundle(issued.bundle, issued.bundle, now=NOW) == issued.bundle
    assert merge_bundle(issued.bundle, b"not a pem", now=NOW) == issued.bundle
    with pytest.raises(ValueError, match="at least one host"):
        issue([], validity=DAY, now=NOW)
