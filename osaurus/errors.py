"""One exception hierarchy for the whole core, each class of one kind of failure.

The core (engine, chat, models) raises these and knows nothing of transports: an error says what
went wrong (`kind`), why in machine-readable form (`reason`, e.g. MODEL_NOT_FOUND) and which
request field is at fault. The gRPC servicers turn the kind into a status code
(osaurus.services.grpc_errors), and the REST bridge turns that status into each API's error shape.
"""

from __future__ import annotations

from enum import Enum

ERROR_DOMAIN = "osaurus"


class ErrorKind(Enum):
    """What kind of failure, named after the gRPC codes the contract answers with."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    PERMISSION_DENIED = "permission_denied"
    UNAUTHENTICATED = "unauthenticated"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class OsaurusError(Exception):
    """Base class: a message a person can act on, a kind and a machine-readable reason."""

    kind: ErrorKind = ErrorKind.INTERNAL
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
    kind = ErrorKind.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class ContextLengthExceeded(InvalidArgument):
    reason = "CONTEXT_LENGTH_EXCEEDED"


class ModelNotFound(OsaurusError):
    kind = ErrorKind.NOT_FOUND
    reason = "MODEL_NOT_FOUND"


class NotFound(OsaurusError):
    kind = ErrorKind.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(OsaurusError):
    kind = ErrorKind.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class UnsupportedModel(OsaurusError):
    """A model or file we recognise but cannot run or convert (architecture, tensor type...)."""

    kind = ErrorKind.INVALID_ARGUMENT
    reason = "UNSUPPORTED_MODEL"


class FailedPrecondition(OsaurusError):
    kind = ErrorKind.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class ResourceExhausted(OsaurusError):
    kind = ErrorKind.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class RateLimited(ResourceExhausted):
    """A client past its requests a minute; `retry_after` says when it may come back."""

    reason = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after

    def metadata(self) -> dict[str, str]:
        return {**super().metadata(), "retry_after_seconds": f"{self.retry_after:.0f}"}


class PermissionDenied(OsaurusError):
    kind = ErrorKind.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unauthenticated(OsaurusError):
    kind = ErrorKind.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class Unavailable(OsaurusError):
    kind = ErrorKind.UNAVAILABLE
    reason = "UNAVAILABLE"


class InternalError(OsaurusError):
    kind = ErrorKind.INTERNAL
    reason = "INTERNAL"
