"""Mutual TLS: generated certificates, bad TLS files in one line, the TLS flags, and the
identity derived from a client certificate."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from tls_harness import DOMU
from tls_helpers import PCPU
from tls_helpers import pki as pki

from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, authenticate
from xenmca.rpc.tls import TlsFileError, TlsFiles, tls_files_from_args

# -- certificates and files ----------------------------------------------------------


def test_generated_pki_is_private_and_names_each_identity(pki: dict[str, TlsFiles]) -> None:
    assert set(pki) == {DOM0, OPERATOR, XEN, PCPU, DOMU}
    for identity, files in pki.items():
        for path in (files.cert, files.key, files.ca):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert files.ca == pki[DOM0].ca
        certificate = x509.load_pem_x509_certificate(files.cert.read_bytes())
        cn = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == identity == files.load().identity
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert stat.S_IMODE(pki[DOM0].cert.parent.stat().st_mode) == 0o700


def test_bad_tls_files_get_one_line_naming_file_and_problem(
    pki: dict[str, TlsFiles], tmp_path: Path
) -> None:
    good = pki[DOM0]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    cases = [
        (TlsFiles(tmp_path / "nope.crt", good.key, good.ca), "nope.crt: no such file"),
        (TlsFiles(good.cert, tmp_path, good.ca), "is a directory"),
        (TlsFiles(garbage, good.key, good.ca), "garbage.pem: not a PEM certificate"),
        (TlsFiles(good.cert, garbage, good.ca), "garbage.pem: not a PEM private key"),
        (TlsFiles(good.cert, good.key, garbage), "garbage.pem: not a PEM certificate"),
        (TlsFiles(good.cert, good.key, empty), "empty.pem: is empty"),
        (TlsFiles(good.cert, pki[OPERATOR].key, good.ca), "does not belong to certificate"),
    ]
    if os.geteuid() != 0:  # root reads anything
        unreadable = tmp_path / "unreadable.key"
        unreadable.write_bytes(good.key.read_bytes())
        unreadable.chmod(0)
        cases.append((TlsFiles(good.cert, unreadable, good.ca), "cannot read"))
    for files, expected in cases:
        with pytest.raises(TlsFileError) as caught:
            files.load()
        message = str(caught.value)
        assert expected in message and "\n" not in message, message
        assert "PRIVATE KEY" not in message


def test_tls_flags_go_together() -> None:
    def namespace(**given: str | None) -> argparse.Namespace:
        return argparse.Namespace(
            tls_cert=given.get("cert"), tls_key=given.get("key"), tls_ca=given.get("ca")
        )

    assert tls_files_from_args(namespace()) is None
    assert tls_files_from_args(namespace(cert="c", key="k", ca="a")) == TlsFiles(
        Path("c"), Path("k"), Path("a")
    )
    with pytest.raises(TlsFileError, match=r"go together \(missing --tls-key, --tls-ca\)"):
        tls_files_from_args(namespace(cert="c"))


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "pcpu", "--pcpu", "0"],
        ["serve", "xen", "--pcpu", "0=127.0.0.1:1"],
        ["dom0", "--xen", "127.0.0.1:1", "--db", "log.sqlite"],
        ["inject", "--pcpu", "127.0.0.1:1", "--type", "cmc"],
        ["status", "--xen", "127.0.0.1:1"],
        ["fault", "add", "--pcpu", "127.0.0.1:1", "--method", "M", "--action", "fail"],
        ["fault", "list", "--pcpu", "127.0.0.1:1"],
        ["fault", "clear", "--xen", "127.0.0.1:1"],
    ],
)
def test_every_serve_dom0_and_client_command_takes_the_tls_flags(command: list[str]) -> None:
    from xenmca.cli import build_parser

    files = TlsFiles(Path("/etc/xenmca/tls/tls.crt"), Path("/k/tls.key"), Path("/k/ca.crt"))
    args = build_parser().parse_args([*command, *files.flags()])
    assert tls_files_from_args(args) == files


class FakeContext:
    """What authenticate() reads of a servicer context: the auth context and the metadata."""

    def __init__(self, auth: dict[str, list[bytes]], token: str | None = None) -> None:
        self._auth = auth
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def test_how_the_identity_is_derived() -> None:
    book = TokenBook({DOM0: "dom0-token-123", OPERATOR: "operator-token-123"})
    mtls = {"transport_security_type": [b"ssl"], "x509_pem_cert": [b"PEM"]}
    dom0_cert = {**mtls, "x509_common_name": [b"dom0"]}
    plaintext: dict[str, list[bytes]] = {}
    cases = [
        # (auth context, token, book) -> (identity, enforced, problem)
        ((dom0_cert, None, None), (DOM0, True, None)),
        ((dom0_cert, None, book), (DOM0, True, None)),
        ((dom0_cert, "dom0-token-123", book), (DOM0, True, None)),
        ((dom0_cert, "operator-token-123", book), (None, True, "CREDENTIALS_DISAGREE")),
        ((dom0_cert, "nobody-issued-this", book), (None, True, "INVALID_TOKEN")),
        ((dom0_cert, "nobody-issued-this", None), (DOM0, True, None)),  # cannot check: ignored
        ((mtls, None, None), (None, True, "CERTIFICATE_WITHOUT_IDENTITY")),
        ((mtls, "dom0-token-123", book), (None, True, "CERTIFICATE_WITHOUT_IDENTITY")),
        (({"transport_security_type": [b"ssl"]}, None, None), (None, True, "MISSING_CREDENTIALS")),
        ((plaintext, "dom0-token-123", book), (DOM0, True, None)),
        ((plaintext, None, book), (None, True, "MISSING_CREDENTIALS")),
        ((plaintext, "nobody-issued-this", book), (None, True, "INVALID_TOKEN")),
        ((plaintext, "dom0-token-123", None), (None, False, None)),  # development setup
    ]
    for (auth, token, tokens), expected in cases:
        caller = authenticate(FakeContext(auth, token), tokens)  # type: ignore[arg-type]
        assert (caller.identity, caller.enforced, caller.problem) == expected, (auth, token)
