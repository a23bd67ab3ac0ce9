"""Pagination helpers, health check, and the error pages (JSON under /api/).

The home dashboard lives in ``ftops.home`` (it reads every app; common is the lowest floor)."""

from __future__ import annotations

from typing import Any, cast

from django.core.paginator import Page
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

from ftops.common.api_errors import envelope_response, wants_envelope
from ftops.common.selectors import CappedPaginator


class LinkedPage(Page):
    """A page that knows its query parameter and the rest of the query string, so one page's
    links keep the filters and the other tables' pages (templates/common/_pagination.html)."""

    param = "page"
    query = ""


class _LinkedPaginator(CappedPaginator):
    def _get_page(self, *args: Any, **kwargs: Any) -> LinkedPage:
        return LinkedPage(*args, **kwargs)


def paginate(request: HttpRequest, object_list: Any, per_page: int, *, param: str = "page",
             cap: int = 10_000) -> LinkedPage:
    """The requested page of a queryset or list (``CappedPaginator``: no exact count past ``cap``).

    Several tables on one page each take their own ``param``; render the links with
    ``{% include "common/_pagination.html" with page=… noun=… anchor=… %}``.
    """
    page = cast(LinkedPage, _LinkedPaginator(object_list, per_page, cap=cap).get_page(request.GET.get(param)))
    query = request.GET.copy()
    query.pop(param, None)
    page.param = param
    page.query = query.urlencode()
    return page


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


# --- error pages: the JSON envelope under /api/, the app's pages elsewhere ------------------
# Wired in ftops/urls.py (handler400/403/404/500) and settings.CSRF_FAILURE_VIEW. They run
# outside DRF, so they build the envelope themselves.


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_envelope(request):
        return envelope_response(400, "the request is malformed")
    return defaults.bad_request(request, exception)  # type: ignore[arg-type]


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_envelope(request):
        return envelope_response(403, "you may not do this")
    return defaults.permission_denied(request, exception)  # type: ignore[arg-type]


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_envelope(request):
        return envelope_response(404, "no such endpoint or object; see /api/v1/docs")
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_envelope(request):
        return envelope_response(500, "internal error; it has been logged")
    return defaults.server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: audit the refusal, then answer the usual 403.

    Audited in aggregate (one row per address, path and reason per window with a count): a
    page that loses its token, or a forged form posted in a loop, must not flood the log."""
    from ftops.common.actors import actor_for
    from ftops.common.auth import audit_aggregated
    from ftops.common.models import AuditAction

    actor = actor_for(request)
    path = request.path[:200]
    audit_aggregated(action=AuditAction.CSRF_FAILED, by=actor, group=(actor.ip or "", path, reason),
                     object_type="endpoint", object_id=path, detail={"reason": reason, "method": request.method})
    if wants_envelope(request):
        return envelope_response(403, f"CSRF check failed: {reason}", code="csrf_failed")
    return render(request, "403.html", {"reason": "The form has expired or did not come from this site. "
                                                  "Reload the page and try again."}, status=403)
