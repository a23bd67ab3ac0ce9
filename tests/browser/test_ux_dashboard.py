"""The dashboard inbox in real headless Chromium: each row's link opens the page that handles it,
and with JavaScript off the chart cards show their message and data table instead of empty boxes."""

from __future__ import annotations

from typing import Any

import pytest

from registry.models import VersionStatus
from review.services import review_items_enqueue_failures
from tests.browser.test_review_flow import PASSWORD, browser, shot  # noqa: F401  (fixture)
from tests.registry.factories import force_status, version
from tests.review.factories import make_interaction, make_payments

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(browser: Any, base: str, *, javascript: bool = True) -> Any:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=javascript)
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{base}/login/?next=/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")
    return page


def test_dashboard_inbox_links_lead_to_where_each_thing_is_handled(browser: Any, live_server: Any,  # noqa: F811
                                                                   django_user_model: Any) -> None:
    django_user_model.objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True, is_superuser=True)
    payments = make_payments()
    make_interaction(payments, external_id="inbox-1")
    review_items_enqueue_failures()
    awaiting = force_status(version(), VersionStatus.GATES_PASSED)
    page = _login(browser, live_server.url)
    inbox = page.locator("#inbox")
    assert inbox.is_visible()
    shot(page, "dashboard-inbox")
    review_row = inbox.locator('[data-inbox="review"]')
    assert review_row.locator(".inbox-count").inner_text() == "1"
    assert "1 of the newest 1 have a confident one-click fix" in review_row.inner_text()
    review_row.get_by_role("link").click()
    page.wait_for_url(f"{live_server.url}/review/")
    assert page.locator("tr[data-row]").count() == 1
    page.go_back()
    inbox.locator('[data-inbox="approval"]').get_by_role("link").click()
    page.wait_for_url(f"{live_server.url}/registry/?status=awaiting")
    assert page.get_by_role("link", name=awaiting.name).first.is_visible()
    page.go_back()
    inbox.locator('[data-inbox="triggers"]').get_by_role("link").click()
    page.wait_for_url(f"{live_server.url}/loop/triggers/")
    page.go_back()
    inbox.locator('[data-inbox="cycles-failed"]').get_by_role("link").click()
    page.wait_for_url(f"{live_server.url}/loop/cycles/")


def test_chart_cards_without_javascript_show_the_numbers(browser: Any, live_server: Any,  # noqa: F811
                                                        django_user_model: Any) -> None:
    django_user_model.objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True, is_superuser=True)
    payments = make_payments()
    make_interaction(payments, external_id="nojs-1")
    page = _login(browser, live_server.url, javascript=False)
    shot(page, "dashboard-no-js")
    assert page.locator("canvas").first.is_hidden()
    fallbacks = page.locator(".chart-fallback")
    assert fallbacks.count() == 3 and all(fallbacks.nth(i).is_visible() for i in range(3))
    table = page.locator("table.daily-table").last
    assert table.is_visible() and "so far" in table.inner_text()
    # Without JavaScript a phone's top menu is a wrapped list: no toggle that could not work.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.locator("#nav-toggle").is_hidden() and page.locator("#main-nav").is_visible()
