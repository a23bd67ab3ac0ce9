"""The dashboard leads with what needs someone (issue 16): open failures and how many have a
one-click fix, versions awaiting approval, canaries, cycles running or failed, triggers fired;
one definition of "last 7 days"; today's partial day drawn as partial; charts readable without JS."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from ftops.home.selectors import home_dashboard
from ftops.loop.models import Cycle, CycleStatus, TriggerEvent, TriggerKind
from registry.models import VersionStatus
from review.services import review_items_enqueue_failures
from tests.registry.factories import force_status, version
from tests.review.factories import make_interaction, make_payments


@pytest.fixture
def logged_in(admin_user: Any) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _inbox(body: str) -> dict[str, tuple[str, str]]:
    """{row key: (count, link)} from the page's inbox."""
    section = body.split('id="inbox"')[1].split("</section>")[0]
    rows = re.findall(r'data-inbox="([a-z-]+)">\s*<span class="inbox-count">([\d,]+)</span>.*?href="([^"]*)"',
                      section, flags=re.S)
    return {key: (count, href) for key, count, href in rows}


def test_inbox_counts_and_links(logged_in: Client) -> None:
    payments = make_payments()
    # Two cents-for-dollars failures (a confident fix) and one the fixer cannot judge (no call).
    make_interaction(payments)
    make_interaction(payments)
    make_interaction(payments, calls=[], failure_kind="no_call")
    review_items_enqueue_failures()
    force_status(version(), VersionStatus.GATES_PASSED)
    now = timezone.now()
    Cycle.objects.create(scope="enterprise", status=CycleStatus.FAILED, origin="manual", error="boom")
    Cycle.objects.create(scope="payments", status=CycleStatus.RUNNING, origin="manual")
    old = Cycle.objects.create(scope="orders", status=CycleStatus.FAILED, origin="manual")
    Cycle.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=9))
    TriggerEvent.objects.create(kind=TriggerKind.HIGH_QUALITY_EXAMPLES, service=payments,
                                fingerprint="service:payments", reason="120 new examples")
    body = logged_in.get("/").content.decode()
    assert body.index('id="inbox"') < body.index('class="grid"')  # the inbox leads
    assert _inbox(body) == {
        "review": ("3", "/review/"),
        "approval": ("1", "/registry/?status=awaiting"),
        "canaries": ("0", "/registry/?status=canary"),
        "cycles-failed": ("1", "/loop/cycles/"),
        "cycles-running": ("1", "/loop/cycles/"),
        "triggers": ("1", "/loop/triggers/"),
    }
    assert "2 of the newest 3 have a confident one-click fix" in body
    assert '<li class="inbox-row urgent" data-inbox="review">' in body
    assert '<li class="inbox-row quiet" data-inbox="canaries">' in body
    # The links lead to pages that handle them.
    for _count, href in _inbox(body).values():
        assert logged_in.get(href).status_code == 200, href


@pytest.mark.parametrize("extra", [0, 25])
def test_inbox_query_count_is_constant(logged_in: Client, extra: int, django_assert_max_num_queries: Any) -> None:
    payments = make_payments()
    for _ in range(3 + extra):
        make_interaction(payments)
    review_items_enqueue_failures()
    # session, user; figures: services, tools, rolling counts, grouped window, review; open items and
    # their fixes (interactions, schemas, renames); live cards: registry x3, loop x2, gateway, cycles
    with django_assert_max_num_queries(19):
        assert logged_in.get("/").status_code == 200


def test_one_definition_of_the_last_7_days(db: Any) -> None:
    payments = make_payments()
    now = timezone.now()
    # Inside the last 168 hours but on the calendar day 7 days back: counted by every figure alike.
    make_interaction(payments, when=now - timedelta(days=6, hours=23, minutes=59))
    make_interaction(payments, when=now - timedelta(days=7, minutes=1), is_failure=False)  # outside
    dash = home_dashboard(use_cache=False)
    assert dash["last_7d"] == dash["window_total"] == 1
    assert (dash["window_failures"], dash["window_failure_rate"]) == (1, 100.0)
    assert [d["partial"] for d in dash["daily"]] == [False] * 6 + [True]


def _chart(body: str, name: str) -> Any:
    found = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', body)
    assert found is not None
    return json.loads(found.group(1))


def test_today_is_drawn_as_partial_and_charts_have_a_table_without_javascript(logged_in: Client) -> None:
    payments = make_payments()
    now = timezone.now()
    make_interaction(payments, when=now - timedelta(days=1))
    make_interaction(payments, when=now - timedelta(days=1), is_failure=False)
    make_interaction(payments, when=now - timedelta(minutes=1))
    body = logged_in.get("/").content.decode()
    daily = _chart(body, "chart-daily")
    assert daily["data"]["labels"][-1].endswith("(so far)")
    solid, dashed = daily["data"]["datasets"][0], daily["data"]["datasets"][1]
    assert solid["label"] == "interactions" and solid["data"][-2:] == [2, None]
    assert dashed["label"] == "interactions, today so far" and dashed["borderDash"] == [6, 4]
    assert dashed["data"][-2:] == [2, 1] and dashed["data"][:-2] == [None] * 5
    assert body.count('<p class="chart-fallback">') == 3
    noscript = body.split("<noscript>")[1].split("</noscript>")[0]
    assert '<table class="daily-table">' in noscript and '<span class="badge">so far</span>' in noscript
    assert "last 7 days = the last 168 hours" in body
