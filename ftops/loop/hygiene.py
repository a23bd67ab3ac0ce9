"""Scheduled data hygiene: a fresh holdout and rotated zero-shot tools, each a new dataset version.

Evaluating on the same holdout for months lets choices leak into it, and zero-shot tools that
never change stop telling how a model meets a tool it was not trained on. So, on the schedule in
``ft_ops_config.yaml`` (``loop.hygiene``), the latest ready dataset version is rebuilt:

* holdout refresh (quarterly by default): the same build parameters with a new seed, so the test
  and holdout splits are drawn anew from the examples active now;
* zero-shot rotation (monthly by default): the same seed with the next ``rotation``, so the next
  window of the seeded tool order is held out of training entirely.

Each run is a ``HygieneRun`` row with the note that says what changed, pointing at the new
``DatasetVersion`` (built on the curation queue like any other). One row per kind and slot: a
slot never builds twice. The loop's clock (``cycles_tick``: beat, or the served process's
scheduler thread in the embedded default) calls ``hygiene_tick``.
"""

from __future__ import annotations

import logging
import re
from calendar import monthrange
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from ftops.datasets.config import ConfigError, HygieneConfig, load_config
from ftops.datasets.models import DatasetVersion
from ftops.datasets.services.versions import DEFAULT_PARAMS, dataset_version_create
from ftops.loop.models import HygieneKind, HygieneRun

log = logging.getLogger(__name__)

# A slot missed while nothing ran is caught up within this window; an older one waits for the next.
CATCH_UP = timedelta(hours=24)
MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def every_months(cfg: HygieneConfig, kind: str) -> int:
    return cfg.holdout_refresh_months if kind == HygieneKind.HOLDOUT_REFRESH else cfg.zero_shot_rotation_months


def _clock(cfg: HygieneConfig) -> tuple[int, int]:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", cfg.time.strip())
    if match is None:
        raise ConfigError(f"loop.hygiene.time must be HH:MM, not {cfg.time!r}")
    return int(match.group(1)), int(match.group(2))


def _slot_in(year: int, month: int, cfg: HygieneConfig, tz: Any) -> datetime:
    hour, minute = _clock(cfg)
    day = min(cfg.day, monthrange(year, month)[1])
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def hygiene_slot_before(now: datetime, cfg: HygieneConfig, kind: str) -> datetime | None:
    """The latest slot of ``kind`` at or before ``now`` (server time zone); None when it is off.

    Slots fall in the months 1, 1+N, 1+2N... of each year (N=3: Jan, Apr, Jul, Oct).
    """
    months = every_months(cfg, kind)
    if months <= 0:
        return None
    local = timezone.localtime(now)
    year, month = local.year, local.month
    for _ in range(13):
        if (month - 1) % months == 0:
            slot = _slot_in(year, month, cfg, local.tzinfo)
            if slot <= local:
                return slot
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return None  # pragma: no cover - every valid N has a slot within 12 months


def hygiene_next(now: datetime, cfg: HygieneConfig, kind: str) -> datetime | None:
    months = every_months(cfg, kind)
    if months <= 0:
        return None
    local = timezone.localtime(now)
    year, month = local.year, local.month
    for _ in range(13):
        if (month - 1) % months == 0:
            slot = _slot_in(year, month, cfg, local.tzinfo)
            if slot > local:
                return slot
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return None  # pragma: no cover


def hygiene_describe(cfg: HygieneConfig, kind: str) -> str:
    months = every_months(cfg, kind)
    key = "holdout_refresh_months" if kind == HygieneKind.HOLDOUT_REFRESH else "zero_shot_rotation_months"
    if months <= 0:
        return f"off (loop.hygiene.{key}: 0)"
    every = {1: "every month", 3: "quarterly", 12: "yearly"}.get(months, f"every {months} months")
    which = "" if months == 1 else " (" + ", ".join(MONTH_NAMES[m] for m in range(0, 12, months)) + ")"
    return f"{every}{which}, day {cfg.day} at {cfg.time} ({timezone.get_current_timezone_name()})"


def _base_version() -> DatasetVersion | None:
    """The latest ready version, preferring one over every service (a cycle may build one service's)."""
    recent = list(DatasetVersion.objects.filter(status=DatasetVersion.succeeded_status).order_by("-number")[:50])
    return next((v for v in recent if not (v.params or {}).get("services")), recent[0] if recent else None)


