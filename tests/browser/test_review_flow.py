"""The review workflow in real headless Chromium (Debian's /usr/bin/chromium through Playwright).

A reviewer logs in, claims a dollars-instead-of-cents failure, fixes it in the form generated
from the tool's schema (live validation included), submits with Ctrl+Enter, and the example
shows up in the dataset browser; a second reviewer cannot claim the item; a stale submit shows
the conflict with the reviewer's input kept. Screenshots of each step: test-artifacts/browser/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from ftops.datasets.models import TrainingExample
from review.models import ReviewItem
from review.services import review_items_enqueue_failures
from tests.review.factories import make_interaction, make_payments, make_reviewer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "browser"
PASSWORD = "correct-horse-7"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("FTOPS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{CHROMIUM} is missing and FTOPS_REQUIRE_SERVICES=1 (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls made here between
    # browser steps are ordinary blocking calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield instance
        finally:
            instance.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(browser: Any, base: str, username: str) -> Any:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{base}/login/?next=/review/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/review/")
    return page


def when_unlocked(write: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Run an ORM write from the test thread while the live server may be answering a request.

    The SQLite test database is in memory with a shared cache, whose table locks fail at once
    ("database table is locked") instead of waiting; a write that meets a request in flight (the
    form's live validation goes out a moment after typing) is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return write()
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_reviewer_corrects_a_cents_failure_end_to_end(browser: Any, live_server: Any,
                                                      django_user_model: Any) -> None:
    payments = make_payments()
    # The demo enterprise: its traffic simulator records the expected call (real traffic has none).
    payments.source = "sample:acme:seed=7"
    payments.save(update_fields=["source"])
    now = timezone.now()
    make_interaction(payments, external_id="browser-cents", when=now - timedelta(minutes=1),
                     query="Please refund $49.99 for payment pay_123, it arrived broken",
                     expected_calls=[{"name": "refund_payment",
                                      "arguments": {"payment_id": "pay_123", "amount_cents": 4999}}])
    make_interaction(payments, external_id="browser-stale", when=now - timedelta(minutes=5),
                     query="Refund $12.50 on pay_777 please")
    review_items_enqueue_failures()
    cents = ReviewItem.objects.get(interaction__external_id="browser-cents")
    stale = ReviewItem.objects.get(interaction__external_id="browser-stale")
    for name in ("alice", "bob"):
        make_reviewer(django_user_model, name, PASSWORD)
    base = live_server.url

    # 1. Alice logs in and sees the queue, newest failure first.
    alice = login(browser, base, "alice")
    rows = alice.locator("tr[data-row]")
    assert rows.count() == 2
    assert "Please refund $49.99" in rows.nth(0).inner_text()
    shot(alice, "01-queue")

    # 2. She opens the item: the wrong argument is highlighted against the schema and the expected call.
    alice.get_by_role("link", name=f"#{cents.pk}").click()
    alice.wait_for_url(f"{base}/review/{cents.pk}/")
    invalid = alice.locator("tr.arg-invalid")
    assert "amount_cents" in invalid.inner_text() and "49.99" in invalid.inner_text()
    assert "4999" in invalid.inner_text()
    shot(alice, "02-item-before-claim")

    # 3. "e" claims the item; the form generated from refund_payment's schema appears. It starts
    # from the confident suggested fix; she chooses to start from the model's answer instead.
    alice.keyboard.press("e")
    alice.wait_for_selector("#correction-form")
    assert alice.get_by_label("amount_cents").input_value() == "4999"
    alice.get_by_role("link", name="Start from the model's answer instead").click()
    alice.wait_for_url(f"{base}/review/{cents.pk}/?prefill=model")
    alice.wait_for_selector("#correction-form")
    amount = alice.get_by_label("amount_cents")
    assert amount.input_value() == "49.99"
    assert alice.get_by_label("currency").input_value() == '"USD"'
    shot(alice, "03-claimed-form")

    # 4. Bob cannot take the item Alice holds.
    bob = login(browser, base, "bob")
    bob.goto(f"{base}/review/{cents.pk}/")
    assert "alice is reviewing this item" in bob.locator(".lease").inner_text()
    assert bob.locator("#claim-form").count() == 0
    status = bob.request.post(f"{base}/review/{cents.pk}/claim",
                              headers={"X-CSRFToken": bob.context.cookies()[0]["value"]
                                       if bob.context.cookies() else ""})
    assert status.ok  # redirected back to the item with the refusal message
    cents.refresh_from_db()
    assert (cents.holder, cents.version) == ("alice", 2)
    shot(bob, "04-second-reviewer-refused")

    # 5. The model's value is flagged from the start; live validation re-checks each change on the server.
    error = alice.locator("#f-calls-0-arg-amount_cents-err")
    assert "this amount is in cents, so 49.99 dollars is 4999" in error.inner_text()
    wrap = "document.querySelector('#wrap-f-calls-0-arg-amount_cents')"
    amount.fill("4999")
    alice.keyboard.press("Tab")
    alice.wait_for_function(f"() => !{wrap}.classList.contains('has-error')")
    alice.get_by_label("amount_cents").fill("12.5")
    alice.keyboard.press("Tab")
    alice.wait_for_function(f"() => {wrap}.classList.contains('has-error')")
    assert "so 12.5 dollars is 1250" in error.inner_text()
    shot(alice, "05-live-validation-error")
    alice.get_by_label("amount_cents").fill("4999")
    alice.keyboard.press("Tab")
    alice.wait_for_function(f"() => !{wrap}.classList.contains('has-error')")
    alice.get_by_label("Amount in dollars instead of cents").check()
    alice.get_by_label("Explanation").fill("The API takes amounts in cents: $49.99 is 4999.")
    shot(alice, "06-corrected-form")

    # 6. Ctrl+Enter submits; she lands on the next open item (the one for the stale-submit step).
    alice.get_by_label("Explanation").press("Control+Enter")
    alice.wait_for_url(f"{base}/review/{stale.pk}/")
    assert f"created from review #{cents.pk}" in alice.locator(".messages").inner_text()
    example = TrainingExample.objects.get()
    assert (example.source, example.quality, example.interaction_id) == ("correction", "high",
                                                                         cents.interaction_id)
    assert example.expected["calls"][0]["arguments"]["amount_cents"] == [4999]
    assert example.provenance["reviewers"] == ["alice"]
    shot(alice, "07-submitted-next-item")

    # 7. The example is in the dataset browser.
    browse = alice.context.new_page()
    browse.goto(f"{base}{reverse('datasets:examples')}?q=arrived+broken")
    assert "Please refund $49.99 for payment pay_123" in browse.locator("table").inner_text()
    shot(browse, "08-dataset-browser")
    browse.close()

    # 8. A stale submit: Alice's lease on the next item runs out and Bob takes it meanwhile.
    alice.get_by_label("amount_cents").fill("1250")
    alice.get_by_label("Explanation").fill("My careful explanation that must not be lost")
    when_unlocked(lambda: ReviewItem.objects.filter(pk=stale.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)))
    bob.goto(f"{base}/review/{stale.pk}/")
    bob.get_by_role("button", name="Claim and review").click()
    bob.wait_for_selector("#correction-form")
    alice.get_by_role("button", name="Submit correction").click()
    conflict = alice.locator("#conflict")
    conflict.wait_for(state="visible")
    assert "bob is reviewing this item" in conflict.inner_text()
    assert alice.get_by_label("Explanation").input_value() == "My careful explanation that must not be lost"
    assert alice.get_by_label("amount_cents").input_value() == "1250"
    assert alice.locator("#submit-correction").is_disabled()
    stale.refresh_from_db()
    assert (stale.holder, stale.status) == ("bob", "claimed")
    assert TrainingExample.objects.count() == 1
    shot(alice, "09-stale-submit-conflict")

    # 9. The help overlay opens on "?".
    alice.locator("body").click(position={"x": 5, "y": 300})
    alice.keyboard.press("?")
    assert alice.locator("#shortcut-help").is_visible()
    shot(alice, "10-shortcut-help")


def test_dashboard_draws_its_charts_with_the_vendored_library(browser: Any, live_server: Any,
                                                              django_user_model: Any) -> None:
    payments = make_payments()
    for n in range(6):
        make_interaction(payments, external_id=f"dash-{n}", is_failure=n % 2 == 0, failure_kind="type_error")
    make_reviewer(django_user_model, "carol", PASSWORD)
    page = login(browser, live_server.url, "carol")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{live_server.url}/")
    page.wait_for_selector("canvas[data-chart='chart-rate'][data-drawn='1']")
    assert page.locator("canvas[data-drawn='1']").count() == 3
    assert all(url.startswith(live_server.url) for url in requests)  # nothing from a CDN
    assert page.locator("table").filter(has_text="Failure rate").first.inner_text().count("payments") == 1
    shot(page, "11-dashboard")


def test_keyboard_shortcuts_move_select_and_skip(browser: Any, live_server: Any, django_user_model: Any) -> None:
    payments = make_payments()
    now = timezone.now()
    for n in range(3):
        make_interaction(payments, external_id=f"keys-{n}", when=now - timedelta(minutes=n),
                         query=f"refund request number {n}")
    review_items_enqueue_failures()
    newest, middle, _oldest = ReviewItem.objects.order_by("-occurred_at")
    make_reviewer(django_user_model, "dave", PASSWORD)
    page = login(browser, live_server.url, "dave")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert page.locator(f"#sel-{middle.pk}").is_checked()
    assert not page.locator(f"#sel-{newest.pk}").is_checked()
    page.keyboard.press("k")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/review/{newest.pk}/")
    page.keyboard.press("j")
    page.wait_for_url(f"{live_server.url}/review/{middle.pk}/")
    page.keyboard.press("k")
    page.wait_for_url(f"{live_server.url}/review/{newest.pk}/")
    page.keyboard.press("e")
    page.wait_for_selector("#correction-form")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("s")
    # Skipping moves on to the next open item, claimed for the reviewer.
    page.wait_for_url(f"{live_server.url}/review/{middle.pk}/")
    newest.refresh_from_db()
    middle.refresh_from_db()
    assert (newest.status, middle.status, middle.holder) == ("skipped", "claimed", "dave")
    shot(page, "12-after-skip-shortcut")


def test_select_all_and_bulk_accept_of_suggested_fixes(browser: Any, live_server: Any,
                                                        django_user_model: Any) -> None:
    payments = make_payments()
    now = timezone.now()
    for n in range(3):
        make_interaction(payments, external_id=f"bulk-{n}", when=now - timedelta(minutes=n),
                         query=f"Refund $49.99 on pay_123, request {n}")
    make_interaction(payments, external_id="bulk-human", when=now - timedelta(minutes=9),
                     calls=[{"name": "refund_payment", "arguments": {"payment_id": "pay_1", "amount_cents": 49.99,
                                                                     "currency": "GBP"}}])
    review_items_enqueue_failures()
    make_reviewer(django_user_model, "erin", PASSWORD)
    page = login(browser, live_server.url, "erin")
    assert page.locator("tr[data-row] span.badge.good", has_text="fix").count() == 3
    page.locator("#select-all").check()
    assert page.locator("input[name=items]:checked").count() == 4
    human = ReviewItem.objects.get(interaction__external_id="bulk-human")
    page.locator(f"#sel-{human.pk}").uncheck()
    assert page.locator("#select-all").evaluate("box => box.indeterminate") is True
    page.select_option("#bulk-action", "accept")
    shot(page, "13-bulk-accept-selected")
    page.get_by_role("button", name="Apply to selected").click()
    page.wait_for_selector("text=Accepted the suggested fix of 3 item(s).")
    shot(page, "14-bulk-accept-done")
    assert TrainingExample.objects.filter(source="correction", quality="high").count() == 3
    human.refresh_from_db()
    assert human.status == "pending"
