"""A throwaway test PKI: a CA and one mutual-TLS certificate per identity (ECDSA P-256).

For tests, the local testbed and ``xenmca certs generate``; servers and
channels only load certificates (``xenmca.rpc.tls``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from xenmca.rpc.tls import TlsFiles

DEFAULT_IDENTITIES = ("dom0", "operator", "xen", "pcpu")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
DEFAULT_DAYS = 365
_IDENTITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DNS_NAME = re.compile(r"(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")


def check_identity_name(name: str) -> str:
    if not _IDENTITY_NAME.fullmatch(name):
        raise ValueError(
            f"identity {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it names the certificate files)"
        )
    return name


def check_host(host: str) -> str:
    """host as given if it is an IP address or a DNS name (a leading '*.' allowed)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _DNS_NAME.fullmatch(host) or ".." in host:
            raise ValueError(f"host {host!r} is neither an IP address nor a DNS name") from None
    return host


def pki_files(directory: Path, identities: Iterable[str]) -> list[Path]:
    """Every file generate_test_pki writes in directory for identities."""
    return [directory / "ca.crt"] + [
        directory / f"{name}.{suffix}" for name in identities for suffix in ("crt", "key")
    ]


def generate_test_pki(
    directory: Path,
    identities: Sequence[str] = DEFAULT_IDENTITIES,
    hosts: Sequence[str] = LOOPBACK_HOSTS,
    *,
    days: int = DEFAULT_DAYS,
) -> dict[str, TlsFiles]:
    """A new CA and, per identity, a certificate with CN=identity and SANs for hosts.

    Writes ``ca.crt`` and ``<identity>.crt`` / ``<identity>.key`` in directory
    (created 0700 when missing; files 0600, replaced if present). Every
    certificate may serve and connect (serverAuth and clientAuth). The CA's
    private key is never written: to add a certificate, generate everything again.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = [check_identity_name(name) for name in identities]
    if not names or len(set(names)) != len(names):
        raise ValueError("identities must be distinct and at least one")
    if "ca" in names:
        raise ValueError("identity 'ca' would overwrite ca.crt")
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    sans: list[x509.GeneralName] = []
    for host in dict.fromkeys(check_host(h) for h in hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xenmca test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.crt"
    _write_private(ca_path, ca_cert.public_bytes(serialization.Encoding.PEM))
    issued: dict[str, TlsFiles] = {}
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        files = TlsFiles(directory / f"{name}.crt", directory / f"{name}.key", ca_path)
        _write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM))
        _write_private(
            files.key,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        issued[name] = files
    return issued


def _write_private(path: Path, data: bytes) -> None:
    """Write data to path with mode 0600 (no moment where others could read it)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(descriptor, 0o600)  # whatever the umask
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
