from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import OperationalError, connections
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, ValidationFailed
from ftops.common.jobs import JobHeartbeat
from ftops.core.ml.lora import latest_checkpoint
from ftops.training import services
from ftops.training.models import RunStatus, TrainingRun
from registry.models import ModelVersion
from tests.training.conftest import FAST_LORA, TESTER, make_records

pytestmark = pytest.mark.django_db

T = TypeVar("T")


class WorkerDied(BaseException):
    """Stands in for SIGKILL: nothing in the worker gets to clean up."""


@pytest.fixture
def version(make_dataset_version: Any) -> Any:
    return make_dataset_version(train=make_records(24), validation=make_records(4, seed=1),
                                test=make_records(6, seed=2))


def _lora_run(version: Any, base: Path, **config: Any) -> TrainingRun:
    return services.training_run_create(backend="lora", dataset_version=version, config={**FAST_LORA, **config},
                                        base_model=str(base), enqueue=False, actor=TESTER)


def test_create_stores_the_full_typed_config(version: Any, base_path: Path) -> None:
    run = _lora_run(version, base_path)
    assert run.status == RunStatus.QUEUED and run.backend == "lora"
    assert run.config["r"] == 8 and run.config["alpha"] == 16 and run.config["dropout"] == 0.1
    assert run.config["lr"] == 5e-3 and run.config["dataset_version"] == str(version.number)
    assert run.config["base_model"] == str(base_path)


def test_create_rejects_bad_config_and_leaves_nothing(version: Any) -> None:
    with pytest.raises(ValidationFailed) as info:
        services.training_run_create(actor=TESTER, backend="lora", dataset_version=version, config={"r": 0, "lr": 5})
    assert set(info.value.fields) == {"config.r", "config.lr"}
    with pytest.raises(ValidationFailed) as unknown:
        services.training_run_create(actor=TESTER, backend="lora", dataset_version=version, config={"rank": 4})
    assert "rank" in str(unknown.value.fields)
    with pytest.raises(ValidationFailed):
        services.training_run_create(actor=TESTER, backend="gpt", dataset_version=version)
    with pytest.raises(ValidationFailed, match="unknown service"):
        services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version, service="nope")
    assert TrainingRun.objects.count() == 0


def test_create_refuses_a_version_that_is_not_ready(make_dataset_version: Any) -> None:
    pending = make_dataset_version(train=make_records(2), status="pending")
    with pytest.raises(ValidationFailed, match="not ready"):
        services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=pending)
    assert TrainingRun.objects.count() == 0


