"""Fixed sizes of the SAL record layout and the limits this testbed puts on records.

SAL_GET_STATE_INFO_SIZE must report the largest record of a type; the limits below make
that size finite and let :func:`max_encoded_size` compute it exactly.
"""

from __future__ import annotations

RECORD_HEADER_SIZE = 40
"""sal_log_record_header_t."""
SECTION_HEADER_SIZE = 24
"""sal_log_section_hdr_t."""
MOD_CHECK_SIZE = 48
"""sal_log_mod_error_info_t: valid word and five u64 values."""

PROCESSOR_FIXED_BODY = 32
"""sal_log_processor_info_t body before the check arrays: valid, error map, state, CR.LID."""
MEMORY_FIXED_BODY = 96
"""sal_log_mem_dev_err_info_t body before oem_data."""
PCI_BUS_FIXED_BODY = 72
"""sal_log_pci_bus_err_info_t body before oem_data."""
PLATFORM_SPECIFIC_FIXED_BODY = 32
"""sal_log_plat_specific_err_info_t body before oem_data."""

PROCESSOR_STATIC_INFO_SIZE = 5256
"""sal_processor_static_info_t (valid, 1 KiB min-state, br, cr, ar, rr, fr); never emitted."""
PROCESSOR_CPUID_INFO_SIZE = 48
"""sal_log_processor_cpuid_info_t; never emitted."""

MAX_CHECKS_PER_KIND = 15
"""The 4-bit num_*_check counts of the processor section's valid word."""
MAX_OEM_DATA = 1024
"""Largest oem_data of a memory, PCI bus or platform-specific section (testbed limit)."""
MAX_SECTIONS_PER_RECORD = 8
"""Most sections in one record (testbed limit)."""

MAX_PROCESSOR_SECTION = (
    SECTION_HEADER_SIZE + PROCESSOR_FIXED_BODY + 3 * MAX_CHECKS_PER_KIND * MOD_CHECK_SIZE
)
MAX_MEMORY_SECTION = SECTION_HEADER_SIZE + MEMORY_FIXED_BODY + MAX_OEM_DATA
MAX_PCI_BUS_SECTION = SECTION_HEADER_SIZE + PCI_BUS_FIXED_BODY + MAX_OEM_DATA
MAX_PLATFORM_SPECIFIC_SECTION = SECTION_HEADER_SIZE + PLATFORM_SPECIFIC_FIXED_BODY + MAX_OEM_DATA

MAX_SECTION_SIZE = max(
    MAX_PROCESSOR_SECTION, MAX_MEMORY_SECTION, MAX_PCI_BUS_SECTION, MAX_PLATFORM_SPECIFIC_SECTION
)
"""Largest section of any kind, header included; unknown sections are held to it too."""
MAX_UNKNOWN_BODY = MAX_SECTION_SIZE - SECTION_HEADER_SIZE

SAL_RECORD_TYPES = (0, 1, 2, 3)
"""SAL_INFO_TYPE_MCA, _INIT, _CMC, _CPE."""


def max_encoded_size(sal_type: int | None = None) -> int:
    """The largest record :func:`~xenmca.layout.codec.encode_record` can produce, in bytes.

    This is the SAL_GET_STATE_INFO_SIZE answer. The codec allows every section kind in
    every record type, so the bound is the same for all four types; ``sal_type`` is
    only checked (0..3) so that callers can pass the type they were asked about.
    """
    if sal_type is not None and sal_type not in SAL_RECORD_TYPES:
        raise ValueError(f"sal_type must be 0 (MCA), 1 (INIT), 2 (CMC) or 3 (CPE), got {sal_type}")
    return RECORD_HEADER_SIZE + MAX_SECTIONS_PER_RECORD * MAX_SECTION_SIZE
