"""The pytest plugin (xenmca.testing) itself: its fixtures, marker, helpers and checks.

The other coordinator tests use it as users do; these check what they rely on: one
testbed per test made as the marker says, waits that name what did not happen, checks
that fail when an invariant is broken, servers stopped at the end, and the plugin
loaded by its entry point in pytest-asyncio's strict mode.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from xenmca.pcpu.server import PcpuHost
from xenmca.rpc.channels import open_channel
from xenmca.testing.config import BedConfig, config_from
from xenmca.testing.dom0 import RunningDom0
from xenmca.testing.flow import FlowBed
from xenmca.testing.testbed import NotLogged, Testbed, start_testbed

pytest_plugins = ("pytester",)


@pytest.mark.xenmca(pcpus=3, vcpu0_pcpu=2)
async def test_the_fixtures_are_one_testbed_made_as_the_marker_says(
    xenmca_testbed: Testbed,
    xenmca_coordinator: FlowBed,
    xenmca_pcpu_host: PcpuHost,
    xenmca_dom0: RunningDom0,
    tmp_path: Path,
) -> None:
    bed = xenmca_testbed
    assert bed.flow is xenmca_coordinator and bed.pcpu_host is xenmca_pcpu_host
    assert bed.dom0 is xenmca_dom0 and bed.db_path == tmp_path / "dom0.sqlite"
    assert sorted(bed.pcpu_addresses) == [0, 1, 2] and len(bed.coordinator.links) == 3
    assert all(
        a.startswith("127.0.0.1:") and not a.endswith(":0") for a in bed.pcpu_addresses.values()
    )
    keys = await bed.inject(2) + await bed.inject(0)
    log = await bed.wait_logged()
    assert log.keys == keys == [(2, 1), (0, 1)]
    by_ipi = {e["pcpu"]: e["by_ipi"] for e in bed.events("record_read", component="dom0")}
    assert by_ipi == {2: False, 0: True}  # vCPU0 on pCPU 2, as the marker said
    (await bed.check()).assert_valid()


@pytest.mark.xenmca(pcpus=1, capacity=4)
async def test_records_past_capacity_are_overflow_not_keys(xenmca_testbed: Testbed) -> None:
    bed = xenmca_testbed
    keys = await bed.inject(0, count=6)
    assert keys == [(0, 1), (0, 2), (0, 3), (0, 4)]
    await bed.wait_logged()
    report = await bed.check()
    report.assert_valid()
    acc = report.accounting
    assert (acc.requested, acc.injected, acc.logged, acc.overflowed, acc.lost) == (6, 6, 4, 2, 0)


async def test_wait_logged_names_what_dom0_has_not_logged(xenmca_testbed: Testbed) -> None:
    bed = xenmca_testbed
    await bed.stop_dom0()
    keys = await bed.inject(1)
    with pytest.raises(NotLogged, match=r"1 of 1 records not logged and cleared .*pCPU 1 #1"):
        await bed.wait_logged(within=0.3)
    report = await bed.check(settle=0.0)
    assert report.valid is False
    stranded = report.by_name()["stranded"]
    assert stranded.status == "fail" and [(r.pcpu, r.record_id) for r in stranded.records] == keys
    await bed.start_dom0()
    assert (await bed.wait_logged()).keys == keys
    (await bed.check()).assert_valid()


async def test_the_checks_catch_a_record_cleared_before_it_was_logged(tmp_path: Path) -> None:
    config = BedConfig(pcpus=2)
    async with start_testbed(config, tmp_path / "dom0.sqlite", broken_rule="clear-on-get") as bed:
        keys = await bed.inject(1)
        await bed.wait_logged()
        report = await bed.check()
    assert report.valid is False
    cleared = report.by_name()["cleared_before_logged"]
    assert cleared.status == "fail"
    assert [(r.pcpu, r.record_id) for r in cleared.records] == keys
    with pytest.raises(AssertionError, match="cleared_before_logged"):
        report.assert_valid()


async def test_everything_is_stopped_on_the_way_out(tmp_path: Path) -> None:
    async with start_testbed(BedConfig(pcpus=2), tmp_path / "dom0.sqlite") as bed:
        addresses = [bed.xen_address, *bed.pcpu_addresses.values()]
        assert bed.dom0.running
    assert not bed.dom0.running
    for address in addresses:
        async with open_channel(address) as channel:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await channel.channel_ready()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"pcpu": 2}, "unknown setting 'pcpu'"),
        ({"pcpus": 2, "vcpu0_pcpu": 2}, "vcpu0_pcpu must be a pCPU, 0 to 1"),
        ({"policy": "xen-ia64-2007"}, "xen-ia64-2007"),
        ({"throttle": "slow"}, "unknown throttle preset 'slow'"),
        ({"sal_mode": "fancy"}, "sal_mode must be one of extended, plain"),
    ],
)
def test_a_setting_that_cannot_be_used_is_named(settings: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        config_from(settings)


def test_the_plugin_loads_by_its_entry_point_in_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.xenmca(pcpus=2)
        async def test_logged(xenmca_testbed):
            keys = await xenmca_testbed.inject(1, count=2)
            assert (await xenmca_testbed.wait_logged()).keys == keys

        @pytest.mark.xenmca(pcpu=2)
        def test_bad_marker(xenmca_config):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.xenmca: unknown setting 'pcpu'*"])


README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_runs_as_it_is(pytester: pytest.Pytester) -> None:
    """The README's "Use xenmca in your tests": its test file and pytest settings, as given."""
    text = README.read_text()
    section = text[text.index("## Use xenmca in your tests") :]
    section = section[: section.index("\n## ", 1)]
    (test_file,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (settings,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    pytester.makefile(".toml", pyproject=settings)
    pytester.makepyfile(test_cmc_path=test_file)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
