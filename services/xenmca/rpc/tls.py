"""Mutual TLS: certificate files, gRPC credentials and the --tls-* flags.

Every component presents a certificate signed by one CA and requires one from
its peer. The certificate's subject common name (CN) is the identity
(``dom0``, ``operator``, ``xen``; a pCPU host's is ``pcpu``), see
``xenmca.rpc.identity``. Servers also need SAN entries (DNS names or IP
addresses) for every name clients dial them by: gRPC checks the server's
certificate against the target host.

A throwaway test PKI (``xenmca certs generate``) is made by ``xenmca.ops.pki``.
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from cryptography import x509


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
