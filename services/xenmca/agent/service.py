"""AgentService: the operator drives this host's child process, link, events and clock probes.

Every RPC is operator only whenever callers are identified (a token book, or a
client certificate over mutual TLS): no valid credential is UNAUTHENTICATED,
another identity PERMISSION_DENIED. With neither, anyone may call (a
development setup), as for FaultService.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
from google.protobuf import duration_pb2

from xenmca.agent.child import MAX_GRACE, Child, ChildState
from xenmca.agent.event_follow import end_of_file, follow_lines, offset_position, start_position
from xenmca.agent.network import MAX_CUT_S, NetworkControl, NetworkState
from xenmca.agent.v1 import agent_service_pb2 as agent_pb2
from xenmca.agent.v1 import agent_service_pb2_grpc as agent_grpc
from xenmca.rpc import errors
from xenmca.rpc.identity import OPERATOR, TokenBook, require_identity

SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
EVENTS_OFFSET_HEADER = "xenmca-events-offset"
"""WatchEvents' response header: the byte offset of the events file the stream starts at."""

_STATES = {
    ChildState.RUNNING: agent_pb2.CHILD_STATE_RUNNING,
    ChildState.PAUSED: agent_pb2.CHILD_STATE_PAUSED,
    ChildState.STOPPED: agent_pb2.CHILD_STATE_STOPPED,
    ChildState.EXITED: agent_pb2.CHILD_STATE_EXITED,
}


def child_message(child: Child) -> agent_pb2.Child:
    spec = child.spec
    message = agent_pb2.Child(
        state=_STATES[child.state],
        pid=child.pid or 0,
        starts=child.starts,
        argv=list(spec.argv),
        state_dir=spec.state_dir or "",
        events_file=str(spec.events_file) if spec.events_file is not None else "",
    )
    if child.last_exit is not None:
        message.last_exit.CopyFrom(
            agent_pb2.ChildExit(
                exit_code=child.last_exit.exit_code,
                signal=child.last_exit.signal,
                run=child.last_exit.run,
            )
        )
    return message


def network_message(state: NetworkState) -> agent_pb2.NetworkState:
    message = agent_pb2.NetworkState(device=state.device, cut=state.cut)
    if state.cut:
        message.heals_in.FromNanoseconds(round(state.heals_in * 1e9))
    return message


def seconds_of(
    field: str, value: duration_pb2.Duration, maximum: float, *, required: bool = False
) -> float | None:
    """A Duration field in seconds: None when unset or zero (unless required); RequestError
    INVALID_<FIELD> when negative, above maximum, or required and missing."""
    seconds = value.ToNanoseconds() / 1e9
    reason = f"INVALID_{field.upper()}"
    if seconds == 0 and not required:
        return None
    if seconds <= 0 or seconds > maximum:
        raise errors.invalid_argument(
            reason, f"{field} must be above 0 and at most {maximum:g} s, got {seconds:g} s",
            field=field,
        )  # fmt: skip
    return seconds


