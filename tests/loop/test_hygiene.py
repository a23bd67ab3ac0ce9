"""Scheduled data hygiene (ftops.loop.hygiene): the quarterly holdout refresh and the zero-shot tool
rotation, each a new dataset version with a note, on the schedule of ``loop.hygiene``."""

from __future__ import annotations

from datetime import datetime, timedelta
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.test import Client

from ftops.common.models import AuditEvent
from ftops.datasets.config import HygieneConfig
from ftops.datasets.models import DatasetMembership, DatasetVersion
from ftops.datasets.services import dataset_version_build
from ftops.loop import hygiene
from ftops.loop.cycles import cycles_tick
from ftops.loop.hygiene import hygiene_describe, hygiene_next, hygiene_run, hygiene_slot_before, hygiene_tick
from ftops.loop.models import HygieneKind, HygieneRun
from tests.datasets.factories import build_shop

UTC = ZoneInfo("UTC")
HOLDOUT, ROTATION = HygieneKind.HOLDOUT_REFRESH, HygieneKind.ZERO_SHOT_ROTATION


@pytest.fixture(autouse=True)
def utc(settings: Any) -> None:
    settings.TIME_ZONE = "UTC"


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_quarterly_and_monthly_slots() -> None:
    cfg = HygieneConfig()  # holdout every 3 months, rotation every month, day 1 at 03:00
    now = at(2026, 12, 4, 15, 0)
    assert hygiene_slot_before(now, cfg, HOLDOUT) == at(2026, 10, 1, 3, 0)
    assert hygiene_next(now, cfg, HOLDOUT) == at(2027, 1, 1, 3, 0)
    assert hygiene_slot_before(now, cfg, ROTATION) == at(2026, 12, 1, 3, 0)
    assert hygiene_next(now, cfg, ROTATION) == at(2027, 1, 1, 3, 0)
    # Just before the slot's minute, the previous slot is still the latest.
    assert hygiene_slot_before(at(2027, 1, 1, 2, 59), cfg, HOLDOUT) == at(2026, 10, 1, 3, 0)
    assert hygiene_describe(cfg, HOLDOUT) == "quarterly (Jan, Apr, Jul, Oct), day 1 at 03:00 (UTC)"
    assert hygiene_describe(cfg, ROTATION) == "every month, day 1 at 03:00 (UTC)"
    half = HygieneConfig(holdout_refresh_months=6, zero_shot_rotation_months=0, day=15, time="22:30")
    assert hygiene_slot_before(now, half, HOLDOUT) == at(2026, 7, 15, 22, 30)
    assert hygiene_slot_before(now, half, ROTATION) is None and hygiene_next(now, half, ROTATION) is None
    assert hygiene_describe(half, ROTATION) == "off (loop.hygiene.zero_shot_rotation_months: 0)"


