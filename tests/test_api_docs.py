"""The API reference (protos/README.md) and its generator (scripts/gen_api_docs.py).

- protos/README.md is what scripts/gen_api_docs.py makes from the protos now, and it
  documents every package, service, RPC, message, field, enum and value of every .proto.
- The generator renders maps, oneofs, optional, nested types, streams, reserved numbers
  and awkward comments correctly (on protos made here).

The breaking-change check (scripts/check_breaking.sh) is tested in test_api_docs_breaking.py.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from api_docs_helpers import PROTOS, ROOT

README = PROTOS / "README.md"
GEN = ROOT / "scripts" / "gen_api_docs.py"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_docs", GEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def _section(text: str, heading: str) -> str:
    """The text under a '#### ' heading, up to the next heading of level 4 or above."""
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1 :]
    nxt = re.search(r"^#{1,4} ", rest, flags=re.MULTILINE)
    return rest[: nxt.start()] if nxt else rest


# ---------------------------------------------------------------------------
# the committed reference


def test_readme_is_what_the_generator_makes_now(tmp_path: Path) -> None:
    out = tmp_path / "README.md"
    subprocess.run([sys.executable, str(GEN), "-o", str(out)], check=True, capture_output=True)
    assert README.read_text(encoding="utf-8") == out.read_text(encoding="utf-8"), (
        "protos/README.md is stale: run `python scripts/gen_api_docs.py` and commit it"
    )


def test_check_flag_passes_on_the_committed_file_and_fails_in_one_line_on_a_stale_one(
    tmp_path: Path,
) -> None:
    ok = subprocess.run(
        [sys.executable, str(GEN), "--check"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr

    stale = tmp_path / "README.md"
    stale.write_text(README.read_text(encoding="utf-8") + "\nhand edit\n", encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, str(GEN), "--check", "-o", str(stale)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "stale" in bad.stderr
    assert stale.read_text(encoding="utf-8").endswith("hand edit\n")  # --check never writes


def test_generator_output_is_deterministic() -> None:
    assert gen.render(PROTOS) == gen.render(PROTOS)


def test_readme_documents_every_proto_service_rpc_message_field_and_enum() -> None:
    text = README.read_text(encoding="utf-8")
    on_disk = sorted(p.relative_to(PROTOS).as_posix() for p in PROTOS.rglob("*.proto"))
    assert on_disk, "no protos found"
    listed = re.findall(r"`protos/([^`]+\.proto)`", text)
    assert sorted(set(listed)) == on_disk, "every .proto under protos/ must be documented"

    fds = gen.compile_descriptors(PROTOS)
    counts = {"rpc": 0, "message": 0, "enum": 0}

    def check_message(scope: str, msg) -> None:  # type: ignore[no-untyped-def]
        full = f"{scope}.{msg.name}"
        if msg.options.map_entry:
            return
        body = _section(text, f"#### `{full}`")
        for f in msg.field:
            assert re.search(rf"^\| `{f.name}` \| {f.number} \|", body, re.MULTILINE), (
                f"field {full}.{f.name} missing"
            )
        counts["message"] += 1
        for nested in msg.nested_type:
            check_message(full, nested)
        for enum in msg.enum_type:
            check_enum(full, enum)

    def check_enum(scope: str, enum) -> None:  # type: ignore[no-untyped-def]
        full = f"{scope}.{enum.name}"
        body = _section(text, f"#### `{full}`")
        for v in enum.value:
            assert re.search(rf"^\| `{v.name}` \| {v.number} \|", body, re.MULTILINE), (
                f"enum value {full}.{v.name} missing"
            )
        counts["enum"] += 1

    for fd in fds.file:
        assert f"## Package `{fd.package}`" in text
        for svc in fd.service:
            body = _section(text, f"#### `{fd.package}.{svc.name}`")
            for m in svc.method:
                row = re.search(rf"^\| `{m.name}` \| (.*)$", body, re.MULTILINE)
                assert row, f"rpc {svc.name}.{m.name} missing"
                for type_name in (m.input_type, m.output_type):
                    short = type_name.rsplit(".", 1)[1]
                    assert f"`{short}`" in row.group(1), f"{m.name}: {short} not in its row"
                counts["rpc"] += 1
        for msg in fd.message_type:
            check_message(fd.package, msg)
        for enum in fd.enum_type:
            check_enum(fd.package, enum)
    assert all(counts.values()), counts


def test_readme_carries_the_proto_comments() -> None:
    text = README.read_text(encoding="utf-8")
    # One comment of each kind, from the core protos (service, rpc, message, field, enum value).
    body = _section(text, "#### `xenmca.sal.v1.SalService`")
    assert "SalService is one pCPU's firmware." in body
    assert "SAL_GET_STATE_INFO: the current (oldest) pending record of a type." in body
    record = _section(text, "#### `xenmca.record.v1.ErrorRecord`")
    assert "ErrorRecord is one SAL error record held by a pCPU's firmware." in record
    assert "| `record_id` | 2 | `uint64` | The record header's u64 id:" in record
    types = _section(text, "#### `xenmca.record.v1.RecordType`")
    assert "| `RECORD_TYPE_CMC` | 3 | SAL_INFO_TYPE_CMC (2)" in types


def test_readme_leaves_out_buf_lint_directives() -> None:
    """SAL_STATUS_SUCCESS's comment starts with `buf:lint:ignore`, which is for buf only."""
    text = README.read_text(encoding="utf-8")
    statuses = _section(text, "#### `xenmca.record.v1.SalStatus`")
    assert "| `SAL_STATUS_SUCCESS` | 0 | SAL's own zero: the call completed" in statuses
    assert "buf:lint" not in text


