"""Helpers shared by the small client commands: argument types, credentials, one-line errors.

A command acts as one identity (inject, status and fault: the operator). With
``--tls-cert/--tls-key/--tls-ca`` it connects with mutual TLS and is whoever its
certificate names (the CN); ``--token-file`` then supplies that identity's
token, so certificate and token never disagree. Without TLS it presents the
token of the identity it acts as.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import grpc

from xenmca.record.v1 import record_pb2
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.identity import TokenBook, TokenFileError, call_metadata, resolve_token_book
from xenmca.rpc.server import split_host_port
from xenmca.rpc.tls import TlsFileError, add_tls_arguments, channel_credentials, load_tls_from_args

TYPE_NAMES = {"mca": 1, "init": 2, "cmc": 3, "cpe": 4}
SEVERITY_NAMES = {"recoverable": 1, "fatal": 2, "corrected": 3}


def address_arg(text: str) -> str:
    try:
        split_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def record_type_arg(text: str) -> int:
    try:
        return TYPE_NAMES[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown record type {text!r} (choose from {', '.join(TYPE_NAMES)})"
        ) from None


def severity_arg(text: str) -> int:
    try:
        return SEVERITY_NAMES[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown severity {text!r} (choose from {', '.join(SEVERITY_NAMES)})"
        ) from None


def add_token_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token-file", help="identity tokens (YAML/JSON {identity: token})")


def add_tls_argument(parser: argparse.ArgumentParser) -> None:
    """--tls-cert, --tls-key and --tls-ca (all three or none)."""
    add_tls_arguments(parser)


Metadata = tuple[tuple[str, str], ...]


def client_auth(
    args: argparse.Namespace, identity: str, command: str
) -> tuple[Metadata, grpc.ChannelCredentials | None]:
    """(call metadata, channel credentials) from --token-file and --tls-*; exit 2 on a bad file.

    With a certificate, the token presented is the certificate identity's (see above).
    """
    try:
        tls = load_tls_from_args(args)
    except TlsFileError as exc:
        fail(command, str(exc))
    if tls is None:
        return metadata_for(args, identity, command), None
    return metadata_for(args, tls.identity, command), channel_credentials(tls)


def metadata_for(
    args: argparse.Namespace, identity: str, command: str
) -> tuple[tuple[str, str], ...]:
    """Call metadata presenting identity's token, or exit 2 with one line."""
    try:
        book: TokenBook | None = resolve_token_book(args.token_file)
    except TokenFileError as exc:
        fail(command, str(exc))
    return call_metadata(book.token_for(identity) if book else None)


def fail(command: str, message: str, status: int = 2) -> NoReturn:
    print(f"xenmca {command}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def describe_rpc_error(exc: grpc.aio.AioRpcError) -> str:
    info = error_info_of(exc)
    reason = f" [{info.reason}]" if info is not None else ""
    return f"{exc.code().name}{reason}: {exc.details()}"


def type_label(value: int) -> str:
    return record_pb2.RecordType.Name(value).removeprefix("RECORD_TYPE_")  # type: ignore[arg-type]
