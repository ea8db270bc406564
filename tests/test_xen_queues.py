"""The coordinator's queues and how interrupts become entries, under each policy's keying."""

import pytest

from xenmca.record.v1 import record_pb2
from xenmca.vocab import RECORD_TYPES
from xenmca.xen.entries import Enqueuer, McaOnCmc, OwnQueue, PerInterrupt, PerSlot, PerType
from xenmca.xen.queues import State, TypeQueue

CMC = record_pb2.RECORD_TYPE_CMC
MCA = record_pb2.RECORD_TYPE_MCA


def always(_: int) -> bool:
    return True


def enqueuer(keying: object, routing: object | None = None) -> Enqueuer:
    queues = {t: TypeQueue() for t in RECORD_TYPES}
    return Enqueuer(routing or OwnQueue(), keying, queues)  # type: ignore[arg-type]


def test_per_type_one_entry_per_pcpu_and_type() -> None:
    e = enqueuer(PerType())
    assert e.enqueue(3, CMC).entry is not None
    assert e.enqueue(3, CMC).entry is None
    assert [x.pcpu for x in e.queues[CMC]] == [3]


def test_per_type_interrupt_for_entry_in_flight_marks_it_dirty() -> None:
    e = enqueuer(PerType())
    e.enqueue(1, CMC)
    queue = e.queues[CMC]
    entry = queue.take_next(always)
    assert entry is not None and queue.in_flight is entry
    assert e.enqueue(1, CMC).entry is None
    assert entry.dirty
    assert len(queue) == 0


def test_own_queue_keeps_mca_in_its_own_queue() -> None:
    e = enqueuer(PerType())
    e.enqueue(0, CMC)
    placed = e.enqueue(0, MCA)
    assert placed.queue_type == MCA and placed.entry is not None
    assert [x.pcpu for x in e.queues[MCA]] == [0]


def test_per_slot_mca_on_cmc_shares_the_cmc_slot_and_is_dropped() -> None:
    """cb5985adb8: sal_entry[cpuid][queue_type], queue_type CMC for an MCA on the CMC path."""
    e = enqueuer(PerSlot(), McaOnCmc())
    first = e.enqueue(2, CMC)
    assert first.entry is not None and first.entry.sal_type == CMC
    mca = e.enqueue(2, MCA)
    assert mca.queue_type == CMC and mca.entry is None
    assert [(x.pcpu, x.sal_type) for x in e.queues[CMC]] == [(2, CMC)]
    assert len(e.queues[MCA]) == 0
    assert not first.entry.dirty  # a dropped interrupt leaves no mark


def test_per_slot_mca_first_takes_the_slot_with_its_type() -> None:
    e = enqueuer(PerSlot(), McaOnCmc())
    e.enqueue(4, MCA)
    assert e.enqueue(4, CMC).entry is None
    assert [(x.pcpu, x.sal_type) for x in e.queues[CMC]] == [(4, MCA)]


def test_per_interrupt_one_entry_each() -> None:
    """758fbf680d: xmalloc'd per ia64_log_queue call."""
    e = enqueuer(PerInterrupt(), McaOnCmc())
    for record_type in (CMC, CMC, MCA):
        assert e.enqueue(1, record_type).entry is not None
    assert [(x.pcpu, x.sal_type) for x in e.queues[CMC]] == [(1, CMC), (1, CMC), (1, MCA)]


def test_requeue_tail_gives_others_their_turn() -> None:
    e = enqueuer(PerType())
    for pcpu in (0, 1, 2):
        e.enqueue(pcpu, CMC)
    queue = e.queues[CMC]
    order = []
    for _ in range(6):
        entry = queue.take_next(always)
        assert entry is not None
        order.append(entry.pcpu)
        queue.requeue_tail(queue.release_in_flight())
    assert order == [0, 1, 2, 0, 1, 2]


def test_requeue_head_keeps_the_busy_pcpu_first() -> None:
    e = enqueuer(PerSlot())
    for pcpu in (0, 1, 2):
        e.enqueue(pcpu, CMC)
    queue = e.queues[CMC]
    order = []
    for _ in range(4):
        entry = queue.take_next(always)
        assert entry is not None
        order.append(entry.pcpu)
        queue.requeue_head(entry)
    assert order == [0, 0, 0, 0]


def test_requeue_head_resets_state() -> None:
    e = enqueuer(PerType())
    e.enqueue(0, CMC)
    e.enqueue(1, CMC)
    queue = e.queues[CMC]
    entry = queue.take_next(always)
    assert entry is not None
    entry.state, entry.record_id = State.READ, 42
    queue.requeue_head(queue.release_in_flight())
    assert [x.pcpu for x in queue] == [0, 1]
    assert entry.state is State.QUEUED and entry.record_id == 0


def test_removed_entry_frees_its_key() -> None:
    e = enqueuer(PerType())
    entry = e.enqueue(5, CMC).entry
    assert entry is not None
    e.queues[CMC].remove(entry)
    assert e.queues[CMC].listed((5, CMC)) is None
    assert e.enqueue(5, CMC).entry is not None


def test_unavailable_pcpu_keeps_its_place_and_delays_only_itself() -> None:
    e = enqueuer(PerType())
    for pcpu in (0, 1, 2):
        e.enqueue(pcpu, CMC)
    queue = e.queues[CMC]
    entry = queue.take_next(lambda pcpu: pcpu != 0)
    assert entry is not None and entry.pcpu == 1
    assert [x.pcpu for x in queue] == [0, 2]


def test_only_one_in_flight() -> None:
    e = enqueuer(PerType())
    e.enqueue(0, CMC)
    e.enqueue(1, CMC)
    queue = e.queues[CMC]
    queue.take_next(always)
    with pytest.raises(RuntimeError):
        queue.take_next(always)


def test_nothing_available() -> None:
    e = enqueuer(PerType())
    e.enqueue(0, CMC)
    queue = e.queues[CMC]
    assert queue.take_next(lambda _: False) is None
    assert queue.in_flight is None
    assert queue.head is not None and queue.head.pcpu == 0
