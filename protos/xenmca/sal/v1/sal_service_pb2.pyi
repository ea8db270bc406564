import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from xenmca.record.v1 import record_pb2 as _record_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SalMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAL_MODE_UNSPECIFIED: _ClassVar[SalMode]
    SAL_MODE_EXTENDED: _ClassVar[SalMode]
    SAL_MODE_PLAIN: _ClassVar[SalMode]
SAL_MODE_UNSPECIFIED: SalMode
SAL_MODE_EXTENDED: SalMode
SAL_MODE_PLAIN: SalMode

class GetStateInfoRequest(_message.Message):
    __slots__ = ("type",)
    TYPE_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ...) -> None: ...

class GetStateInfoResponse(_message.Message):
    __slots__ = ("sal_status", "record")
    SAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    sal_status: int
    record: _record_pb2.ErrorRecord
    def __init__(self, sal_status: _Optional[int] = ..., record: _Optional[_Union[_record_pb2.ErrorRecord, _Mapping]] = ...) -> None: ...

class GetStateInfoSizeRequest(_message.Message):
    __slots__ = ("type",)
    TYPE_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ...) -> None: ...

class GetStateInfoSizeResponse(_message.Message):
    __slots__ = ("sal_status", "size")
    SAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    sal_status: int
    size: int
    def __init__(self, sal_status: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class ClearStateInfoRequest(_message.Message):
    __slots__ = ("type", "record_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    record_id: int
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., record_id: _Optional[int] = ...) -> None: ...

class ClearStateInfoResponse(_message.Message):
    __slots__ = ("sal_status", "cleared_record_id", "already_cleared", "remaining")
    SAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    CLEARED_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ALREADY_CLEARED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    sal_status: int
    cleared_record_id: int
    already_cleared: bool
    remaining: int
    def __init__(self, sal_status: _Optional[int] = ..., cleared_record_id: _Optional[int] = ..., already_cleared: _Optional[bool] = ..., remaining: _Optional[int] = ...) -> None: ...

class InjectErrorRequest(_message.Message):
    __slots__ = ("type", "severity", "sections", "count", "rate_per_second", "raw_record")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RAW_RECORD_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    severity: _record_pb2.Severity
    sections: _containers.RepeatedCompositeFieldContainer[_record_pb2.Section]
    count: int
    rate_per_second: float
    raw_record: bytes
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., severity: _Optional[_Union[_record_pb2.Severity, str]] = ..., sections: _Optional[_Iterable[_Union[_record_pb2.Section, _Mapping]]] = ..., count: _Optional[int] = ..., rate_per_second: _Optional[float] = ..., raw_record: _Optional[bytes] = ...) -> None: ...

class InjectErrorResponse(_message.Message):
    __slots__ = ("accepted", "stored", "overflowed", "first_record_id", "last_record_id", "injection_id")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    OVERFLOWED_FIELD_NUMBER: _ClassVar[int]
    FIRST_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    INJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    stored: int
    overflowed: int
    first_record_id: int
    last_record_id: int
    injection_id: int
    def __init__(self, accepted: _Optional[int] = ..., stored: _Optional[int] = ..., overflowed: _Optional[int] = ..., first_record_id: _Optional[int] = ..., last_record_id: _Optional[int] = ..., injection_id: _Optional[int] = ...) -> None: ...

class ListInjectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListInjectionsResponse(_message.Message):
    __slots__ = ("pcpu", "injections")
    PCPU_FIELD_NUMBER: _ClassVar[int]
    INJECTIONS_FIELD_NUMBER: _ClassVar[int]
    pcpu: int
    injections: _containers.RepeatedCompositeFieldContainer[PacedInjection]
    def __init__(self, pcpu: _Optional[int] = ..., injections: _Optional[_Iterable[_Union[PacedInjection, _Mapping]]] = ...) -> None: ...

