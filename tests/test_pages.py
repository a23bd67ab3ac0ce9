"""Every page without a path parameter, found from the URL resolver (so a page added later is
walked without touching this test): signed out it asks for a login or answers, signed in it
renders inside the app's layout, and hostile query parameters never reach a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

HOSTILE: list[dict[str, str]] = [
    {"page": "-1"}, {"page": "0"}, {"page": "99999999999999999999"}, {"page": "abc"},
    {"month": "garbage"}, {"month": "9999-12"}, {"month": "0000-01"}, {"month": "2026-13"},
    {"kind": "<not-a-kind>"}, {"status": "<not-a-status>"}, {"service": "no-such-service"},
    {"base": "abc", "other": "-1"}, {"base": "99999999999999999999", "other": "1"},
    {"q": "<script>alert(1)</script>"}, {"sort": "-no_such_field"}, {"limit": "-1"}, {"offset": "1e9"},
]


def page_routes() -> list[str]:
    """Every route outside /api/ and /admin/ that takes no path parameter."""
    found: list[str] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif "<" not in route and not route.startswith(("api/", "admin/", "^")):
                found.append("/" + route)

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


@pytest.fixture
def root(django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("root", "root@example.com", "pw", is_staff=True,
                                                 is_superuser=True)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_the_walk_finds_the_pages() -> None:
    routes = page_routes()
    # Some we know (the newest among them), so a broken walk cannot pass the tests below empty.
    assert {"/", "/review/", "/notifications/", "/notifications/preferences/", "/reports/monthly/",
            "/loop/cycles/", "/evaluation/", "/registry/"} <= set(routes), routes
    assert len(routes) >= 20


def test_signed_out_every_page_asks_for_a_login_or_answers() -> None:
    client = Client(raise_request_exception=False)
    failures = [(route, status) for route in page_routes()
                if (status := client.get(route).status_code) >= 500]
    assert failures == []


def test_signed_in_every_page_renders_in_the_layout(root: Client) -> None:
    failures = []
    for route in page_routes():
        response = root.get(route)
        if response.status_code >= 500:
            failures.append((route, response.status_code))
        elif response.status_code == 200 and response["Content-Type"].startswith("text/html"):
            body = response.content.decode()
            if "<html" in body and 'id="main-nav"' not in body and route not in ("/login/",):
                failures.append((route, "no main navigation"))
    assert failures == []


def test_hostile_query_parameters_never_reach_a_500(root: Client) -> None:
    failures = [(route, params, status) for route in page_routes() for params in HOSTILE
                if (status := root.get(route, params).status_code) >= 500]
    assert failures == []


def test_hostile_query_parameters_on_an_evaluations_pages(root: Client) -> None:
    from ftops.evaluation.models import EvalSuite
    from tests.evaluation.factories import dataset_version, scored_run

    suite = EvalSuite.objects.create(name="v1-test", kind="dataset", dataset_version=dataset_version(), split="test")
    run = scored_run(suite, failed=["1", "2"])
    other = scored_run(suite, failed=["2", "3"])
    pages = [f"/evaluation/runs/{run.pk}/", f"/evaluation/runs/{run.pk}/failures/",
             f"/evaluation/compare/?base={run.pk}&other={other.pk}"]
    params = [*HOSTILE, {"tool_page": "-1"}, {"fixed_page": "x", "regressed_page": "-9"},
              {"category": "\u0661", "error_type": "<b>", "tool": "x" * 5000}]
    failures = [(url, p, status) for url in pages for p in params
                if (status := root.get(url, p).status_code) >= 500]
    assert failures == []


def test_no_page_takes_a_post_without_a_csrf_token(django_user_model: Any) -> None:
    from ftops.common.models import AuditEvent

    user = django_user_model.objects.create_user("root", "root@example.com", "pw", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(user)
    before = AuditEvent.objects.exclude(action__in=["permission.denied", "auth.csrf_failed"]).count()
    accepted = []
    for route in page_routes():
        if route.startswith(("/mcp/", "/.well-known/")):  # API-key endpoints, no session: no CSRF to forge
            continue
        status = client.post(route, {"service": "", "email_gate_failed": "on"}).status_code
        if status not in (403, 405):
            accepted.append((route, status))
    assert accepted == []
    assert AuditEvent.objects.exclude(action__in=["permission.denied", "auth.csrf_failed"]).count() == before


def test_the_actions_on_an_evaluation_failure_need_a_csrf_token(django_user_model: Any) -> None:
    from django.urls import reverse

    from ftops.datasets.models import TrainingExample
    from review.models import ReviewItem
    from tests.evaluation.test_ux_failure_pages import _bfcl_failure

    failure = _bfcl_failure()
    user = django_user_model.objects.create_user("root", "root@example.com", "pw", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(user)
    before = TrainingExample.objects.count()
    for name in ("evaluation:failure-example", "evaluation:failure-review"):
        assert client.post(reverse(name, args=[failure.run_id, failure.pk])).status_code == 403
    assert TrainingExample.objects.count() == before and not ReviewItem.objects.exists()
