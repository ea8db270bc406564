"""Section GUIDs of the SAL error record (Linux include/asm-ia64/sal.h) and their names.

GUIDs travel in EFI byte order (``efi_guid_t``: the first three fields little-endian),
which is ``uuid.UUID.bytes_le``.
"""

from __future__ import annotations

import uuid

GUID_SIZE = 16


def _sal_guid(n: int) -> uuid.UUID:
    return uuid.UUID(f"e429faf{n:x}-3cb7-11d4-bca7-0080c73c8881")


PROCESSOR_GUID = _sal_guid(1)
"""SAL_PROC_DEV_ERR_SECT_GUID."""
PLATFORM_MEMORY_GUID = _sal_guid(2)
"""SAL_PLAT_MEM_DEV_ERR_SECT_GUID."""
PLATFORM_SEL_GUID = _sal_guid(3)
"""SAL_PLAT_SEL_DEV_ERR_SECT_GUID."""
PCI_BUS_GUID = _sal_guid(4)
"""SAL_PLAT_PCI_BUS_ERR_SECT_GUID."""
PLATFORM_SMBIOS_GUID = _sal_guid(5)
"""SAL_PLAT_SMBIOS_DEV_ERR_SECT_GUID."""
PCI_COMPONENT_GUID = _sal_guid(6)
"""SAL_PLAT_PCI_COMP_ERR_SECT_GUID."""
PLATFORM_SPECIFIC_GUID = _sal_guid(7)
"""SAL_PLAT_SPECIFIC_ERR_SECT_GUID."""
HOST_CONTROLLER_GUID = _sal_guid(8)
"""SAL_PLAT_HOST_CTLR_ERR_SECT_GUID."""
PLATFORM_BUS_GUID = _sal_guid(9)
"""SAL_PLAT_BUS_ERR_SECT_GUID."""

SECTION_NAMES: dict[uuid.UUID, str] = {
    PROCESSOR_GUID: "processor device error",
    PLATFORM_MEMORY_GUID: "platform memory device error",
    PLATFORM_SEL_GUID: "platform SEL device error",
    PCI_BUS_GUID: "platform PCI bus error",
    PLATFORM_SMBIOS_GUID: "platform SMBIOS device error",
    PCI_COMPONENT_GUID: "platform PCI component error",
    PLATFORM_SPECIFIC_GUID: "platform-specific error",
    HOST_CONTROLLER_GUID: "platform host controller error",
    PLATFORM_BUS_GUID: "platform bus error",
}


def guid_name(guid: uuid.UUID) -> str:
    """A human name for a section GUID; "unknown section" for GUIDs sal.h does not define."""
    return SECTION_NAMES.get(guid, "unknown section")


def guid_to_efi_bytes(guid: uuid.UUID) -> bytes:
    """The 16 bytes of ``guid`` in EFI (efi_guid_t) order."""
    return guid.bytes_le


def guid_from_efi_bytes(data: bytes) -> uuid.UUID:
    """The GUID stored in EFI order in ``data`` (exactly 16 bytes)."""
    if len(data) != GUID_SIZE:
        raise ValueError(f"a GUID is {GUID_SIZE} bytes, got {len(data)}")
    return uuid.UUID(bytes_le=bytes(data))
