"""Plausible section contents for injected errors, so records look like real ones.

CMC, MCA and INIT records get a processor section with one cache check (PAL-style error
map, state parameter and check info); CPE records get a platform memory section (a
single-bit error at a DIMM location). Content is drawn from the given ``random.Random``
so a seeded workload is reproducible.
"""

from __future__ import annotations

import random
from datetime import datetime

from xenmca.layout.limits import SAL_RECORD_TYPES
from xenmca.layout.record import SEVERITY_CORRECTED, SEVERITY_FATAL, SalRecord
from xenmca.layout.sections import (
    ERROR_RECOVERY_CORRECTED,
    ERROR_RECOVERY_RESET,
    ERROR_RECOVERY_VALID,
    MemorySection,
    ModCheck,
    ProcessorSection,
)

SAL_TYPE_MCA, SAL_TYPE_INIT, SAL_TYPE_CMC, SAL_TYPE_CPE = SAL_RECORD_TYPES

# PAL processor state parameter bits (PAL_MC_ERROR_INFO): co (corrected) 7, the
# register-validity bits gr..pc 20..31 and cc (cache check) 59.
_PSP_CORRECTED = 1 << 7
_PSP_REGISTERS_VALID = 0xFFF << 20
_PSP_CACHE_CHECK = 1 << 59
# Processor error map: edc (data cache level bits) at 12..15.
_PEM_DATA_CACHE_L2 = 0x2 << 12
# Memory error status: a PCI-like status word, bit 8 "data error" here.
_MEM_STATUS_DATA = 1 << 8


def default_severity_for_type(sal_type: int) -> int:
    """Corrected for CMC and CPE, fatal for MCA and INIT."""
    _require_type(sal_type)
    return SEVERITY_CORRECTED if sal_type in (SAL_TYPE_CMC, SAL_TYPE_CPE) else SEVERITY_FATAL


def _require_type(sal_type: int) -> None:
    if sal_type not in SAL_RECORD_TYPES:
        raise ValueError(f"sal_type must be 0 (MCA), 1 (INIT), 2 (CMC) or 3 (CPE), got {sal_type}")


def _processor_section(sal_type: int, pcpu: int, rng: random.Random) -> ProcessorSection:
    corrected = sal_type == SAL_TYPE_CMC
    state = _PSP_REGISTERS_VALID | _PSP_CACHE_CHECK | (_PSP_CORRECTED if corrected else 0)
    address = rng.randrange(0, 1 << 40) & ~0x3F
    level, operation, way = 1, rng.choice((1, 2, 3)), rng.randrange(16)
    check_info = operation | level << 4 | way << 16 | 1 << 10  # dv: data valid
    check = ModCheck(
        check_info=check_info,
        requestor_identifier=pcpu,
        responder_identifier=address,
        target_identifier=address,
        precise_ip=0xA000_0001_0000_0000 | rng.randrange(1 << 24) << 4,
    )
    recovery = ERROR_RECOVERY_VALID | (ERROR_RECOVERY_CORRECTED if corrected else 0)
    if sal_type == SAL_TYPE_MCA:
        recovery |= ERROR_RECOVERY_RESET
    return ProcessorSection(
        proc_error_map=_PEM_DATA_CACHE_L2,
        proc_state_parameter=state,
        proc_cr_lid=(pcpu & 0xFF) << 24 | (pcpu >> 8 & 0xFF) << 16,
        cache_checks=(check,),
        error_recovery_info=recovery,
    )


def _memory_section(pcpu: int, rng: random.Random) -> MemorySection:
    node = pcpu // 8 if pcpu < 8 * 0xFFFF else 0
    return MemorySection(
        error_status=_MEM_STATUS_DATA,
        physical_addr=rng.randrange(0, 1 << 38) & ~0x3F,
        addr_mask=0xFFFF_FFFF_FFFF_FFC0,
        node=node,
        card=rng.randrange(4),
        module=rng.randrange(8),
        bank=rng.randrange(4),
        device=rng.randrange(18),
        row=rng.randrange(1 << 14),
        column=rng.randrange(1 << 10),
        bit_position=rng.randrange(72),
        requestor_id=pcpu,
        responder_id=node,
        error_recovery_info=ERROR_RECOVERY_VALID | ERROR_RECOVERY_CORRECTED,
    )


def default_section_for_type(
    sal_type: int, *, pcpu: int = 0, rng: random.Random | None = None
) -> ProcessorSection | MemorySection:
    """A realistic section for a record of SAL type ``sal_type`` raised on ``pcpu``.

    Without ``rng`` a fixed seed derived from (sal_type, pcpu) is used.
    """
    _require_type(sal_type)
    rng = rng if rng is not None else random.Random(sal_type * 1_000_003 + pcpu)
    if sal_type == SAL_TYPE_CPE:
        return _memory_section(pcpu, rng)
    return _processor_section(sal_type, pcpu, rng)


def default_record_for_type(
    sal_type: int,
    record_id: int,
    timestamp: datetime,
    *,
    pcpu: int = 0,
    severity: int | None = None,
    rng: random.Random | None = None,
) -> SalRecord:
    """A one-section record as firmware would log it for an error of ``sal_type``."""
    return SalRecord(
        record_id=record_id,
        severity=default_severity_for_type(sal_type) if severity is None else severity,
        timestamp=timestamp,
        sections=(default_section_for_type(sal_type, pcpu=pcpu, rng=rng),),
    )
