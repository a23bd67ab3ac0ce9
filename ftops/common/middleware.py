"""Request guards that run before any view, and the error envelope for every answer under /api/.

Some bad input never reaches a view's validation: a NUL byte in the path or query string
(PostgreSQL cannot hold NUL in text, so a lookup by name fails with a 500), or a
``?limit=`` past a 64-bit integer (the database refuses the LIMIT, again a 500). They are
refused here, once, for every endpoint, including ones added later. Error answers under
/api/ that did not come from DRF (a plain Django 405, a 413 from the body parser) are
rewritten into the JSON envelope so clients parse one shape only.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.defaults import bad_request

from ftops.common.api_errors import STATUS_CODES, envelope_response, is_api_path

# The offset bound is far past any real list and far below every database's integer limit.
MAX_OFFSET = 2**31 - 1
NUL_MESSAGE = "the URL must not contain NUL (%00) characters"


def max_page_limit() -> int:
    return int(getattr(settings, "FTOPS_API_MAX_PAGE_LIMIT", 1000))


def page_param_errors(query: dict[str, str]) -> dict[str, list[str]]:
    """Problems with ``limit`` and ``offset`` (LimitOffsetPagination's parameters), by name."""
    errors: dict[str, list[str]] = {}
    bounds = {"limit": (1, max_page_limit()), "offset": (0, MAX_OFFSET)}
    for name, (low, high) in bounds.items():
        raw = query.get(name)
        if raw is None:
            continue
        text = raw.strip()
        # int() alone would take "1_000" and " 7 "; a page parameter is plain decimal digits.
        if not text.isascii() or not text.isdigit() or len(text) > 12 or not low <= int(text) <= high:
            errors[name] = [f"{name} must be a whole number from {low} to {high}"]
    return errors


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path or "\x00" in request.path_info:
        return True
    # QUERY_STRING is still percent-encoded; the decoded values are what views see.
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists())


class RequestGuardMiddleware:
    """Refuses NUL bytes anywhere in the URL and bad page parameters under /api/; puts every
    error answer under /api/ in the JSON envelope."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        api = is_api_path(request.path)
        if _has_nul(request):
            if api:
                return envelope_response(400, NUL_MESSAGE, code="bad_request")
            return bad_request(request, ValueError(NUL_MESSAGE))
        if api and request.method in ("GET", "HEAD"):
            errors = page_param_errors({k: request.GET[k] for k in ("limit", "offset") if k in request.GET})
            if errors:
                return envelope_response(422, "the request has invalid fields; see 'fields'",
                                         code="validation_failed", fields=errors)
        response = self.get_response(request)
        if api and response.status_code >= 400 and not _is_json(response):
            return _as_envelope(response)
        return response


def _is_json(response: HttpResponse) -> bool:
    return "json" in str(response.get("Content-Type", "")).lower()


def _as_envelope(response: HttpResponse) -> HttpResponse:
    status = response.status_code
    message = {
        405: "this method is not allowed here",
        413: "the request body is too large",
    }.get(status, f"the request failed ({status})")
    wrapped = envelope_response(status, message, code=STATUS_CODES.get(status, "error"))
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            wrapped[header] = response[header]
    return wrapped

