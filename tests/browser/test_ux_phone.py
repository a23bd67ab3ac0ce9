"""Phone layout in real headless Chromium: at 390 × 844 no page scrolls sideways, and the top
menu collapses behind a keyboard-reachable toggle. Screenshots: test-artifacts/browser/phone-*.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from ftops.catalog.models import Service
from ftops.datasets.models import TrainingExample
from ftops.evaluation.models import EvalSuite
from review.models import ReviewItem
from review.services import review_items_enqueue_failures
from tests.browser.test_review_flow import PASSWORD, browser, shot  # noqa: F401  (fixture)
from tests.evaluation.factories import dataset_version, scored_run
from tests.review.factories import make_interaction, make_payments

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def _phone_page(browser: Any, base: str, username: str) -> Any:  # noqa: F811
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{base}/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")
    return page


def _sideways(page: Any) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when it fits)."""
    return int(page.evaluate("Math.max(document.documentElement.scrollWidth, window.innerWidth) - 390"))


def test_every_main_page_fits_a_390px_phone(browser: Any, live_server: Any,  # noqa: F811
                                            django_user_model: Any) -> None:
    django_user_model.objects.create_user("phone", "p@example.com", PASSWORD, is_staff=True, is_superuser=True)
    version = dataset_version()
    Service.objects.filter(name="payments").update(name="payments-eval")
    payments = make_payments()
    make_interaction(payments, external_id="phone-a-rather-long-external-identifier-0001",
                     query="Please refund $49.99 for payment pay_123, it arrived broken " * 3)
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    suite = EvalSuite.objects.create(name="v1-test", kind="dataset", dataset_version=version, split="test")
    base_run = scored_run(suite, failed=["1", "2", "10"], name="base")
    other_run = scored_run(suite, failed=["2", "3"], name="other")
    example = TrainingExample.objects.order_by("pk").first()

    pages = {
        "dashboard": reverse("home"),
        "queue": reverse("review:queue"),
        "item": reverse("review:item", args=[item.pk]),
        "dataset-versions": reverse("datasets:versions"),
        "dataset": reverse("datasets:version", args=[version.number]),
        "examples": reverse("datasets:examples"),
        "example": reverse("datasets:example", args=[example.pk]),  # type: ignore[union-attr]
        "evaluation-runs": reverse("evaluation:runs"),
        "evaluation": reverse("evaluation:run", args=[base_run.pk]),
        "failures": reverse("evaluation:failures", args=[base_run.pk]),
        "compare": reverse("evaluation:compare") + f"?base={base_run.pk}&other={other_run.pk}",
        "interactions": reverse("interactions:list"),
        "interaction": reverse("interactions:detail", args=[item.interaction.external_id]),
        "training": reverse("training:runs"),
        "training-new": reverse("training:new"),
        "diff": reverse("datasets:diff") + f"?a={version.number}&b={version.number}",
        "not-found": "/no-such-page/",
    }
    page = _phone_page(browser, live_server.url, "phone")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon and page.request.get(live_server.url + icon).status == 200
    too_wide = {}
    for name, url in pages.items():
        page.goto(live_server.url + url)
        page.wait_for_load_state("load")
        shot(page, f"phone-{name}")
        extra = _sideways(page)
        if extra > 0:
            too_wide[name] = extra
    assert too_wide == {}


def test_the_top_menu_collapses_on_a_phone_and_opens_from_the_keyboard(browser: Any, live_server: Any,  # noqa: F811
                                                                        django_user_model: Any) -> None:
    django_user_model.objects.create_user("phone", "p@example.com", PASSWORD, is_staff=True, is_superuser=True)
    page = _phone_page(browser, live_server.url, "phone")
    nav = page.locator("#main-nav")
    toggle = page.locator("#nav-toggle")
    assert toggle.is_visible() and not nav.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.focus()
    page.keyboard.press("Enter")
    assert nav.is_visible() and toggle.get_attribute("aria-expanded") == "true"
    assert nav.get_by_role("link", name="Review").is_visible()
    shot(page, "phone-menu-open")
    page.keyboard.press("Escape")
    assert not nav.is_visible() and toggle.get_attribute("aria-expanded") == "false"
    # On a desktop the menu is always shown and the toggle is not.
    page.set_viewport_size({"width": 1360, "height": 900})
    assert nav.is_visible() and not toggle.is_visible()
