"""Once-per-period alerts: a claim on ``AlertMark`` makes a daily or monthly alert go out once
whatever runs the clock (beat, one or several embedded scheduler threads, a restart)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from ftops.common.models import AlertMark


def alert_mark_claim(*, key: str, detail: dict[str, Any] | None = None) -> bool:
    """True for the one caller that records ``key`` first; call it in the transaction that sends
    the alert (``notify`` sends on commit), so a rolled-back send leaves the period unclaimed."""
    try:
        with transaction.atomic():
            AlertMark.objects.create(key=key[:200], detail=detail or {})
    except IntegrityError:
        return False
    return True


def alert_mark_exists(*, key: str) -> bool:
    return AlertMark.objects.filter(key=key[:200]).exists()


def alert_mark_detail(*, key: str) -> dict[str, Any] | None:
    row = AlertMark.objects.filter(key=key[:200]).values_list("detail", flat=True).first()
    return dict(row) if row is not None else None
