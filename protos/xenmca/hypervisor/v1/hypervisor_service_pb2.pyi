import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from xenmca.record.v1 import record_pb2 as _record_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_STATE_UNSPECIFIED: _ClassVar[EntryState]
    ENTRY_STATE_QUEUED: _ClassVar[EntryState]
    ENTRY_STATE_INJECTED: _ClassVar[EntryState]
    ENTRY_STATE_READ: _ClassVar[EntryState]

class ThrottleMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    THROTTLE_MODE_UNSPECIFIED: _ClassVar[ThrottleMode]
    THROTTLE_MODE_INTERRUPT: _ClassVar[ThrottleMode]
    THROTTLE_MODE_POLLING: _ClassVar[ThrottleMode]
ENTRY_STATE_UNSPECIFIED: EntryState
ENTRY_STATE_QUEUED: EntryState
ENTRY_STATE_INJECTED: EntryState
ENTRY_STATE_READ: EntryState
THROTTLE_MODE_UNSPECIFIED: ThrottleMode
THROTTLE_MODE_INTERRUPT: ThrottleMode
THROTTLE_MODE_POLLING: ThrottleMode

class AttachDom0Request(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: str
    def __init__(self, instance: _Optional[str] = ...) -> None: ...

class AttachDom0Response(_message.Message):
    __slots__ = ("type", "injection_id", "reinjected")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    INJECTION_ID_FIELD_NUMBER: _ClassVar[int]
    REINJECTED_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    injection_id: int
    reinjected: bool
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., injection_id: _Optional[int] = ..., reinjected: _Optional[bool] = ...) -> None: ...

class GetStateInfoRequest(_message.Message):
    __slots__ = ("type",)
    TYPE_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ...) -> None: ...

class GetStateInfoResponse(_message.Message):
    __slots__ = ("sal_status", "record", "by_ipi")
    SAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    BY_IPI_FIELD_NUMBER: _ClassVar[int]
    sal_status: int
    record: _record_pb2.ErrorRecord
    by_ipi: bool
    def __init__(self, sal_status: _Optional[int] = ..., record: _Optional[_Union[_record_pb2.ErrorRecord, _Mapping]] = ..., by_ipi: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("type", "record_id", "pcpu", "carry_interrupt_for")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    PCPU_FIELD_NUMBER: _ClassVar[int]
    CARRY_INTERRUPT_FOR_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    record_id: int
    pcpu: int
    carry_interrupt_for: str
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., record_id: _Optional[int] = ..., pcpu: _Optional[int] = ..., carry_interrupt_for: _Optional[str] = ...) -> None: ...

class ClearStateInfoResponse(_message.Message):
    __slots__ = ("sal_status", "cleared_record_id", "pcpu", "by_ipi", "already_cleared", "next_interrupt")
    SAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    CLEARED_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    PCPU_FIELD_NUMBER: _ClassVar[int]
    BY_IPI_FIELD_NUMBER: _ClassVar[int]
    ALREADY_CLEARED_FIELD_NUMBER: _ClassVar[int]
    NEXT_INTERRUPT_FIELD_NUMBER: _ClassVar[int]
    sal_status: int
    cleared_record_id: int
    pcpu: int
    by_ipi: bool
    already_cleared: bool
    next_interrupt: AttachDom0Response
    def __init__(self, sal_status: _Optional[int] = ..., cleared_record_id: _Optional[int] = ..., pcpu: _Optional[int] = ..., by_ipi: _Optional[bool] = ..., already_cleared: _Optional[bool] = ..., next_interrupt: _Optional[_Union[AttachDom0Response, _Mapping]] = ...) -> None: ...

class DescribeHypervisorRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeHypervisorResponse(_message.Message):
    __slots__ = ("pcpus", "queues", "throttle", "counters", "vcpu0_pcpu", "dom0_attached", "injected_types", "policy")
    PCPUS_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    THROTTLE_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    VCPU0_PCPU_FIELD_NUMBER: _ClassVar[int]
    DOM0_ATTACHED_FIELD_NUMBER: _ClassVar[int]
    INJECTED_TYPES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    pcpus: _containers.RepeatedCompositeFieldContainer[PcpuLink]
    queues: _containers.RepeatedCompositeFieldContainer[TypeQueue]
    throttle: _containers.RepeatedCompositeFieldContainer[ThrottleLine]
    counters: Counters
    vcpu0_pcpu: int
    dom0_attached: bool
    injected_types: _containers.RepeatedScalarFieldContainer[_record_pb2.RecordType]
    policy: PolicyDescription
    def __init__(self, pcpus: _Optional[_Iterable[_Union[PcpuLink, _Mapping]]] = ..., queues: _Optional[_Iterable[_Union[TypeQueue, _Mapping]]] = ..., throttle: _Optional[_Iterable[_Union[ThrottleLine, _Mapping]]] = ..., counters: _Optional[_Union[Counters, _Mapping]] = ..., vcpu0_pcpu: _Optional[int] = ..., dom0_attached: _Optional[bool] = ..., injected_types: _Optional[_Iterable[_Union[_record_pb2.RecordType, str]]] = ..., policy: _Optional[_Union[PolicyDescription, _Mapping]] = ...) -> None: ...

