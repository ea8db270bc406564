"""xenmca.vocab: the one vocabulary agrees with record.proto and is the one the roles use.

- SalStatus and RecordType have every value of the protobuf enums, under the same
  names (less the proto prefix) and numbers; RecordType leaves out UNSPECIFIED.
- type_name round-trips every record type, from a number or any spelling of its name.
- Members are the plain numbers on the wire and in JSON events.
- pcpu, xen, dom0 and the testbed's checks use vocab's type_name, not a copy.
"""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from xenmca import vocab
from xenmca.dom0 import handler as dom0_handler
from xenmca.dom0 import log_schema
from xenmca.hypervisor.v1 import hypervisor_service_pb2 as hv_pb2
from xenmca.pcpu import model as pcpu_model
from xenmca.pcpu import store as pcpu_store
from xenmca.record.v1 import record_pb2
from xenmca.testbed.check import events as check_events
from xenmca.vocab import RECORD_TYPES, TYPES_BY_NAME, RecordType, SalStatus, type_name
from xenmca.xen import model as xen_model
from xenmca.xen import trapped as xen_trapped


def test_sal_status_has_every_value_of_the_proto_enum_and_no_other() -> None:
    proto = {
        name.removeprefix("SAL_STATUS_"): number for name, number in record_pb2.SalStatus.items()
    }
    assert {s.name: s.value for s in SalStatus} == proto
    assert (SalStatus.SUCCESS, SalStatus.CALL_ERROR, SalStatus.NO_INFORMATION) == (0, -3, -5)


def test_record_type_has_every_value_of_the_proto_enum_but_unspecified() -> None:
    proto = {
        name.removeprefix("RECORD_TYPE_"): number
        for name, number in record_pb2.RecordType.items()
        if number != record_pb2.RECORD_TYPE_UNSPECIFIED
    }
    assert {t.name: t.value for t in RecordType} == proto
    assert RECORD_TYPES == (RecordType.MCA, RecordType.INIT, RecordType.CMC, RecordType.CPE)
    assert list(TYPES_BY_NAME) == ["mca", "init", "cmc", "cpe"]


@pytest.mark.parametrize("record_type", list(RecordType), ids=lambda t: t.name)
def test_type_name_round_trips_every_record_type(record_type: RecordType) -> None:
    name = type_name(record_type)
    assert name == record_type.name
    assert type_name(int(record_type)) == name
    for spelling in (name, name.lower(), f"RECORD_TYPE_{name}", f"record_type_{name.lower()}"):
        assert type_name(spelling) == name
    assert RecordType[name] is record_type
    assert TYPES_BY_NAME[name.lower()] is record_type


def test_type_name_of_a_number_no_record_type_has_is_its_digits() -> None:
    assert type_name(record_pb2.RECORD_TYPE_UNSPECIFIED) == "UNSPECIFIED"
    assert type_name(7) == "7"
    assert type_name(-1) == "-1"


def test_members_are_the_plain_numbers_on_the_wire_and_in_json() -> None:
    reply = hv_pb2.GetStateInfoResponse(sal_status=SalStatus.NO_INFORMATION)
    assert (
        reply.SerializeToString() == hv_pb2.GetStateInfoResponse(sal_status=-5).SerializeToString()
    )
    assert json.dumps({"sal_status": SalStatus.CALL_ERROR, "type": RecordType.CMC}) == (
        '{"sal_status": -3, "type": 3}'
    )
    assert f"{SalStatus.NO_INFORMATION} {RecordType.CPE}" == "-5 4"


@pytest.mark.parametrize(
    "module",
    [xen_trapped, pcpu_store, dom0_handler, log_schema, check_events],
    ids=lambda m: m.__name__,
)
def test_the_roles_use_vocab_type_name(module: ModuleType) -> None:
    assert module.type_name is vocab.type_name


@pytest.mark.parametrize("module", [xen_model, pcpu_model, dom0_handler], ids=lambda m: m.__name__)
def test_sal_statuses_are_no_longer_defined_per_role(module: ModuleType) -> None:
    copies = {"SAL_OK", "SAL_CALL_ERROR", "SAL_NO_INFORMATION", "SAL_INVALID_ARGUMENT"}
    assert copies.isdisjoint(vars(module))
