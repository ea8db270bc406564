"""The xenmca pytest plugin (entry point ``pytest11``: ``xenmca``): in-process testbeds as fixtures.

Fixtures, each new for every test, every server on 127.0.0.1 port 0, everything
stopped when the test ends:

- ``xenmca_config`` -> BedConfig: what the others are made of; the ``xenmca``
  marker's keywords change it (``@pytest.mark.xenmca(pcpus=4, policy="xen-ia64-2009")``)
  and a test module may define its own.
- ``xenmca_tokens`` -> TokenBook (dom0, operator, xen, another domain);
  ``xenmca_watch`` -> EventWatch, every component's events.
- ``xenmca_pcpu_host`` -> PcpuHost: the pCPUs, serving SalService.
- ``xenmca_coordinator`` -> FlowBed: the coordinator attached to those pCPUs, with
  the config's policy and throttling, and a client channel (no dom0: drive it with
  ``ScriptedDom0`` or start one).
- ``xenmca_dom0`` -> RunningDom0: dom0's logger attached to that coordinator, its
  log ``dom0.sqlite`` in the test's tmp_path.
- ``xenmca_testbed`` -> Testbed: all of them, with the helpers (inject, wait_logged,
  read_log, add_fault, restart_dom0, check).

The async fixtures are pytest-asyncio fixtures, so they work in its strict and
auto modes alike; they run on the test's event loop (loop scope ``function``,
pytest-asyncio's default).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:  # imported when a fixture is used: loading the plugin stays cheap
    from xenmca.pcpu.server import PcpuHost
    from xenmca.rpc.identity import TokenBook
    from xenmca.testing.config import BedConfig
    from xenmca.testing.dom0 import RunningDom0
    from xenmca.testing.events import EventWatch
    from xenmca.testing.flow import FlowBed
    from xenmca.testing.testbed import Testbed

MARKER = "xenmca"
DB_NAME = "dom0.sqlite"
NEEDS_PYTEST_ASYNCIO = (
    "xenmca's fixtures need pytest-asyncio: pip install pytest-asyncio (or 'xenmca[testing]')"
)

F = TypeVar("F", bound=Callable[..., Any])


def async_fixture(function: F) -> F:
    """A pytest-asyncio fixture; without pytest-asyncio, a fixture that fails saying so.

    The plugin loads wherever xenmca is installed, so it must not break a pytest run
    that has no use for it.
    """
    if importlib.util.find_spec("pytest_asyncio") is not None:
        import pytest_asyncio

        return cast(F, pytest_asyncio.fixture(function))

    def needs_pytest_asyncio() -> None:
        pytest.fail(NEEDS_PYTEST_ASYNCIO, pytrace=False)

    needs_pytest_asyncio.__doc__ = function.__doc__
    return cast(F, pytest.fixture(name=function.__name__)(needs_pytest_asyncio))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**settings): the in-process testbed the xenmca fixtures make "
        "(fields of xenmca.testing.config.BedConfig: pcpus, vcpu0_pcpu, policy, throttle, ...)",
    )


@pytest.fixture
def xenmca_config(request: pytest.FixtureRequest) -> BedConfig:
    """BedConfig() with the keywords of the test's closest ``xenmca`` marker."""
    from xenmca.testing.config import BedConfig, config_from

    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return BedConfig()
    if marker.args:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keywords only (BedConfig fields)")
    try:
        return config_from(marker.kwargs)
    except ValueError as exc:
        raise pytest.UsageError(f"@pytest.mark.{MARKER}: {exc}") from None


@pytest.fixture
def xenmca_tokens() -> TokenBook:
    """Fresh bearer tokens for dom0, the operator, xen and another domain (``domU-1``)."""
    from xenmca.testing.flow import make_tokens

    return make_tokens()


@pytest.fixture
def xenmca_watch() -> EventWatch:
    """Every event of the test's pCPUs, coordinator and dom0, as they happen."""
    from xenmca.testing.events import EventWatch

    return EventWatch()


@async_fixture
async def xenmca_pcpu_host(
    xenmca_config: BedConfig, xenmca_tokens: TokenBook, xenmca_watch: EventWatch
) -> AsyncIterator[PcpuHost]:
    """``xenmca_config.pcpus`` pCPUs serving SalService, each on a port of its own."""
    from xenmca.testing.flow import running_pcpus

    async with running_pcpus(
        xenmca_config.pcpus,
        xenmca_tokens,
        xenmca_watch,
        sal_mode=xenmca_config.sal_mode,
        capacity=xenmca_config.capacity,
    ) as host:
        yield host


@async_fixture
async def xenmca_coordinator(
    xenmca_config: BedConfig,
    xenmca_pcpu_host: PcpuHost,
    xenmca_tokens: TokenBook,
    xenmca_watch: EventWatch,
) -> AsyncIterator[FlowBed]:
    """The coordinator, connected to every pCPU's interrupt line, and a client channel."""
    from xenmca.testing.flow import attached_coordinator

    async with attached_coordinator(
        xenmca_pcpu_host, xenmca_tokens, xenmca_watch, **xenmca_config.coordinator_options()
    ) as flow:
        yield flow


@async_fixture
async def xenmca_dom0(
    xenmca_config: BedConfig,
    xenmca_coordinator: FlowBed,
    xenmca_watch: EventWatch,
    tmp_path: Path,
) -> AsyncIterator[RunningDom0]:
    """dom0's logger, attached to the coordinator, logging to tmp_path / "dom0.sqlite"."""
    from xenmca.rpc.identity import DOM0
    from xenmca.testing.dom0 import running_dom0

    async with running_dom0(
        xenmca_coordinator.xen_address,
        tmp_path / DB_NAME,
        xenmca_coordinator.tokens.token_for(DOM0),
        xenmca_watch,
        policy=xenmca_config.dom0_policy,
        cpe_poll=xenmca_config.cpe_poll,
    ) as dom0:
        yield dom0


@pytest.fixture
def xenmca_testbed(
    xenmca_config: BedConfig, xenmca_coordinator: FlowBed, xenmca_dom0: RunningDom0
) -> Testbed:
    """The pCPUs, the coordinator and dom0 of this test, with the helpers of a Testbed."""
    from xenmca.testing.testbed import Testbed

    return Testbed(xenmca_coordinator, xenmca_dom0, xenmca_config)
