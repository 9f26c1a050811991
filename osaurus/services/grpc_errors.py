"""The core's errors as rich gRPC statuses: code, message, google.rpc.ErrorInfo (domain
"osaurus", the error's reason, the field at fault). The only place that maps them to gRPC."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from osaurus.errors import ERROR_DOMAIN, ErrorKind, InternalError, OsaurusError
from osaurus.request_id import HEADER, REQUEST_ID

log = logging.getLogger(__name__)

STATUS_CODES = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}


@dataclasses.dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def rich_status(
    code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str] | None = None
) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    converted = rpc_status.to_status(status)
    # The request's id goes back with its error too (abort replaces the trailing metadata).
    trailing = (*converted.trailing_metadata, (HEADER, REQUEST_ID.get()))
    return _Status(converted.code, converted.details, trailing)


def to_rpc_status(error: OsaurusError) -> grpc.Status:
    return rich_status(STATUS_CODES[error.kind], error.message, error.reason, error.metadata())


async def abort(context: grpc.aio.ServicerContext, error: OsaurusError) -> None:
    await context.abort_with_status(to_rpc_status(error))


def _unexpected(exc: Exception) -> OsaurusError:
    log.exception("unexpected error in a servicer")
    return InternalError(f"internal error: {type(exc).__name__}: {exc}")


def maps_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a servicer method (unary or server-streaming) so core errors become statuses."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):
            try:
                async for item in method(self, request, context):
                    yield item
            except OsaurusError as exc:
                await abort(context, exc)
            except Exception as exc:
                await abort(context, _unexpected(exc))

        return stream_wrapper

    @functools.wraps(method)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext):
        try:
            return await method(self, request, context)
        except OsaurusError as exc:
            await abort(context, exc)
        except Exception as exc:
            await abort(context, _unexpected(exc))

    return unary_wrapper
