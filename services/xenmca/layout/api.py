"""The public surface of xenmca.layout in one import (the package has no __init__.py):
``from xenmca.layout.api import SalRecord, encode_record, decode_record, ...``."""

from __future__ import annotations

from xenmca.layout.codec import decode_record, encode_record, encode_section, record_length
from xenmca.layout.errors import RecordFormatError
from xenmca.layout.guids import SECTION_NAMES, guid_name
from xenmca.layout.limits import (
    MAX_CHECKS_PER_KIND,
    MAX_OEM_DATA,
    MAX_SECTIONS_PER_RECORD,
    max_encoded_size,
)
from xenmca.layout.proto_convert import (
    record_from_proto,
    record_to_proto,
    record_type_from_proto,
    record_type_to_proto,
    sections_from_proto,
    sections_to_proto,
    severity_from_proto,
    severity_to_proto,
)
from xenmca.layout.raw import (
    FoundRecord,
    RecordStreamError,
    decode_records,
    iter_records,
    problem_offset,
    with_record_id,
)
from xenmca.layout.record import SalRecord
from xenmca.layout.samples import (
    default_record_for_type,
    default_section_for_type,
    default_severity_for_type,
)
from xenmca.layout.sections import (
    MemorySection,
    ModCheck,
    PciBusSection,
    PlatformSpecificSection,
    ProcessorSection,
    Section,
    UnknownSection,
)
from xenmca.layout.text import format_record, format_section

__all__ = [
    "MAX_CHECKS_PER_KIND",
    "MAX_OEM_DATA",
    "MAX_SECTIONS_PER_RECORD",
    "SECTION_NAMES",
    "FoundRecord",
    "MemorySection",
    "ModCheck",
    "PciBusSection",
    "PlatformSpecificSection",
    "ProcessorSection",
    "RecordFormatError",
    "RecordStreamError",
    "SalRecord",
    "Section",
    "UnknownSection",
    "decode_record",
    "decode_records",
    "default_record_for_type",
    "default_section_for_type",
    "default_severity_for_type",
    "encode_record",
    "encode_section",
    "format_record",
    "format_section",
    "guid_name",
    "iter_records",
    "max_encoded_size",
    "problem_offset",
    "record_from_proto",
    "record_length",
    "record_to_proto",
    "record_type_from_proto",
    "record_type_to_proto",
    "sections_from_proto",
    "sections_to_proto",
    "severity_from_proto",
    "severity_to_proto",
    "with_record_id",
]
