"""A LoRA run survives SIGKILL of its Celery worker: lease expiry, the reaper, resume, same loss.

No exception is raised inside the loop to stand in for death: a real ``celery -A ftops
worker -Q training`` process trains the run against Redis and the test's PostgreSQL
database and is killed with SIGKILL once a checkpoint is on disk. Its heartbeat stops, the
lease (short here) runs out, the reaper task (what beat sends) puts the run back in the
queue, and a second worker resumes it from the checkpoint and finishes. The final loss
must match an uninterrupted run with the same seed and config.

Runs in the PostgreSQL pass of ``scripts/run-tests`` (a worker process cannot share the
SQLite pass's in-memory database); the ``celery_worker`` marker lets it in there although
it is also an ``ml`` test.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from ftops.core.ml.lora import latest_checkpoint
from ftops.training import services
from ftops.training.models import RunStatus, TrainingRun
from tests.celery_fixtures import WorkerHandle, _use_broker, start_worker
from tests.training.conftest import FAST_LORA, TESTER, make_records

pytestmark = [pytest.mark.ml, pytest.mark.services, pytest.mark.celery_worker]

LEASE_S = 3  # the workers' lease: a beat every 0.6 s, and a dead worker's run is free 3 s later
# 8 epochs of 6 steps: the first checkpoint (step 3) comes well before the end, so the kill
# lands mid-run even when the machine is busy.
CONFIG = {**FAST_LORA, "epochs": 8.0, "checkpoint_every": 3}
TOTAL_STEPS = 48
# kombu's Redis transport keeps unacknowledged messages here until the visibility timeout.
UNACKED_KEYS = ("unacked", "unacked_index", "unacked_mutex")


def _redis(redis_url: str) -> Any:
    import redis

    return redis.Redis.from_url(redis_url)


@pytest.fixture
def training_workers(transactional_db: Any, redis_url: str, tmp_path: Path,
                     settings: Any) -> Iterator[Callable[[str], WorkerHandle]]:
    """start(label) -> a real worker on the ``training`` queue; all share one artifacts folder."""
    from django.db import connection

    from ftops.celery import app

    if connection.vendor != "postgresql":
        pytest.skip("a worker process shares the test database: run it on PostgreSQL (DATABASE_URL=postgres://…)")
    artifacts = tmp_path / "artifacts"
    settings.ARTIFACTS_DIR = artifacts  # so run_artifact_dir() here names the workers' folder
    # A message left by an earlier, aborted run of this test would reach these workers with a
    # run id that this fresh test database hands out again.
    _redis(redis_url).delete("training", *UNACKED_KEYS)
    extra_env = {"FTOPS_ARTIFACTS_DIR": str(artifacts), "FTOPS_TRAINING_LEASE_S": str(LEASE_S)}
    started: list[WorkerHandle] = []

    def start(label: str) -> WorkerHandle:
        handle = start_worker(redis_url=redis_url, tmp_path=tmp_path, extra_env=extra_env, queues="training",
                              label=label)
        started.append(handle)
        return handle

    saved = (app.conf.broker_url, app.conf.task_always_eager)
    _use_broker(app, redis_url, eager=False)
    try:
        yield start
    finally:
        _use_broker(app, saved[0], eager=saved[1])
        for handle in started:
            if handle.process.poll() is None:
                handle.process.terminate()
                try:
                    handle.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    handle.kill()
        # The killed worker's task stays unacknowledged in Redis; a later session would
        # otherwise get it back after the visibility timeout.
        _redis(redis_url).delete("training", *UNACKED_KEYS)


def _final(run_id: int) -> bool:
    return TrainingRun.objects.get(pk=run_id).status in (RunStatus.SUCCEEDED, RunStatus.FAILED,
                                                          RunStatus.CANCELLED)


def test_sigkilled_worker_run_is_reaped_and_resumed_by_the_next_worker_to_the_same_loss(
        training_workers: Callable[[str], WorkerHandle], make_dataset_version: Any, micro_base: Path) -> None:
    from ftops.training.tasks import training_reap_task

    version = make_dataset_version(train=make_records(24), validation=make_records(4, seed=1))

    def create() -> TrainingRun:
        return services.training_run_create(backend="lora", dataset_version=version, config=CONFIG,
                                            base_model=str(micro_base), actor=TESTER)

    first = training_workers("first")
    run = create()  # committed at once (no transaction here): the task goes through Redis
    folder = services.run_artifact_dir(run)

    def checkpoint_written() -> bool:
        return latest_checkpoint(folder) is not None

    first.wait_for(checkpoint_written, timeout=120, what="the first checkpoint")
    os.kill(first.process.pid, signal.SIGKILL)
    assert first.process.wait(timeout=30) == -signal.SIGKILL
    checkpoint = latest_checkpoint(folder)
    assert checkpoint is not None
    resume_step = int(checkpoint.name.removeprefix("step-"))
    killed = TrainingRun.objects.get(pk=run.pk)
    # Killed mid-run, holding the lease, with steps after the checkpoint still to do.
    assert killed.status == RunStatus.RUNNING and killed.lease_owner and killed.attempts == 1, killed.log_tail
    assert 3 <= resume_step < TOTAL_STEPS and killed.step < TOTAL_STEPS
    assert killed.lease_expires_at is not None

    second = training_workers("second")

    def lease_expired() -> bool:
        expires = TrainingRun.objects.get(pk=run.pk).lease_expires_at
        return expires is not None and expires < timezone.now()

    # Nothing heartbeats the run any more: its lease runs out on its own.
    second.wait_for(lease_expired, timeout=6 * LEASE_S, what="the dead worker's lease to expire")
    training_reap_task.delay()  # what beat sends every FTOPS_TRAINING_REAP_EVERY_S
    second.wait_for(lambda: _final(run.pk), timeout=180, what="the resumed run to finish")

    resumed = TrainingRun.objects.get(pk=run.pk)
    assert resumed.status == RunStatus.SUCCEEDED, resumed.error or resumed.log_tail
    assert resumed.attempts == 2 and resumed.metrics["resumed_from_step"] == resume_step
    assert "lease expired after attempt 1; re-queued" in resumed.log_tail
    assert "training_reap_task" in second.log() and "training_run_task" in second.log()
    assert [p[0] for p in resumed.loss_series] == list(range(1, TOTAL_STEPS + 1))

    # The same seed and config, never interrupted, trained by the same worker.
    reference = create()
    second.wait_for(lambda: _final(reference.pk), timeout=180, what="the uninterrupted run to finish")
    uninterrupted = TrainingRun.objects.get(pk=reference.pk)
    assert uninterrupted.status == RunStatus.SUCCEEDED, uninterrupted.error
    assert uninterrupted.attempts == 1 and uninterrupted.metrics["resumed_from_step"] == 0
    difference = abs(resumed.metrics["final_loss"] - uninterrupted.metrics["final_loss"])
    print(f"final loss resumed {resumed.metrics['final_loss']} uninterrupted "
          f"{uninterrupted.metrics['final_loss']} difference {difference:.2e} (resumed from step {resume_step})")
    assert difference < 1e-3
    assert resumed.metrics["final_val_loss"] == pytest.approx(uninterrupted.metrics["final_val_loss"], abs=1e-3)
