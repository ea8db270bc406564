"""Hypothesis strategies for the fuzz tests (test_fuzz_*.py): credentials and callers,
arbitrary request fields (open enums, integers at their limits, odd rates, unknown protobuf
fields) and arbitrary SAL record sections."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

from flow_harness import DOMU
from hypothesis import strategies as st

from xenmca.record.v1 import record_pb2
from xenmca.rpc.identity import AUTH_HEADER, DOM0, OPERATOR, XEN, TokenBook, call_metadata

T = TypeVar("T")

RECORD_TYPES = (
    record_pb2.RECORD_TYPE_MCA,
    record_pb2.RECORD_TYPE_INIT,
    record_pb2.RECORD_TYPE_CMC,
    record_pb2.RECORD_TYPE_CPE,
)
SEVERITIES = (
    record_pb2.SEVERITY_UNSPECIFIED,
    record_pb2.SEVERITY_RECOVERABLE,
    record_pb2.SEVERITY_FATAL,
    record_pb2.SEVERITY_CORRECTED,
)
SAL_OK, SAL_CALL_ERROR, SAL_NO_INFORMATION = 0, -3, -5
MAX_U32 = 2**32 - 1
MAX_U64 = 2**64 - 1


# --- credentials ---------------------------------------------------------------------

IDENTITIES = (DOM0, OPERATOR, XEN, DOMU)
"""Identities with a token in the bed's book (DOMU is another domain)."""
PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
"""Metadata values gRPC lets a client send (no spaces: gRPC may trim them)."""


@dataclass(frozen=True)
class Credential:
    """How a call presents itself. ``identity`` is the identity a server should see (None:
    unauthenticated); ``kind`` says how the metadata is made."""

    kind: str
    identity: str | None = None
    text: str = ""

    def metadata(self, tokens: TokenBook) -> tuple[tuple[str, str], ...]:
        if self.kind == "token":
            assert self.identity is not None
            return call_metadata(tokens.token_for(self.identity))
        if self.kind == "unknown-token":  # a well-formed bearer token nobody issued
            return ((AUTH_HEADER, f"Bearer zz{self.text}"),)
        if self.kind == "not-bearer":  # a valid token without the scheme
            return ((AUTH_HEADER, f"{tokens.token_for(XEN)}{self.text}"),)
        if self.kind == "wrong-header":  # a valid operator token under another key
            return (("x-authorization", f"Bearer {tokens.token_for(OPERATOR)}"),)
        if self.kind == "other-header":
            return (("x-fuzz", f"v{self.text}"),)
        return ()

    def __repr__(self) -> str:
        return f"Credential({self.kind}:{self.identity or self.text!r})"


credentials = st.one_of(
    st.sampled_from([Credential("token", identity) for identity in IDENTITIES]),
    st.sampled_from(["none", "wrong-header"]).map(Credential),
    st.builds(
        Credential,
        kind=st.sampled_from(["unknown-token", "not-bearer", "other-header"]),
        text=st.text(PRINTABLE, max_size=40),
    ),
)


# --- field values --------------------------------------------------------------------


