"""The one hand-written vocabulary beside the generated stubs: record types, SAL statuses.

Every role (pcpu, xen, dom0, testbed, bench) takes these names from here. The
values are record.proto's enums (``xenmca.record.v1.RecordType`` and ``SalStatus``);
tests/test_vocab.py checks that the two agree, name for name and value for value.
Both are IntEnums, so a member is the number that travels in a message (the
``sal_status`` fields stay int32) and compares equal to it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from xenmca.record.v1 import record_pb2


class RecordType(enum.IntEnum):
    """A SAL record type, numbered as record.proto's RecordType (SAL number = value - 1)."""

    MCA = record_pb2.RECORD_TYPE_MCA
    INIT = record_pb2.RECORD_TYPE_INIT
    CMC = record_pb2.RECORD_TYPE_CMC
    CPE = record_pb2.RECORD_TYPE_CPE


# Typed as int: dicts keyed by these are indexed with the plain numbers messages carry.
RECORD_TYPES: tuple[int, ...] = tuple(RecordType)
"""The four SAL record types, in SAL order (MCA, INIT, CMC, CPE)."""

TYPES_BY_NAME: Mapping[str, RecordType] = MappingProxyType({t.name.lower(): t for t in RecordType})
"""The record types by the lower-case names that scenarios and commands use ("cmc")."""


class SalStatus(enum.IntEnum):
    """The status a SAL procedure returns, as record.proto's SalStatus."""

    SUCCESS = record_pb2.SAL_STATUS_SUCCESS
    INVALID_ARGUMENT = record_pb2.SAL_STATUS_INVALID_ARGUMENT
    CALL_ERROR = record_pb2.SAL_STATUS_CALL_ERROR
    """The owning pCPU could not be reached; the coordinator keeps the entry and injects again."""
    NO_INFORMATION = record_pb2.SAL_STATUS_NO_INFORMATION


_PROTO_PREFIX = "RECORD_TYPE_"


def type_name(record_type: int | str) -> str:
    """A record type's upper-case short name, as events, logs and metrics spell it: "CMC".

    record_type is a RecordType number (3; 0 is "UNSPECIFIED") or a name in any
    case, with or without the proto prefix ("cmc", "RECORD_TYPE_CMC"). Never
    raises: a number record.proto does not name comes back as its digits ("7"),
    so that foreign or damaged data can still be shown.
    """
    if isinstance(record_type, int):
        try:
            return record_pb2.RecordType.Name(record_type).removeprefix(_PROTO_PREFIX)
        except ValueError:
            return str(record_type)
    return str(record_type).upper().removeprefix(_PROTO_PREFIX)


ALLOW_BROKEN_RULES_ENV = "XENMCA_ALLOW_BROKEN_RULES"
"""Set to 1 to accept a test-only broken rule (``xenmca serve xen --broken-rule``, a
scenario's ``broken_rule``); without it both are refused."""
