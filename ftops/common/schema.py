"""OpenAPI schema generation that matches what the API really answers.

Two things drf-spectacular cannot infer from our one-``APIView``-per-operation style:

* **Paginated lists.** Our list views page with the default DRF paginator by hand, so
  drf-spectacular sees a plain ``APIView`` and documents a bare array. ``paginated(Out)`` in
  ``@extend_schema(responses=...)`` marks the list as paged: the schema then shows the
  paginator's envelope (``{count, next, previous, results}``) and its query parameters, taken
  from ``REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"]`` so schema and answers cannot drift apart.
* **Nullable answers.** A response field declared with ``default=None`` (how we read a field
  through an optional relation) is documented as nullable, as DRF answers null there.
* **Errors.** Every error under ``/api/`` is the envelope of ``ftops.common.api_errors``;
  ``ApiSchema`` documents it for each status code an operation can produce, judged from the
  view (authentication, permissions, throttles) and the operation (path variables, body,
  query parameters, unsafe method). Codes an operation documents itself are kept.
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent, is_list_serializer
from rest_framework import serializers
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.settings import api_settings

_PAGINATED = "_ftops_paginated"

# The largest value a Django IntegerField column holds on every backend (PostgreSQL's integer).
# Input fields stored in, or compared with, such a column declare it as their bound, so a larger
# number is a documented 422 instead of a database error.
DB_INT_MAX = 2**31 - 1

ERROR_COMPONENT = "Error"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error: a stable machine-readable code, a message for people and, for "
                   "invalid input, the offending fields.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "e.g. validation_failed, not_found, conflict"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "Field name -> what is wrong with it (messages, or nested fields)",
                },
            },
            "required": ["code", "message"],
        },
    },
    "required": ["error"],
}

# Why each code can happen; the description shown for it in the schema.
ERROR_DESCRIPTIONS = {
    "400": "Malformed request (e.g. a body that is not JSON)",
    "401": "No credentials, or an unknown or revoked API key",
    "403": "Authenticated, but without a role this operation needs (or a failed CSRF check)",
    "404": "The object named in the path does not exist or is not visible to the caller",
    "409": "The request conflicts with the object's current state",
    "422": "Invalid fields; 'fields' says which and why",
    "429": "Too many requests; retry after the time given in Retry-After",
    "503": "Temporarily unable to accept the write durably; retry after the time given in Retry-After",
}

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class SessionSubclassScheme(SessionScheme):
    """Session authentication subclasses (e.g. one that audits CSRF refusals) are still the
    session cookie to a client; drf-spectacular's own extension matches the exact class only."""

    match_subclasses = True
    priority = -2


def paginated(serializer: type[serializers.BaseSerializer]) -> serializers.ListSerializer:
    """The response of a paged list of ``serializer`` rows, for ``extend_schema(responses=...)``."""
    # ``many=True`` makes DRF build a ListSerializer, which the stubs cannot see.
    many = cast(serializers.ListSerializer, serializer(many=True))
    setattr(many, _PAGINATED, True)
    return many


def is_paginated(serializer: Any) -> bool:
    return is_list_serializer(serializer) and bool(getattr(serializer, _PAGINATED, False))


def api_paginator() -> BasePagination:
    """The paginator the list views use, so the documented envelope is the one they send."""
    pagination_class = cast(type[BasePagination] | None, api_settings.DEFAULT_PAGINATION_CLASS)
    return (pagination_class or LimitOffsetPagination)()


class ApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus paginated lists and the error envelope (see module doc)."""

    _ftops_paging = False

    # --- paginated lists ---------------------------------------------------------------------

    def _main_response_serializer(self) -> Any:
        responses = self.get_response_serializers()
        if isinstance(responses, dict):
            ok = sorted(str(code) for code in responses if str(code).startswith("2"))
            if not ok:
                return None
            return {str(code): s for code, s in responses.items()}[ok[0]]
        return responses

    def _get_paginator(self) -> Any:
        paginator = super()._get_paginator()
        if paginator is None and self._ftops_paging:
            return api_paginator()
        return paginator

    def _get_pagination_parameters(self) -> Any:
        self._ftops_paging = is_paginated(self._main_response_serializer())
        try:
            return super()._get_pagination_parameters()
        finally:
            self._ftops_paging = False

    def _get_response_for_code(self, serializer: Any, status_code: Any, media_types: Any = None,
                               direction: Any = "response") -> Any:
        self._ftops_paging = is_paginated(serializer)
        try:
            return super()._get_response_for_code(serializer, status_code, media_types, direction)
        finally:
            self._ftops_paging = False

    # --- nullable response fields ----------------------------------------------------------------

    def _get_serializer_field_meta(self, field: Any, direction: Any) -> dict[str, Any]:
        meta: dict[str, Any] = super()._get_serializer_field_meta(field, direction)
        # ``CharField(source="tool.name", default=None)`` is our idiom for "the name of an
        # optional relation": DRF answers null when the relation is missing, so say so.
        if direction == "response" and isinstance(field, serializers.Field) and field.default is None:
            meta["nullable"] = True
        return meta

    # --- errors ---------------------------------------------------------------------------------

    def _error_codes(self, operation: dict[str, Any]) -> list[str]:
        codes: list[str] = []
        permissions = self.view.get_permissions()
        needs_auth = not all(isinstance(p, AllowAny) for p in permissions)
        if needs_auth:
            codes += ["401", "403"]
        params = operation.get("parameters", [])
        has_body = "requestBody" in operation
        has_query = any(p.get("in") == "query" for p in params)
        if has_body:
            codes.append("400")
        if any(p.get("in") == "path" for p in params):
            codes.append("404")
        if self.method in _UNSAFE:
            codes += ["409", "503"]
        if has_body or has_query:
            codes.append("422")
        if self.view.get_throttles():
            codes.append("429")
        return sorted(set(codes))

    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str,
                      registry: Any) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        component = ResolvedComponent(name=ERROR_COMPONENT, type=ResolvedComponent.SCHEMA,
                                      object=ERROR_COMPONENT, schema=ERROR_SCHEMA)
        registry.register_on_missing(component)
        responses = operation["responses"]
        for code in self._error_codes(operation):
            if code in responses:
                continue
            responses[code] = {
                # Errors are JSON whatever the operation's own media type (the exception handler's).
                "content": {"application/json": {"schema": component.ref}},
                "description": ERROR_DESCRIPTIONS[code],
            }
        operation["responses"] = dict(sorted(responses.items()))
        return operation
