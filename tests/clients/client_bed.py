"""A real local testbed for the client conformance cases, without any Python dom0.

pCPU servers and the coordinator run in-process on the test's event loop, on
127.0.0.1 port 0, with identity checks on: either fresh bearer tokens (a token
file the clients read) or mutual TLS only (a test PKI, identity = the
certificate's CN). The client under test is then the only dom0 that attaches.

The driver injects records and reads state as the operator, over the same public
RPCs the ``xenmca`` commands use. It waits with ``until``: the condition is checked
again on every event the coordinator or the pCPUs emit and on every line a
client writes, up to a deadline; there are no fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc
from xenmca.ops.pki import generate_test_pki
from xenmca.pcpu.server import PcpuHost
from xenmca.record.v1 import record_pb2
from xenmca.rpc.channels import open_channel
from xenmca.rpc.events import EventLog
from xenmca.rpc.identity import DOM0, OPERATOR, XEN, TokenBook, call_metadata
from xenmca.rpc.retry import BackoffPolicy, RetryPolicy
from xenmca.rpc.server import BuiltServer
from xenmca.rpc.tls import TlsFiles, channel_credentials, server_credentials
from xenmca.sal.v1 import sal_service_pb2 as sal_pb2
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc
from xenmca.xen.coordinator import Coordinator, CoordinatorConfig
from xenmca.xen.service import create_server
from xenmca.xen.throttle_settings import PRESETS

RECORD_TYPES = {"cmc": record_pb2.RECORD_TYPE_CMC, "cpe": record_pb2.RECORD_TYPE_CPE}
PKI_IDENTITIES = (DOM0, OPERATOR, XEN, "pcpu")

# The coordinator's SAL calls give up quickly, so a failing CLEAR answers -3 soon.
FAST_RETRY = RetryPolicy(
    attempt_timeout=0.5,
    overall_timeout=2.0,
    max_attempts=4,
    backoff=BackoffPolicy(initial=0.01, maximum=0.05, jitter="full"),
)


class Changes:
    """One wake-up for everything a test waits on: testbed events and client output."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self, *_: Any) -> None:
        self._event.set()

    async def until(
        self,
        check: Callable[[], Awaitable[Any] | Any],
        *,
        within: float,
        what: str,
        detail: Callable[[], str] | None = None,
    ) -> Any:
        """check()'s first truthy value, checked again on every change, until the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        last: Any = None
        while True:
            self._event.clear()
            value = check()
            if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
                value = await value
            if value:
                return value
            last = value
            remaining = deadline - loop.time()
            if remaining <= 0:
                more = f"; {detail()}" if detail else ""
                raise AssertionError(
                    f"timed out after {within} s waiting for {what} ({last!r}){more}"
                )
            # A change wakes us at once; the short cap re-checks state no event covers.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(remaining, 0.25))


@dataclass
class ClientBed:
    """What a conformance case needs: addresses, credentials for the client, operator access."""

    directory: Path
    tls: bool
    host: PcpuHost
    coordinator: Coordinator
    built: BuiltServer | None
    xen: str
    changes: Changes
    tokens: TokenBook | None
    token_file: Path | None
    pki: dict[str, TlsFiles] | None
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    # -- credentials, as command-line flags of the client --------------------------------

    def credential_flags(self, identity: str) -> list[str]:
        """How a client proves it is identity: its certificate, or the token file.

        The token file holds every identity's token; the clients present the
        operator's for status and dom0's for dom0, so identity matters only with TLS.
        """
        if self.tls:
            return self.tls_flags(identity)
        assert self.token_file is not None
        return ["--token-file", str(self.token_file)]

    def tls_flags(self, identity: str) -> list[str]:
        assert self.pki is not None, "a TLS testbed"
        return self.pki[identity].flags()

    def token_book_file(self, name: str, book: dict[str, str]) -> Path:
        """A token file with these entries (for refusals: wrong or swapped tokens)."""
        path = self.directory / name
        path.write_text(json.dumps(book))
        path.chmod(0o600)
        return path

    # -- the operator's view -----------------------------------------------------------------

    def _channel(self, address: str) -> grpc.aio.Channel:
        credentials = channel_credentials(self.pki[OPERATOR]) if self.pki else None
        channel = open_channel(address, credentials)
        self.channels.append(channel)
        return channel

    def _md(self, identity: str = OPERATOR) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.tokens.token_for(identity) if self.tokens else None)

    async def inject(self, pcpu: int, record_type: str, count: int) -> list[int]:
        """InjectError as the operator; the record ids created (all stored, none overflowed)."""
        stub = sal_grpc.SalServiceStub(self._channel(self.host.addresses[pcpu]))
        reply = await stub.InjectError(
            sal_pb2.InjectErrorRequest(type=RECORD_TYPES[record_type], count=count),
            metadata=self._md(),
        )
        assert (reply.accepted, reply.stored, reply.overflowed) == (count, count, 0), reply
        return list(range(reply.first_record_id, reply.last_record_id + 1))

    async def pending(self, pcpu: int) -> dict[str, int]:
        """DescribePcpu as the operator: pending records per type ("cmc", "cpe")."""
        stub = sal_grpc.SalServiceStub(self._channel(self.host.addresses[pcpu]))
        state = await stub.DescribePcpu(sal_pb2.DescribePcpuRequest(), metadata=self._md())
        by_type = {t.type: t.pending for t in state.types}
        return {name: by_type.get(number, 0) for name, number in RECORD_TYPES.items()}

    async def pending_ids(self, pcpu: int, record_type: str) -> list[int]:
        """The ids of the records of record_type still in pcpu's firmware, oldest first."""
        stub = sal_grpc.SalServiceStub(self._channel(self.host.addresses[pcpu]))
        state = await stub.DescribePcpu(
            sal_pb2.DescribePcpuRequest(pending_ids_limit=1000), metadata=self._md()
        )
        wanted = RECORD_TYPES[record_type]
        return [i for t in state.types if t.type == wanted for i in t.pending_record_ids]

    async def all_pending(self) -> dict[int, dict[str, int]]:
        return {pcpu: await self.pending(pcpu) for pcpu in self.host.addresses}

    async def state(self) -> dict[str, Any]:
        """DescribeHypervisor as the operator: proto JSON, proto field names, zero values shown."""
        stub = hv_grpc.HypervisorServiceStub(self._channel(self.xen))
        reply = await stub.DescribeHypervisor(
            hv_pb2.DescribeHypervisorRequest(), metadata=self._md()
        )
        return json_format.MessageToDict(
            reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    async def counter(self, name: str) -> int:
        return int((await self.state()).get("counters", {}).get(name, 0))

    async def operator_get(self, record_type: str) -> int:
        """GetStateInfo as the operator (not dom0): its SAL status."""
        stub = hv_grpc.HypervisorServiceStub(self._channel(self.xen))
        reply = await stub.GetStateInfo(
            hv_pb2.GetStateInfoRequest(type=RECORD_TYPES[record_type]), metadata=self._md()
        )
        return int(reply.sal_status)

    def fail_clears(self, pcpu: int) -> str:
        """Every SalService.ClearStateInfo on pcpu fails until cleared: dom0's CLEAR answers -3."""
        from xenmca.rpc.fault_rules import FaultAction, FaultSpec

        assert self.host.faults is not None
        return self.host.faults.add(
            FaultSpec(method="SalService.ClearStateInfo", action=FaultAction.FAIL, pcpu=pcpu)
        )

    def clear_faults(self) -> None:
        assert self.host.faults is not None
        self.host.faults.clear()

    async def stop_coordinator(self) -> None:
        if self.built is not None:
            await self.built.server.stop(0)
            await self.coordinator.stop()
            self.built = None

    async def restart_coordinator(self) -> None:
        """Stop the coordinator (its streams and calls end); serve a new one on the same address."""
        await self.stop_coordinator()
        self.coordinator, self.built, _ = await start_coordinator(
            self.xen, self.host.addresses, self.tokens, self.pki, self.changes
        )


async def start_coordinator(
    address: str,
    pcpus: dict[int, str],
    tokens: TokenBook | None,
    pki: dict[str, TlsFiles] | None,
    changes: Changes,
) -> tuple[Coordinator, BuiltServer, str]:
    """A coordinator serving on address (port 0: a free one), once every pCPU is connected."""
    events = EventLog("xen")
    events.subscribe(changes.notify)
    coordinator = Coordinator(
        CoordinatorConfig(
            pcpus=pcpus,
            xen_token=tokens.token_for(XEN) if tokens else None,
            channel_credentials=channel_credentials(pki["xen"]) if pki else None,
            retry=FAST_RETRY,
            throttle=PRESETS["fast"],
        ),
        events=events,
    )
    built, port = create_server(
        address, coordinator, tokens, credentials=server_credentials(pki["xen"]) if pki else None
    )
    await built.start()
    await coordinator.start()
    try:
        await changes.until(
            lambda: all(link.connected for link in coordinator.links.values()),
            within=20,
            what="every pCPU connected to the coordinator",
        )
    except BaseException:
        await built.server.stop(0)
        await coordinator.stop()
        raise
    return coordinator, built, f"{address.rpartition(':')[0]}:{port}"


@asynccontextmanager
async def client_bed(
    directory: Path, *, pcpus: int = 4, tls: bool = False
) -> AsyncIterator[ClientBed]:
    """pCPUs 0..pcpus-1 and a coordinator (vCPU0 on pCPU 0, fast throttle), no dom0.

    directory (which must exist) gets the token file or the certificates.
    """
    changes = Changes()
    tokens: TokenBook | None = None
    token_file: Path | None = None
    pki: dict[str, TlsFiles] | None = None
    if tls:
        pki = generate_test_pki(directory / "certs", PKI_IDENTITIES, ("127.0.0.1", "localhost"))
    else:
        tokens = TokenBook.generate(DOM0, OPERATOR, XEN)
        token_file = directory / "tokens.json"
        tokens.save(token_file)

    pcpu_events = EventLog("pcpu")
    pcpu_events.subscribe(changes.notify)
    host = PcpuHost(
        range(pcpus),
        token_book=tokens,
        events=pcpu_events,
        credentials=server_credentials(pki["pcpu"]) if pki else None,
    )
    await host.start()
    try:
        coordinator, built, xen = await start_coordinator(
            "127.0.0.1:0", host.addresses, tokens, pki, changes
        )
    except BaseException:
        await host.stop(grace=None)
        raise
    bed = ClientBed(directory, tls, host, coordinator, built, xen, changes, tokens, token_file, pki)
    try:
        yield bed
    finally:
        for channel in bed.channels:
            await channel.close()
        await bed.stop_coordinator()
        await host.stop(grace=None)