class PolicyDescription(_message.Message):
    __slots__ = ("name", "label", "choices", "sal_mode")
    class ChoicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    SAL_MODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    label: str
    choices: _containers.ScalarMap[str, str]
    sal_mode: str
    def __init__(self, name: _Optional[str] = ..., label: _Optional[str] = ..., choices: _Optional[_Mapping[str, str]] = ..., sal_mode: _Optional[str] = ...) -> None: ...

class PcpuLink(_message.Message):
    __slots__ = ("pcpu", "address", "connected", "connects")
    PCPU_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    CONNECTS_FIELD_NUMBER: _ClassVar[int]
    pcpu: int
    address: str
    connected: bool
    connects: int
    def __init__(self, pcpu: _Optional[int] = ..., address: _Optional[str] = ..., connected: _Optional[bool] = ..., connects: _Optional[int] = ...) -> None: ...

class QueueEntry(_message.Message):
    __slots__ = ("pcpu", "state", "record_id", "sal_type")
    PCPU_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    SAL_TYPE_FIELD_NUMBER: _ClassVar[int]
    pcpu: int
    state: EntryState
    record_id: int
    sal_type: _record_pb2.RecordType
    def __init__(self, pcpu: _Optional[int] = ..., state: _Optional[_Union[EntryState, str]] = ..., record_id: _Optional[int] = ..., sal_type: _Optional[_Union[_record_pb2.RecordType, str]] = ...) -> None: ...

class TypeQueue(_message.Message):
    __slots__ = ("type", "depth", "in_flight", "entries", "virq_pending")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    VIRQ_PENDING_FIELD_NUMBER: _ClassVar[int]
    type: _record_pb2.RecordType
    depth: int
    in_flight: QueueEntry
    entries: _containers.RepeatedCompositeFieldContainer[QueueEntry]
    virq_pending: bool
    def __init__(self, type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., depth: _Optional[int] = ..., in_flight: _Optional[_Union[QueueEntry, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[QueueEntry, _Mapping]]] = ..., virq_pending: _Optional[bool] = ...) -> None: ...

class ThrottleLine(_message.Message):
    __slots__ = ("pcpu", "type", "mode", "poll_interval", "transitions")
    PCPU_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    POLL_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    pcpu: int
    type: _record_pb2.RecordType
    mode: ThrottleMode
    poll_interval: _duration_pb2.Duration
    transitions: int
    def __init__(self, pcpu: _Optional[int] = ..., type: _Optional[_Union[_record_pb2.RecordType, str]] = ..., mode: _Optional[_Union[ThrottleMode, str]] = ..., poll_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., transitions: _Optional[int] = ...) -> None: ...

class Counters(_message.Message):
    __slots__ = ("interrupts", "injections", "local_calls", "ipi_calls", "retries", "records_copied", "records_cleared", "requeues", "call_failures", "refused_calls", "polls", "polled_records", "virqs_coalesced")
    INTERRUPTS_FIELD_NUMBER: _ClassVar[int]
    INJECTIONS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_CALLS_FIELD_NUMBER: _ClassVar[int]
    IPI_CALLS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    RECORDS_COPIED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_CLEARED_FIELD_NUMBER: _ClassVar[int]
    REQUEUES_FIELD_NUMBER: _ClassVar[int]
    CALL_FAILURES_FIELD_NUMBER: _ClassVar[int]
    REFUSED_CALLS_FIELD_NUMBER: _ClassVar[int]
    POLLS_FIELD_NUMBER: _ClassVar[int]
    POLLED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    VIRQS_COALESCED_FIELD_NUMBER: _ClassVar[int]
    interrupts: int
    injections: int
    local_calls: int
    ipi_calls: int
    retries: int
    records_copied: int
    records_cleared: int
    requeues: int
    call_failures: int
    refused_calls: int
    polls: int
    polled_records: int
    virqs_coalesced: int
    def __init__(self, interrupts: _Optional[int] = ..., injections: _Optional[int] = ..., local_calls: _Optional[int] = ..., ipi_calls: _Optional[int] = ..., retries: _Optional[int] = ..., records_copied: _Optional[int] = ..., records_cleared: _Optional[int] = ..., requeues: _Optional[int] = ..., call_failures: _Optional[int] = ..., refused_calls: _Optional[int] = ..., polls: _Optional[int] = ..., polled_records: _Optional[int] = ..., virqs_coalesced: _Optional[int] = ...) -> None: ...

class SetVcpuPlacementRequest(_message.Message):
    __slots__ = ("pcpu",)
    PCPU_FIELD_NUMBER: _ClassVar[int]
    pcpu: int
    def __init__(self, pcpu: _Optional[int] = ...) -> None: ...

class SetVcpuPlacementResponse(_message.Message):
    __slots__ = ("previous_pcpu",)
    PREVIOUS_PCPU_FIELD_NUMBER: _ClassVar[int]
    previous_pcpu: int
    def __init__(self, previous_pcpu: _Optional[int] = ...) -> None: ...
