"""Improvement cycles in real headless Chromium: the cycles page lists a cycle with its stages, the
cycle's timeline says why the train stage chose its backend, and "Start a cycle" asks first
(cancel starts nothing; accept starts one and opens its timeline)."""

from __future__ import annotations

from typing import Any

import pytest

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from ftops.datasets.config import load_config
from ftops.loop import cycles
from ftops.loop.cycles import StageOutcome, backend_choose, cycle_start
from ftops.loop.models import Cycle, CycleStage
from tests.browser.test_review_flow import PASSWORD, browser, shot
from tests.datasets.conftest import payments
from tests.loop.test_cycles import examples

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["browser", "payments"]  # fixtures: Chromium (shared with the review tests), the payments service


def login(browser: Any, base: str, username: str) -> Any:
    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    page.set_default_timeout(15000)
    page.goto(f"{base}/login/?next=/loop/cycles/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/loop/cycles/")
    return page


@pytest.fixture
def finished_cycle(payments: Service, monkeypatch: pytest.MonkeyPatch) -> Cycle:
    """A cycle run to the end in this process; build, train (its backend chosen by the real decision
    matrix), register, evaluate, gates and approval stand in for their apps."""

    def done(note: str, **links: Any) -> Any:
        return lambda cycle, stage: StageOutcome(note=note, links=links)

    def train(cycle: Cycle, stage: CycleStage) -> StageOutcome:
        choice = backend_choose(cfg=load_config().loop, train_examples=3)
        Cycle.objects.filter(pk=cycle.pk).update(backend=choice.backend, backend_reason=choice.reason)
        return StageOutcome(note=f"training run 2 succeeded ({choice.backend})", links={"training_run": 2})

    for name, fake in {"build": done("dataset v1 ready", dataset_version=1, dataset_version_number=1),
                       "train": train, "register": done("registered m-1", model_version=3),
                       "evaluate": done("m-1: exact 97.5% on the test split"),
                       "gates": done("gates passed: 9/9 checks", gates_passed=True),
                       "approval": done("m-1 is awaiting approval")}.items():
        monkeypatch.setitem(cycles.STAGE_FUNCTIONS, name, fake)
    examples(payments)
    cycle = cycle_start(actor=Actor(label="carol"), scope="payments", reason="3 new high-quality examples")
    cycle.refresh_from_db()
    assert cycle.status == "succeeded"
    return cycle


def test_cycles_page_lists_the_cycle_and_its_timeline_says_why_the_backend(
        browser: Any, live_server: Any, django_user_model: Any, finished_cycle: Cycle) -> None:
    django_user_model.objects.create_superuser("olga", "olga@example.com", PASSWORD)
    page = login(browser, live_server.url, "olga")

    row = page.locator("#cycles-table tbody tr").first
    assert row.locator("td").nth(1).inner_text() == "payments"
    assert row.locator(".badge").first.inner_text() == "Succeeded"
    badges = row.locator("td").nth(4).locator(".badge")
    assert badges.all_inner_texts() == cycles.STAGE_NAMES  # one badge per stage, in order
    assert "every Sunday at 02:00" in page.locator("#schedule").inner_text()
    shot(page, "cycles-list")

    with page.expect_navigation():
        row.get_by_role("link", name=str(finished_cycle.pk)).click()
    stages = page.locator("ol.timeline > li")
    assert stages.count() == len(cycles.STAGES)
    assert stages.nth(0).locator("strong").inner_text() == "Collect production examples"
    assert all(s == "succeeded" for s in stages.locator(".badge").all_inner_texts())
    assert "dataset v1" in stages.nth(3).inner_text()
    assert "auto_promote is off" in stages.nth(9).inner_text()
    reason = page.locator("#backend-reason").inner_text()
    assert reason.startswith("3 train examples, fewer than the 50 a fine-tune needs")
    assert page.locator("#timeline strong", has_text="fewshot").count() == 1
    shot(page, "cycle-timeline")


def test_start_a_cycle_asks_first(browser: Any, live_server: Any, django_user_model: Any,
                                  payments: Service) -> None:
    django_user_model.objects.create_superuser("olga", "olga@example.com", PASSWORD)
    page = login(browser, live_server.url, "olga")
    page.select_option("#cycle-service", "payments")
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Start a cycle").click()
    page.wait_for_timeout(300)  # a request, had one been sent, would have started a cycle by now
    assert asked == ["Start an improvement cycle now? It collects, trains and evaluates; at most one runs per scope."]
    assert not Cycle.objects.exists()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Start a cycle").click()
    page.wait_for_url(f"{live_server.url}/loop/cycles/*/")
    cycle = Cycle.objects.get()
    assert (cycle.scope, cycle.origin, cycle.started_by) == ("payments", "manual", "olga")
    assert page.url.endswith(f"/loop/cycles/{cycle.pk}/")
    assert f"Cycle {cycle.pk} for payments started." in page.content()
    # Embedded default: the first stage waits for the scheduler thread; the timeline shows it planned.
    assert page.locator("ol.timeline > li").first.locator(".badge").inner_text() == "pending"
    shot(page, "cycle-started")
