"""The home dashboard (ftops.home): counts, failure rates by service and kind, charts, the registry and loop
cards, empty states, query count."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from ftops.catalog.models import Service
from ftops.home.selectors import home_dashboard
from review.models import ReviewItem, ReviewStatus
from review.services import review_items_enqueue_failures
from tests.review.factories import add_tool, make_interaction, make_payments


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    cache.clear()  # the dashboard caches its figures for a minute


@pytest.fixture
def logged_in(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def seed() -> None:
    now = timezone.now()
    payments = make_payments()
    orders = Service.objects.create(name="orders")
    add_tool(orders, "get_order", {"type": "object", "properties": {"order_id": {"type": "string"}}})
    for n in range(3):
        make_interaction(payments, when=now - timedelta(hours=2 + n), failure_kind="type_error")
    make_interaction(payments, when=now - timedelta(hours=1), is_failure=False)
    make_interaction(orders, when=now - timedelta(days=3), is_failure=False, calls=[])
    make_interaction(orders, when=now - timedelta(days=3), failure_kind="unknown_tool", calls=[])
    make_interaction(orders, when=now - timedelta(days=20), failure_kind="value_error", calls=[])
    make_interaction(orders, when=now - timedelta(days=60), failure_kind="value_error", calls=[])


def chart(body: str, name: str) -> Any:
    found = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', body)
    assert found is not None, f"no {name} config on the page"
    return json.loads(found.group(1))


def test_dashboard_numbers(db) -> None:
    seed()
    review_items_enqueue_failures()
    dash = home_dashboard()
    assert dash["days"] == 7
    assert (dash["services"], dash["tools"], dash["last_24h"], dash["last_7d"]) == (2, 4, 4, 6)
    assert (dash["window_total"], dash["window_failures"], dash["window_failure_rate"]) == (6, 4, 66.7)
    assert dash["per_service"] == [
        {"name": "payments", "total": 4, "failures": 3, "failure_rate": 75.0},
        {"name": "orders", "total": 2, "failures": 1, "failure_rate": 50.0},
    ]
    assert dash["by_kind"] == [{"failure_kind": "type_error", "label": "Wrong type", "n": 3},
                               {"failure_kind": "unknown_tool", "label": "Unknown tool", "n": 1}]
    assert len(dash["daily"]) == 7
    assert dash["daily"][-1]["day"] == timezone.now().date().isoformat()
    assert sum(d["total"] for d in dash["daily"]) == 6
    assert sum(d["failures"] for d in dash["daily"]) == 4
    assert (dash["review_open"], dash["review_all"]) == (6, 6)
    month = home_dashboard(days=30)
    assert (month["window_total"], month["window_failures"], month["window_failure_rate"]) == (7, 5, 71.4)
    assert [(r["failure_kind"], r["n"]) for r in month["by_kind"]] == [
        ("type_error", 3), ("unknown_tool", 1), ("value_error", 1)]
    assert len(month["daily"]) == 30
    wide = home_dashboard(days=120)
    assert (wide["window_total"], wide["window_failures"]) == (8, 6)


def test_home_page_renders_charts_from_vendored_chartjs(logged_in: Client) -> None:
    seed()
    body = logged_in.get("/").content.decode()
    assert '<script src="/static/vendor/chart-4.6.1.umd.min.js" defer></script>' in body
    assert "cdn" not in body.lower()
    config = chart(body, "chart-rate")
    assert config["data"]["labels"] == ["payments", "orders"]
    assert config["data"]["datasets"][0]["data"] == [75.0, 50.0]
    kinds = chart(body, "chart-kind")
    assert kinds["data"]["labels"][0] == "Wrong type"
    assert 'data-chart="chart-rate"' in body and 'data-chart="chart-daily"' in body
    assert '<a href="/review/?service=payments">payments</a>' in body


def test_empty_states_say_what_to_do_next(logged_in: Client) -> None:
    body = logged_in.get("/").content.decode()
    assert "No services yet." in body
    assert "python manage.py catalog_import" in body
    make_payments()
    assert "No services yet." in logged_in.get("/").content.decode()  # cached for a minute
    cache.clear()
    body = logged_in.get("/").content.decode()
    assert "No interactions in the last 7 days." in body
    assert "POST /api/v1/interactions" in body


@pytest.mark.parametrize("extra", [0, 30])
def test_home_query_count_is_constant(logged_in: Client, extra: int, django_assert_max_num_queries) -> None:
    seed()
    payments = Service.objects.get(name="payments")
    for n in range(extra):
        service = Service.objects.create(name=f"svc-{n}")
        make_interaction(service, calls=[])
        make_interaction(payments, failure_kind="missing_required")
    # session, user; figures: services, tools, the window's grouped pass (rolling counts too), review;
    # open review items (newest, for the one-click-fix count; the fixes' reads only when some are open);
    # live cards: registry (awaiting, canaries, production), loop (recent, last week), gateway (canaries),
    # cycles (running and failed)
    with django_assert_max_num_queries(14):
        assert logged_in.get("/").status_code == 200


def test_figures_are_cached_for_a_minute(logged_in: Client, django_assert_max_num_queries) -> None:
    seed()
    first = home_dashboard()
    make_interaction(Service.objects.get(name="payments"))
    with django_assert_max_num_queries(0):
        assert home_dashboard() == first
    assert home_dashboard(use_cache=False)["last_24h"] == first["last_24h"] + 1


def test_home_needs_login(client: Client, db) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_home_shows_the_registry_and_loop_cards(logged_in: Client) -> None:
    from ftops.loop.models import TriggerEvent, TriggerKind

    payments = make_payments()
    TriggerEvent.objects.create(kind=TriggerKind.HIGH_QUALITY_EXAMPLES, service=payments,
                                fingerprint="service:payments", reason="120 new high-quality examples for payments")
    body = logged_in.get("/").content.decode()
    assert 'id="registry-cards"' in body and "Nothing awaits approval." in body
    assert 'id="loop-card"' in body and "1 fired in the last 7 days." in body
    assert "New high-quality examples (payments)." in body and "120 new high-quality examples for payments" in body
    assert '<a href="/loop/triggers/">All triggers &rarr;</a>' in body


def test_home_cards_are_empty_states_without_rows(logged_in: Client) -> None:
    body = logged_in.get("/").content.decode()
    assert "No model in production yet." in body and "No retraining trigger has fired yet." in body


def test_rolling_counts_are_the_same_whatever_the_window(db) -> None:
    """The 24 hour and 7 day counts come from the window's grouped pass, split at both marks: a
    window shorter or longer than a week gives the same rolling figures, and its own totals."""
    seed()
    now = timezone.now()
    figures = {days: home_dashboard(days=days, now=now) for days in (1, 7, 30, 120)}
    assert {(d["last_24h"], d["last_7d"]) for d in figures.values()} == {(4, 6)}
    assert [(figures[d]["window_total"], figures[d]["window_failures"]) for d in (1, 7, 30, 120)] == [
        (4, 3), (6, 4), (7, 5), (8, 6)]
    assert [len(figures[d]["daily"]) for d in (1, 7, 30, 120)] == [1, 7, 30, 120]
    assert figures[1]["by_kind"] == [{"failure_kind": "type_error", "label": "Wrong type", "n": 3}]


def test_open_review_count_takes_expired_claims_and_leaves_live_and_done_ones(db) -> None:
    seed()
    review_items_enqueue_failures()
    now = timezone.now()
    ids = list(ReviewItem.objects.order_by("id").values_list("pk", flat=True))
    assert len(ids) == 6
    ReviewItem.objects.filter(pk=ids[0]).update(status=ReviewStatus.CLAIMED, holder="ann",
                                                lease_expires_at=now - timedelta(minutes=1))  # expired
    ReviewItem.objects.filter(pk=ids[1]).update(status=ReviewStatus.CLAIMED, holder="bob",
                                                lease_expires_at=now + timedelta(minutes=10))  # live
    ReviewItem.objects.filter(pk=ids[2]).update(status=ReviewStatus.CORRECTED)
    ReviewItem.objects.filter(pk=ids[3]).update(status=ReviewStatus.SKIPPED)
    dash = home_dashboard(now=now)
    # pending 2 + skipped 1 + the expired claim 1; all six items whatever their status
    assert (dash["review_open"], dash["review_all"]) == (4, 6)
