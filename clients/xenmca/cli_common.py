"""Helpers shared by the client commands: argument types, credentials, JSON, one-line errors.

A command acts as one identity (inject, status and fault: the operator). With
``--tls-cert/--tls-key/--tls-ca`` it connects with mutual TLS and is whoever its
certificate names (the CN); ``--token-file`` then supplies that identity's
token, so certificate and token never disagree. Without TLS it presents the
token of the identity it acts as.

Targets are named the same way in every command (xenmca.rpc.flags): ``--xen
HOST:PORT`` the coordinator, ``--pcpu HOST:PORT`` or ``--pcpu N=HOST:PORT`` a pCPU.
``--json`` prints JSON on stdout; ``--json-out FILE`` writes it to a file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NoReturn

import grpc

from xenmca import exit_status
from xenmca.rpc.errors import error_info_of
from xenmca.rpc.flags import (
    DeprecatedFlag,
    PcpuAddress,
    add_deprecated_flag,
    pcpu_address_arg,
    warn_deprecated,
)
from xenmca.rpc.identity import TokenBook, TokenFileError, call_metadata, resolve_token_book
from xenmca.rpc.server import split_host_port
from xenmca.rpc.tls import TlsFileError, add_tls_arguments, channel_credentials, load_tls_from_args
from xenmca.rpc.usage import UsageError
from xenmca.vocab import TYPES_BY_NAME

__all__ = [
    "DeprecatedFlag",
    "PcpuAddress",
    "add_deprecated_flag",
    "pcpu_address_arg",
    "warn_deprecated",
]

REFUSED_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
"""Codes that refuse the request as given (its arguments, credentials or target): exit 2.
Any other code (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...) means the command could
not run: exit 3."""

SEVERITY_NAMES = {"recoverable": 1, "fatal": 2, "corrected": 3}


def address_arg(text: str) -> str:
    try:
        split_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def record_type_arg(text: str) -> int:
    try:
        return TYPES_BY_NAME[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown record type {text!r} (choose from {', '.join(TYPES_BY_NAME)})"
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


def fail(command: str, message: str, status: int = exit_status.USAGE) -> NoReturn:
    """Stop the command with one line naming the problem.

    A usage problem (status 2) is the one `UsageError`, which `xenmca` prints and
    maps to 2; any other status (3: the call could not be made) exits here.
    """
    if status == exit_status.USAGE:
        raise UsageError(message)
    print(f"xenmca {command}: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def describe_rpc_error(exc: grpc.aio.AioRpcError) -> str:
    info = error_info_of(exc)
    reason = f" [{info.reason}]" if info is not None else ""
    return f"{exc.code().name}{reason}: {exc.details()}"


def rpc_exit_status(exc: grpc.aio.AioRpcError) -> int:
    """2 when the server refused the request as given, 3 when the call could not be made."""
    return exit_status.USAGE if exc.code() in REFUSED_CODES else exit_status.NOT_RUN


def fail_rpc(command: str, message: str, exc: grpc.aio.AioRpcError) -> NoReturn:
    """One line naming the RPC error after message; the exit status by its code."""
    fail(command, f"{message}: {describe_rpc_error(exc)}", rpc_exit_status(exc))


def message_json(message: Any) -> dict[str, Any]:
    """A proto message as results.json spells things: snake_case, every field (zeros
    too), 64-bit integers as numbers where JavaScript reads them exactly."""
    from google.protobuf import json_format

    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


class _JsonFlag(argparse.Action):
    """``--json``: JSON on stdout. ``--json FILE``, the old spelling, writes FILE (warned)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if values is None:
            namespace.json = True
            return
        warn_deprecated(parser.prog, "--json FILE", "--json-out FILE (--json alone prints JSON)")
        if namespace.json_out is not None:
            parser.error(_BOTH_FILES)
        namespace.json_out = Path(values)
        namespace.json_file_deprecated = True


class _JsonOut(argparse.Action):
    """``--json-out FILE``, refused when the old ``--json FILE`` named a file already."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, "json_file_deprecated", False):
            parser.error(_BOTH_FILES)
        namespace.json_out = values


_BOTH_FILES = "--json FILE and --json-out FILE both name a file: keep --json-out"


def add_json_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json`` (what as JSON on stdout, instead of the table) and ``--json-out FILE``."""
    parser.add_argument(
        "--json",
        action=_JsonFlag,
        nargs="?",
        default=False,
        metavar="FILE",
        help=f"print {what} as JSON on stdout instead of the table "
        "(--json FILE is the deprecated spelling of --json-out FILE)",
    )
    parser.add_argument(
        "--json-out",
        action=_JsonOut,
        type=Path,
        metavar="FILE",
        help=f"also write {what} as JSON to FILE",
    )


def write_json_out(path: Path | None, text: str) -> None:
    """Write text to --json-out's file (its folder made); nothing without one."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def cells_progress(show: bool) -> Any:
    """The progress bar of a command that runs a matrix of scenario runs (on stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show,
    )
