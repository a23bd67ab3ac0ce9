from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from ftops.training import services
from ftops.training.models import RunStatus, TrainingRun
from tests.training.conftest import TESTER, make_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(make_dataset_version: Any) -> TrainingRun:
    version = make_dataset_version(train=make_records(6))
    run = services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version, enqueue=False,
                                       name="wx-prompt")
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, lease_owner="w1", lease_expires_at=timezone.now() + timedelta(minutes=5),
        progress=40.0, step=4, total_steps=10, eta_seconds=12.0,
        loss_series=[[1, 2.5], [2, 2.0]], val_loss_series=[[2, 2.2]], log_tail="10:00:00 step 4\n")
    run.refresh_from_db()
    return run


@pytest.fixture
def staff(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


def test_pages_need_login_and_a_role(client: Any, django_user_model: Any, run: TrainingRun) -> None:
    assert client.get(reverse("training:runs")).status_code == 302
    client.force_login(django_user_model.objects.create_user("nobody", password="pw-123456789"))
    assert client.get(reverse("training:runs")).status_code == 403
    assert client.get(reverse("training:run", args=[run.pk])).status_code == 403


def test_list_shows_runs(staff: Any, run: TrainingRun) -> None:
    page = staff.get(reverse("training:runs")).content.decode()
    assert "wx-prompt" in page and "40%" in page and 'aria-current="page"' in page
    filtered = staff.get(reverse("training:runs"), {"status": "succeeded"}).content.decode()
    assert "wx-prompt" not in filtered and "No training runs with status succeeded" in filtered


def test_detail_has_live_progress_chart_log_and_cancel(staff: Any, run: TrainingRun) -> None:
    page = staff.get(reverse("training:run", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in page and "vendor/chart-4.6.1.umd.min.js" in page
    assert 'id="loss-data"' in page and "[[1, 2.5], [2, 2.0]]" in page
    assert "10:00:00 step 4" in page and "ETA" in page
    assert reverse("training:cancel", args=[run.pk]) in page and "csrfmiddlewaretoken" in page


def test_htmx_poll_returns_only_the_progress_partial(staff: Any, run: TrainingRun) -> None:
    partial = staff.get(reverse("training:run", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="run-progress"') and "<html" not in partial
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, progress=100.0)
    done = staff.get(reverse("training:run", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done  # finished runs stop polling


def test_cancel_button_posts_and_requests_cancel(staff: Any, run: TrainingRun) -> None:
    response = staff.post(reverse("training:cancel", args=[run.pk]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.cancel_requested and run.status == RunStatus.RUNNING  # the worker stops at its next step
    assert staff.get(reverse("training:cancel", args=[run.pk])).status_code == 405


def test_cancel_needs_the_orchestrator_role(client: Any, django_user_model: Any, run: TrainingRun) -> None:
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("rev", password="pw-123456789")
    user.groups.add(Group.objects.create(name="reviewer"))
    client.force_login(user)
    assert client.get(reverse("training:run", args=[run.pk])).status_code == 200
    assert client.post(reverse("training:cancel", args=[run.pk])).status_code == 403
    run.refresh_from_db()
    assert not run.cancel_requested


def test_unknown_run_is_404(staff: Any) -> None:
    assert staff.get(reverse("training:run", args=[987654])).status_code == 404


@pytest.mark.parametrize("size", [3, 40])
def test_training_pages_take_the_same_queries_whatever_the_rows(staff: Any, size: int,
                                                                 django_assert_max_num_queries: Any) -> None:
    from ftops.datasets.models import DatasetVersion
    from tests.common.pages import get_within

    runs = []
    for n in range(size):
        version = DatasetVersion.objects.create(number=n + 1, status="ready")
        runs.append(TrainingRun.objects.create(
            backend="lora", base_model="tiny", dataset_version=version, name=f"run {n}", status=RunStatus.SUCCEEDED,
            progress=100.0, loss_series=[[s, 1.0 / (s + 1)] for s in range(size * 10)], metrics={"final_loss": 0.1},
            log_tail="done\n" * size))
    get_within(staff, django_assert_max_num_queries, reverse("training:runs"), 4)
    get_within(staff, django_assert_max_num_queries, reverse("training:runs"), 4, status="succeeded")
    get_within(staff, django_assert_max_num_queries, reverse("training:run", args=[runs[-1].pk]), 3)
