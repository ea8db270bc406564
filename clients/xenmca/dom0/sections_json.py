"""A logged record's sections as JSON, exactly as protobuf's json_format writes them, faster.

dom0 stores each record's sections as ``json_format.MessageToDict(section,
preserving_proto_field_name=True, always_print_fields_with_no_presence=True)``.
That generic printer walks descriptors in pure Python on every commit, which is
most of the Python work of dom0's commit (16 of 31 us per record here). This
module prints the same objects, key order included, from a plan made once per
message type: the fields that are set first (``ListFields``, by number), then
the fields without presence that are not set, with their defaults, in
declaration order. 64-bit integers become strings and bytes base64, as
ProtoJSON says.

Only the field kinds the record schema uses are planned (messages, repeated
messages, bool, 32-bit and 64-bit integers, bytes). A message type holding any
other kind (enum, float, string, map, a well-known type) is printed by
json_format itself, so the output never differs.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_INT32 = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_UINT32}
_INT64 = {FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64}
_WELL_KNOWN_PREFIX = "google.protobuf."

Convert = Callable[[Any], Any]


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _scalar(field: FieldDescriptor) -> Convert | None:
    """How one value of a scalar field prints; None for a kind this module leaves alone."""
    if field.cpp_type in _INT32:
        return int
    if field.cpp_type in _INT64:
        return str
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return bool
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _bytes
    return None


class _Plan:
    """How to print one message type: a converter per field, and the defaults to add."""

    def __init__(self, descriptor: Descriptor) -> None:
        self.convert: dict[str, Convert] = {}
        self.defaults: list[tuple[str, Callable[[], Any]]] = []
        for field in descriptor.fields:
            one = self._one(field)
            if field.is_repeated:
                self.convert[field.name] = functools.partial(_each, one)
            else:
                self.convert[field.name] = one
            if field.has_presence:
                continue
            if field.is_repeated:
                self.defaults.append((field.name, list))
            else:
                self.defaults.append(
                    (field.name, functools.partial(_value, one(field.default_value)))
                )

    @staticmethod
    def _one(field: FieldDescriptor) -> Convert:
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                raise _Unplanned(field.full_name)
            return message_object
        convert = _scalar(field)
        if convert is None:
            raise _Unplanned(field.full_name)
        return convert


class _Unplanned(Exception):
    """A field of a kind left to json_format."""


def _value(value: Any) -> Any:
    return value


def _each(convert: Convert, values: Iterable[Any]) -> list[Any]:
    return [convert(value) for value in values]


_PLANS: dict[Descriptor, _Plan | None] = {}


def _plan(descriptor: Descriptor) -> _Plan | None:
    """The type's plan (made on first use), or None when json_format must print it."""
    try:
        return _PLANS[descriptor]
    except KeyError:
        pass
    _PLANS[descriptor] = None  # a type that contains itself is left to json_format
    plan: _Plan | None = None
    if not descriptor.full_name.startswith(_WELL_KNOWN_PREFIX):
        try:
            plan = _Plan(descriptor)
        except _Unplanned:
            plan = None
        nested = (
            field.message_type
            for field in descriptor.fields
            if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE
        )
        if plan is not None and any(_plan(inner) is None for inner in nested):
            plan = None
    _PLANS[descriptor] = plan
    return plan


def message_object(message: Message) -> dict[str, Any]:
    """``json_format.MessageToDict(message, preserving_proto_field_name=True,
    always_print_fields_with_no_presence=True)``, the same dict in the same key order."""
    plan = _plan(message.DESCRIPTOR)
    if plan is None:
        return json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    convert = plan.convert
    out = {field.name: convert[field.name](value) for field, value in message.ListFields()}
    for name, default in plan.defaults:
        if name not in out:
            out[name] = default()
    return out
