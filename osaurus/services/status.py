"""Map the core's OsaurusError onto a rich gRPC status: code, message, google.rpc.ErrorInfo."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from osaurus.errors import ERROR_DOMAIN, InternalError, OsaurusError

log = logging.getLogger(__name__)


def to_rpc_status(error: OsaurusError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata()
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=[detail])
    return rpc_status.to_status(status)


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
