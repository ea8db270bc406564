"""run_component: the ready file only once everything is up, and written whole; on stop or on a
failed start, everything opened is closed in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from xenmca.rpc.lifecycle import START_FAILED, StartError, run_component
from xenmca.rpc.usage import UsageError

PROG = "xenmca test"
REPORT = {"address": "127.0.0.1:50050"}


class Resources:
    """Opens named resources into a stack and records every open and close, in order."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []

    def open_sync(self, stack: contextlib.AsyncExitStack, name: str) -> None:
        self.opened.append(name)
        stack.callback(self.closed.append, name)

    @contextlib.asynccontextmanager
    async def _served(self, name: str) -> AsyncIterator[None]:
        self.opened.append(name)
        try:
            yield
        finally:
            self.closed.append(name)

    async def open_async(self, stack: contextlib.AsyncExitStack, name: str) -> None:
        await stack.enter_async_context(self._served(name))


class StopOnceReady(asyncio.Event):
    """The injected stop: what run_component waits on once it reported ready.

    Waiting on it records what a reader would see at that moment, then returns
    at once (as if SIGTERM had come), so the test needs no sleeps.
    """

    def __init__(self, ready_file: Path, resources: Resources) -> None:
        super().__init__()
        self.ready_file = ready_file
        self.resources = resources
        self.seen: dict[str, Any] | None = None

    async def wait(self) -> bool:  # type: ignore[override]
        self.seen = {
            "ready": json.loads(self.ready_file.read_text()),
            "files": sorted(p.name for p in self.ready_file.parent.iterdir()),
            "closed": list(self.resources.closed),
        }
        return True


@pytest.fixture
def replaces(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every os.replace, with the source's content and whether the target existed."""
    calls: list[dict[str, Any]] = []
    real = os.replace

    def spy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        calls.append(
            {
                "source": Path(source),
                "target": Path(target),
                "content": Path(source).read_text(),
                "target_existed": Path(target).exists(),
            }
        )
        real(source, target)

    monkeypatch.setattr(os, "replace", spy)
    return calls


async def test_ready_after_setup_written_whole_and_closed_in_reverse_on_stop(
    tmp_path: Path, replaces: list[dict[str, Any]]
) -> None:
    ready = tmp_path / "ready.json"
    ready.write_text('{"address": "stale"}')  # left behind by a killed run
    resources = Resources()
    stop = StopOnceReady(ready, resources)

    async def setup(stack: contextlib.AsyncExitStack) -> dict[str, str]:
        assert not ready.exists()
        resources.open_sync(stack, "events")
        await resources.open_async(stack, "metrics")
        await resources.open_async(stack, "server")
        resources.open_sync(stack, "health")
        assert not ready.exists()  # not before the last step is up
        return REPORT

    status = await run_component(PROG, setup, ready_file=ready, stop=stop)

    assert status == 0
    assert resources.opened == ["events", "metrics", "server", "health"]
    assert stop.seen == {"ready": REPORT, "files": ["ready.json"], "closed": []}
    [replace] = replaces
    assert replace["source"].parent == tmp_path and replace["target"] == ready
    assert json.loads(replace["content"]) == REPORT  # the whole file, before it has its name
    assert not replace["target_existed"]
    assert resources.closed == ["health", "server", "metrics", "events"]
    assert not ready.exists()  # removed on stop


async def test_a_failed_start_step_closes_what_was_opened_and_never_reports_ready(
    tmp_path: Path, replaces: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    ready = tmp_path / "ready.json"
    resources = Resources()
    stop = StopOnceReady(ready, resources)

    async def setup(stack: contextlib.AsyncExitStack) -> dict[str, str]:
        resources.open_sync(stack, "events")
        await resources.open_async(stack, "metrics")
        raise StartError("cannot listen on 127.0.0.1:50050: address in use")

    status = await run_component(PROG, setup, ready_file=ready, stop=stop)

    assert status == START_FAILED == 3
    assert resources.closed == ["metrics", "events"]
    assert not ready.exists() and replaces == [] and stop.seen is None
    assert os.listdir(tmp_path) == []  # no temporary file left either
    err = capsys.readouterr().err
    assert err == f"{PROG}: error: cannot listen on 127.0.0.1:50050: address in use\n"


async def test_a_usage_error_in_setup_propagates_once_everything_is_closed(
    tmp_path: Path, replaces: list[dict[str, Any]]
) -> None:
    ready = tmp_path / "ready.json"
    resources = Resources()

    async def setup(stack: contextlib.AsyncExitStack) -> dict[str, str]:
        await resources.open_async(stack, "store")
        resources.open_sync(stack, "events")
        raise UsageError("state dir /nope: not a directory")

    with pytest.raises(UsageError, match="state dir"):
        await run_component(PROG, setup, ready_file=ready, stop=StopOnceReady(ready, resources))
    assert resources.closed == ["events", "store"]
    assert not ready.exists() and replaces == []


async def test_no_ready_file_asked_for(tmp_path: Path, replaces: list[dict[str, Any]]) -> None:
    resources = Resources()
    stop = asyncio.Event()
    stop.set()

    async def setup(stack: contextlib.AsyncExitStack) -> None:
        resources.open_sync(stack, "logger")

    assert await run_component(PROG, setup, stop=stop) == 0
    assert resources.closed == ["logger"] and replaces == []
