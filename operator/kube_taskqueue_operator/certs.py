"""Certificates for the admission webhook: pure functions, no Kubernetes.

Two shapes: a self-signed certificate for development (`self_signed`), and for clusters
without cert-manager a private CA with a serving certificate it signs (`issue`), which the
operator keeps in a Secret and renews (see `webhookcerts`). Each renewal makes a new CA; the
trusted bundle keeps the previous CA until it expires, so replicas still serving the old
certificate are trusted while they catch up.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Lifetime of the development certificate (regenerated at every start anyway).
DEV_VALIDITY = datetime.timedelta(days=365)
#: Clocks of the API server and the operator may differ a little.
CLOCK_SKEW = datetime.timedelta(minutes=5)
#: RFC 5280's upper bound for a common name (ub-common-name).
COMMON_NAME_LIMIT = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class Issued:
    """A serving certificate, its key and the CA bundle clients should trust (PEM)."""

    certificate: bytes
    key: bytes
    bundle: bytes
    """The CA that signed `certificate`, then earlier CAs that are still valid."""


def _names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _builder(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    start: datetime.datetime,
    end: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _common_name(text: str) -> x509.Name:
    """A subject of one common name, cut to X.509's 64 characters: clients verify the
    subjectAltNames, so a long Service name (release + chart + namespace) must not fail here."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text[:COMMON_NAME_LIMIT])])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue(
    hosts: Iterable[str],
    *,
    validity: datetime.timedelta,
    now: datetime.datetime,
    previous_bundle: bytes = b"",
) -> Issued:
    """A new CA and a serving certificate for `hosts`, both valid for `validity` from `now`."""
    hosts = list(dict.fromkeys(hosts))
    if not hosts:
        raise ValueError("a webhook certificate needs at least one host name")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _common_name(f"{hosts[0]} webhook CA")
    start, end = now - CLOCK_SKEW, now + validity
    ca = (
        _builder(subject=ca_name, issuer=ca_name, key=ca_key, start=start, end=end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        _builder(
            subject=_common_name(hosts[0]),
            issuer=ca_name,
            key=key,
            start=start,
            end=end,
        )
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    return Issued(
        certificate=leaf.public_bytes(serialization.Encoding.PEM),
        key=_pem_key(key),
        bundle=merge_bundle(ca_pem, previous_bundle, now=now),
    )


def merge_bundle(ca: bytes, previous: bytes, *, now: datetime.datetime) -> bytes:
    """`ca` first, then the certificates of `previous` that are still valid (no duplicates)."""
    kept = [ca]
    for certificate in _load_all(previous):
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        if certificate.not_valid_after_utc > now and pem not in kept:
            kept.append(pem)
    return b"".join(kept)


def _load_all(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem) if pem.strip() else []
    except ValueError:
        return []


def renewal_due(
    issued: Issued,
    *,
    hosts: Iterable[str],
    now: datetime.datetime,
    renew_before: datetime.timedelta,
) -> str | None:
    """Why `issued` must be replaced now (unparsable, wrong names, expiring), or None."""
    try:
        certificate = x509.load_pem_x509_certificate(issued.certificate)
        key = serialization.load_pem_private_key(issued.key, password=None)
    except ValueError as error:
        return f"the stored certificate cannot be read ({error})"
    if key.public_key() != certificate.public_key():
        return "the stored key does not match the stored certificate"
    if not any(_signed_by(certificate, ca) for ca in _load_all(issued.bundle)):
        return "the stored CA bundle does not hold the certificate's issuer"
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the stored certificate names no hosts"
    missing = [name for name in _names(list(hosts)) if name not in san]
    if missing:
        return "the stored certificate does not cover " + ", ".join(
            str(name.value) for name in missing
        )
    left = certificate.not_valid_after_utc - now
    if left <= renew_before:
        return f"the stored certificate expires in {max(left.total_seconds(), 0):.0f} s"
    return None


def _signed_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def expires(issued: Issued) -> datetime.datetime:
    return x509.load_pem_x509_certificate(issued.certificate).not_valid_after_utc


def self_signed(hosts: Iterable[str], directory: Path) -> tuple[Path, Path]:
    """Write tls.crt and tls.key for `hosts` (names or IPs) into `directory` (development)."""
    hosts = list(dict.fromkeys(hosts))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _common_name(hosts[0])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        _builder(
            subject=subject, issuer=subject, key=key, start=now - CLOCK_SKEW, end=now + DEV_VALIDITY
        )
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    return cert_path, key_path
