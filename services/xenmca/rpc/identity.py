"""Who is calling: bearer tokens in call metadata, mapped to identities (dom0, operator, xen).

mTLS identities (from the client certificate) are added in a later issue; the
rest of the code only asks `caller_identity(context)` and does not care which.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

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

    def identity_of(self, token: str) -> str | None:
        for identity, expected in self.tokens.items():
            if secrets.compare_digest(expected.encode(), token.encode()):
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


def caller_identity(context: grpc.aio.ServicerContext, book: TokenBook | None) -> str | None:
    """The caller's identity, or None when it presented no valid credential.

    With no token book configured, every caller is anonymous (None).
    """
    if book is None:
        return None
    token = bearer_token(context)
    return book.identity_of(token) if token is not None else None


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Metadata that presents token on a call (empty without a token)."""
    return ((AUTH_HEADER, f"Bearer {token}"),) if token else ()
