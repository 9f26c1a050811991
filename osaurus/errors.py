"""One exception hierarchy for the whole core, each class tied to one gRPC status code.

The core (engine, chat, models) raises these and knows nothing of transports; the gRPC servicers
turn them into a rich status (code, message, google.rpc.ErrorInfo with domain "osaurus" and a
reason), and the REST bridge turns that status into OpenAI's error JSON.
"""

from __future__ import annotations

import grpc

ERROR_DOMAIN = "osaurus"


class OsaurusError(Exception):
    """Base class: a message a person can act on, a status code and a machine-readable reason."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.message = message
        # The request field at fault, when there is one (the bridge reports it as OpenAI's `param`).
        self.field = field
        if reason is not None:
            self.reason = reason

    def metadata(self) -> dict[str, str]:
        return {"field": self.field} if self.field else {}


class InvalidArgument(OsaurusError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class ContextLengthExceeded(InvalidArgument):
    reason = "CONTEXT_LENGTH_EXCEEDED"


class ModelNotFound(OsaurusError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "MODEL_NOT_FOUND"


class NotFound(OsaurusError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(OsaurusError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class UnsupportedModel(OsaurusError):
    """A model or file we recognise but cannot run or convert (architecture, tensor type...)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "UNSUPPORTED_MODEL"


class FailedPrecondition(OsaurusError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class ResourceExhausted(OsaurusError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class PermissionDenied(OsaurusError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unavailable(OsaurusError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class InternalError(OsaurusError):
    code = grpc.StatusCode.INTERNAL
    reason = "INTERNAL"