def test_hygiene_settings_are_checked_in_the_config_file(tmp_path: Any) -> None:
    from ftops.datasets.config import ConfigError, load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("loop:\n  hygiene:\n    holdout_refresh_months: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"loop.hygiene.holdout_refresh_months: 5 is not one of"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("loop:\n  hygiene:\n    zero_shot_rotation_months: 2\n    day: 10\n", encoding="utf-8")
    assert load_config(good).loop.hygiene == HygieneConfig(zero_shot_rotation_months=2, day=10)


def split_of(version: DatasetVersion) -> dict[int, str]:
    return dict(DatasetMembership.objects.filter(version=version).values_list("example_id", "split"))


def test_a_due_slot_rebuilds_the_latest_version_once_with_a_note(db: Any,
                                                                django_capture_on_commit_callbacks: Any) -> None:
    build_shop()
    base = dataset_version_build(seed=5)
    now = at(2026, 10, 1, 5, 0)  # both kinds have a slot on 1 October at 03:00

    with django_capture_on_commit_callbacks(execute=True):
        out = hygiene_tick(now=now, config=HygieneConfig())

    assert set(out) == {HOLDOUT, ROTATION}
    holdout = HygieneRun.objects.get(kind=HOLDOUT)
    rotation = HygieneRun.objects.get(kind=ROTATION)
    assert holdout.slot == rotation.slot == at(2026, 10, 1, 3, 0)
    refreshed, rotated = holdout.dataset_version, rotation.dataset_version
    assert refreshed is not None and rotated is not None
    assert refreshed.status == rotated.status == "ready"  # built after commit (in-process here)
    # Holdout refresh: a new seed, the same rotation; the evaluation splits are drawn anew.
    assert (refreshed.seed, refreshed.params["rotation"]) == (202610, 0)
    assert split_of(refreshed) != split_of(base)
    assert holdout.note.startswith(f"dataset v{refreshed.number}: Holdout refresh (2026-10-01): dataset "
                                   f"v{base.number} rebuilt with seed 202610 (was 5)")
    # Zero-shot rotation: the same seed, the next window of tools held out of training.
    assert (rotated.seed, rotated.params["rotation"]) == (5, 1)
    before, after = base.quality_report["zero_shot_tools"], rotated.quality_report["zero_shot_tools"]
    assert before and after and before != after
    assert "rebuilt with rotation 1 (was 0), same seed 5" in rotation.note
    assert f"zero-shot before: {', '.join(before)}" in rotation.note
    assert rotated.created_by == "hygiene: zero-shot tool rotation (system:schedule)"
    assert AuditEvent.objects.filter(action="dataset.build_requested", detail__hygiene=ROTATION).count() == 1

    # The same slot never builds twice; a later pass within the month does nothing either.
    count = DatasetVersion.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        assert hygiene_tick(now=now + timedelta(hours=2), config=HygieneConfig()) == {}
    assert hygiene_run(kind=HOLDOUT, slot=holdout.slot).pk == holdout.pk
    assert DatasetVersion.objects.count() == count == 3


def test_nothing_to_refresh_is_recorded_and_old_slots_are_not_caught_up(db: Any) -> None:
    cfg = HygieneConfig(zero_shot_rotation_months=0)
    assert hygiene_tick(now=at(2026, 10, 3, 5, 0), config=cfg) == {}  # two days after the slot: too late
    out = hygiene_tick(now=at(2026, 10, 1, 4, 0), config=cfg)
    run = HygieneRun.objects.get()
    assert out == {HOLDOUT: {"run": run.pk, "dataset_version": None}}
    assert run.dataset_version is None
    assert run.note == "Holdout refresh skipped: no ready dataset version to rebuild yet."
    assert hygiene_tick(now=at(2026, 10, 1, 6, 0), config=cfg) == {}
    assert not DatasetVersion.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_loops_clock_runs_the_hygiene_and_the_cycles_page_shows_it(
        monkeypatch: pytest.MonkeyPatch, admin_user: Any, client: Client) -> None:
    build_shop()
    dataset_version_build(seed=5)
    # Whatever today is, its latest slots count as due (the clock runs on the real time here).
    monkeypatch.setattr(hygiene, "CATCH_UP", timedelta(days=400))

    out = cycles_tick()  # what beat and the embedded scheduler thread run

    assert set(out["hygiene"]) == {HOLDOUT, ROTATION}
    assert DatasetVersion.objects.filter(status="ready").count() == 3
    client.force_login(admin_user)
    page = client.get("/loop/cycles/").content.decode()
    assert "quarterly (Jan, Apr, Jul, Oct), day 1 at 03:00" in page
    assert "every month, day 1 at 03:00" in page
    assert "Zero-shot tool rotation (" in page and "rebuilt with rotation 1 (was 0)" in page
    assert 'href="/datasets/3/"' in page or 'href="/datasets/2/"' in page


def test_hygiene_by_hand_from_the_command_line(db: Any, django_capture_on_commit_callbacks: Any) -> None:
    build_shop()
    dataset_version_build(seed=5)
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("cycle", "hygiene", "zero_shot_rotation", stdout=out)
    assert out.getvalue().startswith("dataset v2: Zero-shot tool rotation (")
    run = HygieneRun.objects.get()
    assert run.created_by == "cli" or run.created_by.startswith("cli")
    assert run.dataset_version is not None and run.dataset_version.status == "ready"
