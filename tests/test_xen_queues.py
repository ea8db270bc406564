"""The coordinator's queues: one entry per (pCPU, type), fairness, in-flight handling."""

import pytest

from xenmca.xen.queues import State, TypeQueue


def always(_: int) -> bool:
    return True


def test_one_entry_per_pcpu() -> None:
    queue = TypeQueue()
    assert queue.add(3) is not None
    assert queue.add(3) is None
    assert [e.pcpu for e in queue] == [3]


def test_interrupt_for_entry_in_flight_marks_it_dirty() -> None:
    queue = TypeQueue()
    queue.add(1)
    entry = queue.take_next(always)
    assert entry is not None and queue.in_flight is entry
    assert queue.add(1) is None
    assert entry.dirty
    assert len(queue) == 0


def test_requeue_tail_gives_others_their_turn() -> None:
    queue = TypeQueue()
    for pcpu in (0, 1, 2):
        queue.add(pcpu)
    order = []
    for _ in range(6):
        entry = queue.take_next(always)
        assert entry is not None
        order.append(entry.pcpu)
        queue.requeue_tail(queue.release_in_flight())
    assert order == [0, 1, 2, 0, 1, 2]


def test_requeue_head_resets_state() -> None:
    queue = TypeQueue()
    queue.add(0)
    queue.add(1)
    entry = queue.take_next(always)
    assert entry is not None
    entry.state, entry.record_id = State.READ, 42
    queue.requeue_head(queue.release_in_flight())
    assert [e.pcpu for e in queue] == [0, 1]
    assert entry.state is State.QUEUED and entry.record_id == 0


def test_unavailable_pcpu_keeps_its_place_and_delays_only_itself() -> None:
    queue = TypeQueue()
    for pcpu in (0, 1, 2):
        queue.add(pcpu)
    entry = queue.take_next(lambda pcpu: pcpu != 0)
    assert entry is not None and entry.pcpu == 1
    assert [e.pcpu for e in queue] == [0, 2]


def test_only_one_in_flight() -> None:
    queue = TypeQueue()
    queue.add(0)
    queue.add(1)
    queue.take_next(always)
    with pytest.raises(RuntimeError):
        queue.take_next(always)


def test_nothing_available() -> None:
    queue = TypeQueue()
    queue.add(0)
    assert queue.take_next(lambda _: False) is None
    assert queue.in_flight is None
