"""`xenmca` as a real process for the CLI tests: its exit status and both outputs.

The token file variable is removed from its environment, so each test names the
credentials it means to use.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from xenmca.rpc.identity import TOKEN_FILE_ENV


@dataclass
class Result:
    code: int
    out: str
    err: str


async def xenmca(*args: str, stdin: bytes | None = None) -> Result:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "xenmca.cli",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != TOKEN_FILE_ENV},
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())