class AgentServicer(agent_grpc.AgentServiceServicer):
    """The AgentService of one host: its child, its link, and its clocks."""

    def __init__(
        self, child: Child, network: NetworkControl, tokens: TokenBook | None = None
    ) -> None:
        self.child = child
        self.network = network
        self.tokens = tokens
        self.closing = asyncio.Event()
        """Set when the agent stops: open WatchEvents streams end."""

    async def _authorize(self, context: grpc.aio.ServicerContext, method: str) -> None:
        try:
            require_identity(context, self.tokens, method, OPERATOR)
        except errors.RequestError as exc:
            await errors.abort(context, exc)

    async def DescribeChild(
        self, request: agent_pb2.DescribeChildRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DescribeChildResponse:
        await self._authorize(context, "DescribeChild")
        return agent_pb2.DescribeChildResponse(child=child_message(self.child))

    async def StartChild(
        self, request: agent_pb2.StartChildRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.StartChildResponse:
        await self._authorize(context, "StartChild")
        try:
            await self.child.start()
        except errors.RequestError as exc:
            await errors.abort(context, exc)
        return agent_pb2.StartChildResponse(child=child_message(self.child))

    async def StopChild(
        self, request: agent_pb2.StopChildRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.StopChildResponse:
        await self._authorize(context, "StopChild")
        try:
            await self.child.stop(seconds_of("grace", request.grace, MAX_GRACE))
        except errors.RequestError as exc:
            await errors.abort(context, exc)
        return agent_pb2.StopChildResponse(child=child_message(self.child))

    async def KillChild(
        self, request: agent_pb2.KillChildRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.KillChildResponse:
        await self._authorize(context, "KillChild")
        try:
            await self.child.kill()
        except errors.RequestError as exc:
            await errors.abort(context, exc)
        return agent_pb2.KillChildResponse(child=child_message(self.child))

    async def RestartChild(
        self, request: agent_pb2.RestartChildRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RestartChildResponse:
        await self._authorize(context, "RestartChild")
        try:
            grace = seconds_of("grace", request.grace, MAX_GRACE)
            await self.child.restart(kill=request.kill, grace=grace)
        except errors.RequestError as exc:
            await errors.abort(context, exc)
        return agent_pb2.RestartChildResponse(child=child_message(self.child))

    async def PauseChild(
        self, request: agent_pb2.PauseChildRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.PauseChildResponse:
        await self._authorize(context, "PauseChild")
        try:
            await self.child.pause()
        except errors.RequestError as exc:
            await errors.abort(context, exc)
        return agent_pb2.PauseChildResponse(child=child_message(self.child))

    async def ResumeChild(
        self, request: agent_pb2.ResumeChildRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ResumeChildResponse:
        await self._authorize(context, "ResumeChild")
        try:
            await self.child.resume()
        except errors.RequestError as exc:
            await errors.abort(context, exc)
        return agent_pb2.ResumeChildResponse(child=child_message(self.child))

    async def CutNetwork(
        self, request: agent_pb2.CutNetworkRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.CutNetworkResponse:
        await self._authorize(context, "CutNetwork")
        try:
            duration = seconds_of("duration", request.duration, MAX_CUT_S, required=True)
            assert duration is not None
            state = await self.network.cut(duration)
        except errors.RequestError as exc:
            await errors.abort(context, exc)
        return agent_pb2.CutNetworkResponse(network=network_message(state))

    async def HealNetwork(
        self, request: agent_pb2.HealNetworkRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.HealNetworkResponse:
        await self._authorize(context, "HealNetwork")
        try:
            state = await self.network.heal()
        except errors.RequestError as exc:
            await errors.abort(context, exc)
        return agent_pb2.HealNetworkResponse(network=network_message(state))

    async def WatchEvents(
        self, request: agent_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.WatchEventsResponse]:
        await self._authorize(context, "WatchEvents")
        path = self.child.spec.events_file
        if path is None:
            await errors.abort(
                context,
                errors.RequestError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "NO_CHILD_EVENTS",
                    "the agent knows no events file for its child "
                    "(give the child --events FILE, or the agent --child-events FILE)",
                ),
            )
        position = (
            offset_position(path, request.from_offset)
            if request.from_offset
            else start_position(path, request.from_start)
        )
        until = end_of_file(path) if request.until_now else None
        # Response headers now tell the caller where "from now" begins (the byte offset,
        # EVENTS_OFFSET_HEADER): every line written after it has them comes on this stream.
        await context.send_initial_metadata(((EVENTS_OFFSET_HEADER, str(position.offset)),))
        async for offset, text in follow_lines(path, position, self.closing, until=until):
            yield agent_pb2.WatchEventsResponse(json=text, offset=offset)

    async def ReadClock(
        self, request: agent_pb2.ReadClockRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ReadClockResponse:
        # The kernel's clocks, not an injectable Clock: a probe measures the host itself.
        received = time.monotonic_ns()
        await self._authorize(context, "ReadClock")
        monotonic = time.monotonic_ns()
        realtime = time.time_ns()
        return agent_pb2.ReadClockResponse(
            monotonic_ns=monotonic,
            realtime_ns=realtime,
            received_monotonic_ns=received,
            sent_monotonic_ns=time.monotonic_ns(),
        )


def add_to_server(servicer: AgentServicer, server: grpc.aio.Server) -> None:
    agent_grpc.add_AgentServiceServicer_to_server(servicer, server)
