"""The periodic alerts: daily review digest, stale review queue, monthly report.

``alerts_tick`` runs every few minutes (beat, or the served process's scheduler thread in the
embedded default) and sends each alert at most once per period: the period's ``AlertMark`` is
claimed in the transaction that calls ``notify`` (which sends on commit), so two clocks, a
restart or a tick every 30 seconds never send the same digest twice, and a failed tick leaves
the period open for the next one.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ftops.common.alerts import alert_mark_claim, alert_mark_exists
from ftops.common.models import NotificationKind
from ftops.common.notifications import APPROVERS, REVIEWERS, notify
from ftops.reports.selectors import (
    Digest,
    MonthlyReport,
    digest_build,
    monthly_report_build,
    previous_month,
    stale_groups,
)

log = logging.getLogger(__name__)


def stale_hours() -> int:
    return int(getattr(settings, "FTOPS_REVIEW_STALE_HOURS", 24))


def digest_send(*, now: datetime | None = None, force: bool = False) -> Digest | None:
    """Send today's digest to the reviewers who opted in; None when already sent today.

    An empty queue sends nothing (and still counts as today's digest)."""
    now = now or timezone.now()
    digest = digest_build(now=now, stale_hours=stale_hours())
    with transaction.atomic():
        key = f"daily_digest:{digest.day.isoformat()}"
        if not alert_mark_claim(key=key, detail={"total": digest.total}) and not force:
            return None
        if digest.total:
            notify(audience=REVIEWERS, kind=NotificationKind.DAILY_DIGEST, subject=digest.subject,
                   text=digest.text(now=now), payload=digest.payload())
    return digest


def review_queue_stale_check(*, now: datetime | None = None) -> int:
    """Tell reviewers once a day when open items have waited more than ``FTOPS_REVIEW_STALE_HOURS``.

    Returns how many stale items the alert named (0: none stale, or already told today).
    """
    now = now or timezone.now()
    key = f"review_queue_stale:{now.date().isoformat()}"
    if alert_mark_exists(key=key):
        return 0
    hours = stale_hours()
    groups = stale_groups(now=now, stale_hours=hours)
    total = sum(g["n"] for g in groups)
    if not total:
        return 0
    with transaction.atomic():
        if not alert_mark_claim(key=key, detail={"stale": total}):
            return 0
        lines = [f"{total} review item(s) have waited more than {hours} h:"]
        lines += [f"  {g['service']} / {g['failure_kind']}: {g['n']}" for g in groups]
        lines += ["", "Open the queue: /review/"]
        notify(audience=REVIEWERS, kind=NotificationKind.REVIEW_QUEUE_STALE,
               subject=f"Review queue: {total} item(s) waiting more than {hours} h", text="\n".join(lines),
               payload={"kind": "review_queue_stale", "stale": total, "hours": hours,
                        "groups": [{"service": g["service"], "failure_kind": g["failure_kind"], "n": g["n"]}
                                   for g in groups]})
    return total


def monthly_report_send(*, month: date, force: bool = False) -> MonthlyReport | None:
    """Build ``month``'s report and send it to approvers and admins; None when already sent.

    A month in which no version held production sends nothing (and counts as sent)."""
    report = monthly_report_build(month=month)
    with transaction.atomic():
        claimed = alert_mark_claim(key=f"monthly_report:{report.label}", detail={"versions": len(report.versions)})
        if not claimed and not force:
            return None
        if report.versions:  # a month nothing served in production has nothing to compare
            notify(audience=APPROVERS, kind=NotificationKind.MONTHLY_REPORT, subject=report.subject,
                   text=report.text(), payload=report.payload())
    return report


def alerts_tick(*, now: datetime | None = None) -> dict[str, Any]:
    """One pass of the alerts clock; one alert's failure never stops the others."""
    now = now or timezone.now()
    out: dict[str, Any] = {}
    steps: list[tuple[str, Any]] = [("stale", lambda: review_queue_stale_check(now=now))]
    if now.hour >= int(getattr(settings, "FTOPS_DIGEST_HOUR_UTC", 8)) and \
            not alert_mark_exists(key=f"daily_digest:{now.date().isoformat()}"):
        steps.append(("digest", lambda: (d.total if (d := digest_send(now=now)) else None)))
    month = previous_month(now.date())
    if not alert_mark_exists(key=f"monthly_report:{month:%Y-%m}"):
        steps.append(("monthly", lambda: (r.label if (r := monthly_report_send(month=month)) else None)))
    for name, step in steps:
        try:
            out[name] = step()
        except Exception as exc:  # logged; the period stays unclaimed and the next tick tries again
            log.exception("alerts: %s failed", name)
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