def _plan(kind: str, base: DatasetVersion, slot: datetime) -> tuple[int, dict[str, Any], str]:
    """(seed, build parameters, note) of the rebuild of ``base``."""
    params = {k: v for k, v in (base.params or {}).items() if k in DEFAULT_PARAMS}
    rotation = int(params.get("rotation") or 0)
    before = list((base.quality_report or {}).get("zero_shot_tools") or [])
    held = ", ".join(before) if before else "none"
    when = f"{timezone.localtime(slot):%Y-%m-%d}"
    if kind == HygieneKind.HOLDOUT_REFRESH:
        seed = int(f"{timezone.localtime(slot):%Y%m}")
        if seed == base.seed:
            seed += 1
        note = (f"Holdout refresh ({when}): dataset v{base.number} rebuilt with seed {seed} (was {base.seed}): the "
                f"test and holdout splits are drawn anew from the examples active now, so choices made on the old "
                f"holdout no longer leak into it; zero-shot rotation {rotation} kept (zero-shot tools may change "
                f"with the seed; were: {held}).")
        return seed, params, note
    params["rotation"] = rotation + 1
    note = (f"Zero-shot tool rotation ({when}): dataset v{base.number} rebuilt with rotation {rotation + 1} (was "
            f"{rotation}), same seed {base.seed}: the next window of tools is held out of training entirely "
            f"(zero-shot before: {held}).")
    return base.seed, params, note


def hygiene_run(*, kind: str, actor: Actor | None = None, slot: datetime | None = None) -> HygieneRun:
    """Rebuild the latest ready dataset version for ``kind``; the row for ``slot`` if it already ran.

    The version is built after commit (the curation queue, in-process in the embedded default).
    With no ready version yet there is nothing to refresh: the row records the skip.
    """
    if kind not in HygieneKind.values:
        raise ValueError(f"unknown hygiene kind {kind!r}")
    by = actor or Actor.system("system:hygiene")
    slot = slot or timezone.now().replace(microsecond=0)
    existing = HygieneRun.objects.filter(kind=kind, slot=slot).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            base = _base_version()
            if base is None:
                return HygieneRun.objects.create(
                    kind=kind, slot=slot, created_by=by.label[:200],
                    note=f"{HygieneKind(kind).label} skipped: no ready dataset version to rebuild yet.")
            seed, params, note = _plan(kind, base, slot)
            run = HygieneRun.objects.create(kind=kind, slot=slot, base_version_number=base.number, note=note,
                                            created_by=by.label[:200])
            version = dataset_version_create(seed=seed, params=params, enqueue=True,
                                             actor=f"hygiene: {HygieneKind(kind).label.lower()} ({by.label})"[:200])
            run.dataset_version = version
            run.note = f"dataset v{version.number}: {note}"
            run.save(update_fields=["dataset_version", "note"])
            audit_record(action=AuditAction.DATASET_BUILD_REQUESTED, by=by, object_type="dataset_version",
                         object_id=version.number,
                         detail={"hygiene": kind, "base_version": base.number, "seed": seed,
                                 "rotation": params.get("rotation", 0), "slot": slot.isoformat()})
    except IntegrityError:  # another scheduler took the slot between the check and the insert
        return HygieneRun.objects.get(kind=kind, slot=slot)
    log.info("hygiene %s: %s", kind, run.note)
    return run


def hygiene_tick(*, now: datetime | None = None, config: HygieneConfig | None = None) -> dict[str, Any]:
    """Run each hygiene kind whose slot has come (at most once per slot; recent slots only)."""
    cfg = config or load_config().loop.hygiene
    now = now or timezone.now()
    out: dict[str, Any] = {}
    for kind in HygieneKind.values:
        slot = hygiene_slot_before(now, cfg, kind)
        if slot is None or now - slot > CATCH_UP or HygieneRun.objects.filter(kind=kind, slot=slot).exists():
            continue
        run = hygiene_run(kind=kind, slot=slot, actor=Actor.system("system:schedule"))
        out[kind] = {"run": run.pk, "dataset_version": run.dataset_version.number if run.dataset_version else None}
    return out


def hygiene_schedule(now: datetime | None = None) -> list[dict[str, Any]]:
    """For the cycles page: each kind's schedule, next slot and latest run."""
    now = now or timezone.now()
    try:
        cfg = load_config().loop.hygiene
    except ConfigError as exc:
        return [{"kind": k, "label": HygieneKind(k).label, "schedule": f"configuration error: {exc}", "next": None,
                 "last": None} for k in HygieneKind.values]
    out = []
    for kind in HygieneKind.values:
        out.append({"kind": kind, "label": HygieneKind(kind).label, "schedule": hygiene_describe(cfg, kind),
                    "next": hygiene_next(now, cfg, kind),
                    "last": HygieneRun.objects.filter(kind=kind).select_related("dataset_version").first()})
    return out
