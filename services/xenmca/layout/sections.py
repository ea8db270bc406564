"""The typed sections of a SAL error record, one frozen dataclass per sal.h body.

Every section carries its section-header fields (``error_recovery_info``, ``revision``);
the GUID follows from the class, except for :class:`UnknownSection`, which keeps a
section whose GUID this codec does not decode, with its raw body, so that it round-trips.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from xenmca.layout import guids
from xenmca.layout.limits import MAX_CHECKS_PER_KIND, MAX_OEM_DATA, MAX_UNKNOWN_BODY
from xenmca.layout.validate import (
    Revision,
    require_bytes,
    require_revision,
    require_uint,
    require_uuid,
)

DEFAULT_SECTION_REVISION: Revision = (3, 0)
"""Section revision written when none is given (SAL 3.x), as (major, minor)."""

ERROR_RECOVERY_CORRECTED = 0x01
ERROR_RECOVERY_NOT_ACCESSIBLE = 0x02
ERROR_RECOVERY_RESET = 0x04
ERROR_RECOVERY_VALID = 0x80


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _check_header(section: Any, kind: str) -> None:
    require_uint(f"{kind}.error_recovery_info", section.error_recovery_info, 8)
    _set(section, "revision", require_revision(f"{kind}.revision", section.revision))


def _check_u64s(obj: object, kind: str, names: tuple[str, ...], bits: int = 64) -> None:
    for name in names:
        require_uint(f"{kind}.{name}", getattr(obj, name), bits)


@dataclass(frozen=True, kw_only=True)
class ModCheck:
    """sal_log_mod_error_info_t: one cache, TLB or bus check (all five values valid)."""

    check_info: int = 0
    requestor_identifier: int = 0
    responder_identifier: int = 0
    target_identifier: int = 0
    precise_ip: int = 0

    FIELDS: ClassVar[tuple[str, ...]] = (
        "check_info",
        "requestor_identifier",
        "responder_identifier",
        "target_identifier",
        "precise_ip",
    )

    def __post_init__(self) -> None:
        _check_u64s(self, "check", self.FIELDS)


def _check_list(section: object, kind: str, name: str) -> None:
    checks = tuple(getattr(section, name))
    if len(checks) > MAX_CHECKS_PER_KIND:
        raise ValueError(f"{kind}.{name}: at most {MAX_CHECKS_PER_KIND} checks, got {len(checks)}")
    for index, check in enumerate(checks):
        if not isinstance(check, ModCheck):
            raise TypeError(f"{kind}.{name}[{index}] must be a ModCheck")
    _set(section, name, checks)


@dataclass(frozen=True, kw_only=True)
class ProcessorSection:
    """sal_log_processor_info_t without static state, CPUID, register-file or MS checks."""

    proc_error_map: int = 0
    proc_state_parameter: int = 0
    proc_cr_lid: int = 0
    cache_checks: tuple[ModCheck, ...] = ()
    tlb_checks: tuple[ModCheck, ...] = ()
    bus_checks: tuple[ModCheck, ...] = ()
    error_recovery_info: int = 0
    revision: Revision = DEFAULT_SECTION_REVISION

    GUID: ClassVar[uuid.UUID] = guids.PROCESSOR_GUID
    KIND: ClassVar[str] = "processor"

    @property
    def guid(self) -> uuid.UUID:
        return self.GUID

    def __post_init__(self) -> None:
        _check_header(self, self.KIND)
        _check_u64s(self, self.KIND, ("proc_error_map", "proc_state_parameter", "proc_cr_lid"))
        for name in ("cache_checks", "tlb_checks", "bus_checks"):
            _check_list(self, self.KIND, name)


def _check_oem_data(section: Any, kind: str) -> None:
    data = require_bytes(f"{kind}.oem_data", section.oem_data, limit=MAX_OEM_DATA)
    _set(section, "oem_data", data)


@dataclass(frozen=True, kw_only=True)
class MemorySection:
    """sal_log_mem_dev_err_info_t: a platform memory device error."""

    error_status: int = 0
    physical_addr: int = 0
    addr_mask: int = 0
    node: int = 0
    card: int = 0
    module: int = 0
    bank: int = 0
    device: int = 0
    row: int = 0
    column: int = 0
    bit_position: int = 0
    requestor_id: int = 0
    responder_id: int = 0
    target_id: int = 0
    bus_spec_data: int = 0
    oem_id: bytes = bytes(16)
    oem_data: bytes = b""
    error_recovery_info: int = 0
    revision: Revision = DEFAULT_SECTION_REVISION

    GUID: ClassVar[uuid.UUID] = guids.PLATFORM_MEMORY_GUID
    KIND: ClassVar[str] = "platform_memory"
    U64_HEAD: ClassVar[tuple[str, ...]] = ("error_status", "physical_addr", "addr_mask")
    U16_FIELDS: ClassVar[tuple[str, ...]] = (
        "node",
        "card",
        "module",
        "bank",
        "device",
        "row",
        "column",
        "bit_position",
    )
    U64_TAIL: ClassVar[tuple[str, ...]] = (
        "requestor_id",
        "responder_id",
        "target_id",
        "bus_spec_data",
    )

    @property
    def guid(self) -> uuid.UUID:
        return self.GUID

    def __post_init__(self) -> None:
        _check_header(self, self.KIND)
        _check_u64s(self, self.KIND, self.U64_HEAD + self.U64_TAIL)
        _check_u64s(self, self.KIND, self.U16_FIELDS, bits=16)
        _set(self, "oem_id", require_bytes(f"{self.KIND}.oem_id", self.oem_id, exact=16))
        _check_oem_data(self, self.KIND)


@dataclass(frozen=True, kw_only=True)
class PciBusSection:
    """sal_log_pci_bus_err_info_t: a PCI bus error."""

    err_status: int = 0
    err_type: int = 0
    bus_id: int = 0
    bus_address: int = 0
    bus_data: int = 0
    bus_cmd: int = 0
    requestor_id: int = 0
    responder_id: int = 0
    target_id: int = 0
    oem_data: bytes = b""
    error_recovery_info: int = 0
    revision: Revision = DEFAULT_SECTION_REVISION

    GUID: ClassVar[uuid.UUID] = guids.PCI_BUS_GUID
    KIND: ClassVar[str] = "pci_bus"
    U64_TAIL: ClassVar[tuple[str, ...]] = (
        "bus_address",
        "bus_data",
        "bus_cmd",
        "requestor_id",
        "responder_id",
        "target_id",
    )

    @property
    def guid(self) -> uuid.UUID:
        return self.GUID

    def __post_init__(self) -> None:
        _check_header(self, self.KIND)
        _check_u64s(self, self.KIND, ("err_status", *self.U64_TAIL))
        _check_u64s(self, self.KIND, ("err_type", "bus_id"), bits=16)
        _check_oem_data(self, self.KIND)


@dataclass(frozen=True, kw_only=True)
class PlatformSpecificSection:
    """sal_log_plat_specific_err_info_t: OEM data named by an OEM GUID."""

    err_status: int = 0
    oem_guid: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=0))
    oem_data: bytes = b""
    error_recovery_info: int = 0
    revision: Revision = DEFAULT_SECTION_REVISION

    GUID: ClassVar[uuid.UUID] = guids.PLATFORM_SPECIFIC_GUID
    KIND: ClassVar[str] = "platform_specific"

    @property
    def guid(self) -> uuid.UUID:
        return self.GUID

    def __post_init__(self) -> None:
        _check_header(self, self.KIND)
        require_uint(f"{self.KIND}.err_status", self.err_status, 64)
        require_uuid(f"{self.KIND}.oem_guid", self.oem_guid)
        _check_oem_data(self, self.KIND)


MODELED_GUIDS = frozenset(
    {
        guids.PROCESSOR_GUID,
        guids.PLATFORM_MEMORY_GUID,
        guids.PCI_BUS_GUID,
        guids.PLATFORM_SPECIFIC_GUID,
    }
)


@dataclass(frozen=True, kw_only=True)
class UnknownSection:
    """A section whose GUID this codec does not decode, kept as its raw body."""

    guid: uuid.UUID
    body: bytes = b""
    error_recovery_info: int = 0
    revision: Revision = DEFAULT_SECTION_REVISION

    KIND: ClassVar[str] = "unknown"

    def __post_init__(self) -> None:
        _check_header(self, self.KIND)
        require_uuid(f"{self.KIND}.guid", self.guid)
        if self.guid in MODELED_GUIDS:
            raise ValueError(
                f"unknown.guid {self.guid} is a decoded section kind; use its own class"
            )
        _set(self, "body", require_bytes(f"{self.KIND}.body", self.body, limit=MAX_UNKNOWN_BODY))


Section = (
    ProcessorSection | MemorySection | PciBusSection | PlatformSpecificSection | UnknownSection
)
"""Any section of a record."""

SECTION_CLASSES: tuple[type, ...] = (
    ProcessorSection,
    MemorySection,
    PciBusSection,
    PlatformSpecificSection,
    UnknownSection,
)
