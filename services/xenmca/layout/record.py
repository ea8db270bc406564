"""SalRecord: one SAL error record (header fields and its sections) as a frozen dataclass."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from xenmca.layout.limits import MAX_SECTIONS_PER_RECORD
from xenmca.layout.sections import SECTION_CLASSES, Section
from xenmca.layout.validate import Revision, require_revision, require_uint, require_uuid

DEFAULT_RECORD_REVISION: Revision = (3, 0)
"""Record header revision written when none is given (SAL 3.x), as (major, minor)."""

SEVERITY_RECOVERABLE = 0
SEVERITY_FATAL = 1
SEVERITY_CORRECTED = 2
SEVERITY_NAMES = {
    SEVERITY_RECOVERABLE: "recoverable",
    SEVERITY_FATAL: "fatal",
    SEVERITY_CORRECTED: "corrected",
}


def normalize_timestamp(value: datetime) -> datetime:
    """``value`` in UTC truncated to the second, as the BCD header keeps it.

    Naive datetimes are refused: the SAL header has no zone, so the caller must say.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"timestamp must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware (use datetime.now(UTC))")
    try:
        return value.astimezone(UTC).replace(microsecond=0)
    except OverflowError:
        raise ValueError(f"timestamp {value} is outside the years 1..9999 in UTC") from None


@dataclass(frozen=True)
class SalRecord:
    """sal_log_record_header_t and the sections that follow it.

    ``severity`` is the SAL number (recoverable 0, fatal 1, corrected 2); ``timestamp``
    is normalized to UTC at second resolution; ``platform_guid`` None means the header's
    platform-GUID validation bit is clear (and its 16 bytes are zero).
    """

    record_id: int
    severity: int
    timestamp: datetime
    sections: tuple[Section, ...] = ()
    platform_guid: uuid.UUID | None = None
    revision: Revision = DEFAULT_RECORD_REVISION

    def __post_init__(self) -> None:
        require_uint("record.record_id", self.record_id, 64)
        require_uint("record.severity", self.severity, 8)
        if self.severity not in SEVERITY_NAMES:
            raise ValueError(
                f"record.severity must be 0 (recoverable), 1 (fatal) or 2 (corrected), "
                f"got {self.severity}"
            )
        object.__setattr__(self, "timestamp", normalize_timestamp(self.timestamp))
        object.__setattr__(self, "revision", require_revision("record.revision", self.revision))
        if self.platform_guid is not None:
            require_uuid("record.platform_guid", self.platform_guid)
        sections = tuple(self.sections)
        if len(sections) > MAX_SECTIONS_PER_RECORD:
            raise ValueError(
                f"record.sections: at most {MAX_SECTIONS_PER_RECORD} sections, got {len(sections)}"
            )
        for index, section in enumerate(sections):
            if not isinstance(section, SECTION_CLASSES):
                raise TypeError(
                    f"record.sections[{index}] must be a section dataclass, "
                    f"got {type(section).__name__}"
                )
        object.__setattr__(self, "sections", sections)