# ---------------------------------------------------------------------------
# the generator on protos made here

FEATURES_PROTO = """\
syntax = "proto3";

// Package comment.
package demo.things.v1;

import "google/protobuf/timestamp.proto";

// Things does things.
service ThingService {
  // Streams both ways.
  rpc Chat(stream ChatRequest) returns (stream ChatResponse);
  // Deprecated call.
  rpc Old(ChatRequest) returns (ChatResponse) {
    option deprecated = true;
  }
}

// A chat request.
message ChatRequest {
  reserved 4, 9 to 11;
  reserved "gone";
  // Labels by name; a | pipe and a <tag> in the comment.
  map<string, Inner> labels = 1;
  // Maybe a count.
  optional uint32 count = 2;
  // When.
  google.protobuf.Timestamp at = 3;
  oneof pick {
    // Pick a name.
    string name = 5;
    // Or a number.
    int64 number = 6;
  }
  // Many colours.
  repeated Colour colours = 7 [deprecated = true];

  // Inner is nested.
  message Inner {
    // Inner's level.
    Level level = 1;

    // Level is nested in Inner.
    enum Level {
      // Unset.
      LEVEL_UNSPECIFIED = 0;
      // High.
      LEVEL_HIGH = 1;
    }
  }
}

// A chat response.
message ChatResponse {}

// Colours.
enum Colour {
  // Unset.
  COLOUR_UNSPECIFIED = 0;
  // Red,
  // on two lines.
  COLOUR_RED = 1;
}
"""


def test_generator_renders_maps_oneofs_nesting_streams_and_awkward_comments(
    tmp_path: Path,
) -> None:
    proto = tmp_path / "demo" / "things" / "v1" / "things.proto"
    proto.parent.mkdir(parents=True)
    proto.write_text(FEATURES_PROTO, encoding="utf-8")
    text = gen.render(tmp_path)

    assert "Files: `protos/demo/things/v1/things.proto`" in text
    assert "Package comment." in text
    svc = _section(text, "#### `demo.things.v1.ThingService`")
    assert (
        "| `Chat` | stream [`ChatRequest`](#demothingsv1chatrequest) "
        "| stream [`ChatResponse`](#demothingsv1chatresponse) | Streams both ways. |"
    ) in svc
    assert "| `Old` |" in svc and "**Deprecated.** Deprecated call." in svc

    req = _section(text, "#### `demo.things.v1.ChatRequest`")
    assert (
        "| `labels` | 1 | map\\<`string`, [`ChatRequest.Inner`](#demothingsv1chatrequestinner)\\> "
        "| Labels by name; a \\| pipe and a \\<tag> in the comment. |"
    ) in req
    assert "| `count` | 2 | optional `uint32` | Maybe a count. |" in req
    assert "| `at` | 3 | `google.protobuf.Timestamp` | When. |" in req
    assert "| `name` | 5 | `string` (oneof `pick`) | Pick a name. |" in req
    assert "| `number` | 6 | `int64` (oneof `pick`) | Or a number. |" in req
    assert (
        "| `colours` | 7 | repeated [`Colour`](#demothingsv1colour) "
        "| **Deprecated.** Many colours. |"
    ) in req
    assert 'Reserved: 4, 9 to 11, "gone".' in req
    assert "LabelsEntry" not in text  # the synthetic map entry is not a documented message

    inner = _section(text, "#### `demo.things.v1.ChatRequest.Inner`")
    assert "[`ChatRequest.Inner.Level`](#demothingsv1chatrequestinnerlevel)" in inner
    level = _section(text, "#### `demo.things.v1.ChatRequest.Inner.Level`")
    assert "| `LEVEL_HIGH` | 1 | High. |" in level
    assert "No fields." in _section(text, "#### `demo.things.v1.ChatResponse`")
    colour = _section(text, "#### `demo.things.v1.Colour`")
    assert "| `COLOUR_RED` | 1 | Red, on two lines. |" in colour
    # Every link points at a heading of the page.
    anchors = {gen.anchor(h) for h in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, target
