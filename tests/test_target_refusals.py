"""`xenmca run --target` refuses an unusable inventory in one line, exit 2, starting nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xenmca.cli import main
from xenmca.rpc.identity import TokenBook


def _inventory(tmp_path: Path, *, db: bool = True, pcpus: int = 8) -> Path:
    tokens = tmp_path / "tokens.json"
    TokenBook.generate().save(tokens)
    log = tmp_path / "dom0.sqlite"
    log.write_bytes(b"")
    path = tmp_path / "target.json"
    path.write_text(
        json.dumps(
            {
                "xen": {"address": "127.0.0.1:9", "agent": "127.0.0.1:9"},
                "dom0": {"agent": "127.0.0.1:9", **({"db": str(log)} if db else {})},
                "pcpu_hosts": [{"name": "pcpu-host0", "pcpus": [0], "agent": "127.0.0.1:9"}],
                "pcpus": {str(p): f"127.0.0.1:{10 + p}" for p in range(pcpus)},
                "token_file": str(tokens),
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda tmp: tmp / "missing.json", "not a usable inventory"),
        (lambda tmp: _inventory(tmp, db=False), "dom0's log"),
        (lambda tmp: _inventory(tmp, pcpus=4), "the scenario has 8 pCPUs"),
    ],
    ids=["missing", "no-dom0-log", "other-pcpus"],
)
def test_an_unusable_inventory_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, words: str
) -> None:
    out = tmp_path / "results"
    assert main(["run", "demo", "--target", str(make(tmp_path)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xenmca run: error: --target:") and words in err
    assert err.count("\n") == 1


def test_target_does_not_go_with_virtual_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = _inventory(tmp_path)
    assert main(["run", "demo", "--target", str(inventory), "--virtual-time"]) == 2
    assert "no --virtual-time or --tls" in capsys.readouterr().err
