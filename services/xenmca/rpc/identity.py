"""Who is calling: the client certificate (mutual TLS) or a bearer token, as an identity.

Identities: ``dom0``, ``operator``, ``xen`` (the coordinator); any other name
is another domain (domU) or component (a pCPU host's certificate says ``pcpu``)
and holds no rights.

How the identity is derived (``authenticate``):

- mutual TLS (the server was given ``--tls-*``): the subject common name (CN)
  of the client certificate that the handshake verified against the CA. Such a
  caller is always authenticated: without a valid certificate there is no
  connection. A bearer token on the same call must agree: when the server has
  a token book, an unknown token (INVALID_TOKEN) or one of another identity
  (CREDENTIALS_DISAGREE) makes the call UNAUTHENTICATED; a server without a
  token book cannot check tokens and ignores them. A certificate without a CN
  identifies no one (UNAUTHENTICATED, CERTIFICATE_WITHOUT_IDENTITY). Over TLS
  the rules always apply.
- otherwise, with a token book: the identity its bearer token maps to, or none
  (MISSING_CREDENTIALS / INVALID_TOKEN).
- otherwise (no certificate, no token book: a development setup): nobody is
  identified and no rule is enforced.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import grpc
import yaml

from xenmca.rpc.errors import RequestError

log = logging.getLogger(__name__)

DOM0 = "dom0"
OPERATOR = "operator"
XEN = "xen"
KNOWN_IDENTITIES = (DOM0, OPERATOR, XEN)
AUTH_HEADER = "authorization"
TOKEN_FILE_ENV = "XENMCA_TOKEN_FILE"


class TokenFileError(ValueError):
    """A token file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class TokenBook:
    """Tokens by identity. Identities other than the known three are other domains (domU)."""

    tokens: Mapping[str, str]

    @cached_property
    def _encoded(self) -> tuple[tuple[str, bytes], ...]:
        return tuple((identity, token.encode()) for identity, token in self.tokens.items())

    def identity_of(self, token: str) -> str | None:
        presented = token.encode()
        for identity, expected in self._encoded:
            if secrets.compare_digest(expected, presented):
                return identity
        return None

    def token_for(self, identity: str) -> str | None:
        return self.tokens.get(identity)

    @classmethod
    def generate(cls, *identities: str) -> TokenBook:
        names = identities or KNOWN_IDENTITIES
        return cls({name: secrets.token_urlsafe(24) for name in names})

    @classmethod
    def load(cls, path: Path) -> TokenBook:
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise TokenFileError(f"{path}: cannot read token file: {exc}") from exc
        if not isinstance(data, dict) or not data:
            raise TokenFileError(f"{path}: expected a mapping of identity: token")
        tokens: dict[str, str] = {}
        for identity, token in data.items():
            if not isinstance(identity, str) or not isinstance(token, str) or len(token) < 8:
                raise TokenFileError(
                    f"{path}: entry {identity!r} must map a name to a token of 8+ characters"
                )
            tokens[identity] = token
        return cls(tokens)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dict(self.tokens), indent=2) + "\n")
        path.chmod(0o600)


def resolve_token_book(path: str | None) -> TokenBook | None:
    """The token book named on the command line or by $XENMCA_TOKEN_FILE, or None."""
    chosen = path or os.environ.get(TOKEN_FILE_ENV)
    return TokenBook.load(Path(chosen)) if chosen else None


def bearer_token(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == AUTH_HEADER and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :]
    return None


TLS_IDENTITY_PROPERTY = "x509_common_name"
"""The auth-context property that holds the verified client certificate's subject CN."""

MISSING_CREDENTIALS = "MISSING_CREDENTIALS"
INVALID_TOKEN = "INVALID_TOKEN"
CREDENTIALS_DISAGREE = "CREDENTIALS_DISAGREE"
CERTIFICATE_WITHOUT_IDENTITY = "CERTIFICATE_WITHOUT_IDENTITY"


@dataclass(frozen=True)
class Caller:
    """Who made a call, as far as the server can tell."""

    identity: str | None
    """The authenticated identity; None when there is none (see problem)."""
    enforced: bool
    """Whether access rules apply (a certificate or a token book is involved)."""
    via: str
    """"certificate", "token" or "none"."""
    problem: str | None = None
    """Why there is no identity when rules apply: an ErrorInfo reason (UNAUTHENTICATED)."""


