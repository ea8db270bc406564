"""The breaking-change check (scripts/check_breaking.sh): run in a temporary git repository
made of the repository's protos, it fails on a field renamed or renumbered in an existing
package, passes when the change goes into a new package version, and skips when there is no
previous commit to compare."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from api_docs_helpers import PROTOS, ROOT

CHECK = ROOT / "scripts" / "check_breaking.sh"


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
