import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChildState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHILD_STATE_UNSPECIFIED: _ClassVar[ChildState]
    CHILD_STATE_RUNNING: _ClassVar[ChildState]
    CHILD_STATE_PAUSED: _ClassVar[ChildState]
    CHILD_STATE_STOPPED: _ClassVar[ChildState]
    CHILD_STATE_EXITED: _ClassVar[ChildState]
CHILD_STATE_UNSPECIFIED: ChildState
CHILD_STATE_RUNNING: ChildState
CHILD_STATE_PAUSED: ChildState
CHILD_STATE_STOPPED: ChildState
CHILD_STATE_EXITED: ChildState

class ChildExit(_message.Message):
    __slots__ = ("exit_code", "signal", "run")
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    signal: int
    run: int
    def __init__(self, exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., run: _Optional[int] = ...) -> None: ...

class Child(_message.Message):
    __slots__ = ("state", "pid", "starts", "last_exit", "argv", "state_dir", "events_file")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_EXIT_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    STATE_DIR_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FILE_FIELD_NUMBER: _ClassVar[int]
    state: ChildState
    pid: int
    starts: int
    last_exit: ChildExit
    argv: _containers.RepeatedScalarFieldContainer[str]
    state_dir: str
    events_file: str
    def __init__(self, state: _Optional[_Union[ChildState, str]] = ..., pid: _Optional[int] = ..., starts: _Optional[int] = ..., last_exit: _Optional[_Union[ChildExit, _Mapping]] = ..., argv: _Optional[_Iterable[str]] = ..., state_dir: _Optional[str] = ..., events_file: _Optional[str] = ...) -> None: ...

class DescribeChildRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class StartChildRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class StopChildRequest(_message.Message):
    __slots__ = ("grace",)
    GRACE_FIELD_NUMBER: _ClassVar[int]
    grace: _duration_pb2.Duration
    def __init__(self, grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StopChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class KillChildRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KillChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class RestartChildRequest(_message.Message):
    __slots__ = ("kill", "grace")
    KILL_FIELD_NUMBER: _ClassVar[int]
    GRACE_FIELD_NUMBER: _ClassVar[int]
    kill: bool
    grace: _duration_pb2.Duration
    def __init__(self, kill: _Optional[bool] = ..., grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RestartChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class PauseChildRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class ResumeChildRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResumeChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class NetworkState(_message.Message):
    __slots__ = ("device", "cut", "heals_in")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CUT_FIELD_NUMBER: _ClassVar[int]
    HEALS_IN_FIELD_NUMBER: _ClassVar[int]
    device: str
    cut: bool
    heals_in: _duration_pb2.Duration
    def __init__(self, device: _Optional[str] = ..., cut: _Optional[bool] = ..., heals_in: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CutNetworkRequest(_message.Message):
    __slots__ = ("duration",)
    DURATION_FIELD_NUMBER: _ClassVar[int]
    duration: _duration_pb2.Duration
    def __init__(self, duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CutNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: NetworkState
    def __init__(self, network: _Optional[_Union[NetworkState, _Mapping]] = ...) -> None: ...

class HealNetworkRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: NetworkState
    def __init__(self, network: _Optional[_Union[NetworkState, _Mapping]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("from_start", "from_offset", "until_now")
    FROM_START_FIELD_NUMBER: _ClassVar[int]
    FROM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    UNTIL_NOW_FIELD_NUMBER: _ClassVar[int]
    from_start: bool
    from_offset: int
    until_now: bool
    def __init__(self, from_start: _Optional[bool] = ..., from_offset: _Optional[int] = ..., until_now: _Optional[bool] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("json", "offset")
    JSON_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    json: str
    offset: int
    def __init__(self, json: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ReadClockRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadClockResponse(_message.Message):
    __slots__ = ("monotonic_ns", "realtime_ns", "received_monotonic_ns", "sent_monotonic_ns")
    MONOTONIC_NS_FIELD_NUMBER: _ClassVar[int]
    REALTIME_NS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_MONOTONIC_NS_FIELD_NUMBER: _ClassVar[int]
    SENT_MONOTONIC_NS_FIELD_NUMBER: _ClassVar[int]
    monotonic_ns: int
    realtime_ns: int
    received_monotonic_ns: int
    sent_monotonic_ns: int
    def __init__(self, monotonic_ns: _Optional[int] = ..., realtime_ns: _Optional[int] = ..., received_monotonic_ns: _Optional[int] = ..., sent_monotonic_ns: _Optional[int] = ...) -> None: ...
