"""Dom0Logger against the fake coordinator of dom0_logger_helpers: GET, commit, then CLEAR
by record id; the token, redelivery, lost replies, reconnects, CPE polling, the dom0
command, failed commits and record sizes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys

from dom0_logger_helpers import (
    CMC,
    CPE,
    TOKEN,
    WAIT,
    Harness,
    make_record,
)
from dom0_logger_helpers import harness as harness

from xenmca.dom0.pacing import PollSettings
from xenmca.record.v1 import record_pb2
from xenmca.rpc.clock import FakeClock
from xenmca.rpc.events import Event, read_events


async def test_get_commit_clear_in_order_and_clear_only_after_durable(harness: Harness) -> None:
    fake = harness.fake()
    logger = await harness.logger(await harness.serve(fake))
    fake.add(make_record(0, 1), make_record(1, 1), make_record(0, 2))
    await harness.changes.until(lambda: len(harness.kinds("record_cleared")) == 3)

    assert fake.calls == [
        ("get", CMC, 0, 1),
        ("clear", CMC, 0, 1, 0),
        ("get", CMC, 1, 1),
        ("clear", CMC, 1, 1, 0),
        ("get", CMC, 0, 2),
        ("clear", CMC, 0, 2, 0),
    ]
    assert fake.clear_saw_committed == [True, True, True]
    assert harness.db_rows() == [(0, 1, "CMC"), (1, 1, "CMC"), (0, 2, "CMC")]
    steps = ["record_read", "record_committed", "record_clear_requested", "record_cleared"]
    flow = [(e["kind"], e["pcpu"], e["record_id"]) for e in harness.kinds(*steps)]
    assert flow == [(kind, p, r) for p, r in ((0, 1), (1, 1), (0, 2)) for kind in steps]
    assert all(e["sal_status"] == 0 for e in harness.kinds("record_cleared"))
    assert [e["duplicate"] for e in harness.kinds("record_committed")] == [False] * 3
    assert [e["type"] for e in harness.kinds("interrupt_received")] == ["CMC"] * 3
    assert len(harness.kinds("dom0_attached")) == 1
    c = logger.counters
    assert (c.records_logged, c.gets, c.clears, c.duplicates_dropped) == (3, 3, 3, 0)


async def test_token_is_presented_on_every_call(harness: Harness) -> None:
    fake = harness.fake(token=TOKEN)
    await harness.logger(await harness.serve(fake), token=TOKEN)
    fake.add(make_record(0, 1))
    await harness.changes.until(lambda: len(fake.cleared()) == 1)
    methods = {method for method, _ in fake.authorization}
    assert methods == {"AttachDom0", "GetStateInfo", "ClearStateInfo"}
    assert {value for _, value in fake.authorization} == {f"Bearer {TOKEN}"}


async def test_without_the_token_nothing_is_read_or_cleared(harness: Harness) -> None:
    fake = harness.fake(token=TOKEN)
    logger = await harness.logger(await harness.serve(fake), token="not-the-token")
    fake.add(make_record(0, 1))
    await harness.changes.until(lambda: len(harness.kinds("dom0_detached")) >= 2)
    assert "UNAUTHENTICATED" in harness.kinds("dom0_detached")[0]["reason"]
    assert fake.cleared() == [] and harness.db_rows() == []
    assert logger.counters.records_logged == 0


async def test_redelivered_record_is_logged_once_and_cleared_again(harness: Harness) -> None:
    fake = harness.fake()
    logger = await harness.logger(await harness.serve(fake))
    # dom0 committed, but none of its CLEAR attempts (5, with retries) got an answer.
    fake.fail_clears = 5
    fake.add(make_record(2, 5))
    await harness.changes.until(lambda: len(harness.kinds("record_cleared")) == 1)

    assert fake.calls == [
        ("get", CMC, 2, 5),
        *[("clear-failed", CMC, 5)] * 5,
        ("get", CMC, 2, 5),
        ("clear", CMC, 2, 5, 0),
    ]
    assert harness.db_rows() == [(2, 5, "CMC")]
    assert [e["duplicate"] for e in harness.kinds("record_committed")] == [False, True]
    assert [e["reinjected"] for e in harness.kinds("interrupt_received")] == [False, True]
    assert logger.counters.duplicates_dropped == 1
    assert logger.counters.records_logged == 1
    assert harness.store is not None and await harness.store.duplicates_dropped() == 1


async def test_a_lost_clear_reply_is_retried_by_record_id(harness: Harness) -> None:
    fake = harness.fake()
    await harness.logger(await harness.serve(fake))
    fake.fail_clears = 1
    fake.add(make_record(2, 6))
    await harness.changes.until(lambda: len(fake.cleared()) == 1)
    assert fake.calls[:3] == [("get", CMC, 2, 6), ("clear-failed", CMC, 6), ("clear", CMC, 2, 6, 0)]
    assert harness.db_rows() == [(2, 6, "CMC")]


async def test_unreachable_pcpu_answer_moves_on_and_record_comes_later(harness: Harness) -> None:
    fake = harness.fake()
    logger = await harness.logger(await harness.serve(fake))
    fake.get_statuses = [-3]
    fake.add(make_record(3, 1))
    await harness.changes.until(lambda: len(fake.cleared()) == 1)
    assert fake.calls[0] == ("get", CMC, -3)
    assert fake.calls[1:] == [("get", CMC, 3, 1), ("clear", CMC, 3, 1, 0)]
    assert logger.counters.unreachable == 1
    assert harness.db_rows() == [(3, 1, "CMC")]


async def test_each_type_one_at_a_time_while_types_run_concurrently(harness: Harness) -> None:
    fake = harness.fake()
    logger = await harness.logger(await harness.serve(fake))
    await harness.changes.until(lambda: fake.stream is not None)
    fake.get_gates[CMC] = gate = asyncio.Event()
    fake.pending[CMC].append(make_record(0, 1))
    fake.pending[CPE].append(make_record(1, 1, CPE))
    fake.inject(CMC)
    fake.inject(CMC)  # a misbehaving coordinator: a second CMC before the CLEAR
    await harness.changes.until(lambda: fake.active_gets[CMC] == 1)
    # CMC's handler is stuck in GET; a CPE poll still runs to completion.
    assert await logger.poll_once(CPE) == 1
    assert fake.cleared() == [(1, 1)]
    gate.set()
    await harness.changes.until(lambda: len(fake.cleared()) == 2 and fake.active_gets[CMC] == 0)
    await harness.changes.until(lambda: sum(1 for c in fake.calls if c[1] == CMC) == 3)
    assert fake.max_active_gets[CMC] == 1
    cmc_calls = [c for c in fake.calls if c[1] == CMC]
    assert cmc_calls == [("get", CMC, 0, 1), ("clear", CMC, 0, 1, 0), ("get", CMC, -5)]


async def test_reconnects_after_the_coordinator_restarts_on_the_same_port(
    harness: Harness,
) -> None:
    first = harness.fake()
    port = await harness.serve(first)
    logger = await harness.logger(port)
    first.add(make_record(0, 1), make_record(0, 2))
    await harness.changes.until(lambda: len(first.cleared()) == 2)

    await harness.servers.pop().stop(grace=0)
    await harness.changes.until(lambda: len(harness.kinds("dom0_detached")) >= 1)
    assert not logger.attached.is_set()

    # The restarted coordinator rebuilt its queue from the pCPU: record 2's CLEAR
    # is assumed lost, so it is delivered again along with a new one.
    second = harness.fake()
    second.add(make_record(0, 2), make_record(1, 1))
    await harness.serve(second, port)
    await harness.changes.until(lambda: len(second.cleared()) == 2)

    assert second.attaches == 1
    assert harness.db_rows() == [(0, 1, "CMC"), (0, 2, "CMC"), (1, 1, "CMC")]
    assert logger.counters.duplicates_dropped == 1
    assert logger.counters.attaches >= 2


async def test_starts_before_the_coordinator_and_attaches_when_it_comes(
    harness: Harness, unused_tcp_port: int
) -> None:
    logger = await harness.logger(unused_tcp_port)
    fake = harness.fake()
    await harness.serve(fake, unused_tcp_port)
    fake.add(make_record(0, 1))
    await harness.changes.until(lambda: len(fake.cleared()) == 1)
    assert logger.counters.records_logged == 1


async def test_cpe_polling_halves_and_doubles_its_interval(harness: Harness) -> None:
    clock = FakeClock()
    fake = harness.fake()
    settings = PollSettings(min_interval=2.0, max_interval=16.0)
    await harness.logger(await harness.serve(fake), clock=clock, polled_types={CPE: settings})

    async def poll_after(seconds: float, expected_polls: int) -> Event:
        for _ in range(1000):  # let the poller reach its clock.sleep (no timed sleep)
            if clock.sleepers:
                break
            await asyncio.sleep(0)
        await clock.advance(seconds)
        await harness.changes.until(lambda: len(harness.kinds("poll")) == expected_polls)
        return harness.kinds("poll")[-1]

    seen = []
    for n, wait in enumerate((2, 4, 8, 16), start=1):
        poll = await poll_after(wait, n)
        seen.append((poll["interval"], poll["found"], poll["next_interval"]))
    assert seen == [(2, 0, 4), (4, 0, 8), (8, 0, 16), (16, 0, 16)]

    fake.add(*(make_record(p, 1, CPE) for p in range(3)))
    poll = await poll_after(16, 5)
    assert (poll["found"], poll["next_interval"]) == (3, 8)
    assert fake.cleared() == [(0, 1), (1, 1), (2, 1)]
    assert harness.db_rows() == [(0, 1, "CPE"), (1, 1, "CPE"), (2, 1, "CPE")]
    fake.add(make_record(0, 2, CPE))
    poll = await poll_after(8, 6)
    assert (poll["found"], poll["next_interval"]) == (1, 4)
    poll = await poll_after(4, 7)
    assert (poll["found"], poll["next_interval"]) == (0, 8)
    assert harness.loggers[0].counters.polls == 7


async def test_stop_while_the_coordinator_is_unreachable(
    harness: Harness, unused_tcp_port: int
) -> None:
    logger = await harness.logger(unused_tcp_port)
    await asyncio.wait_for(logger.stop(), WAIT)
    assert harness.kinds("dom0_stopped")
    harness.loggers.clear()


async def test_dom0_command_runs_until_sigterm(harness: Harness) -> None:
    fake = harness.fake(token=TOKEN)
    port = await harness.serve(fake)
    tokens = harness.tmp_path / "tokens.json"
    tokens.write_text(f'{{"dom0": "{TOKEN}"}}\n')
    events_file = harness.tmp_path / "dom0-events.jsonl"
    script = "import sys; from xenmca import cli; sys.exit(cli.main(['dom0', *sys.argv[1:]]))"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script,
        "--xen", f"127.0.0.1:{port}", "--db", str(harness.db_path),
        "--token-file", str(tokens), "--events", str(events_file), "--no-cpe-poll",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await harness.changes.until(lambda: fake.stream is not None)
        fake.add(make_record(0, 1), make_record(1, 1))
        await harness.changes.until(lambda: len(fake.cleared()) == 2)
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), WAIT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = stderr.decode()
    assert proc.returncode == 0, text
    assert "logging to" in text and "stopped: 2 records logged, 0 duplicates dropped" in text
    assert fake.clear_saw_committed == [True, True]
    kinds = [event["kind"] for event in read_events(events_file)]
    assert kinds[0] == "dom0_attached" and kinds[-1] == "dom0_stopped"
    assert kinds.count("record_committed") == 2


async def test_a_failed_commit_sends_no_clear(harness: Harness, monkeypatch) -> None:
    fake = harness.fake()
    logger = await harness.logger(await harness.serve(fake))
    assert harness.store is not None

    async def broken_commit(record: record_pb2.ErrorRecord) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(harness.store, "commit", broken_commit)
    fake.add(make_record(0, 1))
    await harness.changes.until(lambda: logger.counters.commit_errors == 1)
    assert fake.calls == [("get", CMC, 0, 1)]
    assert harness.kinds("commit_failed") and not harness.kinds("record_clear_requested")
    assert fake.pending[CMC] == [make_record(0, 1)]  # still in "firmware"


async def test_dom0_sizes_its_buffer_with_get_state_info_size_before_its_first_get(
    harness: Harness,
) -> None:
    """Linux sizes its record buffers with SAL_GET_STATE_INFO_SIZE (mca.c IA64_LOG_ALLOCATE,
    salinfo.c salinfo_log_open); a record that does not fit makes dom0 ask again."""
    fake = harness.fake()
    await harness.logger(await harness.serve(fake))
    fake.add(make_record(0, 1), make_record(0, 2))
    await harness.changes.until(lambda: len(harness.kinds("record_cleared")) == 2)
    assert fake.size_calls == 1  # once per type, before the first GET
    assert harness.kinds("record_too_large") == []


async def test_a_record_larger_than_the_size_given_is_an_error_and_is_not_lost(
    harness: Harness,
) -> None:
    fake = harness.fake()
    record = make_record(0, 1)
    fake.sizes = [16, len(record.raw)]  # too small at first; asked again, the size fits
    fake.size = 16  # after that, the firmware under-reports for good
    await harness.logger(await harness.serve(fake))
    fake.add(record)
    await harness.changes.until(lambda: len(harness.kinds("record_cleared")) == 1)
    assert fake.size_calls == 2 and harness.kinds("record_too_large") == []
    bigger = make_record(0, 2)
    bigger.raw = bigger.raw + bytes(64)
    fake.add(bigger)
    await harness.changes.until(lambda: len(harness.kinds("record_cleared")) == 2)
    (error,) = harness.kinds("record_too_large")
    assert (error["record_id"], error["size"], error["state_info_size"]) == (
        2,
        len(bigger.raw),
        16,
    )
    assert harness.db_rows() == [(0, 1, "CMC"), (0, 2, "CMC")]  # logged whole, not lost
