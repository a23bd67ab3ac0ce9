"""Domain errors raised by services; ``ftops.common.api_errors`` maps them to API answers."""

from __future__ import annotations

from typing import Any

from rest_framework import status


class FtopsError(Exception):
    """Base of domain errors raised by services; views map them to 4xx answers."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code: str = "bad_request"
    # Seconds a client should wait before retrying; sent as the Retry-After header when set.
    retry_after: int | None = None

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if retry_after is not None:
            self.retry_after = retry_after


class ValidationFailed(FtopsError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "validation_failed"


class Conflict(FtopsError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class NotFound(FtopsError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class NotFoundCrossTenant(NotFound):
    """An object that exists but belongs to another owner (another API key's interactions or
    batches). The answer is the same 404 as for a missing object, so ids do not leak; the API's
    error handler audits it (``AuditAction.NOT_FOUND_CROSS_TENANT``). Raise it from a selector
    only when the object exists, and plain ``NotFound`` otherwise."""

    def __init__(self, message: str, *, object_type: str, object_id: str | int) -> None:
        super().__init__(message)
        self.object_type = object_type
        self.object_id = object_id


class Forbidden(FtopsError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class Unavailable(FtopsError):
    """A dependency (database lock, broker) is busy or down; the same request may succeed later."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "unavailable"
    retry_after = 5
