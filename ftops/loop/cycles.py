"""Improvement cycles: one visible object per retraining, its stages jobs on the shared runtime.

A cycle runs collect -> aggregate -> curate -> build -> train -> register -> evaluate -> gates
-> approval -> canary. The registry evaluates a *registered* version (candidate and baseline on
the same frozen split, critical scenarios judged by the gates), so register comes before
evaluate here. Each stage is a ``CycleStage`` row claimed under a lease (``ftops.common.jobs``);
when it finishes, the next stage row is created in the same transaction and its task is sent
by name once that commits. Child work (a curation run, a dataset build, a training run, an
evaluation) is started through its own app's services; the stage then re-checks it: in the
embedded default the child has already run in-process by the time its service returns, with a
broker the stage gives its lease back and its task comes back after ``FTOPS_LOOP_POLL_S``.

Starting: by triggers (``cycles_start_for_triggers``), by the weekly schedule
(``cycles_schedule_tick``, from beat or the served process's scheduler thread) or by hand. The
database keeps at most one cycle in flight per scope; a firing that arrives meanwhile, or
inside the cooldown, stays unfolded and joins the scope's next cycle.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from ftops.common.errors import Conflict, NotFound, ValidationFailed
from ftops.common.jobs import (
    FINAL_STATUSES,
    JobHeartbeat,
    JobStatus,
    error_dict,
    job_claim,
    job_finish,
    jobs_reap,
    worker_identity,
)
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from ftops.datasets.config import ConfigError, LoopConfig, load_config
from ftops.loop.models import (
    ENTERPRISE_SCOPE,
    Cycle,
    CycleOrigin,
    CycleStage,
    CycleStatus,
    CycleTrigger,
    TriggerEvent,
)

log = logging.getLogger(__name__)

STAGES: list[tuple[str, str]] = [
    ("collect", "Collect production examples"),
    ("aggregate", "Aggregate from services"),
    ("curate", "Curate"),
    ("build", "Build dataset version"),
    ("train", "Train"),
    ("register", "Register model version"),
    ("evaluate", "Evaluate (test split, critical scenarios)"),
    ("gates", "Release gates"),
    ("approval", "Request approval"),
    ("canary", "Canary"),
]
STAGE_NAMES = [name for name, _ in STAGES]
STAGE_LABELS = dict(STAGES)


@dataclass
class StageOutcome:
    """What a stage function says: done (with a note and links), or still waiting on child work."""

    done: bool = True
    note: str = ""
    links: dict[str, Any] = field(default_factory=dict)
    failed: str = ""  # a reason: the stage (and so the cycle) failed for good


# --------------------------------------------------------------------------- scope, schedule


def scope_for(service: Service | None) -> str:
    return service.name if service is not None else ENTERPRISE_SCOPE


def _resolve_scope(scope: str) -> tuple[str, Service | None]:
    scope = (scope or ENTERPRISE_SCOPE).strip()
    if scope == ENTERPRISE_SCOPE:
        return scope, None
    service = Service.objects.filter(name=scope).first()
    if service is None:
        raise ValidationFailed(f"unknown service {scope!r}", fields={"service": ["a catalog service name"]})
    return scope, service


DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _schedule_clock(cfg: LoopConfig) -> tuple[int, int]:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", cfg.schedule_time.strip())
    if match is None:
        raise ConfigError(f"loop.schedule_time must be HH:MM, not {cfg.schedule_time!r}")
    return int(match.group(1)), int(match.group(2))


def schedule_slot_before(now: datetime, cfg: LoopConfig) -> datetime:
    """The latest schedule slot at or before ``now`` (local time of the server)."""
    hour, minute = _schedule_clock(cfg)
    local = timezone.localtime(now)
    slot = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if cfg.schedule_day == "daily":
        return slot if slot <= local else slot - timedelta(days=1)
    back = (local.weekday() - DAYS.index(cfg.schedule_day)) % 7
    slot -= timedelta(days=back)
    if slot > local:
        slot -= timedelta(days=7)
    return slot


def schedule_next(now: datetime, cfg: LoopConfig) -> datetime | None:
    """When the schedule next starts a cycle; None when the schedule is off."""
    if not cfg.schedule_enabled:
        return None
    step = timedelta(days=1 if cfg.schedule_day == "daily" else 7)
    last = schedule_slot_before(now, cfg)
    return last + step


def schedule_describe(cfg: LoopConfig) -> str:
    if not cfg.schedule_enabled:
        return "off (loop.schedule_enabled: false)"
    day = "every day" if cfg.schedule_day == "daily" else f"every {cfg.schedule_day.capitalize()}"
    return f"{day} at {cfg.schedule_time} ({timezone.get_current_timezone_name()})"


# --------------------------------------------------------------------------- decision matrix


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    reason: str


def backend_choose(*, cfg: LoopConfig, train_examples: int) -> BackendChoice:
    """The seeds' decision matrix: examples available, privacy, budget and latency, in that order.

    A fine-tune needs enough examples to learn from (else the examples become a few-shot
    prompt); privacy-sensitive data stays on the enterprise's own hardware (local LoRA); a hosted
    fine-tune needs a budget; a few-shot prompt is long, so a tight latency need rules it out.
    """
    if cfg.backend != "auto":
        return BackendChoice(cfg.backend, f"fixed by the configuration (loop.backend: {cfg.backend})")
    if train_examples < cfg.min_finetune_examples:
        return BackendChoice("fewshot", f"{train_examples} train examples, fewer than the {cfg.min_finetune_examples} "
                                        "a fine-tune needs: they become the few-shot prompt's examples")
    if cfg.privacy_sensitive:
        return BackendChoice("lora", f"{train_examples} train examples; the data is privacy-sensitive "
                                     "(loop.privacy_sensitive), so it is fine-tuned locally with LoRA")
    if cfg.monthly_budget_usd <= 0:
        return BackendChoice("lora", f"{train_examples} train examples, data may leave, but no budget for a hosted "
                                     "fine-tune (loop.monthly_budget_usd: 0): local LoRA")
    return BackendChoice("openai", f"{train_examples} train examples, data may leave, a budget of "
                                   f"${cfg.monthly_budget_usd:.0f}/month and a {cfg.max_latency_ms:.0f} ms latency "
                                   "need that a long few-shot prompt would miss: OpenAI fine-tuning")


# --------------------------------------------------------------------------- start


def _send_stage(stage_id: int, countdown: float | None = None) -> bool:
    """Send the stage's task; False when it ran inline (embedded) and so is not marked as sent.

    In the embedded default the task has run by the time ``apply_async`` returns. A stage that
    is still pending then gave its lease back to wait (``FTOPS_LOOP_EAGER_WAIT_S``) and cleared
    ``enqueued_at`` so that the scheduler thread's sender sends it again on its next pass:
    marking it here would hide it from that sender.
    """
    from ftops.loop.tasks import cycle_stage_task  # the loop's own task: imported, so eager mode runs it

    options: dict[str, Any] = {"countdown": countdown} if countdown else {}
    cycle_stage_task.apply_async(kwargs={"stage_id": stage_id}, **options)
    if not runs_in_background():
        return False
    CycleStage.objects.filter(pk=stage_id, status=JobStatus.PENDING).update(enqueued_at=timezone.now())
    return True


def _create_stage(cycle: Cycle, name: str, *, send: bool = True) -> CycleStage:
    stage = CycleStage.objects.create(cycle=cycle, name=name, position=STAGE_NAMES.index(name),
                                      max_attempts=int(getattr(settings, "FTOPS_LOOP_STAGE_ATTEMPTS", 3)))
    stage_id = stage.pk
    if send:
        transaction.on_commit(lambda: _send_stage(stage_id))
    return stage


def runs_in_background() -> bool:
    """Whether a sent stage runs elsewhere (a worker) rather than inline in this process."""
    return not bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))


def pending_triggers(scope: str) -> Any:
    """Firings for ``scope`` not yet folded into a cycle."""
    qs = TriggerEvent.objects.filter(cycle_link__isnull=True)
    return qs.filter(service__isnull=True) if scope == ENTERPRISE_SCOPE else qs.filter(service__name=scope)


def cycle_in_flight(scope: str) -> Cycle | None:
    return Cycle.objects.filter(scope=scope, status=CycleStatus.RUNNING).first()


def cycle_start(
    *, actor: Actor, scope: str = ENTERPRISE_SCOPE, origin: str = CycleOrigin.MANUAL, reason: str = "",
    params: dict[str, Any] | None = None, scheduled_for: datetime | None = None, send: bool = True,
) -> Cycle:
    """Start a cycle for ``scope`` (``enterprise`` or a service name); Conflict when one is in flight.

    Every unfolded trigger firing for the scope is folded into it. The first stage's task is
    sent once this commits; without ``send`` it is left to the outbox sender (``cycles_tick``),
    which is how a web request in the embedded default hands the cycle to the scheduler thread
    instead of running it inside the request.
    """
    if origin not in CycleOrigin.values:
        raise ValidationFailed(f"unknown origin {origin!r}", fields={"origin": [f"one of {CycleOrigin.values}"]})
    if params is not None and not isinstance(params, dict):
        raise ValidationFailed("params must be an object", fields={"params": ["a JSON object"]})
    scope, service = _resolve_scope(scope)
    with transaction.atomic():
        try:
            with transaction.atomic():
                cycle = Cycle.objects.create(scope=scope, service=service, origin=origin, params=params or {},
                                             reason=reason or f"started {CycleOrigin(origin).label.lower()}",
                                             scheduled_for=scheduled_for, started_by=actor.label[:200])
        except IntegrityError:
            running = cycle_in_flight(scope)
            raise Conflict(f"cycle {running.pk if running else '?'} for {scope} is still in flight; "
                           "one cycle per scope at a time", fields={"scope": [scope]}) from None
        folded = list(pending_triggers(scope).select_for_update(of=("self",)).order_by("created_at", "id"))
        CycleTrigger.objects.bulk_create([CycleTrigger(cycle=cycle, trigger=t) for t in folded],
                                         ignore_conflicts=True)
        if folded and origin != CycleOrigin.TRIGGER:
            cycle.reason += f"; folds {len(folded)} waiting trigger firing(s)"
            cycle.save(update_fields=["reason"])
        _create_stage(cycle, STAGE_NAMES[0], send=send)
        audit_record(action=AuditAction.CYCLE_STARTED, by=actor, object_type="cycle", object_id=cycle.pk,
                     detail={"scope": scope, "origin": origin, "triggers": [t.pk for t in folded]})
    return cycle


@dataclass
class TriggerStartReport:
    started: list[Cycle] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)  # scope -> why its firings wait


def cycles_start_for_triggers(*, actor: Actor | None = None, now: datetime | None = None,
                              config: LoopConfig | None = None) -> TriggerStartReport:
    """Start a cycle for each scope with unfolded firings, unless one is in flight or in cooldown.

    Firings that wait stay unfolded: the scope's next cycle, whatever starts it, folds them.
    The cooldown counts from the scope's last trigger-started cycle, so a flapping trigger
    starts at most one cycle per window.
    """
    by = actor or Actor.system("system:loop")
    cfg = config or load_config().loop
    now = now or timezone.now()
    report = TriggerStartReport()
    waiting = TriggerEvent.objects.filter(cycle_link__isnull=True).select_related("service").order_by("created_at")
    scopes: dict[str, list[TriggerEvent]] = {}
    for event in waiting:
        scopes.setdefault(scope_for(event.service), []).append(event)
    for scope, events in sorted(scopes.items()):
        running = cycle_in_flight(scope)
        if running is not None:
            report.waiting[scope] = f"cycle {running.pk} in flight; {len(events)} firing(s) fold into the next"
            continue
        last = (Cycle.objects.filter(scope=scope, origin=CycleOrigin.TRIGGER).order_by("-created_at")
                .values_list("created_at", flat=True).first())
        if last is not None and now - last < timedelta(hours=cfg.cooldown_hours):
            until = last + timedelta(hours=cfg.cooldown_hours)
            report.waiting[scope] = f"cooldown until {until:%Y-%m-%d %H:%M}; {len(events)} firing(s) wait"
            continue
        reason = "; ".join(e.reason for e in events[:3]) + (f" (+{len(events) - 3} more)" if len(events) > 3 else "")
        try:
            report.started.append(cycle_start(actor=by, scope=scope, origin=CycleOrigin.TRIGGER, reason=reason))
        except Conflict as exc:  # another process started one between the check and the insert
            report.waiting[scope] = str(exc)
    return report


def cycles_schedule_tick(*, actor: Actor | None = None, now: datetime | None = None,
                         config: LoopConfig | None = None, catch_up_hours: float = 24) -> Cycle | None:
    """Start the enterprise's scheduled cycle when its slot has come (at most once per slot).

    A slot missed while nothing ran (the server was down) is caught up within
    ``catch_up_hours``; an older one is not, so a fresh install does not start a cycle at once.
    """
    cfg = config or load_config().loop
    if not cfg.schedule_enabled:
        return None
    now = now or timezone.now()
    slot = schedule_slot_before(now, cfg)
    if now - slot > timedelta(hours=catch_up_hours):
        return None
    if Cycle.objects.filter(scope=ENTERPRISE_SCOPE, origin=CycleOrigin.SCHEDULE, scheduled_for=slot).exists():
        return None
    try:
        return cycle_start(actor=actor or Actor.system("system:schedule"), scope=ENTERPRISE_SCOPE,
                           origin=CycleOrigin.SCHEDULE, scheduled_for=slot,
                           reason=f"weekly schedule: {schedule_describe(cfg)}, slot {slot:%Y-%m-%d %H:%M}")
    except Conflict:
        return None  # the enterprise's cycle in flight covers it


def cycle_cancel(*, cycle_id: int, actor: Actor) -> Cycle:
    with transaction.atomic():
        cycle = Cycle.objects.select_for_update().filter(pk=cycle_id).first()
        if cycle is None:
            raise NotFound(f"cycle {cycle_id} does not exist")
        if cycle.status != CycleStatus.RUNNING:
            raise Conflict(f"cycle {cycle_id} is {cycle.status}")
        CycleStage.objects.filter(cycle=cycle, status=JobStatus.PENDING).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now())
        _cycle_end(cycle, CycleStatus.CANCELLED, by=actor, error=f"cancelled by {actor.label}")
    return cycle


def _cycle_end(cycle: Cycle, status: str, *, by: Actor, error: str = "") -> None:
    Cycle.objects.filter(pk=cycle.pk).update(status=status, finished_at=timezone.now(), error=error[:4000])
    cycle.status, cycle.error = status, error
    audit_record(action=AuditAction.CYCLE_FINISHED, by=by, object_type="cycle", object_id=cycle.pk,
                 detail={"scope": cycle.scope, "status": status, "error": error[:500]})
    if status == CycleStatus.FAILED:
        from ftops.common.notifications import notify

        stage = error.split(":", 1)[0]
        notify(audience="admins", kind="cycle_stage_failed",
               subject=f"Cycle {cycle.pk} ({cycle.scope}) failed at {stage}",
               text=f"The improvement cycle {cycle.pk} for {cycle.scope} failed.\n{error}",
               payload={"kind": "cycle_stage_failed", "cycle": cycle.pk, "scope": cycle.scope, "stage": stage,
                        "error": error[:500]})


# --------------------------------------------------------------------------- stage execution


def _links(cycle: Cycle) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for links in CycleStage.objects.filter(cycle=cycle).values_list("links", flat=True):
        out.update(links or {})
    return out


def _child_state(model: Any, pk: int, *, ok: tuple[str, ...]) -> tuple[bool, str]:
    """(finished, failure reason or '') of a child job row."""
    row = model.objects.filter(pk=pk).values("status", "error").first()
    if row is None:
        return True, f"{model.__name__} {pk} disappeared"
    if row["status"] in ok:
        return True, ""
    if row["status"] in ("failed", "cancelled"):
        err = row["error"]
        message = err.get("message", "") if isinstance(err, dict) else str(err or "")
        return True, f"{model.__name__} {pk} {row['status']}: {message}"[:1000]
    return False, ""


def _stage_collect(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from ftops.datasets.models import CurationRun
    from ftops.datasets.services.runs import curation_run_start

    run_id = stage.links.get("curation_run")
    if run_id is None:
        run_id = curation_run_start(kind=CurationRun.Kind.COLLECT, params={"cycle": cycle.pk}).pk
        _save_links(stage, curation_run=run_id)
    finished, failure = _child_state(CurationRun, run_id, ok=(CurationRun.succeeded_status,))
    if not finished:
        return StageOutcome(done=False)
    if failure:
        return StageOutcome(failed=failure)
    result = CurationRun.objects.values_list("result", flat=True).get(pk=run_id) or {}
    return StageOutcome(note=f"curation run {run_id}: {_short(result)}")


def _stage_aggregate(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    # The discovery app sits on the loop's floor: its aggregator is called directly. A source that
    # fails is recorded and alerted there; the cycle goes on with what landed.
    from ftops.discovery.services import aggregate_for_cycle

    result = aggregate_for_cycle(cycle_id=cycle.pk, scope=cycle.scope)
    links = {"aggregation_run": result["run_id"], "aggregated": result["created"]} if result["run_id"] else {}
    return StageOutcome(note=str(result["note"]), links=links)


def _stage_curate(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from django.db.models import Count

    from ftops.datasets.models import ExampleStatus, TrainingExample

    qs = TrainingExample.objects.filter(status=ExampleStatus.ACTIVE)
    if cycle.service_id is not None:
        qs = qs.filter(service_id=cycle.service_id)
    counts = dict(qs.values_list("quality").annotate(n=Count("id")).values_list("quality", "n"))
    total = sum(counts.values())
    if total == 0:
        return StageOutcome(failed=f"no active examples for {cycle.scope}: nothing to curate")
    # Deduplication, diversity selection and the three-way split run inside the dataset build.
    return StageOutcome(note=f"{total} active examples ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}); "
                             "the build deduplicates, selects for diversity and splits")


def _stage_build(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from ftops.datasets.models import DatasetVersion
    from ftops.datasets.services.versions import dataset_version_create

    version_id = stage.links.get("dataset_version")
    if version_id is None:
        params = dict(cycle.params.get("dataset") or {})
        if cycle.service is not None:
            params.setdefault("services", [cycle.service.name])
        version = dataset_version_create(seed=int(cycle.params.get("seed", 0)), params=params,
                                         actor=f"cycle {cycle.pk}", enqueue=True)
        version_id = version.pk
        _save_links(stage, dataset_version=version_id, dataset_version_number=version.number)
    finished, failure = _child_state(DatasetVersion, version_id, ok=(DatasetVersion.succeeded_status,))
    if not finished:
        return StageOutcome(done=False)
    if failure:
        return StageOutcome(failed=failure)
    version = DatasetVersion.objects.get(pk=version_id)
    return StageOutcome(note=f"dataset v{version.number} ready")


def _train_examples(version: Any) -> int:
    return int(version.members.filter(split="train").count())


def _stage_train(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from ftops.datasets.models import DatasetVersion
    from ftops.training.models import RunStatus, TrainingRun
    from ftops.training.services import training_run_create

    run_id = stage.links.get("training_run")
    if run_id is None:
        cfg = load_config()
        version = DatasetVersion.objects.get(pk=_links(cycle)["dataset_version"])
        choice = backend_choose(cfg=cfg.loop, train_examples=_train_examples(version))
        Cycle.objects.filter(pk=cycle.pk).update(backend=choice.backend, backend_reason=choice.reason)
        train = dict(cycle.params.get("train") or {})
        config = dict(train.get(choice.backend) or {})
        base_model = str(train.get("base_model") or "")
        run = training_run_create(backend=choice.backend, dataset_version=version, config=config,
                                  base_model=base_model, service=cycle.service.name if cycle.service else "",
                                  name=f"cycle-{cycle.pk}-{choice.backend}-v{version.number}",
                                  actor=Actor.system(f"cycle {cycle.pk}"), enqueue=True)
        run_id = run.pk
        _save_links(stage, training_run=run_id, backend=choice.backend)
    finished, failure = _child_state(TrainingRun, run_id, ok=(RunStatus.SUCCEEDED,))
    if not finished:
        return StageOutcome(done=False)
    if failure:
        return StageOutcome(failed=failure)
    return StageOutcome(note=f"training run {run_id} succeeded ({stage.links.get('backend')})")


def _stage_register(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from registry.services import model_version_register_for_run

    version = model_version_register_for_run(training_run_id=_links(cycle)["training_run"],
                                             by=Actor.system(f"cycle {cycle.pk}"))
    return StageOutcome(note=f"registered {version.name}", links={"model_version": version.pk})


def _stage_evaluate(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from registry.models import ModelVersion, VersionStatus
    from registry.services import model_version_collect_evaluation, model_version_evaluate

    version_id = _links(cycle)["model_version"]
    version = ModelVersion.objects.get(pk=version_id)
    if not stage.links.get("evaluation_requested"):
        if version.status == VersionStatus.REGISTERED and version.eval_run_id is None:
            version = model_version_evaluate(model_version_id=version_id, by=Actor.system(f"cycle {cycle.pk}"))
        _save_links(stage, evaluation_requested=True, eval_run=version.eval_run_id,
                    baseline_eval_run=version.baseline_eval_run_id)
    else:
        version = model_version_collect_evaluation(model_version_id=version_id)
    if version.status != VersionStatus.REGISTERED:
        results = version.eval_results or {}
        exact = (results.get("overall") or {}).get("exact")
        return StageOutcome(note=f"{version.name}: exact {exact}% on {results.get('test_suite', 'the test split')}")
    failed = version.events.filter(kind="evaluation_failed").order_by("-id").first()
    if failed is not None:
        return StageOutcome(failed=f"evaluation failed: {failed.reason}")
    return StageOutcome(done=False)


def _stage_gates(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from registry.models import ModelVersion
    from registry.services import latest_gate_report

    version = ModelVersion.objects.get(pk=_links(cycle)["model_version"])
    report = latest_gate_report(version)
    if report is None:
        return StageOutcome(done=False)
    verdict = "passed" if report.passed else "blocked"
    return StageOutcome(note=f"gates {verdict}: {report.checks_passed}/{report.checks_total} checks, "
                             f"{report.decision}", links={"gate_report": report.pk, "gates_passed": report.passed})


def _stage_approval(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from registry.models import ModelVersion

    version = ModelVersion.objects.get(pk=_links(cycle)["model_version"])
    # The gates transition already told the approvers; the stage records that the cycle now waits
    # on a person, who approves or rejects on the model version's page.
    return StageOutcome(note=f"{version.name} is {version.get_status_display().lower()}; approvers were notified "
                             "and decide on the model version page")


def _stage_canary(cycle: Cycle, stage: CycleStage) -> StageOutcome:
    from registry.models import ModelVersion
    from registry.services import canary_start

    links = _links(cycle)
    if not load_config().deployment.auto_promote:
        return StageOutcome(note="skipped: deployment.auto_promote is off (a person starts the canary)")
    if not links.get("gates_passed"):
        return StageOutcome(note="skipped: the gates did not pass")
    version = ModelVersion.objects.get(pk=links["model_version"])
    try:
        deployment = canary_start(model_version_id=version.pk, by=Actor.system(f"cycle {cycle.pk}"),
                                  reason=f"auto_promote after cycle {cycle.pk}")
    except (Conflict, ValidationFailed) as exc:
        return StageOutcome(note=f"canary not started: {exc}")
    return StageOutcome(note=f"canary of {version.name} started", links={"deployment": deployment.pk})


STAGE_FUNCTIONS: dict[str, Callable[[Cycle, CycleStage], StageOutcome]] = {
    "collect": _stage_collect, "aggregate": _stage_aggregate, "curate": _stage_curate, "build": _stage_build,
    "train": _stage_train, "register": _stage_register, "evaluate": _stage_evaluate, "gates": _stage_gates,
    "approval": _stage_approval, "canary": _stage_canary,
}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 300 else text[:297] + "..."


def _save_links(stage: CycleStage, **links: Any) -> None:
    stage.links = {**(stage.links or {}), **links}
    CycleStage.objects.filter(pk=stage.pk).update(links=stage.links)


def _log(stage: CycleStage, line: str) -> None:
    stage.log = (stage.log + f"{timezone.now():%H:%M:%S} {line}\n")[-8000:]
    CycleStage.objects.filter(pk=stage.pk).update(log=stage.log)


def _stage_run_until_done(cycle: Cycle, stage: CycleStage, *, owner: str, eager: bool,
                          poll_s: float) -> StageOutcome | None:
    """Run the stage function until it is done or failed; None when it gave its lease back to wait."""
    while True:
        try:
            outcome = STAGE_FUNCTIONS[stage.name](cycle, stage)
        except Exception as exc:  # a stage's error fails the stage and the cycle, with the reason shown
            log.exception("cycle %s stage %s failed", cycle.pk, stage.name)
            outcome = StageOutcome(failed=f"{type(exc).__name__}: {exc}")
        if outcome.done or outcome.failed:
            break
        stage.polls += 1
        CycleStage.objects.filter(pk=stage.pk).update(polls=F("polls") + 1, heartbeat_at=timezone.now())
        # Embedded: the child normally ran in this process already; one held by another process
        # is waited for here, up to FTOPS_LOOP_EAGER_WAIT_S, then handed to the sender like on a broker.
        waited_out = eager and stage.polls * min(poll_s, 2.0) > float(
            getattr(settings, "FTOPS_LOOP_EAGER_WAIT_S", 6 * 3600))
        if not eager or waited_out:
            # Give the lease back without spending an attempt; the task returns after poll_s.
            CycleStage.objects.filter(pk=stage.pk, lease_owner=owner).update(
                status=JobStatus.PENDING, lease_owner="", lease_expires_at=None, attempts=F("attempts") - 1,
                enqueued_at=None)
            if not eager:  # embedded: the scheduler thread's sender (cycles_tick) takes it on its next pass
                _send_stage(stage.pk, countdown=poll_s)
            return None
        time.sleep(min(poll_s, 2.0))
    return outcome


def cycle_stage_execute(*, stage_id: int, owner: str | None = None) -> CycleStage | None:
    """Claim the stage and run it; when it is done, finish it and create the next in one transaction.

    Returns the stage row, or None when another owner holds it (or it is final).
    """
    owner = owner or worker_identity()
    eager = bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))
    poll_s = float(getattr(settings, "FTOPS_LOOP_POLL_S", 30))
    stage = job_claim(CycleStage, pk=stage_id, owner=owner)
    if stage is None:
        return None
    cycle = Cycle.objects.select_related("service").get(pk=stage.cycle_id)
    by = Actor.system(f"cycle {cycle.pk}")
    if cycle.status != CycleStatus.RUNNING:
        job_finish(CycleStage, pk=stage.pk, owner=owner, status=JobStatus.CANCELLED)
        return stage
    _log(stage, f"started (attempt {stage.attempts})")
    # A stage may run its child in this process for a long time (embedded training or evaluation):
    # beat so the reaper does not hand a live stage to a second worker.
    with JobHeartbeat(CycleStage, pk=stage.pk, owner=owner):
        outcome = _stage_run_until_done(cycle, stage, owner=owner, eager=eager, poll_s=poll_s)
    if outcome is None:
        return stage
    with transaction.atomic():
        if outcome.failed:
            _log(stage, f"failed: {outcome.failed}")
            ok = job_finish(CycleStage, pk=stage.pk, owner=owner, status=JobStatus.FAILED,
                            error=error_dict("stage_failed", outcome.failed),
                            fields={"note": outcome.failed[:2000], "log": stage.log,
                                    "links": {**stage.links, **outcome.links}})
            if ok:
                _cycle_end(cycle, CycleStatus.FAILED, by=by, error=f"{stage.name}: {outcome.failed}")
        else:
            _log(stage, f"done: {outcome.note}")
            ok = job_finish(CycleStage, pk=stage.pk, owner=owner,
                            fields={"note": outcome.note[:2000], "log": stage.log,
                                    "links": {**stage.links, **outcome.links}})
            if ok:
                position = STAGE_NAMES.index(stage.name)
                if position + 1 < len(STAGE_NAMES):
                    _create_stage(cycle, STAGE_NAMES[position + 1])
                else:
                    _cycle_end(cycle, CycleStatus.SUCCEEDED, by=by)
        if not ok:
            transaction.set_rollback(True)
    return CycleStage.objects.get(pk=stage.pk)


def cycle_stages_reap() -> dict[str, Any]:
    """Beat / scheduler thread: re-queue stages whose worker died; fail the cycle of a stage out of attempts."""
    result = jobs_reap(CycleStage, publish=_send_stage, resend_after_s=float(
        getattr(settings, "FTOPS_LOOP_RESEND_AFTER_S", 600)))
    for stage in CycleStage.objects.filter(pk__in=result.failed).select_related("cycle"):
        if stage.cycle.status == CycleStatus.RUNNING:
            _cycle_end(stage.cycle, CycleStatus.FAILED, by=Actor.system("system:loop"),
                       error=f"{stage.name}: the worker stopped responding")
    return result.as_dict()


def cycles_tick() -> dict[str, Any]:
    """One pass of the loop's clock: reap stages, start the scheduled cycle, start triggered ones,
    and run the data hygiene whose slot came (``ftops.loop.hygiene``)."""
    from ftops.loop.hygiene import hygiene_tick

    out: dict[str, Any] = {"reap": cycle_stages_reap()}
    scheduled = cycles_schedule_tick()
    out["scheduled"] = scheduled.pk if scheduled else None
    report = cycles_start_for_triggers()
    out["triggered"] = [c.pk for c in report.started]
    out["waiting"] = report.waiting
    try:
        out["hygiene"] = hygiene_tick()
    except Exception as exc:  # the hygiene never stops the cycles' clock; the next pass retries
        log.warning("data hygiene failed", exc_info=True)
        out["hygiene"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def stage_is_final(status: str) -> bool:
    return status in FINAL_STATUSES
