"""The shared job runtime: claim, heartbeat, finish, release, reap and the outbox sender.

``IngestBatch`` serves as the concrete job (the runtime is abstract); nothing here depends on
what a batch carries.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from ftops.common import jobs
from ftops.common.jobs import JobStatus
from ftops.interactions.models import IngestBatch

LEASE_S = 60


@pytest.fixture(autouse=True)
def _short_lease() -> Any:
    with override_settings(FTOPS_INGEST_LEASE_S=LEASE_S):
        yield


def make_job(**fields: Any) -> IngestBatch:
    return IngestBatch.objects.create(size=1, **fields)


def test_claim_is_one_conditional_update(db: Any) -> None:
    job = make_job()
    now = timezone.now()
    claimed = jobs.job_claim(IngestBatch, pk=job.pk, owner="a", now=now)
    assert claimed is not None
    assert (claimed.status, claimed.lease_owner, claimed.attempts) == (JobStatus.RUNNING, "a", 1)
    assert claimed.lease_expires_at == now + timedelta(seconds=LEASE_S)
    assert claimed.started_at == now
    # A second delivery inside the lease gets nothing, and learns how long the lease lasts.
    assert jobs.job_claim(IngestBatch, pk=job.pk, owner="b", now=now + timedelta(seconds=10)) is None
    assert jobs.job_lease_remaining(IngestBatch, pk=job.pk, now=now + timedelta(seconds=10)) == LEASE_S - 10
    job.refresh_from_db()
    assert (job.lease_owner, job.attempts) == ("a", 1)


def test_expired_lease_is_claimed_by_the_next_worker(db: Any) -> None:
    job = make_job()
    now = timezone.now()
    jobs.job_claim(IngestBatch, pk=job.pk, owner="dead", now=now)
    later = now + timedelta(seconds=LEASE_S + 1)
    claimed = jobs.job_claim(IngestBatch, pk=job.pk, owner="next", now=later)
    assert claimed is not None
    assert (claimed.lease_owner, claimed.attempts, claimed.started_at) == ("next", 2, now)
    # The dead owner can no longer beat or finish.
    assert jobs.job_heartbeat(IngestBatch, pk=job.pk, owner="dead") is False
    assert jobs.job_finish(IngestBatch, pk=job.pk, owner="dead") is False
    assert jobs.job_finish(IngestBatch, pk=job.pk, owner="next", fields={"result": {"ok": 1}}) is True
    job.refresh_from_db()
    assert (job.status, job.lease_owner, job.lease_expires_at, job.progress, job.result) == (
        JobStatus.SUCCEEDED, "", None, 1.0, {"ok": 1})
    assert job.is_final
    assert jobs.job_claim(IngestBatch, pk=job.pk, owner="late", now=later) is None
    assert jobs.job_lease_remaining(IngestBatch, pk=job.pk) is None


def test_no_claim_after_max_attempts(db: Any) -> None:
    job = make_job(max_attempts=1, status=JobStatus.RUNNING, attempts=1, lease_owner="dead",
                   lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert jobs.job_claim(IngestBatch, pk=job.pk, owner="next") is None


def test_heartbeat_extends_only_the_owners_lease_and_records_progress(db: Any) -> None:
    job = make_job()
    now = timezone.now()
    jobs.job_claim(IngestBatch, pk=job.pk, owner="a", now=now)
    later = now + timedelta(seconds=30)
    assert jobs.job_heartbeat(IngestBatch, pk=job.pk, owner="a", progress=0.5,
                              progress_counts={"done": 1, "total": 2}, now=later) is True
    assert jobs.job_heartbeat(IngestBatch, pk=job.pk, owner="b", now=later + timedelta(seconds=5)) is False
    job.refresh_from_db()
    assert (job.lease_expires_at, job.heartbeat_at, job.progress, job.progress_counts) == (
        later + timedelta(seconds=LEASE_S), later, 0.5, {"done": 1, "total": 2})


def test_finish_refuses_a_status_that_is_not_final(db: Any) -> None:
    job = make_job()
    with pytest.raises(ValueError, match="not a final status"):
        jobs.job_finish(IngestBatch, pk=job.pk, owner="a", status=JobStatus.RUNNING)


def test_release_requeues_then_fails_after_max_attempts(db: Any) -> None:
    job = make_job(max_attempts=2)
    jobs.job_claim(IngestBatch, pk=job.pk, owner="a")
    error = jobs.error_dict("transient", "database went away")
    assert jobs.job_release(IngestBatch, pk=job.pk, owner="b", error=error) is None  # not the owner
    assert jobs.job_release(IngestBatch, pk=job.pk, owner="a", error=error) == JobStatus.PENDING
    job.refresh_from_db()
    assert (job.status, job.lease_owner, job.error) == (JobStatus.PENDING, "", error)
    jobs.job_claim(IngestBatch, pk=job.pk, owner="c")
    assert jobs.job_release(IngestBatch, pk=job.pk, owner="c", error=error) == JobStatus.FAILED
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == {"code": "transient", "message": "gave up after 2 attempts: database went away"}


def test_fail_records_the_error_envelope(db: Any) -> None:
    job = make_job()
    jobs.job_claim(IngestBatch, pk=job.pk, owner="a")
    error = jobs.error_dict("conflict", "id clash", {"id": ["taken"]})
    assert jobs.job_fail(IngestBatch, pk=job.pk, owner="a", error=error, fields={"rows": []}) is True
    job.refresh_from_db()
    assert (job.status, job.error, job.progress) == (JobStatus.FAILED, error, None)


def test_reaper_requeues_expired_and_fails_exhausted_jobs(db: Any) -> None:
    now = timezone.now()
    expired = now - timedelta(seconds=1)
    live = make_job(status=JobStatus.RUNNING, attempts=1, lease_owner="alive",
                    lease_expires_at=now + timedelta(seconds=30))
    dead = make_job(status=JobStatus.RUNNING, attempts=1, lease_owner="dead", lease_expires_at=expired,
                    enqueued_at=now - timedelta(minutes=5))
    exhausted = make_job(status=JobStatus.RUNNING, attempts=3, max_attempts=3, lease_owner="dead",
                         lease_expires_at=expired)
    published: list[int] = []
    result = jobs.jobs_reap(IngestBatch, publish=published.append, now=now)
    assert (result.requeued, result.failed, result.published) == ([dead.pk], [exhausted.pk], [dead.pk])
    assert published == [dead.pk]
    rows = {b.pk: b for b in IngestBatch.objects.all()}
    assert (rows[live.pk].status, rows[live.pk].lease_owner) == (JobStatus.RUNNING, "alive")
    assert (rows[dead.pk].status, rows[dead.pk].lease_owner, rows[dead.pk].enqueued_at) == (
        JobStatus.PENDING, "", now)
    assert rows[dead.pk].error["code"] == "lease_expired"
    assert rows[exhausted.pk].status == JobStatus.FAILED
    assert rows[exhausted.pk].error["message"].startswith("the worker stopped responding on attempt 3 of 3")
    # A second pass finds nothing left to do.
    again = jobs.jobs_reap(IngestBatch, publish=published.append, now=now)
    assert (again.requeued, again.failed, again.published) == ([], [], [])


def test_sender_publishes_unpublished_and_stale_rows_and_stops_on_a_broker_error(db: Any) -> None:
    now = timezone.now()
    never = make_job()
    stale = make_job(enqueued_at=now - timedelta(minutes=10))
    fresh = make_job(enqueued_at=now - timedelta(seconds=5))
    make_job(status=JobStatus.SUCCEEDED)

    def broker_down(pk: int) -> None:
        raise ConnectionRefusedError("broker down")

    down = jobs.jobs_publish_pending(IngestBatch, publish=broker_down, now=now, resend_after_s=120)
    assert (down.published, down.publish_error) == ([], "ConnectionRefusedError: broker down")
    assert IngestBatch.objects.get(pk=never.pk).enqueued_at is None  # still the sender's work

    sent: list[int] = []
    up = jobs.jobs_publish_pending(IngestBatch, publish=sent.append, now=now, resend_after_s=120)
    assert sent == up.published == [never.pk, stale.pk]
    assert IngestBatch.objects.get(pk=fresh.pk).enqueued_at == now - timedelta(seconds=5)
    assert jobs.jobs_publish_pending(IngestBatch, publish=sent.append, now=now).published == []


def test_heartbeat_thread_beats_until_the_lease_is_lost(transactional_db: Any) -> None:
    job = make_job()
    jobs.job_claim(IngestBatch, pk=job.pk, owner="a")
    with jobs.JobHeartbeat(IngestBatch, pk=job.pk, owner="a", interval_s=0.05) as beat:
        deadline = time.monotonic() + 30
        while beat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert beat.beats >= 2 and not beat.lost.is_set()
        IngestBatch.objects.filter(pk=job.pk).update(lease_owner="thief")
        assert beat.lost.wait(timeout=30)
    assert not beat.running


def test_worker_identity_is_unique_per_call() -> None:
    assert jobs.worker_identity() != jobs.worker_identity()


# --- models with their own words, and the embedded scheduler -----------------------------


def test_a_model_keeps_its_own_status_words_progress_scale_and_text_error(db: Any) -> None:
    from ftops.datasets.models import CurationRun

    run = CurationRun.objects.create(kind="collect")
    assert jobs.job_claim(CurationRun, pk=run.pk, owner="a") is not None
    assert jobs.job_release(CurationRun, pk=run.pk, owner="a",
                            error=jobs.error_dict("transient", "database restarting")) == "pending"
    run.refresh_from_db()
    assert (run.status, run.error, run.lease_owner) == ("pending", "database restarting", "")
    assert jobs.job_claim(CurationRun, pk=run.pk, owner="b") is not None
    assert jobs.job_finish(CurationRun, pk=run.pk, owner="b") is True
    run.refresh_from_db()
    assert (run.status, run.progress, run.error, run.attempts) == ("ready", 100, "", 2)
    with pytest.raises(ValueError, match="not a final status"):
        jobs.job_finish(CurationRun, pk=run.pk, owner="b", status="succeeded")


@pytest.mark.django_db(transaction=True)  # the reapers close their connections after each pass
def test_scheduler_pass_requeues_and_runs_what_a_dead_process_left(settings: Any) -> None:
    from ftops.datasets.models import CurationRun

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedded default: a published job runs here
    run = CurationRun.objects.create(kind="collect")
    jobs.job_claim(CurationRun, pk=run.pk, owner="dead-process")
    CurationRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    scheduler = jobs.JobsScheduler(tasks=list(settings.FTOPS_JOB_REAPER_TASKS), interval_s=3600)
    results = scheduler.run_once()
    assert set(results) == set(settings.FTOPS_JOB_REAPER_TASKS)
    assert not [name for name, result in results.items() if isinstance(result, dict) and "error" in result]
    assert results["ftops.datasets.tasks.dataset_jobs_reap_task"]["curation_runs"]["requeued"] == [run.pk]
    run.refresh_from_db()
    assert (run.status, run.attempts, run.lease_owner) == ("ready", 2, "")


@pytest.mark.django_db(transaction=True)
def test_scheduler_starts_only_in_the_embedded_default_and_runs_a_pass_at_once(settings: Any) -> None:
    settings.FTOPS_JOB_REAPER_TASKS = ["ftops.training.tasks.training_reap_task"]
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker: beat runs the reapers
    assert jobs.jobs_scheduler_start() is None
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.FTOPS_JOBS_SCHEDULER = False
    assert jobs.jobs_scheduler_start() is None
    settings.FTOPS_JOBS_SCHEDULER = True
    scheduler = jobs.jobs_scheduler_start()
    try:
        assert scheduler is not None and jobs.jobs_scheduler_start() is scheduler  # one per process
        deadline = time.monotonic() + 30
        while scheduler.passes < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert scheduler.passes >= 1 and scheduler.running
    finally:
        jobs.jobs_scheduler_stop()
    assert not scheduler.running
