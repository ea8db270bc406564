import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_TYPE_UNSPECIFIED: _ClassVar[RecordType]
    RECORD_TYPE_MCA: _ClassVar[RecordType]
    RECORD_TYPE_INIT: _ClassVar[RecordType]
    RECORD_TYPE_CMC: _ClassVar[RecordType]
    RECORD_TYPE_CPE: _ClassVar[RecordType]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_RECOVERABLE: _ClassVar[Severity]
    SEVERITY_FATAL: _ClassVar[Severity]
    SEVERITY_CORRECTED: _ClassVar[Severity]

class SalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAL_STATUS_SUCCESS: _ClassVar[SalStatus]
    SAL_STATUS_INVALID_ARGUMENT: _ClassVar[SalStatus]
    SAL_STATUS_CALL_ERROR: _ClassVar[SalStatus]
    SAL_STATUS_NO_INFORMATION: _ClassVar[SalStatus]
RECORD_TYPE_UNSPECIFIED: RecordType
RECORD_TYPE_MCA: RecordType
RECORD_TYPE_INIT: RecordType
RECORD_TYPE_CMC: RecordType
RECORD_TYPE_CPE: RecordType
SEVERITY_UNSPECIFIED: Severity
SEVERITY_RECOVERABLE: Severity
SEVERITY_FATAL: Severity
SEVERITY_CORRECTED: Severity
SAL_STATUS_SUCCESS: SalStatus
SAL_STATUS_INVALID_ARGUMENT: SalStatus
SAL_STATUS_CALL_ERROR: SalStatus
SAL_STATUS_NO_INFORMATION: SalStatus

