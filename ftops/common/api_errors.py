"""The API's error envelope.

Every API error has the shape ``{"error": {"code", "message", "fields"?}}`` so clients can
show the message and point at the field to fix.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ftops.common.errors import FtopsError, NotFoundCrossTenant

API_PREFIX = "/api/"

# The envelope's code for an error answer that did not come from our own handler (a plain
# Django 405, a 413 from the request parser, a 500 page ...).
STATUS_CODES = {
    400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "request_too_large",
    415: "unsupported_media_type", 422: "validation_failed", 429: "throttled", 500: "server_error",
    502: "bad_gateway", 503: "service_unavailable", 504: "gateway_timeout",
}


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX)


def envelope_response(status_code: int, message: str, *, code: str | None = None,
                      fields: dict[str, Any] | None = None) -> JsonResponse:
    """An error answer in the envelope, for code that runs outside DRF (middleware, handlers)."""
    return JsonResponse(error_body(code or STATUS_CODES.get(status_code, "error"), message, fields),
                        status=status_code)


def wants_envelope(request: HttpRequest) -> bool:
    return is_api_path(request.path_info or request.path)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, NotFoundCrossTenant):
        _audit_cross_tenant(exc, context)
    if isinstance(exc, FtopsError):
        answer = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
        if exc.retry_after is not None:
            answer["Retry-After"] = str(exc.retry_after)
        return answer
    if isinstance(exc, exceptions.NotAuthenticated) and context.get("request") is not None:
        # No credentials at all; a bad key is counted where it is checked (ApiKeyAuthentication).
        from ftops.common.auth import auth_failure

        wait = auth_failure(context["request"], reason="missing")
        if wait:
            exc = exceptions.Throttled(wait=wait, detail="too many failed authentications; try again later")
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        response.data = error_body("validation_failed", "the request has invalid fields; see 'fields'", fields)
        if response.status_code == status.HTTP_400_BAD_REQUEST:
            response.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "error"
        response.data = error_body(str(code), str(exc.detail))
    return response


def _audit_cross_tenant(exc: NotFoundCrossTenant, context: dict[str, Any]) -> None:
    """One aggregated audit row per caller, object type and window: a caller walking through
    another owner's ids is visible in the log without one row per probe."""
    from ftops.common.actors import actor_for
    from ftops.common.auth import audit_aggregated
    from ftops.common.models import AuditAction

    request = context.get("request")
    if request is None:
        return
    actor = actor_for(request)
    audit_aggregated(
        action=AuditAction.NOT_FOUND_CROSS_TENANT,
        by=actor,
        group=(actor.label, actor.ip or "", exc.object_type),
        object_type=exc.object_type,
        object_id=str(exc.object_id),
        detail={"method": request.method, "path": request.path},
    )
