"""Improvement cycles (ftops.loop.cycles): stages on the job runtime, one cycle per scope, trigger folding
and cooldown, the schedule, the backend decision matrix."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from ftops.common.errors import Conflict, ValidationFailed
from ftops.common.models import AuditEvent
from ftops.datasets.config import LoopConfig
from ftops.datasets.services import example_create
from ftops.loop import cycles
from ftops.loop.cycles import (
    STAGE_NAMES,
    StageOutcome,
    backend_choose,
    cycle_stage_execute,
    cycle_start,
    cycles_schedule_tick,
    cycles_start_for_triggers,
    schedule_next,
    schedule_slot_before,
)
from ftops.loop.models import Cycle, CycleOrigin, CycleStage, CycleStatus, TriggerEvent, TriggerKind
from tests.datasets.conftest import refund_expected

ME = Actor(label="carol")


def fire(service: Service | None, reason: str = "3 new high-quality examples") -> TriggerEvent:
    return TriggerEvent.objects.create(kind=TriggerKind.HIGH_QUALITY_EXAMPLES, service=service,
                                       fingerprint=f"service:{service.name if service else '-'}", reason=reason)


def examples(service: Service, n: int = 3) -> None:
    for k in range(n):
        example_create(service=service, user_query=f"Refund {k + 1} euros on pay_{k}", behavior="call",
                       expected=refund_expected(f"pay_{k}", float(k + 1)), source="manual", quality="high")


@pytest.fixture
def fake_ml_stages(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Stand-ins for the stages that build, train and evaluate (their own apps test those);
    collect, aggregate, curate and canary stay real."""
    calls: Counter[str] = Counter()

    def fake(name: str, links: dict[str, Any]) -> Any:
        def run(cycle: Cycle, stage: CycleStage) -> StageOutcome:
            calls[name] += 1
            return StageOutcome(note=f"{name} done", links=links)
        return run

    for name, links in {"build": {"dataset_version": 1}, "train": {"training_run": 2}, "register": {"model_version": 3},
                        "evaluate": {"eval_run": 4}, "gates": {"gate_report": 5, "gates_passed": True},
                        "approval": {}}.items():
        monkeypatch.setitem(cycles.STAGE_FUNCTIONS, name, fake(name, links))
    return calls


# --------------------------------------------------------------------------- stages


@pytest.mark.django_db(transaction=True)
def test_stages_run_in_order_each_enqueuing_the_next_on_commit(payments: Service, fake_ml_stages: Counter[str]) -> None:
    examples(payments)
    cycle = cycle_start(actor=ME, scope="payments", reason="by hand")
    cycle.refresh_from_db()
    stages = list(cycle.stages.order_by("position"))
    assert [s.name for s in stages] == STAGE_NAMES
    assert all(s.status == "succeeded" and s.attempts == 1 and s.finished_at for s in stages)
    assert cycle.status == CycleStatus.SUCCEEDED and cycle.finished_at is not None
    by_name = {s.name: s for s in stages}
    assert "curation_run" in by_name["collect"].links
    assert by_name["aggregate"].note.startswith("no aggregation sources configured")
    assert by_name["curate"].note.startswith("3 active examples (high: 3)")
    assert by_name["canary"].note == "skipped: deployment.auto_promote is off (a person starts the canary)"
    assert "done: train done" in by_name["train"].log
    assert set(fake_ml_stages) == {"build", "train", "register", "evaluate", "gates", "approval"}
    actions = list(AuditEvent.objects.filter(object_type="cycle").values_list("action", flat=True))
    assert sorted(actions) == ["cycle.finished", "cycle.started"]