class ErrorRecord(_message.Message):
    __slots__ = ("pcpu", "record_id", "type", "severity", "created_at", "sections", "raw", "overflow", "created_monotonic_ns")
    PCPU_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    CREATED_MONOTONIC_NS_FIELD_NUMBER: _ClassVar[int]
    pcpu: int
    record_id: int
    type: RecordType
    severity: Severity
    created_at: _timestamp_pb2.Timestamp
    sections: _containers.RepeatedCompositeFieldContainer[Section]
    raw: bytes
    overflow: bool
    created_monotonic_ns: int
    def __init__(self, pcpu: _Optional[int] = ..., record_id: _Optional[int] = ..., type: _Optional[_Union[RecordType, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sections: _Optional[_Iterable[_Union[Section, _Mapping]]] = ..., raw: _Optional[bytes] = ..., overflow: _Optional[bool] = ..., created_monotonic_ns: _Optional[int] = ...) -> None: ...

class Section(_message.Message):
    __slots__ = ("error_recovery_info", "processor", "platform_memory", "pci_bus", "platform_specific")
    ERROR_RECOVERY_INFO_FIELD_NUMBER: _ClassVar[int]
    PROCESSOR_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_MEMORY_FIELD_NUMBER: _ClassVar[int]
    PCI_BUS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_SPECIFIC_FIELD_NUMBER: _ClassVar[int]
    error_recovery_info: int
    processor: ProcessorSection
    platform_memory: MemorySection
    pci_bus: PciBusSection
    platform_specific: PlatformSpecificSection
    def __init__(self, error_recovery_info: _Optional[int] = ..., processor: _Optional[_Union[ProcessorSection, _Mapping]] = ..., platform_memory: _Optional[_Union[MemorySection, _Mapping]] = ..., pci_bus: _Optional[_Union[PciBusSection, _Mapping]] = ..., platform_specific: _Optional[_Union[PlatformSpecificSection, _Mapping]] = ...) -> None: ...

class ModCheck(_message.Message):
    __slots__ = ("check_info", "requestor_identifier", "responder_identifier", "target_identifier", "precise_ip")
    CHECK_INFO_FIELD_NUMBER: _ClassVar[int]
    REQUESTOR_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    RESPONDER_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    TARGET_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    PRECISE_IP_FIELD_NUMBER: _ClassVar[int]
    check_info: int
    requestor_identifier: int
    responder_identifier: int
    target_identifier: int
    precise_ip: int
    def __init__(self, check_info: _Optional[int] = ..., requestor_identifier: _Optional[int] = ..., responder_identifier: _Optional[int] = ..., target_identifier: _Optional[int] = ..., precise_ip: _Optional[int] = ...) -> None: ...

class ProcessorSection(_message.Message):
    __slots__ = ("proc_error_map", "proc_state_parameter", "proc_cr_lid", "cache_checks", "tlb_checks", "bus_checks")
    PROC_ERROR_MAP_FIELD_NUMBER: _ClassVar[int]
    PROC_STATE_PARAMETER_FIELD_NUMBER: _ClassVar[int]
    PROC_CR_LID_FIELD_NUMBER: _ClassVar[int]
    CACHE_CHECKS_FIELD_NUMBER: _ClassVar[int]
    TLB_CHECKS_FIELD_NUMBER: _ClassVar[int]
    BUS_CHECKS_FIELD_NUMBER: _ClassVar[int]
    proc_error_map: int
    proc_state_parameter: int
    proc_cr_lid: int
    cache_checks: _containers.RepeatedCompositeFieldContainer[ModCheck]
    tlb_checks: _containers.RepeatedCompositeFieldContainer[ModCheck]
    bus_checks: _containers.RepeatedCompositeFieldContainer[ModCheck]
    def __init__(self, proc_error_map: _Optional[int] = ..., proc_state_parameter: _Optional[int] = ..., proc_cr_lid: _Optional[int] = ..., cache_checks: _Optional[_Iterable[_Union[ModCheck, _Mapping]]] = ..., tlb_checks: _Optional[_Iterable[_Union[ModCheck, _Mapping]]] = ..., bus_checks: _Optional[_Iterable[_Union[ModCheck, _Mapping]]] = ...) -> None: ...

class MemorySection(_message.Message):
    __slots__ = ("error_status", "physical_addr", "addr_mask", "node", "card", "module", "bank", "device", "row", "column", "bit_position", "requestor_id", "responder_id", "target_id", "bus_spec_data", "oem_id", "oem_data")
    ERROR_STATUS_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_ADDR_FIELD_NUMBER: _ClassVar[int]
    ADDR_MASK_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CARD_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    BANK_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    BIT_POSITION_FIELD_NUMBER: _ClassVar[int]
    REQUESTOR_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONDER_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    BUS_SPEC_DATA_FIELD_NUMBER: _ClassVar[int]
    OEM_ID_FIELD_NUMBER: _ClassVar[int]
    OEM_DATA_FIELD_NUMBER: _ClassVar[int]
    error_status: int
    physical_addr: int
    addr_mask: int
    node: int
    card: int
    module: int
    bank: int
    device: int
    row: int
    column: int
    bit_position: int
    requestor_id: int
    responder_id: int
    target_id: int
    bus_spec_data: int
    oem_id: bytes
    oem_data: bytes
    def __init__(self, error_status: _Optional[int] = ..., physical_addr: _Optional[int] = ..., addr_mask: _Optional[int] = ..., node: _Optional[int] = ..., card: _Optional[int] = ..., module: _Optional[int] = ..., bank: _Optional[int] = ..., device: _Optional[int] = ..., row: _Optional[int] = ..., column: _Optional[int] = ..., bit_position: _Optional[int] = ..., requestor_id: _Optional[int] = ..., responder_id: _Optional[int] = ..., target_id: _Optional[int] = ..., bus_spec_data: _Optional[int] = ..., oem_id: _Optional[bytes] = ..., oem_data: _Optional[bytes] = ...) -> None: ...

class PciBusSection(_message.Message):
    __slots__ = ("err_status", "err_type", "bus_id", "bus_address", "bus_data", "bus_cmd", "requestor_id", "responder_id", "target_id", "oem_data")
    ERR_STATUS_FIELD_NUMBER: _ClassVar[int]
    ERR_TYPE_FIELD_NUMBER: _ClassVar[int]
    BUS_ID_FIELD_NUMBER: _ClassVar[int]
    BUS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BUS_DATA_FIELD_NUMBER: _ClassVar[int]
    BUS_CMD_FIELD_NUMBER: _ClassVar[int]
    REQUESTOR_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONDER_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_ID_FIELD_NUMBER: _ClassVar[int]
    OEM_DATA_FIELD_NUMBER: _ClassVar[int]
    err_status: int
    err_type: int
    bus_id: int
    bus_address: int
    bus_data: int
    bus_cmd: int
    requestor_id: int
    responder_id: int
    target_id: int
    oem_data: bytes
    def __init__(self, err_status: _Optional[int] = ..., err_type: _Optional[int] = ..., bus_id: _Optional[int] = ..., bus_address: _Optional[int] = ..., bus_data: _Optional[int] = ..., bus_cmd: _Optional[int] = ..., requestor_id: _Optional[int] = ..., responder_id: _Optional[int] = ..., target_id: _Optional[int] = ..., oem_data: _Optional[bytes] = ...) -> None: ...

class PlatformSpecificSection(_message.Message):
    __slots__ = ("err_status", "guid", "oem_data")
    ERR_STATUS_FIELD_NUMBER: _ClassVar[int]
    GUID_FIELD_NUMBER: _ClassVar[int]
    OEM_DATA_FIELD_NUMBER: _ClassVar[int]
    err_status: int
    guid: bytes
    oem_data: bytes
    def __init__(self, err_status: _Optional[int] = ..., guid: _Optional[bytes] = ..., oem_data: _Optional[bytes] = ...) -> None: ...
