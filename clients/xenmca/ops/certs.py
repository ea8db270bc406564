"""`xenmca certs generate`: a CA and one mutual-TLS certificate per identity, for a testbed.

    xenmca certs generate --dir certs --host xen.example --host 10.0.0.5

Writes DIR/ca.crt and DIR/<identity>.crt, DIR/<identity>.key (mode 0600) for
dom0, operator, xen and pcpu (or the --identity names): CN = the identity, SANs
= 127.0.0.1, ::1, localhost and every --host (servers are checked against the
name or address clients dial). Each component then gets
``--tls-cert DIR/<identity>.crt --tls-key DIR/<identity>.key --tls-ca DIR/ca.crt``.
The CA's key is not kept: to add a host or identity, generate everything again.
"""

from __future__ import annotations

import argparse

from xenmca.cli_common import fail
from xenmca.ops.pki import (
    DEFAULT_DAYS,
    DEFAULT_IDENTITIES,
    LOOPBACK_HOSTS,
    check_host,
    check_identity_name,
    generate_test_pki,
    pki_files,
)

COMMAND = "certs generate"


def _host(text: str) -> str:
    try:
        return check_host(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _identity(text: str) -> str:
    try:
        return check_identity_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 3650:
        raise argparse.ArgumentTypeError(f"days must be 1..3650, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, metavar="DIR", help="where to write the files")
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        type=_host,
        metavar="H",
        help="a DNS name (*.domain allowed) or IP address the servers are reached by "
        f"(repeat; {', '.join(LOOPBACK_HOSTS)} are always included)",
    )
    parser.add_argument(
        "--identity",
        action="append",
        default=[],
        type=_identity,
        metavar="NAME",
        help=f"a certificate for this identity (repeat; default {', '.join(DEFAULT_IDENTITIES)})",
    )
    parser.add_argument(
        "--days", type=_days, default=DEFAULT_DAYS, help=f"validity (default {DEFAULT_DAYS})"
    )
    parser.add_argument("--force", action="store_true", help="replace existing files")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    directory = Path(args.dir)
    identities = tuple(dict.fromkeys(args.identity)) or DEFAULT_IDENTITIES
    if directory.exists() and not directory.is_dir():
        fail(COMMAND, f"--dir {directory}: not a directory")
    existing = [path for path in pki_files(directory, identities) if path.exists()]
    if existing and not args.force:
        fail(COMMAND, f"{existing[0]} exists (use --force to replace the certificates)")
    hosts = tuple(dict.fromkeys((*LOOPBACK_HOSTS, *args.host)))
    try:
        issued = generate_test_pki(directory, identities, hosts, days=args.days)
    except (OSError, ValueError) as exc:
        fail(COMMAND, str(exc))
    print(f"CA: {directory / 'ca.crt'}")
    for identity, files in issued.items():
        print(f"{identity}: --tls-cert {files.cert} --tls-key {files.key} --tls-ca {files.ca}")
    print(f"valid {args.days} days for {', '.join(hosts)}")
    return 0