def test_create_enqueues_after_commit(version: Any, base_path: Path, django_capture_on_commit_callbacks: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []
    monkeypatch.setattr("ftops.training.tasks.training_run_task.delay", lambda run_id: sent.append(run_id))
    with django_capture_on_commit_callbacks(execute=True):
        run = services.training_run_create(actor=TESTER, backend="lora", dataset_version=version, config=FAST_LORA,
                                           base_model=str(base_path))
    assert sent == [run.pk]


@pytest.mark.ml
def test_execute_trains_and_registers_a_model_version(version: Any, micro_base: Path,
                                                      django_capture_on_commit_callbacks: Any) -> None:
    run = _lora_run(version, micro_base)
    with django_capture_on_commit_callbacks(execute=True):  # registration is a registry task sent on commit
        done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error if done else None
    assert done.progress == 100.0 and done.step == done.total_steps == 12
    assert [p[0] for p in done.loss_series] == list(range(1, 13))
    assert done.val_loss_series and done.val_loss_series[-1][0] == 12
    assert Path(done.artifact_path, "adapter_model.safetensors").exists()
    assert done.artifact_bytes > 0 and done.lease_owner == "" and done.attempts == 1
    assert "succeeded" in done.log_tail
    mv = ModelVersion.objects.get(training_run=done)
    assert mv.artifact_path == done.artifact_path and mv.dataset_version == version and mv.semver == "1.0.0"
    assert mv.serving == {"kind": "hf_lora", "base_model": done.base_model, "adapter_path": done.artifact_path}
    assert mv.card["dataset_version"] == str(version.number)


def test_duplicate_delivery_does_not_train_twice(version: Any, base_path: Path) -> None:
    run = _lora_run(version, base_path)
    claimed = services.training_run_claim(run_id=run.pk, owner="worker-a")
    assert claimed is not None and claimed.lease_owner == "worker-a"
    assert services.training_run_execute(run_id=run.pk, owner="worker-b") is None
    run.refresh_from_db()
    assert (run.status, run.lease_owner, run.attempts) == (RunStatus.RUNNING, "worker-a", 1)
    assert not services.run_artifact_dir(run).exists()  # worker-b never started training


@pytest.mark.ml
def test_finished_run_is_not_claimed_again(version: Any, micro_base: Path,
                                          django_capture_on_commit_callbacks: Any) -> None:
    run = _lora_run(version, micro_base)
    with django_capture_on_commit_callbacks(execute=True):
        services.training_run_execute(run_id=run.pk, owner="w1")
        assert services.training_run_execute(run_id=run.pk, owner="w2") is None
    assert ModelVersion.objects.filter(training_run=run).count() == 1


def _die_at_step_seven(run: TrainingRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train ``run`` as "dead-worker" until the process dies after step 7 (checkpoint at 6)."""
    original = services.RunContext.progress

    def die_at_step_seven(self: Any, **kwargs: Any) -> None:
        original(self, **kwargs)
        if kwargs.get("step") == 7:
            raise WorkerDied

    monkeypatch.setattr(services.RunContext, "progress", die_at_step_seven)
    with pytest.raises(WorkerDied):
        services.training_run_execute(run_id=run.pk, owner="dead-worker")
    monkeypatch.setattr(services.RunContext, "progress", original)


@pytest.mark.ml
def test_dead_worker_lease_expires_reaper_requeues_and_next_worker_resumes(
        version: Any, micro_base: Path, monkeypatch: pytest.MonkeyPatch,
        django_capture_on_commit_callbacks: Any) -> None:
    run = _lora_run(version, micro_base)
    _die_at_step_seven(run, monkeypatch)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.lease_owner == "dead-worker"
    assert services.training_runs_reap()["requeued"] == []  # lease still valid: nothing to do

    later = timezone.now() + timedelta(seconds=services.lease_seconds() + 5)
    sent: list[int] = []
    monkeypatch.setattr("ftops.training.tasks.training_run_task.delay", lambda run_id: sent.append(run_id))
    with django_capture_on_commit_callbacks(execute=True):
        reaped = services.training_runs_reap(now=later)
    assert reaped["requeued"] == [run.pk] and sent == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.lease_owner == ""
    assert "lease expired" in run.log_tail

    done = services.training_run_execute(run_id=run.pk, owner="worker-2")
    assert done is not None and done.status == RunStatus.SUCCEEDED
    assert done.attempts == 2 and done.metrics["resumed_from_step"] == 6
    assert [p[0] for p in done.loss_series] == list(range(1, 13))


@pytest.mark.ml
def test_a_reused_run_id_never_resumes_the_old_runs_checkpoint(version: Any, micro_base: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    old = _lora_run(version, micro_base)
    _die_at_step_seven(old, monkeypatch)
    old.refresh_from_db()
    old_dir = services.run_artifact_dir(old)
    assert (latest_checkpoint(old_dir) or Path()).name == "step-6"

    # A database reset: the row goes, ARTIFACTS_DIR stays, and the next run gets the same id.
    TrainingRun.objects.filter(pk=old.pk).delete()
    new = TrainingRun.objects.create(pk=old.pk, name=old.name, backend="lora", base_model=old.base_model,
                                     config=old.config, dataset_version=version)
    new_dir = services.run_artifact_dir(new)
    assert new_dir != old_dir and services.run_identity(new)["run_id"] == str(old.pk)
    assert services.run_identity(new)["run_token"] != services.run_identity(old)["run_token"]
    # Even the old run's checkpoint in the new run's own folder (as with a shared folder per
    # id) is refused: it names another run.
    shutil.copytree(old_dir / "checkpoints", new_dir / "checkpoints")

    done = services.training_run_execute(run_id=new.pk, owner="worker-2")
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error if done else None
    assert done.metrics["resumed_from_step"] == 0 and done.attempts == 1
    assert "ignoring checkpoint step-6" in done.log_tail and "it names a different run_token" in done.log_tail
    assert [p[0] for p in done.loss_series] == list(range(1, 13))
    assert (latest_checkpoint(old_dir) or Path()).name == "step-6"  # the old folder is left as it was


def _retry_locked(fn: Callable[[], T]) -> T:
    """Run ``fn`` again while SQLite reports a lock held by another thread's connection.

    The SQLite test database is one shared-cache in-memory database, where a statement that
    meets another connection's write fails at once with 'database table is locked' (the busy
    timeout a file database waits on does not apply); PostgreSQL never gets here.
    """
    for attempt in range(200):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 199:
                raise
            time.sleep(0.01)
    raise AssertionError("unreachable")


@pytest.mark.django_db(transaction=True)  # the worker and its heartbeat use their own connections
def test_heartbeat_keeps_a_blocked_run_leased_so_it_is_neither_reaped_nor_trained_twice(
        make_dataset_version: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftops.training.backends.fewshot import FewShotBackend

    settings.FTOPS_TRAINING_LEASE_S = 2  # a beat every 0.4 s
    version = make_dataset_version(train=make_records(24))
    run = services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version, enqueue=False)
    entered, release = threading.Event(), threading.Event()
    bodies: list[str] = []
    original = FewShotBackend.run

    def blocking_run(self: Any, **kwargs: Any) -> Any:
        bodies.append(threading.current_thread().name)
        entered.set()
        release.wait(60)  # a long model load: no step boundary, so no write from the run itself
        return original(self, **kwargs)

    monkeypatch.setattr(FewShotBackend, "run", blocking_run)
    outcome: dict[str, Any] = {}

    def worker() -> None:
        try:
            outcome["run"] = services.training_run_execute(run_id=run.pk, owner="w1")
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker, name="worker-1")
    thread.start()
    try:
        assert entered.wait(60)
        claimed = _retry_locked(lambda: TrainingRun.objects.get(pk=run.pk))
        time.sleep(2.5 * services.lease_seconds())  # the lease as claimed has run out twice over
        reaped = _retry_locked(services.training_runs_reap)
        duplicate = _retry_locked(lambda: services.training_run_execute(run_id=run.pk, owner="w2"))
        held = _retry_locked(lambda: TrainingRun.objects.get(pk=run.pk))
        now = timezone.now()
    finally:
        release.set()
        thread.join(60)
    assert reaped == {"requeued": [], "failed": [], "cancelled": [], "resent": []}
    assert duplicate is None
    assert (held.status, held.lease_owner, held.attempts) == (RunStatus.RUNNING, "w1", 1)
    assert claimed.lease_expires_at is not None and held.lease_expires_at is not None
    assert held.lease_expires_at > now and held.lease_expires_at > claimed.lease_expires_at + timedelta(seconds=2)
    assert bodies == ["worker-1"]  # the duplicate delivery never reached the backend
    done = outcome["run"]
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error if done else None
    assert (done.attempts, done.lease_owner) == (1, "")
    assert not [t for t in threading.enumerate() if t.name.startswith("heartbeat-training.trainingrun-")]


@pytest.mark.django_db(transaction=True)
def test_heartbeat_never_extends_a_lease_this_worker_lost(version: Any, base_path: Path) -> None:
    run = _lora_run(version, base_path)
    assert services.training_run_claim(run_id=run.pk, owner="w1") is not None
    heartbeat = JobHeartbeat(TrainingRun, pk=run.pk, owner="w1", interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while heartbeat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert heartbeat.beats >= 2 and not heartbeat.lost.is_set()
        taken_until = timezone.now() + timedelta(seconds=1)
        _retry_locked(lambda: TrainingRun.objects.filter(pk=run.pk).update(lease_owner="w2",
                                                                          lease_expires_at=taken_until))
        assert heartbeat.lost.wait(10)
    finally:
        heartbeat.stop()
    assert not heartbeat.running
    run.refresh_from_db()
    assert (run.lease_owner, run.lease_expires_at) == ("w2", taken_until)


def test_heartbeat_thread_waits_for_a_committed_claim(version: Any, base_path: Path) -> None:
    run = _lora_run(version, base_path)
    services.training_run_claim(run_id=run.pk, owner="w1")
    # Inside this test's transaction another connection cannot see the claim: no thread.
    with JobHeartbeat(TrainingRun, pk=run.pk, owner="w1", interval_s=0.01) as heartbeat:
        time.sleep(0.05)
        assert not heartbeat.running and heartbeat.beats == 0


def test_reaper_gives_up_after_max_attempts(version: Any, base_path: Path) -> None:
    run = _lora_run(version, base_path)
    past = timezone.now() - timedelta(minutes=1)
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, attempts=3, lease_owner="x",
                                                 lease_expires_at=past)
    assert services.training_runs_reap()["failed"] == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "stopped responding on attempt 3 of 3" in run.error
    assert "giving up" in run.log_tail


def test_reaper_resends_queued_runs_nobody_picked_up(version: Any, base_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     django_capture_on_commit_callbacks: Any) -> None:
    run = _lora_run(version, base_path)
    sent: list[int] = []
    monkeypatch.setattr("ftops.training.tasks.training_run_task.delay", lambda run_id: sent.append(run_id))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.training_runs_reap()["resent"] == []
        later = timezone.now() + timedelta(hours=1)
        assert services.training_runs_reap(now=later)["resent"] == [run.pk]
    assert sent == [run.pk]


def test_cancel_a_queued_run_stops_it_at_once(version: Any, base_path: Path) -> None:
    run = _lora_run(version, base_path)
    cancelled = services.training_run_cancel(run_id=run.pk, actor=Actor(label="alice"))
    assert cancelled.status == RunStatus.CANCELLED and cancelled.finished_at is not None
    assert services.training_run_execute(run_id=run.pk, owner="w") is None
    with pytest.raises(Conflict):
        services.training_run_cancel(actor=TESTER, run_id=run.pk)


@pytest.mark.ml
def test_cancel_a_running_run_stops_the_loop_between_steps(version: Any, micro_base: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    run = _lora_run(version, micro_base)
    original = services.RunContext.progress
    seen: list[int] = []

    def cancel_at_three(self: Any, **kwargs: Any) -> None:
        seen.append(kwargs.get("step", 0))
        if kwargs.get("step") == 3:
            services.training_run_cancel(run_id=run.pk, actor=Actor(label="bob"))
        original(self, **{**kwargs, "force": True})

    monkeypatch.setattr(services.RunContext, "progress", cancel_at_three)
    done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.CANCELLED
    assert max(seen) == 3  # no step after the cancel
    assert "cancel requested by bob" in done.log_tail
    assert not ModelVersion.objects.filter(training_run=run).exists()


def test_heartbeat_after_losing_the_lease_stops_the_worker(version: Any, base_path: Path) -> None:
    from ftops.core.ml.lora import TrainingStopped

    run = _lora_run(version, base_path)
    claimed = services.training_run_claim(run_id=run.pk, owner="w1")
    assert claimed is not None
    ctx = services.RunContext(claimed, "w1")
    TrainingRun.objects.filter(pk=run.pk).update(lease_owner="w2")  # the reaper gave it to someone else
    with pytest.raises(TrainingStopped, match="lease lost"):
        ctx.progress(step=1, total_steps=10, loss=1.0, force=True)
    run.refresh_from_db()
    assert run.lease_owner == "w2" and run.loss_series == []


def test_failure_is_recorded_with_its_reason(version: Any, tmp_path: Path) -> None:
    run = services.training_run_create(actor=TESTER, backend="lora", dataset_version=version, config=FAST_LORA,
                                       base_model=str(tmp_path / "no-such-model"), enqueue=False)
    done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.FAILED
    assert "no-such-model" in done.error and done.finished_at is not None


def test_fewshot_run_produces_a_prompt_artifact(version: Any, django_capture_on_commit_callbacks: Any) -> None:
    run = services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version, enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):  # registration is a registry task sent on commit
        done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error if done else None
    assert done.artifact["tools_covered"] == ["book_room", "get_weather"]
    assert done.metrics["prompt_tokens"] > 0
    assert Path(done.artifact_path).read_text() == done.artifact["prompt"]
    assert ModelVersion.objects.get(training_run=done).card["kind"] == "few-shot-prompt"
