"""`xenmca serve pcpu --sal`: parsed, a bad value refused in one line, and plain SAL
served by a real process.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import grpc
import pytest
from pcpu_plain_helpers import (
    CMC,
)
from refusals import refused

from xenmca.cli import build_parser
from xenmca.cli import main as xenmca_main
from xenmca.pcpu.model import SalMode
from xenmca.rpc.channels import open_channel
from xenmca.sal.v1 import sal_service_pb2 as sal
from xenmca.sal.v1 import sal_service_pb2_grpc as sal_grpc


def test_serve_pcpu_parses_sal() -> None:
    for argv, expected in (
        (["serve", "pcpu", "--pcpu", "0"], "extended"),
        (["serve", "pcpu", "--pcpu", "0", "--sal", "plain"], "plain"),
        (["serve", "pcpu", "--pcpus", "0-3", "--sal", "extended"], "extended"),
    ):
        args = build_parser(argv).parse_args(argv)
        assert args.sal == expected and SalMode(args.sal) == expected


@pytest.mark.parametrize("value", ["bogus", "PLAIN", ""])
def test_serve_pcpu_refuses_a_bad_sal_in_one_line(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        xenmca_main(["serve", "pcpu", "--pcpu", "0", "--sal", value])
    assert raised.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--sal" in err and "plain" in err and "extended" in err, err


@pytest.mark.slow
async def test_serve_pcpu_with_sal_plain_serves_plain_sal() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xenmca.cli",
        "serve",
        "pcpu",
        "--pcpu",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--sal",
        "plain",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        serving = ""
        async with asyncio.timeout(30):
            while "serving pCPUs" not in serving:
                line = await process.stderr.readline()
                assert line, "serve exited before serving"
                serving = line.decode()
        assert "plain SAL" in serving, serving
        found = re.search(r"on (127\.0\.0\.1:\d+)", serving)
        assert found is not None, serving
        async with open_channel(found.group(1)) as channel:
            stub = sal_grpc.SalServiceStub(channel)
            reply = await stub.DescribePcpu(sal.DescribePcpuRequest(), timeout=10)
            assert (reply.pcpu, reply.sal_mode) == (2, sal.SAL_MODE_PLAIN)
            await stub.InjectError(sal.InjectErrorRequest(type=CMC, count=1), timeout=10)
            await refused(
                stub.ClearStateInfo(sal.ClearStateInfoRequest(type=CMC, record_id=1), timeout=10),
                grpc.StatusCode.FAILED_PRECONDITION,
                "PLAIN_SAL_NO_CLEAR_BY_ID",
            )
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await process.stderr.read()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
