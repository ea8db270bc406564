"""A refused call, as the pCPU tests check it: the status code, one ErrorInfo of the
project's domain with the reason (and the field, when given), a one-line message."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc
import pytest

from xenmca.rpc.errors import error_info_of


async def refused(
    call: Awaitable[object], code: grpc.StatusCode, reason: str, field: str | None = None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    info = error_info_of(raised.value)
    assert info is not None and info.reason == reason, info
    assert info.domain == "xenmca.dev"
    if field is not None:
        assert info.metadata["field"] == field, info
    assert len((raised.value.details() or "").splitlines()) == 1
    return raised.value
