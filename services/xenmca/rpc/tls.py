"""Mutual TLS: certificate files, gRPC credentials, the --tls-* flags, and a test PKI.

Every component presents a certificate signed by one CA and requires one from
its peer. The certificate's subject common name (CN) is the identity
(``dom0``, ``operator``, ``xen``; a pCPU host's is ``pcpu``), see
``xenmca.rpc.identity``. Servers also need SAN entries (DNS names or IP
addresses) for every name clients dial them by: gRPC checks the server's
certificate against the target host.

``generate_test_pki`` makes a throwaway CA and one certificate per identity
(ECDSA P-256) for tests, the local testbed and ``xenmca certs generate``.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_IDENTITIES = ("dom0", "operator", "xen", "pcpu")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
DEFAULT_DAYS = 365
_IDENTITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DNS_NAME = re.compile(r"(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")


class TlsFileError(ValueError):
    """A certificate, key or CA file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class TlsMaterial:
    """The PEM bytes of a TlsFiles, checked: cert and key match, CA parses."""

    cert: bytes
    key: bytes
    ca: bytes
    identity: str
    """The certificate's subject CN (what peers see as this component's identity)."""


@dataclass(frozen=True)
class TlsFiles:
    """Paths of this component's certificate (chain), its private key and the trusted CA(s)."""

    cert: Path
    key: Path
    ca: Path

    def flags(self) -> list[str]:
        """These files as command-line flags: ["--tls-cert", cert, "--tls-key", key, ...]."""
        return ["--tls-cert", str(self.cert), "--tls-key", str(self.key), "--tls-ca", str(self.ca)]

    def load(self) -> TlsMaterial:
        """Read and check the three files; TlsFileError names the file and the problem."""
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization

        cert_pem = _read(self.cert, "certificate")
        key_pem = _read(self.key, "private key")
        ca_pem = _read(self.ca, "CA certificate")
        chain = _certificates(cert_pem, self.cert, "certificate")
        _certificates(ca_pem, self.ca, "CA certificate")
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except TypeError:
            raise TlsFileError(
                f"TLS private key {self.key}: is encrypted (give an unencrypted PEM key)"
            ) from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise TlsFileError(f"TLS private key {self.key}: not a PEM private key") from exc
        leaf = chain[0]
        if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
            raise TlsFileError(
                f"TLS private key {self.key}: does not belong to certificate {self.cert}"
            )
        now = datetime.datetime.now(datetime.UTC)
        if leaf.not_valid_after_utc < now:
            raise TlsFileError(
                f"TLS certificate {self.cert}: expired on {leaf.not_valid_after_utc:%Y-%m-%d}"
            )
        return TlsMaterial(cert_pem, key_pem, ca_pem, common_name(leaf) or "")


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TlsFileError(f"TLS {what} {path}: no such file") from None
    except IsADirectoryError:
        raise TlsFileError(f"TLS {what} {path}: is a directory, not a file") from None
    except OSError as exc:
        raise TlsFileError(f"TLS {what} {path}: cannot read ({exc.strerror or exc})") from None
    if not data.strip():
        raise TlsFileError(f"TLS {what} {path}: is empty")
    return data


def _certificates(pem: bytes, path: Path, what: str) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TlsFileError(f"TLS {what} {path}: not a PEM certificate") from None
    return list(certificates)


def _public_bytes(public_key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def common_name(certificate: x509.Certificate) -> str | None:
    """The subject CN of a certificate, or None."""
    from cryptography.x509.oid import NameOID

    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def server_credentials(files: TlsFiles | TlsMaterial) -> grpc.ServerCredentials:
    """Server credentials that present files' certificate and require a client certificate
    signed by files' CA (mutual TLS: a client without one fails the handshake)."""
    material = files.load() if isinstance(files, TlsFiles) else files
    return grpc.ssl_server_credentials(
        [(material.key, material.cert)], root_certificates=material.ca, require_client_auth=True
    )


def channel_credentials(files: TlsFiles | TlsMaterial) -> grpc.ChannelCredentials:
    """Channel credentials that trust files' CA and present files' certificate."""
    material = files.load() if isinstance(files, TlsFiles) else files
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca, private_key=material.key, certificate_chain=material.cert
    )


# -- command-line flags --------------------------------------------------------------


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """--tls-cert, --tls-key, --tls-ca (all three or none)."""
    group = parser.add_argument_group("mutual TLS (give all three or none)")
    group.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="this component's certificate (PEM; its CN is the identity peers see)",
    )
    group.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM)")
    group.add_argument(
        "--tls-ca", type=Path, metavar="FILE", help="CA certificate(s) that sign peers (PEM)"
    )


def tls_files_from_args(args: argparse.Namespace) -> TlsFiles | None:
    """The TlsFiles named by the flags, None without them; TlsFileError when only some are given."""
    given = {
        "--tls-cert": getattr(args, "tls_cert", None),
        "--tls-key": getattr(args, "tls_key", None),
        "--tls-ca": getattr(args, "tls_ca", None),
    }
    missing = [flag for flag, value in given.items() if value is None]
    if len(missing) == len(given):
        return None
    if missing:
        raise TlsFileError(
            f"--tls-cert, --tls-key and --tls-ca go together (missing {', '.join(missing)})"
        )
    return TlsFiles(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_ca))


def load_tls_from_args(args: argparse.Namespace) -> TlsMaterial | None:
    """tls_files_from_args, read and checked (TlsFileError for any problem)."""
    files = tls_files_from_args(args)
    return files.load() if files is not None else None


# -- a test PKI ------------------------------------------------------------------------


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
