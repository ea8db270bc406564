"""Checking SalService requests before anything changes: bad input is INVALID_ARGUMENT.

Each check raises xenmca.rpc.errors.RequestError with one UPPER_SNAKE_CASE reason
and metadata naming the field and the value, so a refused request leaves the
firmware untouched.
"""

from __future__ import annotations

import math

from xenmca.pcpu import records
from xenmca.pcpu.firmware import Injection
from xenmca.pcpu.model import (
    MAX_INJECT_COUNT,
    MAX_INJECT_RATE,
    MAX_INJECTION_SECONDS,
    MAX_PENDING_IDS_LIMIT,
    MIN_INJECT_RATE,
    SEVERITIES,
    paced_seconds,
    paced_too_long,
)
from xenmca.record.v1 import record_pb2
from xenmca.rpc.errors import invalid_argument
from xenmca.sal.v1 import sal_service_pb2
from xenmca.vocab import RECORD_TYPES


def record_type(value: int) -> int:
    """A request's record type; UNSPECIFIED and unknown values are refused."""
    if value not in RECORD_TYPES:
        raise invalid_argument(
            "INVALID_RECORD_TYPE",
            f"type must be RECORD_TYPE_MCA, _INIT, _CMC or _CPE, got {_enum_name(value)}",
            field="type",
            value=str(value),
        )
    return value


def severity(value: int) -> int:
    """A request's severity; UNSPECIFIED means corrected, unknown values are refused."""
    if value == record_pb2.SEVERITY_UNSPECIFIED:
        return record_pb2.SEVERITY_CORRECTED
    if value not in SEVERITIES:
        raise invalid_argument(
            "INVALID_SEVERITY",
            f"severity must be SEVERITY_RECOVERABLE, _FATAL or _CORRECTED, got {value}",
            field="severity",
            value=str(value),
        )
    return value


def count(value: int) -> int:
    """Records to create: 0 means 1; at most MAX_INJECT_COUNT."""
    if value > MAX_INJECT_COUNT:
        raise invalid_argument(
            "COUNT_OUT_OF_RANGE",
            f"count must be at most {MAX_INJECT_COUNT}, got {value}",
            field="count",
            value=str(value),
        )
    return max(1, value)


def rate(value: float) -> float:
    """Records per second of a paced injection: 0 (not paced), else MIN_ to MAX_INJECT_RATE."""
    if math.isnan(value) or math.isinf(value) or value < 0 or value > MAX_INJECT_RATE:
        raise invalid_argument(
            "RATE_OUT_OF_RANGE",
            f"rate_per_second must be 0 or a finite rate up to {MAX_INJECT_RATE:g}, got {value}",
            field="rate_per_second",
            value=repr(value),
        )
    if 0 < value < MIN_INJECT_RATE:
        raise invalid_argument(
            "RATE_TOO_LOW",
            f"rate_per_second must be 0 (all at once) or at least {MIN_INJECT_RATE:g} "
            f"(one record per {1 / MIN_INJECT_RATE:g} s), got {value:g}",
            field="rate_per_second",
            value=repr(value),
            min_rate_per_second=repr(MIN_INJECT_RATE),
        )
    return value


def paced_duration(how_many: int, per_second: float) -> None:
    """A paced injection must end within MAX_INJECTION_SECONDS (count / rate_per_second)."""
    if per_second > 0 and paced_too_long(how_many, per_second):
        seconds = paced_seconds(how_many, per_second)
        raise invalid_argument(
            "INJECTION_TOO_LONG",
            f"{how_many} records at {per_second:g}/s take {seconds:,.0f} s; a paced injection "
            f"may last at most {MAX_INJECTION_SECONDS:,.0f} s (count / rate_per_second): "
            f"ask for at most {math.floor(per_second * MAX_INJECTION_SECONDS):,} records "
            "or a higher rate",
            field="count",
            value=str(how_many),
            rate_per_second=repr(per_second),
            duration_s=f"{seconds:g}",
            max_duration_s=f"{MAX_INJECTION_SECONDS:g}",
        )


def injection_id(value: int) -> int:
    """A CancelInjection's id: ids start at 1."""
    if value == 0:
        raise invalid_argument(
            "INJECTION_ID_REQUIRED",
            "injection_id is required (InjectError's reply and ListInjections give it)",
            field="injection_id",
            value="0",
        )
    return value


def pending_ids_limit(value: int) -> int:
    """Pending record ids per type a DescribePcpu asks for: 0..MAX_PENDING_IDS_LIMIT."""
    if value > MAX_PENDING_IDS_LIMIT:
        raise invalid_argument(
            "PENDING_IDS_LIMIT_TOO_LARGE",
            f"pending_ids_limit must be at most {MAX_PENDING_IDS_LIMIT}, got {value}",
            field="pending_ids_limit",
            value=str(value),
        )
    return value


def raw_record(request: sal_service_pb2.InjectErrorRequest) -> int:
    """The proto severity of a request's raw_record, which must be one strictly decodable
    SAL record, with no sections beside it and no other severity than its header's."""
    if request.sections:
        raise invalid_argument(
            "RAW_RECORD_WITH_SECTIONS",
            "sections must be empty with raw_record: the record's bytes hold its sections",
            field="sections",
            value=str(len(request.sections)),
        )
    try:
        header_severity = records.parse_raw_record(request.raw_record)
    except records.RawRecordError as exc:
        raise invalid_argument(
            "RECORD_UNDECODABLE",
            f"raw_record ({len(request.raw_record)} bytes) is not one SAL record: {exc} "
            f"(byte {exc.offset})",
            field="raw_record",
            offset=str(exc.offset),
            size=str(len(request.raw_record)),
        ) from None
    if request.severity not in (record_pb2.SEVERITY_UNSPECIFIED, header_severity):
        raise invalid_argument(
            "SEVERITY_CONFLICT",
            f"severity {_severity_name(request.severity)} disagrees with raw_record's header "
            f"({_severity_name(header_severity)}); leave it unspecified",
            field="severity",
            value=str(request.severity),
            header_severity=_severity_name(header_severity),
        )
    return header_severity


def injection(request: sal_service_pb2.InjectErrorRequest) -> Injection:
    """The validated Injection of an InjectErrorRequest."""
    kind = record_type(request.type)
    level = severity(request.severity)
    how_many = count(request.count)
    per_second = rate(request.rate_per_second)
    paced_duration(how_many, per_second)
    if request.raw_record:
        return Injection(
            record_type=kind,
            severity=raw_record(request),
            count=how_many,
            rate_per_second=per_second,
            raw=bytes(request.raw_record),
        )
    sections: records.Sections | None = None
    if len(request.sections) > records.MAX_SECTIONS:
        raise invalid_argument(
            "TOO_MANY_SECTIONS",
            f"a record has at most {records.MAX_SECTIONS} sections, got {len(request.sections)}",
            field="sections",
            value=str(len(request.sections)),
        )
    if request.sections:
        try:
            sections = records.parse_sections(list(request.sections), level)
        except records.SectionError as exc:
            raise invalid_argument(
                "INVALID_SECTION", f"invalid section: {exc}", field="sections"
            ) from None
    return Injection(
        record_type=kind,
        severity=level,
        count=how_many,
        sections=sections,
        rate_per_second=per_second,
    )


def _severity_name(value: int) -> str:
    try:
        return record_pb2.Severity.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return str(value)


def _enum_name(value: int) -> str:
    try:
        return record_pb2.RecordType.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return str(value)
