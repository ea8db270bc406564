"""dom0's sections JSON printer against protobuf's json_format: the same objects, in the
same key order, for every kind of section the fuzzers make, and json_format's own output
for message types it does not plan."""

from __future__ import annotations

import json

from fuzz_strategies import FuzzSection, sections
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from xenmca.dom0 import sections_json
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.record.v1 import record_pb2


def reference(message: Message) -> dict[str, object]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def same_text(message: Message) -> None:
    ours, theirs = sections_json.message_object(message), reference(message)
    assert json.dumps(ours) == json.dumps(theirs)  # the key order too


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(sections(), max_size=4))
def test_every_fuzzed_section_prints_as_json_format_does(drawn: list[FuzzSection]) -> None:
    for section in drawn:
        same_text(section.message)


def test_defaults_come_after_the_set_fields_in_declaration_order() -> None:
    check = record_pb2.ModCheck(check_info=1, precise_ip=5)
    printed = sections_json.message_object(check)
    assert list(printed) == [
        "check_info",
        "precise_ip",
        "requestor_identifier",
        "responder_identifier",
        "target_identifier",
    ]
    assert printed["requestor_identifier"] == "0"
    same_text(check)


def test_edge_values() -> None:
    same_text(record_pb2.Section())  # no body: only error_recovery_info, as 0
    same_text(record_pb2.Section(processor=record_pb2.ProcessorSection()))
    same_text(
        record_pb2.Section(
            error_recovery_info=2**32 - 1,
            platform_memory=record_pb2.MemorySection(
                physical_addr=2**64 - 1, oem_id=b"\x00" * 16, oem_data=b"\xff\xfe"
            ),
        )
    )


def test_types_it_does_not_plan_are_printed_by_json_format() -> None:
    # An enum, a Timestamp and a repeated message of those: json_format's output exactly.
    record = record_pb2.ErrorRecord(pcpu=3, record_id=2**63, type=record_pb2.RECORD_TYPE_CMC)
    record.created_at.FromNanoseconds(1_764_000_000_123_456_789)
    record.sections.add(error_recovery_info=7)
    same_text(record)
    same_text(hv_pb2.AttachDom0Response())
