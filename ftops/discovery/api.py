"""``/mcp/training-dataset``, ``/mcp/test-dataset`` and ``/mcp/schema``.

The datasets answer only API keys holding the ``ml_orchestrator`` role themselves (an admin key
does not inherit it: pulling training data out is a separate decision), and only for services
whose publishing settings share with orchestrators. Each key has an hourly request budget
(``FTOPS_MCP_RATE_PER_HOUR``). Every answer and every refusal is audited with the caller, the
service, what was read and how much. Answers carry an ETag of their body.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.actors import actor_for
from ftops.common.errors import FtopsError
from ftops.common.models import ApiKey, Role
from ftops.common.schema import ApiSchema
from ftops.discovery import selectors, services


class JsonOnly(DefaultContentNegotiation):
    """Always JSON: ``?format=`` names the dataset format here, not DRF's renderer override."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


PAGE_PARAMETERS = [
    OpenApiParameter("service", str, required=True, description="The service's name"),
    OpenApiParameter("format", str, enum=list(selectors.FORMATS), description="Training line format"),
    OpenApiParameter("cursor", str, description="next_cursor (or resume_cursor) of an earlier page"),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Only examples changed since then"),
    OpenApiParameter("limit", int, description=f"1 to {selectors.MAX_LIMIT}"),
]


def _etag(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _refuse(request: Request, *, code: int, service: str, what: str, reason: str,
            headers: dict[str, str] | None = None) -> Response:
    services.dataset_access_audit(by=actor_for(request), service=service, what=what, allowed=False,
                                  detail={"reason": reason, "status": code, "query": dict(request.query_params)})
    slug = {401: "not_authenticated", 403: "forbidden", 404: "not_found", 422: "validation_failed",
            429: "throttled"}.get(code, "bad_request")
    return Response({"error": {"code": slug, "message": reason}}, status=code, headers=headers)


class _DatasetSchema(ApiSchema):
    """The checks run inside the view (so refusals are audited with their service): document them."""

    def _error_codes(self, operation: dict[str, Any]) -> list[str]:
        return sorted({*super()._error_codes(operation), "401", "403", "404", "429"})


class _DatasetView(APIView):
    schema = _DatasetSchema()
    permission_classes = [permissions.AllowAny]  # checked below, so a refusal is audited with its service
    content_negotiation_class = JsonOnly
    throttle_classes: list[Any] = []  # the hourly per-key budget below replaces the global rate
    what = ""

    def page(self, service: Any, page: selectors.PageRequest) -> dict[str, Any]:
        raise NotImplementedError

    def get(self, request: Request) -> Response:
        name = str(request.query_params.get("service") or "")
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is None:
            return _refuse(request, code=401, service=name, what=self.what,
                           reason="send an API key with the ml_orchestrator role (Authorization: Bearer ftk_…)")
        if Role.ML_ORCHESTRATOR not in key.roles:
            return _refuse(request, code=403, service=name, what=self.what,
                           reason="this endpoint needs an API key with the ml_orchestrator role")
        wait = services.dataset_rate_check(caller=f"key-{key.pk}")
        if wait is not None:
            return _refuse(request, code=429, service=name, what=self.what, headers={"Retry-After": str(wait)},
                           reason="hourly request budget of this key is spent; try again later")
        if not name:
            return _refuse(request, code=400, service="", what=self.what, reason="pass ?service=<name>")
        try:
            service = selectors.service_or_404(name)
            if not selectors.publishing_for(service).share_with_orchestrators:
                return _refuse(request, code=403, service=name, what=self.what,
                               reason=f"service {name} does not share its training data with orchestrators")
            request_page = selectors.parse_page_request(request.query_params)
            body = self.page(service, request_page)
        except FtopsError as exc:
            return _refuse(request, code=exc.status_code, service=name, what=self.what, reason=str(exc))
        etag = _etag(body)
        not_modified = etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]
        services.dataset_access_audit(
            by=actor_for(request), service=name, what=self.what, allowed=True,
            detail={"count": 0 if not_modified else body["count"], "format": request_page.fmt,
                    "cursor": request.query_params.get("cursor", ""), "since": request.query_params.get("since", ""),
                    "not_modified": not_modified, "redactions": body.get("redactions", 0)})
        if not_modified:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(body, headers={"ETag": etag, "Cache-Control": "private, no-cache"})


class TrainingDatasetApi(_DatasetView):
    what = "training-dataset"

    @extend_schema(operation_id="mcp_training_dataset", parameters=PAGE_PARAMETERS,
                   responses={200: OpenApiTypes.OBJECT, 304: None})
    def get(self, request: Request) -> Response:
        return super().get(request)

    def page(self, service: Any, page: selectors.PageRequest) -> dict[str, Any]:
        return selectors.training_page(service, page)


class TestDatasetApi(_DatasetView):
    what = "test-dataset"

    @extend_schema(operation_id="mcp_test_dataset", parameters=PAGE_PARAMETERS,
                   responses={200: OpenApiTypes.OBJECT, 304: None})
    def get(self, request: Request) -> Response:
        return super().get(request)

    def page(self, service: Any, page: selectors.PageRequest) -> dict[str, Any]:
        return selectors.test_page(service, page)


class SchemaApi(APIView):
    """The service's tools in MCP's ``tools/list`` shape: tool schemas are public, like the document."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list[Any] = []

    # Public and unauthenticated like the .well-known document; the API schema lists authenticated operations.
    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        name = str(request.query_params.get("service") or "")
        if not name:
            return Response({"error": {"code": "bad_request", "message": "pass ?service=<name>"}}, status=400)
        service = selectors.service_or_404(name)
        body = selectors.tools_schema(service)
        etag = _etag(body)
        if etag in request.headers.get("If-None-Match", ""):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        return Response(body, headers={"ETag": etag})
