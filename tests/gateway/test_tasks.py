"""The canary check runs every minute on beat and with the embedded scheduler's reapers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from ftops.common.jobs import JobsScheduler
from ftops.gateway.models import CanaryDecision
from ftops.gateway.services import arm_outcomes_record
from registry.models import Deployment, DeploymentState
from tests.gateway.conftest import deploy, make_version

TASK = "ftops.gateway.tasks.canaries_check"


def test_scheduled_on_beat_and_in_the_embedded_default() -> None:
    assert settings.CELERY_BEAT_SCHEDULE["gateway-canaries-check"] == {"task": TASK, "schedule": 60.0}
    assert TASK in settings.FTOPS_JOB_REAPER_TASKS


def test_embedded_scheduler_pass_rolls_a_bad_canary_back(transactional_db: Any) -> None:
    # transactional: the scheduler closes every connection after a task, as it must in a server thread
    deploy(make_version("acme-gpt-v1.0.0"))
    canary = deploy(make_version("acme-gpt-v1.1.0", status="canary"), state=DeploymentState.CANARY)
    Deployment.objects.filter(pk=canary.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    at = (timezone.now() - timedelta(minutes=2)).timestamp()
    arm_outcomes_record(records=[{"kind": "error", "id": f"c{i}", "model_version_id": canary.model_version_id,
                                  "scope": "enterprise", "arm": "canary", "finished_at": at, "latency_ms": 5.0,
                                  "error": "timeout"} for i in range(30)])
    results = JobsScheduler(tasks=[TASK], interval_s=60).run_once()
    assert [r["action"] for r in results[TASK]] == ["rollback"]
    canary.refresh_from_db()
    assert canary.state == DeploymentState.ROLLED_BACK
    assert CanaryDecision.objects.get().numbers["canary"]["upstream_errors"] == 30
