"""Per-RPC faults from a test: a rule added through a process's real FaultService.

A rule on a pCPU host's ``SalService`` method stands for a lost, late or failed
IPI (it never fires on a local SAL call); a rule on the coordinator's
``HypervisorService`` method acts on dom0's calls. Actions: ``drop-reply`` (the
server acts, the reply is lost), ``delay`` (``delay`` seconds), ``fail``
(UNAVAILABLE); ``count`` limits how many calls it fires on (0: every one) after
``skip`` matching calls, ``pcpu`` narrows it to one pCPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from xenmca.rpc.identity import OPERATOR, TokenBook, call_metadata
from xenmca.testbed.infra import fault_client


@dataclass(frozen=True)
class RpcFault:
    """One rule as added: where (``address``), its id there, and the rule itself."""

    address: str
    fault_id: str
    rule: dict[str, Any]


class RuleOptions(TypedDict, total=False):
    """A rule's optional keywords, as add_rpc_fault takes them (Testbed.add_fault passes
    them on): ``pcpu`` (None: every pCPU), ``count`` (0: every call), ``skip``,
    ``delay`` and ``duration`` in seconds."""

    pcpu: int | None
    count: int
    skip: int
    delay: float
    duration: float


async def add_rpc_fault(
    address: str,
    tokens: TokenBook,
    method: str,
    action: str,
    *,
    pcpu: int | None = None,
    count: int = 0,
    skip: int = 0,
    delay: float = 0.0,
    duration: float = 0.0,
) -> RpcFault:
    """Add the rule in the process serving address, as the operator; returns it with its id.

    ValueError for a bad rule (before any call); grpc.aio.AioRpcError when the
    process refuses it (a method it does not serve, a pCPU it does not host).
    """
    rule: dict[str, Any] = {"method": method, "action": action, "count": count, "skip": skip}
    if pcpu is not None:
        rule["pcpu"] = pcpu
    if delay:
        rule["delay"] = delay
    if duration:
        rule["duration"] = duration
    metadata = call_metadata(tokens.token_for(OPERATOR))
    fault_id = await fault_client.add_fault(address, rule, metadata)
    return RpcFault(address, fault_id, rule)


async def list_rpc_faults(address: str, tokens: TokenBook) -> list[dict[str, Any]]:
    """The rules in the process serving address, with how often each matched and fired."""
    return await fault_client.list_faults(address, call_metadata(tokens.token_for(OPERATOR)))