@pytest.mark.django_db(transaction=True)
def test_a_failing_stage_fails_the_cycle_and_stops(payments: Service, fake_ml_stages: Counter[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from ftops.common import notifications

    alerts: list[dict[str, Any]] = []
    monkeypatch.setattr(notifications, "notify", lambda **kwargs: alerts.append(kwargs))
    cycle = cycle_start(actor=ME, scope="payments")  # no examples: curate has nothing to work on
    cycle.refresh_from_db()
    assert cycle.status == CycleStatus.FAILED
    assert cycle.error == "curate: no active examples for payments: nothing to curate"
    assert [s.name for s in cycle.stages.order_by("position")] == ["collect", "aggregate", "curate"]
    assert cycle.stages.get(name="curate").error["code"] == "stage_failed"
    assert not fake_ml_stages
    # The admins hear of it, as the kind of notification each user may opt out of.
    assert [(a["audience"], a["kind"], a["subject"]) for a in alerts] == [
        ("admins", "cycle_stage_failed", f"Cycle {cycle.pk} (payments) failed at curate")]
    assert alerts[0]["payload"]["stage"] == "curate" and "nothing to curate" in alerts[0]["text"]


@pytest.mark.django_db(transaction=True)
def test_a_stage_rechecks_child_work_until_it_finished(payments: Service, fake_ml_stages: Counter[str],
                                                        monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.FTOPS_LOOP_POLL_S = 0.01
    answers = iter([StageOutcome(done=False), StageOutcome(done=False), StageOutcome(note="built")])
    monkeypatch.setitem(cycles.STAGE_FUNCTIONS, "build", lambda cycle, stage: next(answers))
    examples(payments)
    cycle = cycle_start(actor=ME, scope="payments")
    build = CycleStage.objects.get(cycle=cycle, name="build")
    assert (build.status, build.polls, build.attempts, build.note) == ("succeeded", 2, 1, "built")


@pytest.mark.django_db(transaction=True)
def test_with_a_broker_a_waiting_stage_gives_its_lease_back_and_comes_back_later(
        payments: Service, monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    sent: list[tuple[int, float | None]] = []
    monkeypatch.setattr(cycles, "_send_stage", lambda pk, countdown=None: sent.append((pk, countdown)))
    monkeypatch.setitem(cycles.STAGE_FUNCTIONS, "collect", lambda cycle, stage: StageOutcome(done=False))
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.FTOPS_LOOP_POLL_S = 45
    cycle = cycle_start(actor=ME, scope="payments")
    stage = CycleStage.objects.get(cycle=cycle)
    assert sent == [(stage.pk, None)]
    cycle_stage_execute(stage_id=stage.pk)
    stage.refresh_from_db()
    # Pending again with the attempt given back: waiting on a child never uses up retries.
    assert (stage.status, stage.attempts, stage.polls, stage.lease_owner) == ("pending", 0, 1, "")
    assert sent[-1] == (stage.pk, 45)


@pytest.fixture
def no_schedule(settings: Any, tmp_path: Any) -> None:
    """A configuration whose weekly schedule is off, so a tick starts nothing of its own."""
    path = tmp_path / "ft_ops_config.yaml"
    path.write_text("loop:\n  schedule_enabled: false\n", encoding="utf-8")
    settings.FTOPS_CONFIG_FILE = str(path)


@pytest.mark.django_db(transaction=True)
def test_embedded_a_stage_that_waited_too_long_is_resent_by_the_scheduler_and_advances(
        payments: Service, fake_ml_stages: Counter[str], monkeypatch: pytest.MonkeyPatch, settings: Any,
        no_schedule: None) -> None:
    from ftops.common.jobs import JobsScheduler

    settings.FTOPS_LOOP_POLL_S = 0.01
    settings.FTOPS_LOOP_EAGER_WAIT_S = 0  # the child is held elsewhere: hand the stage back at once
    child_done = threading.Event()
    monkeypatch.setitem(cycles.STAGE_FUNCTIONS, "collect", lambda cycle, stage: (
        StageOutcome(note="collected") if child_done.is_set() else StageOutcome(done=False)))
    examples(payments)
    cycle = cycle_start(actor=ME, scope="payments")
    stage = CycleStage.objects.get(cycle=cycle, name="collect")
    # Waited out inline: pending again, attempt given back, and due for the scheduler's sender.
    assert (stage.status, stage.attempts, stage.enqueued_at) == ("pending", 0, None)

    scheduler = JobsScheduler(tasks=["ftops.loop.tasks.cycles_tick_task"], interval_s=60)
    first = scheduler.run_once()["ftops.loop.tasks.cycles_tick_task"]
    assert first["reap"]["published"] == [stage.pk]  # re-sent; the child is still busy
    stage.refresh_from_db()
    assert (stage.status, stage.polls, stage.enqueued_at) == ("pending", 2, None)

    child_done.set()
    scheduler.run_once()
    cycle.refresh_from_db()
    stage.refresh_from_db()
    assert (stage.status, stage.note, stage.attempts) == ("succeeded", "collected", 1)
    assert cycle.status == CycleStatus.SUCCEEDED
    assert [s.name for s in cycle.stages.order_by("position")] == STAGE_NAMES


@pytest.mark.django_db(transaction=True)
def test_a_stage_whose_worker_died_is_requeued_by_the_reaper(payments: Service, monkeypatch: pytest.MonkeyPatch,
                                                            settings: Any) -> None:
    sent: list[int] = []
    monkeypatch.setattr(cycles, "_send_stage", lambda pk, countdown=None: sent.append(pk))
    cycle = cycle_start(actor=ME, scope="payments")
    stage = CycleStage.objects.get(cycle=cycle)
    CycleStage.objects.filter(pk=stage.pk).update(status="running", attempts=1, lease_owner="dead:1:x",
                                                  lease_expires_at=timezone.now() - timedelta(seconds=1))
    result = cycles.cycle_stages_reap()
    assert result["requeued"] == [stage.pk] and stage.pk in result["published"]
    CycleStage.objects.filter(pk=stage.pk).update(status="running", attempts=3, lease_owner="dead:1:x",
                                                  lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert cycles.cycle_stages_reap()["failed"] == [stage.pk]
    cycle.refresh_from_db()
    assert cycle.status == CycleStatus.FAILED and "stopped responding" in cycle.error


# --------------------------------------------------------------------------- one per scope, triggers


def test_one_cycle_in_flight_per_scope(payments: Service) -> None:
    first = cycle_start(actor=ME, scope="payments")
    with pytest.raises(Conflict, match=f"cycle {first.pk} for payments is still in flight"):
        cycle_start(actor=ME, scope="payments")
    assert cycle_start(actor=ME).scope == "enterprise"  # another scope is free
    Cycle.objects.filter(pk=first.pk).update(status=CycleStatus.SUCCEEDED)
    assert cycle_start(actor=ME, scope="payments").pk != first.pk
    with pytest.raises(ValidationFailed, match="unknown service 'nope'"):
        cycle_start(actor=ME, scope="nope")


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_leave_one_cycle_per_scope_on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("real concurrent writers need PostgreSQL")
    Service.objects.create(name="payments")
    n = 12
    barrier = threading.Barrier(n)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(k: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait()
            try:
                # send=False: the race is about the row; no stage should run in the threads.
                cycle_start(actor=Actor(label=f"t{k}"), scope="payments" if k % 2 else "enterprise", send=False)
                result = "started"
            except Conflict:
                result = "409"
            except Exception as exc:  # pragma: no cover - shown in the assertion
                result = f"{type(exc).__name__}: {exc}"
            with lock:
                outcomes[result] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == Counter({"started": 2, "409": n - 2})
    assert sorted(Cycle.objects.filter(status="running").values_list("scope", flat=True)) == ["enterprise",
                                                                                              "payments"]


def test_firings_start_a_cycle_fold_into_it_wait_while_it_runs_and_respect_the_cooldown(payments: Service) -> None:
    cfg = LoopConfig(cooldown_hours=6)
    now = timezone.now()
    a, b = fire(payments, "first"), fire(payments, "second")
    report = cycles_start_for_triggers(config=cfg, now=now)
    [cycle] = report.started
    assert (cycle.scope, cycle.origin, cycle.reason) == ("payments", CycleOrigin.TRIGGER, "first; second")
    assert sorted(cycle.folded.values_list("trigger_id", flat=True)) == [a.pk, b.pk]
    # A firing during the cycle is recorded and waits.
    c = fire(payments, "during the cycle")
    report = cycles_start_for_triggers(config=cfg, now=now)
    assert not report.started and "in flight" in report.waiting["payments"]
    Cycle.objects.filter(pk=cycle.pk).update(status=CycleStatus.SUCCEEDED)
    # Finished, but inside the cooldown: a flapping trigger does not start another cycle yet.
    report = cycles_start_for_triggers(config=cfg, now=now + timedelta(hours=1))
    assert not report.started and report.waiting["payments"].startswith("cooldown until")
    report = cycles_start_for_triggers(config=cfg, now=now + timedelta(hours=7))
    [second] = report.started
    assert list(second.folded.values_list("trigger_id", flat=True)) == [c.pk]


def test_a_cycle_started_by_hand_folds_waiting_firings(payments: Service) -> None:
    fire(payments)
    fire(None, "no accuracy gain in 30 days")  # the enterprise's
    cycle = cycle_start(actor=ME, scope="payments")
    assert cycle.folded.count() == 1 and "folds 1 waiting trigger firing(s)" in cycle.reason
    assert TriggerEvent.objects.filter(cycle_link__isnull=True).get().service is None


# --------------------------------------------------------------------------- schedule


UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(("now", "slot", "nxt"), [
    (datetime(2026, 12, 4, 14, 0, tzinfo=UTC), datetime(2026, 11, 29, 2, 0), datetime(2026, 12, 6, 2, 0)),  # Fri
    (datetime(2026, 12, 6, 1, 59, tzinfo=UTC), datetime(2026, 11, 29, 2, 0), datetime(2026, 12, 6, 2, 0)),  # Sun early
    (datetime(2026, 12, 6, 2, 0, tzinfo=UTC), datetime(2026, 12, 6, 2, 0), datetime(2026, 12, 13, 2, 0)),  # the slot
])
def test_weekly_schedule_defaults_to_sunday_two_am(settings: Any, now: datetime, slot: datetime,
                                                   nxt: datetime) -> None:
    settings.TIME_ZONE = "UTC"
    cfg = LoopConfig()
    assert schedule_slot_before(now, cfg).replace(tzinfo=None) == slot
    nxt_at = schedule_next(now, cfg)
    assert nxt_at is not None and nxt_at.replace(tzinfo=None) == nxt


def test_daily_and_disabled_schedules(settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    now = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
    daily = LoopConfig(schedule_day="daily", schedule_time="23:30")
    assert schedule_slot_before(now, daily).replace(tzinfo=None) == datetime(2026, 12, 3, 23, 30)
    assert schedule_next(now, LoopConfig(schedule_enabled=False)) is None
    with pytest.raises(ValueError, match="HH:MM"):
        schedule_slot_before(now, LoopConfig(schedule_time="2am"))


def test_schedule_tick_starts_one_cycle_per_slot_and_does_not_catch_up_old_slots(db: Any, settings: Any) -> None:
    settings.TIME_ZONE = "UTC"
    cfg = LoopConfig()
    sunday = datetime(2026, 12, 6, 2, 0, 30, tzinfo=UTC)
    assert cycles_schedule_tick(config=cfg, now=sunday - timedelta(days=3)) is None  # Thursday: slot too old
    cycle = cycles_schedule_tick(config=cfg, now=sunday)
    assert cycle is not None and cycle.origin == CycleOrigin.SCHEDULE and cycle.scope == "enterprise"
    assert cycle.scheduled_for == datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    Cycle.objects.filter(pk=cycle.pk).update(status=CycleStatus.SUCCEEDED)
    assert cycles_schedule_tick(config=cfg, now=sunday + timedelta(minutes=5)) is None  # same slot
    assert cycles_schedule_tick(config=LoopConfig(schedule_enabled=False), now=sunday + timedelta(days=7)) is None


# --------------------------------------------------------------------------- decision matrix


@pytest.mark.parametrize(("cfg", "n", "backend", "why"), [
    (LoopConfig(backend="openai"), 10, "openai", "fixed by the configuration"),
    (LoopConfig(), 12, "fewshot", "fewer than the 50 a fine-tune needs"),
    (LoopConfig(), 800, "lora", "privacy-sensitive"),
    (LoopConfig(privacy_sensitive=False), 800, "lora", "no budget for a hosted fine-tune"),
    (LoopConfig(privacy_sensitive=False, monthly_budget_usd=500), 800, "openai", "OpenAI fine-tuning"),
])
def test_backend_decision_matrix(cfg: LoopConfig, n: int, backend: str, why: str) -> None:
    choice = backend_choose(cfg=cfg, train_examples=n)
    assert choice.backend == backend and why in choice.reason