def mostly(usual: st.SearchStrategy[T], anything: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """Three draws in four from ``usual``, the rest from ``anything`` (so that the valid
    paths are exercised as well as the refusals)."""
    return st.integers(0, 3).flatmap(lambda pick: usual if pick else anything)


def caller(identity: str) -> st.SearchStrategy[Credential]:
    """Mostly the identity that may make the call, else any credential."""
    return mostly(st.just(Credential("token", identity)), credentials)


enum_values = st.one_of(
    st.integers(0, 4),
    st.sampled_from([-1, 5, 12345, 2**31 - 1, -(2**31)]),
    st.integers(-(2**31), 2**31 - 1),
)
"""A proto3 open enum field: the known values, and any other int32."""
u32_values = st.one_of(
    st.sampled_from([0, 1, 2, 255, 256, 65535, 65536, 1_000_000, 1_000_001, 2**31, MAX_U32]),
    st.integers(0, MAX_U32),
)
u64_values = st.one_of(
    st.sampled_from([0, 1, 2**32, 2**63 - 1, 2**63, MAX_U64]),
    st.integers(0, MAX_U64),
)
record_ids = st.one_of(
    st.integers(0, 40), st.sampled_from([2**31, 2**32, 2**63, MAX_U64]), st.integers(0, MAX_U64)
)
counts = st.one_of(st.integers(0, 5), u32_values)
rates = st.one_of(
    st.sampled_from(
        [0.0, -0.0, math.nan, math.inf, -math.inf, -1.0, 5e-324, 1e-300, 0.5, 1e6, 1e6 + 1, 1e308]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)


def valid_rate(rate: float) -> bool:
    return math.isfinite(rate) and 0 <= rate <= 1_000_000


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


unknown_fields = st.lists(
    st.tuples(
        st.integers(20, 10_000), st.one_of(st.integers(0, 2**64 - 1), st.binary(max_size=64))
    ),
    max_size=4,
).map(
    lambda fields: b"".join(
        _varint(number << 3) + _varint(value)
        if isinstance(value, int)
        else _varint(number << 3 | 2) + _varint(len(value)) + value
        for number, value in fields
    )
)
"""Well-formed protobuf fields with numbers no xenmca message uses (ignored by servers)."""


# --- sections --------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzSection:
    """A generated Section and whether the SAL layout can encode it."""

    message: record_pb2.Section
    valid: bool

    def __repr__(self) -> str:
        kind = self.message.WhichOneof("body")
        return f"FuzzSection({kind}, valid={self.valid}, {self.message.ByteSize()} bytes)"


_U16_FIELDS = ("node", "card", "module", "bank", "device", "row", "column", "bit_position")
_U64_MEMORY = (
    "error_status",
    "physical_addr",
    "addr_mask",
    "requestor_id",
    "responder_id",
    "target_id",
    "bus_spec_data",
)
_U64_PCI = (
    "err_status",
    "bus_address",
    "bus_data",
    "bus_cmd",
    "requestor_id",
    "responder_id",
    "target_id",
)
_CHECK_KINDS = ("cache_checks", "tlb_checks", "bus_checks")
MAX_CHECKS, MAX_OEM_DATA = 15, 1024

mod_checks = st.builds(
    record_pb2.ModCheck,
    check_info=u64_values,
    requestor_identifier=u64_values,
    responder_identifier=u64_values,
    target_identifier=u64_values,
    precise_ip=u64_values,
)
oem_data = st.one_of(
    st.binary(max_size=48), st.sampled_from([0, 1023, MAX_OEM_DATA]).map(lambda n: b"\xa5" * n)
)


@st.composite
def sections(draw: st.DrawFn) -> FuzzSection:
    """A Section of any kind (or with no body), valid most of the time, else broken in one
    way the layout must refuse: a u8/u16 field out of range, a 17-byte GUID, a 5-byte
    oem_id, more than 15 checks, oem_data over 1 KiB, or no body."""
    kind = draw(st.sampled_from(["processor", "platform_memory", "pci_bus", "platform_specific"]))
    message = record_pb2.Section(error_recovery_info=draw(st.integers(0, 255)))
    if kind == "processor":
        body = message.processor
        body.proc_error_map = draw(u64_values)
        body.proc_state_parameter = draw(u64_values)
        body.proc_cr_lid = draw(u64_values)
        for name in _CHECK_KINDS:
            getattr(body, name).extend(draw(st.lists(mod_checks, max_size=3)))
    elif kind == "platform_memory":
        mem = message.platform_memory
        for name in _U64_MEMORY:
            setattr(mem, name, draw(u64_values))
        for name in _U16_FIELDS:
            setattr(mem, name, draw(st.integers(0, 65535)))
        mem.oem_id = draw(st.one_of(st.just(b""), st.binary(min_size=16, max_size=16)))
        mem.oem_data = draw(oem_data)
    elif kind == "pci_bus":
        pci = message.pci_bus
        for name in _U64_PCI:
            setattr(pci, name, draw(u64_values))
        pci.err_type = draw(st.integers(0, 65535))
        pci.bus_id = draw(st.integers(0, 65535))
        pci.oem_data = draw(oem_data)
    else:
        plat = message.platform_specific
        plat.err_status = draw(u64_values)
        plat.guid = draw(st.one_of(st.just(b""), st.binary(min_size=16, max_size=16)))
        plat.oem_data = draw(oem_data)
    if draw(st.integers(0, 3)) != 0:
        return FuzzSection(message, True)
    breakages = ["error_recovery_info", "no_body"] + {
        "processor": ["checks"],
        "platform_memory": ["u16", "oem_id", "oem_data"],
        "pci_bus": ["u16", "oem_data"],
        "platform_specific": ["guid", "oem_data"],
    }[kind]
    breakage = draw(st.sampled_from(breakages))
    if breakage == "error_recovery_info":
        message.error_recovery_info = draw(st.integers(256, MAX_U32))
    elif breakage == "no_body":
        message.ClearField(kind)  # type: ignore[arg-type]
    elif breakage == "checks":
        name = draw(st.sampled_from(_CHECK_KINDS))
        extra = MAX_CHECKS + 1 - len(getattr(message.processor, name))
        getattr(message.processor, name).extend([record_pb2.ModCheck(check_info=7)] * extra)
    elif breakage == "u16":
        target = message.platform_memory if kind == "platform_memory" else message.pci_bus
        names = _U16_FIELDS if kind == "platform_memory" else ("err_type", "bus_id")
        setattr(target, draw(st.sampled_from(names)), draw(st.integers(65536, MAX_U32)))
    elif breakage in ("oem_id", "guid"):
        size = draw(st.sampled_from([1, 5, 15, 17, 32]))
        if kind == "platform_memory":
            message.platform_memory.oem_id = bytes(range(size))
        else:
            message.platform_specific.guid = bytes(range(size))
    else:
        getattr(message, kind).oem_data = b"\x5a" * draw(st.sampled_from([1025, 4096]))
    return FuzzSection(message, False)


section_lists = st.one_of(
    st.lists(sections(), min_size=1, max_size=3),
    st.integers(8, 10).map(
        lambda n: [FuzzSection(record_pb2.Section(pci_bus=record_pb2.PciBusSection()), True)] * n
    ),
)
"""Up to three arbitrary sections, or 8 to 10 small valid ones (the limit is 8)."""
