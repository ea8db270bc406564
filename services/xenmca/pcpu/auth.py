"""Who may call which SalService RPC.

Enforced when the caller is identified by a client certificate (mutual TLS) or
the host has a TokenBook (see xenmca.rpc.identity): InjectError is the
operator's (the error workload), and the SAL procedures that read, clear or
mask (GetStateInfo, ClearStateInfo, SetInterruptMask) are the coordinator's
("xen"). GetStateInfoSize, WatchInterrupts and DescribePcpu are open. No valid
credential is UNAUTHENTICATED; another identity is PERMISSION_DENIED.
"""

from __future__ import annotations

import grpc

from xenmca.rpc.identity import OPERATOR, XEN, TokenBook, require_identity

REQUIRED_IDENTITY: dict[str, str] = {
    "InjectError": OPERATOR,
    "GetStateInfo": XEN,
    "ClearStateInfo": XEN,
    "SetInterruptMask": XEN,
}


def authorize(context: grpc.aio.ServicerContext, book: TokenBook | None, method: str) -> None:
    """Raise RequestError unless the caller may call method (open methods: always)."""
    required = REQUIRED_IDENTITY.get(method)
    if required is not None:
        require_identity(context, book, method, required)
