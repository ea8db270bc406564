"""The API reference's model: protoc compiles the protos into a FileDescriptorSet with source
info, and the packages, services, messages and enums are read from it with their comments.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2

# Field numbers of the descriptor messages, as used in SourceCodeInfo.Location.path.
_FILE_PACKAGE = 2
_FILE_MESSAGE = 4
_FILE_ENUM = 5
_FILE_SERVICE = 6
_MESSAGE_FIELD = 2
_MESSAGE_NESTED = 3
_MESSAGE_ENUM = 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2

_FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    _FDP.TYPE_DOUBLE: "double",
    _FDP.TYPE_FLOAT: "float",
    _FDP.TYPE_INT64: "int64",
    _FDP.TYPE_UINT64: "uint64",
    _FDP.TYPE_INT32: "int32",
    _FDP.TYPE_FIXED64: "fixed64",
    _FDP.TYPE_FIXED32: "fixed32",
    _FDP.TYPE_BOOL: "bool",
    _FDP.TYPE_STRING: "string",
    _FDP.TYPE_BYTES: "bytes",
    _FDP.TYPE_UINT32: "uint32",
    _FDP.TYPE_SFIXED32: "sfixed32",
    _FDP.TYPE_SFIXED64: "sfixed64",
    _FDP.TYPE_SINT32: "sint32",
    _FDP.TYPE_SINT64: "sint64",
}


def proto_files(proto_root: Path) -> list[str]:
    """Every .proto under proto_root, relative to it, in a fixed (byte) order."""
    return sorted(p.relative_to(proto_root).as_posix() for p in proto_root.rglob("*.proto"))


def compile_descriptors(proto_root: Path) -> descriptor_pb2.FileDescriptorSet:
    """Runs protoc on every .proto under proto_root; returns their descriptors with comments."""
    files = proto_files(proto_root)
    if not files:
        raise SystemExit(f"gen_api_docs: no .proto files under {proto_root}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "descriptors.binpb"
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            "-I",
            str(proto_root),
            *files,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"gen_api_docs: protoc failed:\n{proc.stderr.strip()}")
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read_bytes())
    return fds


# ---------------------------------------------------------------------------
# A light model of what gets rendered


@dataclass
class Field:
    name: str
    number: int
    type: str
    comment: str


@dataclass
class Message:
    full_name: str
    comment: str
    fields: list[Field]
    reserved: str


@dataclass
class EnumValue:
    name: str
    number: int
    comment: str


@dataclass
class Enum:
    full_name: str
    comment: str
    values: list[EnumValue]


@dataclass
class Rpc:
    name: str
    request: str
    response: str
    comment: str


@dataclass
class Service:
    full_name: str
    comment: str
    rpcs: list[Rpc]


@dataclass
class Package:
    name: str
    files: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)


def _clean_comment(text: str) -> str:
    """A protoc leading comment without the space after '//', buf's lint directives
    (``// buf:lint:ignore RULE``) and the blank edges."""
    lines = [line[1:] if line.startswith(" ") else line for line in text.split("\n")]
    prose = [line.rstrip() for line in lines if not line.startswith("buf:lint:")]
    return "\n".join(prose).strip("\n")


def _comments(fd: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    out: dict[tuple[int, ...], str] = {}
    for loc in fd.source_code_info.location:
        text = loc.leading_comments or loc.trailing_comments
        if text:
            out[tuple(loc.path)] = _clean_comment(text)
    return out


def _deprecated(comment: str, options: object) -> str:
    if getattr(options, "deprecated", False):
        return f"**Deprecated.** {comment}".rstrip()
    return comment


def _reserved(msg: descriptor_pb2.DescriptorProto) -> str:
    parts = []
    for r in msg.reserved_range:  # end is exclusive
        parts.append(str(r.start) if r.end - r.start == 1 else f"{r.start} to {r.end - 1}")
    parts.extend(f'"{n}"' for n in msg.reserved_name)
    return ", ".join(parts)


class _Builder:
    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.fds = fds
        # map<K, V> fields point at synthetic *Entry messages; remember them by full name.
        self.map_entries: dict[str, descriptor_pb2.DescriptorProto] = {}
        for fd in fds.file:
            for prefix, msg in self._walk_messages(fd.package, fd.message_type):
                for nested in msg.nested_type:
                    if nested.options.map_entry:
                        self.map_entries[f"{prefix}.{nested.name}"] = nested

    @staticmethod
    def _walk_messages(
        scope: str, messages: Iterable[descriptor_pb2.DescriptorProto]
    ) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
        for msg in messages:
            full = f"{scope}.{msg.name}" if scope else msg.name
            yield full, msg
            yield from _Builder._walk_messages(full, msg.nested_type)

    def type_of(self, f: descriptor_pb2.FieldDescriptorProto, msg_oneofs: Sequence[str]) -> str:
        if f.type in (_FDP.TYPE_MESSAGE, _FDP.TYPE_ENUM, _FDP.TYPE_GROUP):
            name = f.type_name.lstrip(".")
            entry = self.map_entries.get(name)
            if entry is not None and f.label == _FDP.LABEL_REPEATED:
                key, value = entry.field[0], entry.field[1]
                return f"map<{self.type_of(key, [])}, {self.type_of(value, [])}>"
            base = name
        else:
            base = SCALARS[f.type]
        if f.label == _FDP.LABEL_REPEATED:
            return f"repeated {base}"
        if f.proto3_optional:
            return f"optional {base}"
        if f.HasField("oneof_index"):
            return f"{base} (oneof {msg_oneofs[f.oneof_index]})"
        if f.label == _FDP.LABEL_OPTIONAL and self._syntax == "proto2":
            return f"optional {base}"
        if f.label == _FDP.LABEL_REQUIRED:
            return f"required {base}"
        return base

    def build(self) -> list[Package]:
        packages: dict[str, Package] = {}
        for fd in sorted(self.fds.file, key=lambda f: f.name):
            self._syntax = fd.syntax or "proto2"
            comments = _comments(fd)
            pkg = packages.setdefault(fd.package, Package(fd.package))
            pkg.files.append(fd.name)
            if comments.get((_FILE_PACKAGE,)):
                pkg.comments.append(comments[(_FILE_PACKAGE,)])
            for i, svc in enumerate(fd.service):
                path = (_FILE_SERVICE, i)
                rpcs = []
                for j, m in enumerate(svc.method):
                    req = m.input_type.lstrip(".")
                    resp = m.output_type.lstrip(".")
                    rpcs.append(
                        Rpc(
                            name=m.name,
                            request=f"stream {req}" if m.client_streaming else req,
                            response=f"stream {resp}" if m.server_streaming else resp,
                            comment=_deprecated(
                                comments.get((*path, _SERVICE_METHOD, j), ""), m.options
                            ),
                        )
                    )
                pkg.services.append(
                    Service(
                        full_name=f"{fd.package}.{svc.name}",
                        comment=_deprecated(comments.get(path, ""), svc.options),
                        rpcs=rpcs,
                    )
                )
            for i, msg in enumerate(fd.message_type):
                self._message(pkg, fd.package, msg, (_FILE_MESSAGE, i), comments)
            for i, enum in enumerate(fd.enum_type):
                self._enum(pkg, fd.package, enum, (_FILE_ENUM, i), comments)
        return [packages[name] for name in sorted(packages)]

    def _message(
        self,
        pkg: Package,
        scope: str,
        msg: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        full = f"{scope}.{msg.name}"
        if msg.options.map_entry:
            return
        oneofs = [o.name for o in msg.oneof_decl]
        fields = [
            Field(
                name=f.name,
                number=f.number,
                type=self.type_of(f, oneofs),
                comment=_deprecated(comments.get((*path, _MESSAGE_FIELD, i), ""), f.options),
            )
            for i, f in enumerate(msg.field)
        ]
        pkg.messages.append(
            Message(
                full_name=full,
                comment=_deprecated(comments.get(path, ""), msg.options),
                fields=fields,
                reserved=_reserved(msg),
            )
        )
        for i, nested in enumerate(msg.nested_type):
            self._message(pkg, full, nested, (*path, _MESSAGE_NESTED, i), comments)
        for i, enum in enumerate(msg.enum_type):
            self._enum(pkg, full, enum, (*path, _MESSAGE_ENUM, i), comments)

    @staticmethod
    def _enum(
        pkg: Package,
        scope: str,
        enum: descriptor_pb2.EnumDescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        values = [
            EnumValue(
                name=v.name,
                number=v.number,
                comment=_deprecated(comments.get((*path, _ENUM_VALUE, i), ""), v.options),
            )
            for i, v in enumerate(enum.value)
        ]
        pkg.enums.append(
            Enum(
                full_name=f"{scope}.{enum.name}",
                comment=_deprecated(comments.get(path, ""), enum.options),
                values=values,
            )
        )


def build_packages(fds: descriptor_pb2.FileDescriptorSet) -> list[Package]:
    return _Builder(fds).build()
