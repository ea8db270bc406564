"""Cutting and healing this host's network link from inside the host.

The agent takes its own network device down (``ip link set dev DEV down``) and
up again: the same effect as the launcher's cut of a namespace host from the
switch side (xenmca.testbed.infra.netns), but from within, so it also cuts the
caller off. A cut therefore has a duration, after which the agent heals it by
itself; HealNetwork heals early when the caller can still reach the agent.

It needs root (CAP_NET_ADMIN), iproute2's ``ip`` and the device; without them
every cut and heal is FAILED_PRECONDITION NETWORK_CONTROL_UNAVAILABLE, saying
which is missing. In a Kubernetes pod that means the NET_ADMIN capability and
the pod's own eth0: a cut takes the pod off the pod network.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import grpc

from xenmca.rpc.clock import Clock, MonotonicClock
from xenmca.rpc.errors import RequestError
from xenmca.rpc.events import EventLog

DEFAULT_DEVICE = "eth0"
MAX_CUT_S = 3600.0
SYS_CLASS_NET = Path("/sys/class/net")


@dataclass(frozen=True)
class NetworkState:
    device: str
    cut: bool
    heals_in: float
    """Seconds until the agent heals the cut by itself (0 when not cut)."""


def _failed(reason: str, message: str, device: str) -> RequestError:
    return RequestError(grpc.StatusCode.FAILED_PRECONDITION, reason, message, {"device": device})


class NetworkControl:
    """The host's link: cut for a while, healed on time, early, or when the agent stops."""

    def __init__(
        self,
        device: str = DEFAULT_DEVICE,
        events: EventLog | None = None,
        clock: Clock | None = None,
        ip: str = "ip",
    ) -> None:
        self.device = device
        self.events = events
        self.clock: Clock = clock or MonotonicClock()
        self.ip = ip
        self._heals_at: float | None = None
        self._healer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def state(self) -> NetworkState:
        if self._heals_at is None:
            return NetworkState(self.device, False, 0.0)
        return NetworkState(self.device, True, max(0.0, self._heals_at - self.clock.now()))

    def unavailable_reason(self) -> str | None:
        """Why this host does not let the agent cut its link; None when it does."""
        if os.geteuid() != 0:
            return f"cutting the network needs root (the agent runs as uid {os.geteuid()})"
        if shutil.which(self.ip) is None:
            return f"cutting the network needs iproute2's `{self.ip}` command, not found on PATH"
        if not (SYS_CLASS_NET / self.device).exists():
            return f"this host has no network device {self.device!r} (see --net-device)"
        return None

    def _require_available(self) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            raise _failed("NETWORK_CONTROL_UNAVAILABLE", reason, self.device)

    async def _set_link(self, up: bool) -> None:
        words = (self.ip, "link", "set", "dev", self.device, "up" if up else "down")
        process = await asyncio.create_subprocess_exec(
            *words, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await process.communicate()
        if process.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            raise _failed(
                "NETWORK_CONTROL_UNAVAILABLE",
                f"`{' '.join(words)}` failed: {lines[0] if lines else 'no message'}",
                self.device,
            )

    async def cut(self, duration: float) -> NetworkState:
        """Take the link down for duration seconds (the caller checked the range)."""
        async with self._lock:
            self._require_available()
            if self._heals_at is not None:
                raise _failed("NETWORK_ALREADY_CUT", f"{self.device} is already cut", self.device)
            await self._set_link(False)
            self._heals_at = self.clock.now() + duration
            self._healer = asyncio.create_task(self._heal_after(duration))
            if self.events is not None:
                self.events.emit("network_cut", device=self.device, duration_s=duration)
            return self.state()

    async def heal(self) -> NetworkState:
        """Bring the link up now; NETWORK_NOT_CUT when it is not cut."""
        async with self._lock:
            self._require_available()
            if self._heals_at is None:
                raise _failed("NETWORK_NOT_CUT", f"{self.device} is not cut", self.device)
            if self._healer is not None and self._healer is not asyncio.current_task():
                self._healer.cancel()
            await self._heal_now("early")
            return self.state()

    async def _heal_after(self, duration: float) -> None:
        await self.clock.sleep(duration)
        async with self._lock:
            if self._heals_at is not None:
                await self._heal_now("on_time")

    async def _heal_now(self, how: str) -> None:
        await self._set_link(True)
        self._heals_at = None
        self._healer = None
        if self.events is not None:
            self.events.emit("network_healed", device=self.device, how=how)

    async def close(self) -> None:
        """A stopping agent never leaves its host cut off."""
        healer, self._healer = self._healer, None
        if healer is not None:
            healer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await healer
        async with self._lock:
            if self._heals_at is not None:
                with contextlib.suppress(RequestError):
                    await self._heal_now("agent_stopping")
