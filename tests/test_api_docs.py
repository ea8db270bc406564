"""The API reference (protos/README.md) and the breaking-change check (scripts/check_breaking.sh).

- protos/README.md is what scripts/gen_api_docs.py makes from the protos now, and it
  documents every package, service, RPC, message, field, enum and value of every .proto.
- The generator renders maps, oneofs, optional, nested types, streams, reserved numbers
  and awkward comments correctly (on protos made here).
- check_breaking.sh, run in a temporary git repository made of the repository's protos,
  fails on a field renamed or renumbered in an existing package, passes when the change
  goes into a new package version, and skips when there is no previous commit to compare.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
README = PROTOS / "README.md"
GEN = ROOT / "scripts" / "gen_api_docs.py"
CHECK = ROOT / "scripts" / "check_breaking.sh"


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


# ---------------------------------------------------------------------------
# buf breaking against the previous commit


def _find_buf() -> str | None:
    for candidate in (
        os.environ.get("BUF"),
        shutil.which("buf"),
        "/opt/buf/node_modules/.bin/buf",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


BUF = _find_buf()
needs_buf = pytest.mark.skipif(
    BUF is None,
    reason="buf is not installed (set BUF, put buf on PATH, or npm install @bufbuild/buf)",
)
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=xenmca test",
            "-c",
            "user.email=test@xenmca.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


def _repo_with_protos(tmp_path: Path) -> Path:
    """A git repository whose first commit holds buf.yaml, the check script and every .proto."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "buf.yaml", repo / "buf.yaml")
    shutil.copy2(CHECK, repo / "scripts" / "check_breaking.sh")
    for proto in PROTOS.rglob("*.proto"):
        dest = repo / "protos" / proto.relative_to(PROTOS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(proto, dest)
    _git(repo, "init", "-q")
    _commit(repo, "protos")
    return repo


def _run_check(repo: Path) -> subprocess.CompletedProcess[str]:
    assert BUF is not None
    env = {**os.environ, "BUF": BUF}
    return subprocess.run(
        ["bash", "scripts/check_breaking.sh"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


_FIELD = re.compile(r"^(\s+)(uint32|uint64|int32|int64|bool|string|bytes) (\w+) = (\d+);", re.M)


def _edit_first_field(path: Path, how: str) -> str:
    """Renames or renumbers the first scalar field in the file; returns the field's name."""
    text = path.read_text(encoding="utf-8")
    m = _FIELD.search(text)
    assert m, f"no scalar field in {path}"
    indent, kind, name, number = m.groups()
    if how == "rename":
        new = f"{indent}{kind} {name}_renamed = {number};"
    else:
        new = f"{indent}{kind} {name} = {int(number) + 1000};"
    path.write_text(text[: m.start()] + new + text[m.end() :], encoding="utf-8")
    return name


@needs_buf
@needs_git
@pytest.mark.parametrize("how", ["rename", "renumber"])
def test_breaking_change_in_an_existing_package_fails(tmp_path: Path, how: str) -> None:
    repo = _repo_with_protos(tmp_path)
    record = repo / "protos" / "xenmca" / "record" / "v1" / "record.proto"
    name = _edit_first_field(record, how)
    _commit(repo, f"{how} a field")

    result = _run_check(repo)
    assert result.returncode != 0, result.stdout + result.stderr
    assert result.returncode == 100  # buf's code for breaking changes found
    assert "record.proto" in result.stdout and name in result.stdout
    assert "new package version" in result.stderr


@needs_buf
@needs_git
def test_the_same_change_in_a_new_package_version_passes(tmp_path: Path) -> None:
    repo = _repo_with_protos(tmp_path)
    v1 = repo / "protos" / "xenmca" / "sal" / "v1" / "sal_service.proto"
    v2 = repo / "protos" / "xenmca" / "sal" / "v2" / "sal_service.proto"
    v2.parent.mkdir()
    v2.write_text(
        v1.read_text(encoding="utf-8").replace("package xenmca.sal.v1;", "package xenmca.sal.v2;"),
        encoding="utf-8",
    )
    _edit_first_field(v2, "rename")
    _commit(repo, "xenmca.sal.v2 with a renamed field")

    result = _run_check(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no breaking changes" in result.stdout


@needs_buf
@needs_git
def test_skips_without_a_previous_commit_or_without_protos_there(tmp_path: Path) -> None:
    repo = _repo_with_protos(tmp_path)
    first = _run_check(repo)
    assert first.returncode == 0, first.stderr
    assert "skipped" in first.stdout and "first commit" in first.stdout

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("before the protos\n", encoding="utf-8")
    _git(other, "init", "-q")
    _commit(other, "no protos yet")
    shutil.copytree(repo / "protos", other / "protos")
    shutil.copytree(repo / "scripts", other / "scripts")
    shutil.copy2(repo / "buf.yaml", other / "buf.yaml")
    _commit(other, "protos arrive")
    result = _run_check(other)
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stdout and "has no protos/ directory" in result.stdout
