"""The approver's day in real headless Chromium (Debian's /usr/bin/chromium through Playwright).

An approver approves a version whose gates passed (through the htmx confirmation); the run's
creator is refused by the two-person rule; a version with failed gates cannot be approved
without an override reason; a rollback puts the previous version back in production.
Screenshots of each step: test-artifacts/browser/registry-*.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.urls import reverse

from ftops.evaluation.services import eval_suite_for_dataset
from ftops.training.models import TrainingRun
from registry import services
from registry.models import Approval, Deployment, DeploymentState, VersionStatus
from tests.evaluation.factories import dataset_version
from tests.registry.factories import APPROVER, approved
from tests.registry.test_views import CONFIG, gated

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "browser"
PASSWORD = "correct-horse-9"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def small_gates(settings: Any, tmp_path: Path) -> None:
    path = tmp_path / "ft_ops_config.yaml"
    path.write_text(CONFIG)
    settings.FTOPS_CONFIG_FILE = str(path)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("FTOPS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{CHROMIUM} is missing and FTOPS_REQUIRE_SERVICES=1 (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls between steps block.
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
    page.screenshot(path=str(SHOTS / f"registry-{name}.png"), full_page=True)


def make_user(django_user_model: Any, username: str, *roles: str) -> None:
    user = django_user_model.objects.create_user(username, f"{username}@example.com", PASSWORD)
    for role in roles:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)


def login(browser: Any, base: str, username: str, *, accept_confirms: bool = True) -> Any:
    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.set_default_timeout(15000)
    if accept_confirms:
        # hx-confirm asks through window.confirm; the approver says yes.
        page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{base}/login/?next=/registry/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/registry/")
    return page


def status_of(page: Any) -> str:
    return str(page.locator("#version-status [data-status]").get_attribute("data-status"))


def test_approver_approves_and_the_run_creator_is_refused(browser: Any, live_server: Any,
                                                         django_user_model: Any) -> None:
    suite = eval_suite_for_dataset(dataset_version=dataset_version(), split="test")
    run = TrainingRun.objects.create(name="lora-browser", backend="lora", base_model="/models/tiny-base",
                                     created_by="carol", status="succeeded")
    gated(suite, cand_exact=70.0)  # an earlier version of the family: the sparkline has two points
    mv = gated(suite, training_run=run)
    assert mv.status == VersionStatus.GATES_PASSED
    make_user(django_user_model, "alice", "approver")
    make_user(django_user_model, "carol", "approver", "ml_orchestrator")
    base = live_server.url
    url = f"{base}{reverse('registry:version', args=[mv.pk])}"

    # 1. The list shows the version awaiting approval with its accuracy sparkline; its page the green checklist.
    carol = login(browser, base, "carol")
    assert mv.name in carol.locator("#versions").inner_text()
    carol.wait_for_selector(f"canvas[data-chart='spark-{mv.pk}'][data-drawn='1']")
    shot(carol, "00-list")
    carol.goto(url)
    assert carol.locator("#gates tr.gate-pass").count() >= 3 and carol.locator("#gates tr.gate-fail").count() == 0
    carol.wait_for_selector("canvas[data-chart='chart-service'][data-drawn='1']")
    shot(carol, "01-version-gates-passed")

    # 2. Carol started the training run: approving is refused, with the two-person rule named.
    carol.get_by_role("button", name="Approve").click()
    carol.locator("#release-error").wait_for()
    assert "two-person rule" in carol.locator("#release-error").inner_text()
    assert status_of(carol) == "gates_passed"
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_PASSED and not Approval.objects.exists()
    shot(carol, "02-creator-refused")

    # 3. Alice approves after the confirmation; the release panel swaps in place.
    alice = login(browser, base, "alice")
    alice.goto(url)
    alice.get_by_label("Comment (optional)").fill("gates green, checked refunds")
    alice.get_by_role("button", name="Approve").click()
    alice.locator("#release-notice").wait_for()
    assert status_of(alice) == "approved"
    assert "alice" in alice.locator("#approvals").inner_text()
    mv.refresh_from_db()
    assert mv.status == VersionStatus.APPROVED
    assert Approval.objects.get(model_version=mv).comment == "gates green, checked refunds"
    shot(alice, "03-approved")


def test_a_dismissed_confirmation_changes_nothing(browser: Any, live_server: Any, django_user_model: Any) -> None:
    suite = eval_suite_for_dataset(dataset_version=dataset_version(), split="test")
    mv = gated(suite)
    make_user(django_user_model, "alice", "approver")
    page = login(browser, live_server.url, "alice", accept_confirms=False)
    page.on("dialog", lambda dialog: dialog.dismiss())
    page.goto(f"{live_server.url}{reverse('registry:version', args=[mv.pk])}")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_timeout(300)  # a request would have swapped the panel by now
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_PASSED and status_of(page) == "gates_passed"


def test_failed_gates_need_an_override_reason(browser: Any, live_server: Any, django_user_model: Any) -> None:
    suite = eval_suite_for_dataset(dataset_version=dataset_version(), split="test")
    mv = gated(suite, cand_exact=52.0)
    assert mv.status == VersionStatus.GATES_BLOCKED
    make_user(django_user_model, "alice", "approver")
    page = login(browser, live_server.url, "alice")
    page.goto(f"{live_server.url}{reverse('registry:version', args=[mv.pk])}")
    assert page.locator("#gates tr.gate-fail[data-check='overall_improvement']").count() == 1
    assert page.locator("#approve-form").count() == 0
    shot(page, "04-gates-blocked")

    # Without a justification the browser will not send it, and nothing changes.
    override = page.get_by_role("button", name="Override and approve")
    override.click()
    assert page.locator("#override-justification").evaluate("el => !el.validity.valid")
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_BLOCKED

    # A whitespace-only reason passes the browser's check and is refused by the server.
    page.locator("#override-justification").fill("   ")
    override.click()
    page.locator("#release-error").wait_for()
    assert "justification" in page.locator("#release-error").inner_text()
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_BLOCKED and not Approval.objects.exists()
    shot(page, "05-override-needs-reason")

    page.locator("#override-justification").fill("Fixes the refund outage; accuracy gap is on rare phrasings")
    page.get_by_role("button", name="Override and approve").click()
    page.locator("#release-notice").wait_for()
    assert status_of(page) == "approved" and "(override)" in page.locator("#approvals").inner_text()
    approval = Approval.objects.get(model_version=mv)
    assert approval.override and approval.justification.startswith("Fixes the refund outage")
    shot(page, "06-overridden")


def test_rollback_restores_the_previous_version(browser: Any, live_server: Any, django_user_model: Any) -> None:
    first, second = approved(), approved()
    services.model_version_promote(model_version_id=first.pk, by=APPROVER)
    services.model_version_promote(model_version_id=second.pk, by=APPROVER)
    make_user(django_user_model, "bob", "approver")
    page = login(browser, live_server.url, "bob")
    assert second.name in page.locator("#production").inner_text()
    page.goto(f"{live_server.url}{reverse('registry:version', args=[second.pk])}")
    shot(page, "07-in-production")
    page.get_by_label("What went wrong").fill("refund errors spiked after the release")
    page.get_by_role("button", name="Rollback").click()
    page.locator("#release-notice").wait_for()
    assert f"{first.name} serves again" in page.locator("#release-notice").inner_text()
    assert status_of(page) == "rolled_back"
    current = Deployment.objects.get(scope="enterprise", state=DeploymentState.PRODUCTION)
    assert current.model_version_id == first.pk
    shot(page, "08-rolled-back")
    page.goto(f"{live_server.url}{reverse('registry:models')}")
    assert first.name in page.locator("#production").inner_text()
    assert second.name not in page.locator("#production").inner_text()
    shot(page, "09-registry-list")
