"""Rich gRPC errors: a canonical status code with a google.rpc.Status carrying one ErrorInfo."""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "xenmca.dev"


class RequestError(Exception):
    """A request that must be refused: the servicer turns it into a rich status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata or {}


def invalid_argument(reason: str, message: str, **metadata: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, reason, message, metadata)


def rich_status(error: RequestError) -> grpc.Status:
    """The grpc.Status (code, message, grpc-status-details-bin) for an error."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name),
        message=error.message,
        details=[detail],
    )
    return rpc_status.to_status(status)


async def abort(context: grpc.aio.ServicerContext, error: RequestError) -> NoReturn:
    """Abort the current call with the error's rich status."""
    await context.abort_with_status(rich_status(error))
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def error_info_of(
    error: grpc.aio.AioRpcError | grpc.RpcError,
) -> error_details_pb2.ErrorInfo | None:
    """Extract the ErrorInfo from a failed call's trailing metadata, if there is one."""
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None
