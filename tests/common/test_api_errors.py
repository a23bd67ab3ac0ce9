"""Every error under /api/ is the JSON envelope, and hostile URLs never reach a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from ftops.common.services import api_key_create

HUGE = "99999999999999999999999"  # past a 64-bit integer


def _envelope(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = json.loads(response.content)
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


def _api_get_routes() -> list[str]:
    """Every GET endpoint under /api/v1/ that takes no path parameter, from the URL resolver, so
    an endpoint added later is covered without touching this test."""
    found: list[str] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
                continue
            view = getattr(pattern.callback, "cls", None)
            if (route.startswith("api/v1/") and "<" not in route and isinstance(view, type)
                    and issubclass(view, APIView) and hasattr(view, "get")):
                found.append("/" + route)

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


@pytest.fixture
def admin_client(db: Any) -> Client:
    issued = api_key_create(name="errors-admin", roles=["admin"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {issued.secret}", raise_request_exception=False)


def test_the_resolver_finds_the_list_endpoints() -> None:
    routes = _api_get_routes()
    # A few we know, so a broken walk cannot pass the test below with an empty list.
    assert {"/api/v1/keys", "/api/v1/audit", "/api/v1/examples", "/api/v1/datasets"} <= set(routes)
    assert len(routes) >= 10


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [HUGE, "-1", "0", "abc", "1.5", "1e3", "١٢", "1001"])
def test_every_get_endpoint_refuses_a_bad_limit_with_the_envelope(admin_client: Client, limit: str) -> None:
    failures = []
    for route in _api_get_routes():
        response = admin_client.get(route, {"limit": limit})
        if response.status_code != 422:
            failures.append((route, response.status_code))
            continue
        error = _envelope(response)
        assert error["code"] == "validation_failed"
        assert list(error["fields"]) == ["limit"]
    assert failures == []


@pytest.mark.django_db
def test_a_huge_offset_is_refused_and_good_pages_still_work(admin_client: Client) -> None:
    for route in ("/api/v1/keys", "/api/v1/audit", "/api/v1/examples", "/api/v1/datasets"):
        error = _envelope(admin_client.get(route, {"offset": HUGE}))
        assert list(error["fields"]) == ["offset"]
        ok = admin_client.get(route, {"limit": "1000", "offset": "5"})
        assert ok.status_code == 200, (route, ok.content[:200])
        assert set(ok.json()) == {"count", "next", "previous", "results"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "/api/v1/datasets/%00", "/api/v1/datasets/1%00/export", "/api/v1/catalog/services/a%00b/tools",
    "/api/v1/interactions/x%00y", "/api/v1/keys?action=%00",
])
def test_a_nul_byte_in_an_api_url_is_a_400_envelope(admin_client: Client, path: str) -> None:
    response = admin_client.get(path)
    assert response.status_code == 400
    assert "NUL" in _envelope(response)["message"]


@pytest.mark.django_db
def test_a_nul_byte_in_a_page_url_is_a_plain_400(admin_client: Client) -> None:
    response = admin_client.get("/catalog/services/a%00b")
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.django_db
def test_api_404_and_405_use_the_envelope(admin_client: Client) -> None:
    missing = admin_client.get("/api/v1/no-such-endpoint")
    assert missing.status_code == 404 and _envelope(missing)["code"] == "not_found"
    wrong_method = admin_client.delete("/api/v1/keys")
    assert wrong_method.status_code == 405 and _envelope(wrong_method)["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_page_404_stays_html(admin_client: Client) -> None:
    response = admin_client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
@pytest.mark.urls("tests.common.boom_urls")
def test_an_unhandled_exception_is_a_500_envelope_under_api_and_a_page_elsewhere() -> None:
    client = Client(raise_request_exception=False)
    api = client.get("/api/v1/boom")
    assert api.status_code == 500
    assert _envelope(api) == {"code": "server_error", "message": "internal error; it has been logged"}
    page = client.get("/boom")
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")
    # A plain Django view under /api/ that answers an HTML error gets the envelope too.
    plain = client.post("/api/v1/plain-get-only")
    assert plain.status_code == 405 and _envelope(plain)["code"] == "method_not_allowed"
    assert plain["Allow"] == "GET"


@pytest.mark.django_db
@pytest.mark.urls("tests.common.boom_urls")
def test_a_cross_tenant_404_looks_like_any_404_and_is_audited_in_aggregate() -> None:
    from ftops.common.models import AuditAction, AuditEvent

    issued = api_key_create(name="tenant-b", roles=["ingest"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    hidden = [client.get("/api/v1/hidden/1") for _ in range(5)]
    missing = client.get("/api/v1/hidden/2")
    assert {r.status_code for r in hidden} == {404} and missing.status_code == 404
    # Same shape and wording as a missing object, so a probe learns nothing.
    assert _envelope(hidden[0]) == {"code": "not_found", "message": "no thing 1"}
    assert _envelope(missing) == {"code": "not_found", "message": "no thing 2"}
    (row,) = AuditEvent.objects.filter(action=AuditAction.NOT_FOUND_CROSS_TENANT)
    assert (row.actor, row.api_key_id, row.object_type, row.object_id) == (
        f"key:{issued.api_key.prefix}", issued.api_key.pk, "thing", "1")
    assert (row.detail["count"], row.detail["path"], row.detail["method"]) == (5, "/api/v1/hidden/1", "GET")
