"""Suggestion-first correction in real headless Chromium: a reviewer claims a dollars-for-cents
failure, finds the form already holding the suggested fix with the mistake ticked, and accepts it
with one key; a refused submit moves the focus to the first field named in the error summary."""

from __future__ import annotations

from typing import Any

import pytest

from ftops.datasets.models import TrainingExample
from review.models import ReviewItem
from review.services import review_items_enqueue_failures
from tests.browser.test_review_flow import browser, login, shot  # noqa: F401  (fixture)
from tests.review.factories import make_interaction, make_payments, make_reviewer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_confident_suggestion_is_accepted_with_one_key(browser: Any, live_server: Any,  # noqa: F811
                                                         django_user_model: Any) -> None:
    from tests.browser.test_review_flow import PASSWORD

    make_reviewer(django_user_model, "rita", PASSWORD)
    payments = make_payments()
    make_interaction(payments, external_id="one-key", query="Refund $49.99 on payment pay_123")
    make_interaction(payments, external_id="by-hand", query="Refund $12.50 on payment pay_9",
                     calls=[{"name": "refund_payment", "arguments": {"payment_id": "pay_9", "amount_cents": 12.5}}])
    review_items_enqueue_failures()
    item = ReviewItem.objects.get(interaction__external_id="one-key")
    page = login(browser, live_server.url, "rita")
    page.goto(f"{live_server.url}/review/{item.pk}/")
    page.keyboard.press("e")  # claim
    page.wait_for_selector("#correction-form")
    amount = page.locator("#f-calls-0-arg-amount_cents")
    assert amount.input_value() == "4999"
    assert page.locator('input[name=mistakes][value=dollars_for_cents]').is_checked()
    assert page.locator("#accept-suggested").is_visible()
    shot(page, "ux-suggestion-first")
    page.keyboard.press("a")
    page.wait_for_function(f"!document.querySelector('#correction-form') || location.pathname !== '/review/{item.pk}/'")
    page.wait_for_load_state("load")
    item.refresh_from_db()
    assert item.status == "corrected"
    example = TrainingExample.objects.get(pk=item.example_id)
    assert example.expected["calls"][0]["arguments"]["amount_cents"] == [4999]
    assert example.common_mistakes == ["Amount in dollars instead of cents"]
    # A refused submit: the summary links each field and the first one gets the focus.
    other = ReviewItem.objects.get(interaction__external_id="by-hand")
    page.goto(f"{live_server.url}/review/{other.pk}/?prefill=model")
    page.keyboard.press("e")
    page.wait_for_selector("#correction-form")
    page.locator("#f-calls-0-arg-payment_id").fill("")
    page.locator("#submit-correction").click()
    page.wait_for_selector("#error-summary")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'f-calls-0-arg-payment_id'")
    shot(page, "ux-error-summary")
    page.locator('#error-summary a[href="#f-calls-0-arg-amount_cents"]').click()
    assert page.evaluate("document.activeElement.id") == "f-calls-0-arg-amount_cents"
