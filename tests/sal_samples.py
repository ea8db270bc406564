"""Real-looking SAL records for the raw-record tests: every section kind, seeded.

``sample_records(seed)`` gives records of every kind the layout knows (processor with
checks, platform memory with OEM data, PCI bus, platform-specific, an unknown GUID)
and every severity, each encoded as the bytes a firmware would write.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

from xenmca.layout.api import (
    MemorySection,
    ModCheck,
    PciBusSection,
    PlatformSpecificSection,
    ProcessorSection,
    SalRecord,
    UnknownSection,
    encode_record,
)

TIMESTAMP = datetime(2026, 12, 4, 16, 38, 2, tzinfo=UTC)
UNKNOWN_GUID = uuid.UUID("8a1e1d01-0000-4000-8000-00000000beef")


def _u64(rng: random.Random) -> int:
    return rng.getrandbits(64)


def processor(rng: random.Random) -> ProcessorSection:
    return ProcessorSection(
        proc_error_map=_u64(rng),
        proc_state_parameter=_u64(rng),
        proc_cr_lid=rng.getrandbits(32) << 16,
        cache_checks=(ModCheck(check_info=_u64(rng), precise_ip=_u64(rng)),),
        bus_checks=(ModCheck(requestor_identifier=_u64(rng)),),
        error_recovery_info=0x81,
    )


def memory(rng: random.Random) -> MemorySection:
    return MemorySection(
        error_status=rng.getrandbits(16),
        physical_addr=rng.getrandbits(40) << 6,
        addr_mask=0xFFFF_FFFF_FFC0,
        node=rng.randrange(16),
        row=rng.randrange(1 << 16),
        column=rng.randrange(1 << 10),
        oem_id=rng.randbytes(16),
        oem_data=rng.randbytes(rng.randrange(1, 40)),
        error_recovery_info=0x81,
    )


def pci_bus(rng: random.Random) -> PciBusSection:
    return PciBusSection(
        err_status=_u64(rng), err_type=2, bus_id=rng.randrange(1 << 16), oem_data=b"pci"
    )


def platform_specific(rng: random.Random) -> PlatformSpecificSection:
    return PlatformSpecificSection(
        err_status=_u64(rng), oem_guid=uuid.UUID(int=rng.getrandbits(128)), oem_data=b"oem"
    )


def unknown(rng: random.Random) -> UnknownSection:
    return UnknownSection(guid=UNKNOWN_GUID, body=rng.randbytes(rng.randrange(0, 30)))


def sample_record(
    seed: int, *, record_id: int = 1, severity: int = 2, timestamp: datetime = TIMESTAMP
) -> SalRecord:
    """A record of one to four sections of any kind, its contents drawn from seed."""
    rng = random.Random(seed)
    makers = (processor, memory, pci_bus, platform_specific, unknown)
    sections = tuple(rng.choice(makers)(rng) for _ in range(rng.randrange(1, 5)))
    guid = uuid.UUID(int=rng.getrandbits(128)) if rng.random() < 0.5 else None
    return SalRecord(
        record_id=record_id,
        severity=severity,
        timestamp=timestamp,
        sections=sections,
        platform_guid=guid,
    )


def sample_raw(seed: int, **fields: object) -> bytes:
    return encode_record(sample_record(seed, **fields))  # type: ignore[arg-type]


def mixed_raw() -> bytes:
    """One record with every section kind, fatal, with a platform GUID."""
    rng = random.Random(13)
    return encode_record(
        SalRecord(
            record_id=0xDEAD_BEEF,
            severity=1,
            timestamp=TIMESTAMP,
            sections=(
                processor(rng),
                memory(rng),
                pci_bus(rng),
                platform_specific(rng),
                unknown(rng),
            ),
            platform_guid=uuid.UUID(int=0x1234),
        )
    )