def _over_tls(auth: Mapping[str, list[bytes]]) -> bool:
    return auth.get("transport_security_type") == [b"ssl"]


def _certified_name(auth: Mapping[str, list[bytes]]) -> str | None:
    """The subject CN of the client certificate of a mutual-TLS call, else None."""
    if not _over_tls(auth):
        return None
    names = auth.get(TLS_IDENTITY_PROPERTY) or ()
    return names[0].decode("utf-8", "replace") if names else None


def authenticate(context: grpc.aio.ServicerContext, book: TokenBook | None) -> Caller:
    """The caller of this call (see the module docstring for the rules)."""
    auth = context.auth_context() or {}  # built anew by every call: read it once
    certified = _certified_name(auth)
    token = bearer_token(context)
    if certified is not None:
        if book is None or token is None:
            return Caller(certified, True, "certificate")
        token_identity = book.identity_of(token)
        if token_identity is None:
            return Caller(None, True, "certificate", INVALID_TOKEN)
        if token_identity != certified:
            return Caller(None, True, "certificate", CREDENTIALS_DISAGREE)
        return Caller(certified, True, "certificate")
    tls, has_certificate = _over_tls(auth), bool(auth.get("x509_pem_cert"))
    if has_certificate:  # a certificate our CA signed, but naming no one
        return Caller(None, True, "certificate", CERTIFICATE_WITHOUT_IDENTITY)
    if book is None:
        # Over TLS the rules always apply (a TLS server is never the open development setup).
        return Caller(None, tls, "none", MISSING_CREDENTIALS if tls else None)
    if token is None:
        return Caller(None, True, "token", MISSING_CREDENTIALS)
    identity = book.identity_of(token)
    return Caller(identity, True, "token", None if identity is not None else INVALID_TOKEN)


def caller_identity(context: grpc.aio.ServicerContext, book: TokenBook | None) -> str | None:
    """The caller's identity, or None when it presented no valid credential.

    With neither a client certificate nor a token book, every caller is anonymous (None).
    """
    return authenticate(context, book).identity


_PROBLEMS = {
    MISSING_CREDENTIALS: "needs a client certificate or a bearer token (authorization: Bearer ...)",
    INVALID_TOKEN: "the bearer token is not known here",
    CREDENTIALS_DISAGREE: "the bearer token names another identity than the client certificate",
    CERTIFICATE_WITHOUT_IDENTITY: "the client certificate has no subject common name (CN)",
}


def unauthenticated(caller: Caller, method: str, required: str | None = None) -> RequestError:
    """The UNAUTHENTICATED error for a caller whose credentials failed (caller.problem)."""
    reason = caller.problem or MISSING_CREDENTIALS
    metadata = {"method": method}
    if required is not None:
        metadata["required_identity"] = required
    needs = f" (identity {required!r})" if required is not None else ""
    return RequestError(
        grpc.StatusCode.UNAUTHENTICATED, reason, f"{method}{needs}: {_PROBLEMS[reason]}", metadata
    )


def require_identity(
    context: grpc.aio.ServicerContext, book: TokenBook | None, method: str, *allowed: str
) -> Caller:
    """The caller, if it is one of allowed (or no rule applies); else raise RequestError:
    UNAUTHENTICATED without a valid credential, PERMISSION_DENIED for another identity."""
    caller = authenticate(context, book)
    if not caller.enforced:
        return caller
    needed = " or ".join(allowed)
    if caller.identity is None:
        raise unauthenticated(caller, method, needed)
    if caller.identity not in allowed:
        raise RequestError(
            grpc.StatusCode.PERMISSION_DENIED,
            "IDENTITY_NOT_ALLOWED",
            f"{method} is for identity {needed!r}, not {caller.identity!r}",
            {"method": method, "required_identity": needed, "identity": caller.identity},
        )
    return caller


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata that presents token on a call (empty without a token)."""
    return ((AUTH_HEADER, f"Bearer {token}"),) if token else ()
