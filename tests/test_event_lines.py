"""Event lines (xenmca.rpc.events): the values json.dumps wrote (the same text for ASCII
fields), one complete line per event in the file at once (a process killed afterwards
loses none), torn lines skipped."""

from __future__ import annotations

import datetime
import enum
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from xenmca.rpc.clock import FakeClock
from xenmca.rpc.events import EventLog, encode, read_events


def _json_line(event: dict[str, object]) -> bytes:
    """The line as the json module wrote it before the switch to orjson."""
    return (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()


def _same_event(event: dict[str, object]) -> None:
    ours, theirs = encode(event), _json_line(event)
    assert ours.endswith(b"\n") and ours.count(b"\n") == 1  # one line, whatever the text
    assert json.loads(ours) == json.loads(theirs)
    # json escaped every non-ASCII character (ensure_ascii) and wrote 1e+16 for 1e16;
    # orjson writes UTF-8 and 1e16. Otherwise the text is the same.
    if b"\\u" not in theirs and b"e+" not in theirs:
        assert ours == theirs


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 2


@dataclass
class Point:
    x: int


def test_every_kind_of_field_is_written_as_json_wrote_it() -> None:
    event = {
        "t_mono_ns": 123_456_789_012,
        "t_wall": 1796453403.0321655,
        "kind": "host_started",
        "pcpus": {0: "127.0.0.1:1", 31: "127.0.0.1:2"},  # integer keys
        "record_id": 2**64 - 1,
        "ratio": 0.1,
        "none": None,
        "flags": [True, False],
        "pair": (1, "a"),
        "path": Path("/tmp/x"),
        "level": Level.HIGH,
        "colour": Colour.RED.value,
        "point": Point(3),
        "at": datetime.datetime(2026, 12, 5, 7, 0, 0),
        "text": '" \\ \n \t',
    }
    assert encode(event) == _json_line(event)
    _same_event({**event, "text": "é \u2028 \x00 \x7f"})


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 4096), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=12), _VALUES, max_size=6))
def test_any_event_of_json_values_is_the_same_event(event: dict[str, object]) -> None:
    _same_event(event)


def test_each_event_is_in_the_file_as_soon_as_it_is_emitted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog("xen", path, FakeClock())
    log.emit("first", n=1)
    assert [e["kind"] for e in read_events(path)] == ["first"]  # no buffer to flush
    log.emit("second", n=2)
    assert [e["n"] for e in read_events(path)] == [1, 2]
    log.close()
    log.emit("after close", n=3)  # a closed log writes nothing and does not fail
    assert len(read_events(path)) == 2


def test_a_killed_process_loses_no_event_it_emitted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from xenmca.rpc.events import EventLog\n"
        "log = EventLog('pcpu', Path(sys.argv[1]))\n"
        "for i in range(500):\n"
        "    log.emit('record_cleared', record_id=i)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert [e["record_id"] for e in read_events(path)] == list(range(500))


def test_lines_are_appended_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind":"earlier"}\n{"kind":"torn')  # a torn line, as a kill leaves it
    log = EventLog("dom0", path, FakeClock())
    log.emit("later")
    log.close()
    assert path.read_bytes().startswith(b'{"kind":"earlier"}\n{"kind":"torn{')
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    assert [e["kind"] for e in read_events(path)] == ["earlier"]  # the later line is fused