class PacedInjection(_message.Message):
    __slots__ = ("injection_id", "type", "severity", "count", "created", "stored", "overflowed", "rate_per_second", "started_at")
    INJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    OVERFLOWED_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    injection_id: int
    type: _record_pb2.RecordType
    severity: _record_pb2.Severity
    count: int
    created: int
    stored: int
    overflowed: int
    rate_per_second: float
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, injection_id: _Optional[int] = ..., type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., severity: _Optional[_Union[_record_pb2.Severity, str]] = ..., count: _Optional[int] = ..., created: _Optional[int] = ..., stored: _Optional[int] = ..., overflowed: _Optional[int] = ..., rate_per_second: _Optional[float] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CancelInjectionRequest(_message.Message):
    __slots__ = ("injection_id",)
    INJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    injection_id: int
    def __init__(self, injection_id: _Optional[int] = ...) -> None: ...

class CancelInjectionResponse(_message.Message):
    __slots__ = ("injection",)
    INJECTION_FIELD_NUMBER: _ClassVar[int]
    injection: PacedInjection
    def __init__(self, injection: _Optional[_Union[PacedInjection, _Mapping]] = ...) -> None: ...

class WatchInterruptsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchInterruptsResponse(_message.Message):
    __slots__ = ("pcpu", "type", "record_id", "raised_at")
    PCPU_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    pcpu: int
    type: _record_pb2.RecordType
    record_id: int
    raised_at: _timestamp_pb2.Timestamp
    def __init__(self, pcpu: _Optional[int] = ..., type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., record_id: _Optional[int] = ..., raised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetInterruptMaskRequest(_message.Message):
    __slots__ = ("type", "masked")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    masked: bool
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., masked: _Optional[bool] = ...) -> None: ...

class SetInterruptMaskResponse(_message.Message):
    __slots__ = ("previously_masked", "pending", "created")
    PREVIOUSLY_MASKED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    previously_masked: bool
    pending: int
    created: int
    def __init__(self, previously_masked: _Optional[bool] = ..., pending: _Optional[int] = ..., created: _Optional[int] = ...) -> None: ...

class DescribePcpuRequest(_message.Message):
    __slots__ = ("pending_ids_limit",)
    PENDING_IDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    pending_ids_limit: int
    def __init__(self, pending_ids_limit: _Optional[int] = ...) -> None: ...

class DescribePcpuResponse(_message.Message):
    __slots__ = ("pcpu", "types", "next_record_id", "durable", "sal_mode")
    PCPU_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    NEXT_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    DURABLE_FIELD_NUMBER: _ClassVar[int]
    SAL_MODE_FIELD_NUMBER: _ClassVar[int]
    pcpu: int
    types: _containers.RepeatedCompositeFieldContainer[RecordTypeState]
    next_record_id: int
    durable: bool
    sal_mode: SalMode
    def __init__(self, pcpu: _Optional[int] = ..., types: _Optional[_Iterable[_Union[RecordTypeState, _Mapping]]] = ..., next_record_id: _Optional[int] = ..., durable: _Optional[bool] = ..., sal_mode: _Optional[_Union[SalMode, str]] = ...) -> None: ...

class RecordTypeState(_message.Message):
    __slots__ = ("type", "pending", "capacity", "masked", "created", "cleared", "overflowed", "interrupts_raised", "oldest_record_id", "newest_record_id", "max_record_size", "pending_record_ids")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    OVERFLOWED_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTS_RAISED_FIELD_NUMBER: _ClassVar[int]
    OLDEST_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    NEWEST_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORD_SIZE_FIELD_NUMBER: _ClassVar[int]
    PENDING_RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    pending: int
    capacity: int
    masked: bool
    created: int
    cleared: int
    overflowed: int
    interrupts_raised: int
    oldest_record_id: int
    newest_record_id: int
    max_record_size: int
    pending_record_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., pending: _Optional[int] = ..., capacity: _Optional[int] = ..., masked: _Optional[bool] = ..., created: _Optional[int] = ..., cleared: _Optional[int] = ..., overflowed: _Optional[int] = ..., interrupts_raised: _Optional[int] = ..., oldest_record_id: _Optional[int] = ..., newest_record_id: _Optional[int] = ..., max_record_size: _Optional[int] = ..., pending_record_ids: _Optional[_Iterable[int]] = ...) -> None: ...
