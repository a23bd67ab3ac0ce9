"""The deployments page in real headless Chromium: an approver shadows an approved version (the
confirmation dismissed first starts nothing), the shadow's agreement is shown, and Stop shadow
ends it; htmx swaps the live panel with the CSRF token of the page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group

from ftops.catalog.models import Service
from ftops.gateway.models import ShadowComparison, ShadowDeployment
from tests.browser.test_review_flow import PASSWORD, browser, shot
from tests.gateway.conftest import deploy, make_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["browser"]  # the Chromium fixture, shared with the review tests


def test_approver_shadows_an_approved_version_and_stops_it(browser: Any, live_server: Any,
                                                            django_user_model: Any) -> None:
    Service.objects.create(name="payments", display_name="Payments")
    deploy(make_version("acme-gpt-v1.0.0"))
    candidate = make_version("acme-gpt-v1.2.0", status="approved")
    user = django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="approver")[0])

    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.set_default_timeout(15000)
    url = f"{live_server.url}/gateway/deployments/payments/"
    page.goto(f"{live_server.url}/login/?next=/gateway/deployments/payments/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url)
    assert page.locator("#shadow-start select").input_value() == str(candidate.pk)

    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Shadow", exact=True).click()
    page.wait_for_timeout(300)  # a request, had one been sent, would have started the shadow by now
    assert asked and asked[0].startswith("Copy production's calls for payments to this version?")
    assert not ShadowDeployment.objects.exists()

    page.get_by_label("Share of calls copied").fill("0.25")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Shadow", exact=True).click()
    page.locator("#live .notice", has_text="acme-gpt-v1.2.0 now shadows payments").wait_for()
    shadow = ShadowDeployment.objects.get()
    assert (shadow.scope, shadow.sample_rate, shadow.created_by) == ("payments", 0.25, "alice")

    for agrees in (True, True, False):
        ShadowComparison.objects.create(shadow=shadow, model_version=candidate, call_id="c", service="payments",
                                        production_version="acme-gpt-v1.0.0", tools_agree=True,
                                        arguments_agree=agrees)
    page.goto(url)
    row = page.locator(f"#shadows tr[data-shadow='{shadow.pk}']")
    assert "67% (2 of 3)" in row.inner_text() and "25%" in row.inner_text()
    shot(page, "gateway-deployments-shadow")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Stop shadow").click()
    page.locator("#live .notice", has_text="no longer shadows payments").wait_for()
    shadow.refresh_from_db()
    assert shadow.active is False
    assert "stopped" in page.locator(f"#shadows tr[data-shadow='{shadow.pk}']").inner_text()
