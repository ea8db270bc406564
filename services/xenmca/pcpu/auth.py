"""Who may call which SalService RPC.

Enforced when the caller is identified by a client certificate (mutual TLS) or
the host has a TokenBook (see xenmca.rpc.identity): InjectError is the
operator's (the error workload), and the SAL procedures that read, clear or
mask (GetStateInfo, ClearStateInfo, SetInterruptMask) and the interrupt line
(WatchInterrupts: every subscriber costs the host a copy of every interrupt)
are the coordinator's ("xen"). GetStateInfoSize and DescribePcpu are open. No
valid credential is UNAUTHENTICATED; another identity is PERMISSION_DENIED.

In plain SAL mode DescribePcpu (a testbed inspection RPC, not SAL) is refused to
"xen" with FAILED_PRECONDITION: a coordinator that works with real SAL must not
depend on it. Operators and other callers, and every caller when identities are
not enforced (development), are still answered.
"""

from __future__ import annotations

import grpc

from xenmca.pcpu.model import SalMode
from xenmca.rpc.errors import RequestError
from xenmca.rpc.identity import OPERATOR, XEN, TokenBook, authenticate, require_identity

REQUIRED_IDENTITY: dict[str, str] = {
    "InjectError": OPERATOR,
    **dict.fromkeys(("ListInjections", "CancelInjection"), OPERATOR),
    "GetStateInfo": XEN,
    "ClearStateInfo": XEN,
    "SetInterruptMask": XEN,
    "WatchInterrupts": XEN,
}


def authorize(context: grpc.aio.ServicerContext, book: TokenBook | None, method: str) -> None:
    """Raise RequestError unless the caller may call method (open methods: always)."""
    required = REQUIRED_IDENTITY.get(method)
    if required is not None:
        require_identity(context, book, method, required)


PLAIN_SAL_EXTENSIONS: frozenset[str] = frozenset({"DescribePcpu"})
"""RPCs that are not SAL and that the coordinator may not call on a plain-SAL pCPU."""


def refuse_extension_to_xen(
    context: grpc.aio.ServicerContext,
    book: TokenBook | None,
    method: str,
    pcpu: int,
    sal_mode: SalMode,
) -> None:
    """Raise FAILED_PRECONDITION when the coordinator calls an extension of plain SAL."""
    if sal_mode is not SalMode.PLAIN or method not in PLAIN_SAL_EXTENSIONS:
        return
    caller = authenticate(context, book)
    if caller.identity == XEN:
        raise RequestError(
            grpc.StatusCode.FAILED_PRECONDITION,
            "PLAIN_SAL_EXTENSION",
            f"pCPU {pcpu} runs plain SAL: {method} is a testbed inspection RPC, not a SAL "
            "procedure, and is not offered to the coordinator; run the coordinator with "
            "--sal plain",
            {"method": method, "sal_mode": sal_mode.value, "identity": XEN},
        )
