"""What a run needs of a testbed, whoever started it.

A `LocalTestbed` (processes this machine started), an `InProcessTestbed` (one
process on virtual time) and a `TargetTestbed` (a deployment, driven through its
agents) all give the runner, the phases, the sampler and the fault schedule the
same things: addresses, operator calls, each component as something that can be
killed, started, paused and resumed, and a way to cut and heal a host's link.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import grpc

from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.hypervisor.v1 import hypervisor_service_pb2_grpc as hv_grpc


class Component(Protocol):
    """One component's process, as faults and CPU accounting see it."""

    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def running(self) -> bool: ...

    @property
    def starts(self) -> int: ...

    @property
    def last_start_wait_s(self) -> float: ...

    async def start(self) -> None: ...

    async def wait_ready(self) -> None: ...

    async def kill(self) -> None: ...

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...


class HostSplit(Protocol):
    @property
    def pcpus_per_host(self) -> int: ...


class Testbed(Protocol):
    """The testbed a run works on."""

    @property
    def pcpu_addresses(self) -> dict[int, str]: ...

    @property
    def xen_address(self) -> str: ...

    @property
    def db_path(self) -> Path: ...

    @property
    def metrics_urls(self) -> dict[str, str]: ...

    @property
    def operator_credentials(self) -> grpc.ChannelCredentials | None: ...

    @property
    def spec(self) -> HostSplit: ...

    @property
    def processes(self) -> Sequence[Component]: ...

    @property
    def pcpu_hosts(self) -> Sequence[Component]: ...

    def channel(self, address: str) -> grpc.aio.Channel: ...

    def operator_metadata(self) -> tuple[tuple[str, str], ...]: ...

    def process(self, name: str) -> Component: ...

    def host_of(self, pcpu: int) -> Component: ...

    async def describe(self, within: float = 5.0) -> hv_pb2.DescribeHypervisorResponse: ...

    async def cut(self, name: str, for_s: float | None = None) -> None:
        """Cut name's link; for_s: how long the fault lasts (None: until healed)."""
        ...

    async def heal(self, name: str) -> None: ...


async def describe_hypervisor(
    channel: Callable[[str], grpc.aio.Channel],
    address: str,
    metadata: tuple[tuple[str, str], ...],
    within: float,
) -> hv_pb2.DescribeHypervisorResponse:
    """DescribeHypervisor on the coordinator at address, as the operator, over a new channel."""
    async with channel(address) as opened:
        return await hv_grpc.HypervisorServiceStub(opened).DescribeHypervisor(
            hv_pb2.DescribeHypervisorRequest(), timeout=within, metadata=metadata
        )
