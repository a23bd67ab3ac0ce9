"""A curation run that asks for triggers hands them to the loop by task name after its commit."""

from __future__ import annotations

from typing import Any

from ftops.catalog.models import Service
from ftops.datasets.models import CurationRun
from ftops.datasets.services.runs import TRIGGERS_TASK, curation_run_execute
from ftops.loop.models import TriggerEvent
from ftops.loop.tasks import triggers_evaluate_task


def test_the_task_name_is_the_one_datasets_sends() -> None:
    assert triggers_evaluate_task.name == TRIGGERS_TASK


def test_a_triggers_run_reports_the_loops_findings(payments: Service, django_capture_on_commit_callbacks: Any,
                                                   settings: Any) -> None:
    run = CurationRun.objects.create(kind=CurationRun.Kind.TRIGGERS)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        done = curation_run_execute(run_id=run.pk)
    assert done.status == "ready"
    assert len(callbacks) == 1  # the hand-over to the loop, sent once the run committed
    run.refresh_from_db()
    report = run.result["triggers"]
    assert report["fired"] == []  # nothing new in an empty catalog
    assert report["skipped"] == {"stale_accuracy": "no evaluation run older than 30 days to compare with"}
    assert TriggerEvent.objects.count() == 0


def test_a_collect_run_does_not_ask_the_loop(payments: Service, django_capture_on_commit_callbacks: Any) -> None:
    run = CurationRun.objects.create(kind=CurationRun.Kind.COLLECT)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        curation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert "triggers" not in run.result and callbacks == []
