import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_ACTION_UNSPECIFIED: _ClassVar[FaultAction]
    FAULT_ACTION_DROP_REPLY: _ClassVar[FaultAction]
    FAULT_ACTION_DELAY: _ClassVar[FaultAction]
    FAULT_ACTION_FAIL: _ClassVar[FaultAction]
FAULT_ACTION_UNSPECIFIED: FaultAction
FAULT_ACTION_DROP_REPLY: FaultAction
FAULT_ACTION_DELAY: FaultAction
FAULT_ACTION_FAIL: FaultAction

class FaultRule(_message.Message):
    __slots__ = ("method", "pcpu", "action", "delay", "count", "duration", "skip")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PCPU_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    method: str
    pcpu: int
    action: FaultAction
    delay: _duration_pb2.Duration
    count: int
    duration: _duration_pb2.Duration
    skip: int
    def __init__(self, method: _Optional[str] = ..., pcpu: _Optional[int] = ..., action: _Optional[_Union[FaultAction, str]] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., count: _Optional[int] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., skip: _Optional[int] = ...) -> None: ...

class AddFaultRequest(_message.Message):
    __slots__ = ("rule",)
    RULE_FIELD_NUMBER: _ClassVar[int]
    rule: FaultRule
    def __init__(self, rule: _Optional[_Union[FaultRule, _Mapping]] = ...) -> None: ...

class AddFaultResponse(_message.Message):
    __slots__ = ("fault_id",)
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    def __init__(self, fault_id: _Optional[str] = ...) -> None: ...

class ClearFaultsRequest(_message.Message):
    __slots__ = ("fault_id",)
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    def __init__(self, fault_id: _Optional[str] = ...) -> None: ...

class ClearFaultsResponse(_message.Message):
    __slots__ = ("cleared",)
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    cleared: int
    def __init__(self, cleared: _Optional[int] = ...) -> None: ...

class ListFaultsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFaultsResponse(_message.Message):
    __slots__ = ("faults",)
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    faults: _containers.RepeatedCompositeFieldContainer[ActiveFault]
    def __init__(self, faults: _Optional[_Iterable[_Union[ActiveFault, _Mapping]]] = ...) -> None: ...

class ActiveFault(_message.Message):
    __slots__ = ("fault_id", "rule", "fired", "expired", "matched")
    FAULT_ID_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    FIRED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    fault_id: str
    rule: FaultRule
    fired: int
    expired: bool
    matched: int
    def __init__(self, fault_id: _Optional[str] = ..., rule: _Optional[_Union[FaultRule, _Mapping]] = ..., fired: _Optional[int] = ..., expired: _Optional[bool] = ..., matched: _Optional[int] = ...) -> None: ...
