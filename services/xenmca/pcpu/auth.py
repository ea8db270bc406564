"""Who may call which SalService RPC (a hook: enforced only when a TokenBook is configured).

With a token book: InjectError is the operator's (the error workload), and the
SAL procedures that read, clear or mask (GetStateInfo, ClearStateInfo,
SetInterruptMask) are the coordinator's ("xen"). GetStateInfoSize,
WatchInterrupts and DescribePcpu are open. A missing or unknown token is
UNAUTHENTICATED; a valid token of another identity is PERMISSION_DENIED.
"""

from __future__ import annotations

import grpc

from xenmca.rpc.errors import RequestError
from xenmca.rpc.identity import OPERATOR, XEN, TokenBook, bearer_token

REQUIRED_IDENTITY: dict[str, str] = {
    "InjectError": OPERATOR,
    "GetStateInfo": XEN,
    "ClearStateInfo": XEN,
    "SetInterruptMask": XEN,
}


def authorize(context: grpc.aio.ServicerContext, book: TokenBook | None, method: str) -> None:
    """Raise RequestError unless the caller may call method (always allowed without a book)."""
    required = REQUIRED_IDENTITY.get(method)
    if book is None or required is None:
        return
    token = bearer_token(context)
    if token is None:
        raise RequestError(
            grpc.StatusCode.UNAUTHENTICATED,
            "MISSING_CREDENTIALS",
            f"{method} needs a bearer token (identity {required!r})",
            {"method": method, "required_identity": required},
        )
    identity = book.identity_of(token)
    if identity is None:
        raise RequestError(
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_TOKEN",
            f"{method}: the bearer token is not known to this pCPU host",
            {"method": method, "required_identity": required},
        )
    if identity != required:
        raise RequestError(
            grpc.StatusCode.PERMISSION_DENIED,
            "IDENTITY_NOT_ALLOWED",
            f"{method} is for identity {required!r}, not {identity!r}",
            {"method": method, "required_identity": required, "identity": identity},
        )
