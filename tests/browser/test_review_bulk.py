"""Bulk reject in real headless Chromium: it is not the default action, and it asks with the
count before closing anything (cancel leaves every item open; accept rejects exactly those)."""

from __future__ import annotations

from typing import Any

import pytest

from review.models import ReviewItem
from review.services import review_items_enqueue_failures
from tests.browser.test_review_flow import PASSWORD, browser, login, shot
from tests.review.factories import make_interaction, make_payments, make_reviewer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["browser"]  # the Chromium fixture, shared with the review-flow tests


def test_bulk_reject_asks_with_the_count(browser: Any, live_server: Any, django_user_model: Any) -> None:
    payments = make_payments()
    for n in range(3):
        make_interaction(payments, external_id=f"bulk-{n}", query=f"bulk request {n}")
    review_items_enqueue_failures()
    make_reviewer(django_user_model, "dana", PASSWORD)
    page = login(browser, live_server.url, "dana")

    assert page.locator("#bulk-action").input_value() == ""  # no action until the reviewer picks one
    boxes = page.locator("input[name=items]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.select_option("#bulk-action", "reject")
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Apply to selected").click()
    assert asked and asked[0].startswith("Reject 2 selected items?")
    # Even a submit that slipped through would only reach the server's own confirmation page.
    assert ReviewItem.objects.filter(status="rejected").count() == 0
    assert page.url.rstrip("/").endswith("/review")

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Apply to selected").click()
    shot(page, "bulk-reject-confirmed")
    assert "Rejected 2 item(s)." in page.content()
    assert ReviewItem.objects.filter(status="rejected").count() == 2
