"""The daily digest, the stale-review-queue alert and the alerts clock, mailed through the real
SMTP server of tests/common/test_notifications to reviewers who chose them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from ftops.catalog.models import Service
from ftops.common.models import AlertMark, Notification, NotificationKind, NotificationPreference
from ftops.reports.selectors import digest_build
from ftops.reports.services import alerts_tick, digest_send, review_queue_stale_check
from review.models import ReviewItem, ReviewStatus
from review.services import review_items_enqueue_failures
from tests.common.test_notifications import Mailbox, user
from tests.review.factories import make_interaction, make_payments

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


@pytest.fixture
def queue() -> dict[str, Any]:
    """payments: 3 type errors, 2 missing parameters; orders: 1 unknown tool; plus one item done
    and one held under a live lease (neither is waiting)."""
    payments = make_payments()
    orders = Service.objects.create(name="orders")
    for kind, service, n in (("type_error", payments, 3), ("missing_required", payments, 2),
                             ("unknown_tool", orders, 1), ("value_error", payments, 2)):
        for _ in range(n):
            make_interaction(service, failure_kind=kind)
    assert review_items_enqueue_failures() == 8
    value_errors = list(ReviewItem.objects.filter(failure_kind="value_error").order_by("pk"))
    ReviewItem.objects.filter(pk=value_errors[0].pk).update(status=ReviewStatus.CORRECTED)
    ReviewItem.objects.filter(pk=value_errors[1].pk).update(status=ReviewStatus.CLAIMED, holder="rita",
                                                            lease_expires_at=NOW + timedelta(days=3))
    # Entered the queue at different times: the type errors two days ago, the rest 2 hours ago.
    ReviewItem.objects.update(created_at=NOW - timedelta(hours=2))
    ReviewItem.objects.filter(failure_kind="type_error").update(created_at=NOW - timedelta(hours=50))
    return {"payments": payments, "orders": orders}


def opted_in(name: str) -> Any:
    u = user(name, groups=("reviewer",))
    NotificationPreference.objects.create(user=u, kind=NotificationKind.DAILY_DIGEST, email=True)
    return u


def test_the_digest_says_what_waits_by_service_and_failure_kind(queue: dict[str, Any], settings: Any) -> None:
    settings.FTOPS_REVIEW_STALE_HOURS = 24
    digest = digest_build(now=NOW, stale_hours=24)
    assert digest.subject == "Review digest 2026-12-04: 6 item(s) waiting"
    assert digest.by_service == {"payments": 5, "orders": 1}
    assert digest.text(now=NOW).splitlines() == [
        "6 failure(s) wait for review in 2 service(s).",
        "3 of them have waited more than 24 h.",
        "",
        "By service and failure kind:",
        "  payments  type_error            3  (oldest 2 days)",
        "  payments  missing_required      2  (oldest 2 h)",
        "  orders    unknown_tool          1  (oldest 2 h)",
        "",
        "Totals by service: payments 5, orders 1",
        "",
        "Open the queue: /review/",
    ]
    assert digest.payload()["groups"][0] == {"service": "payments", "failure_kind": "type_error", "n": 3}


def test_the_digest_goes_once_a_day_to_reviewers_who_opted_in(
        queue: dict[str, Any], mailbox: Mailbox, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    opted_in("rob")
    user("rita", groups=("reviewer",))  # never asked for it
    user("ann", groups=("approver",))  # not a reviewer
    with django_capture_on_commit_callbacks(execute=True):
        assert digest_send(now=NOW) is not None
        assert digest_send(now=NOW + timedelta(hours=3)) is None  # same day: already sent
    [(rcpts, message)] = mailbox.messages
    assert rcpts == ["rob@example.com"]
    assert message["Subject"] == "Review digest 2026-12-04: 6 item(s) waiting"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes) and "  payments  type_error            3  (oldest 2 days)" in body.decode()
    row = Notification.objects.get()
    assert (row.kind, row.audience, row.status, row.recipients) == ("daily_digest", "reviewers", "sent",
                                                                    ["rob@example.com"])
    with django_capture_on_commit_callbacks(execute=True):
        assert digest_send(now=NOW + timedelta(days=1)) is not None  # the next day sends again
    assert len(mailbox.messages) == 2


def test_an_empty_queue_sends_no_digest(mailbox: Mailbox, django_capture_on_commit_callbacks: Any) -> None:
    opted_in("rob")
    with django_capture_on_commit_callbacks(execute=True):
        digest = digest_send(now=NOW)
    assert digest is not None and digest.total == 0
    assert mailbox.messages == [] and Notification.objects.count() == 0
    assert AlertMark.objects.filter(key="daily_digest:2026-12-04").exists()


def test_digest_dry_run_prints_and_sends_nothing(queue: dict[str, Any], mailbox: Mailbox) -> None:
    opted_in("rob")
    out = StringIO()
    call_command("digest", "--dry-run", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(": 6 item(s) waiting") and lines[1] == "6 failure(s) wait for review in 2 service(s)."
    assert "Totals by service: payments 5, orders 1" in lines
    assert mailbox.messages == [] and AlertMark.objects.count() == 0 and Notification.objects.count() == 0


def test_the_stale_queue_alert_fires_once_a_day(
        queue: dict[str, Any], mailbox: Mailbox, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    settings.FTOPS_REVIEW_STALE_HOURS = 24
    user("rita", groups=("reviewer",))  # the stale alert is on by default
    with django_capture_on_commit_callbacks(execute=True):
        assert review_queue_stale_check(now=NOW) == 3
        for minutes in (1, 2, 30, 600):  # the clock ticks every minute: nothing more today
            assert review_queue_stale_check(now=NOW + timedelta(minutes=minutes)) == 0
    [(rcpts, message)] = mailbox.messages
    assert rcpts == ["rita@example.com"]
    assert message["Subject"] == "Review queue: 3 item(s) waiting more than 24 h"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes) and "  payments / type_error: 3" in body.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert review_queue_stale_check(now=NOW + timedelta(days=1)) == 6  # the next day: all are old now
    assert len(mailbox.messages) == 2


def test_no_stale_items_no_alert_and_the_day_stays_open(
        queue: dict[str, Any], mailbox: Mailbox, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_REVIEW_STALE_HOURS = 72
    user("rita", groups=("reviewer",))
    with django_capture_on_commit_callbacks(execute=True):
        assert review_queue_stale_check(now=NOW) == 0
    assert mailbox.messages == [] and not AlertMark.objects.exists()
    ReviewItem.objects.filter(failure_kind="unknown_tool").update(created_at=NOW - timedelta(hours=80))
    with django_capture_on_commit_callbacks(execute=True):
        assert review_queue_stale_check(now=NOW) == 1  # the same day, once something became stale


def test_the_alerts_clock_sends_each_alert_once(
        queue: dict[str, Any], mailbox: Mailbox, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    settings.FTOPS_DIGEST_HOUR_UTC = 8
    settings.FTOPS_REVIEW_STALE_HOURS = 24
    opted_in("rob")
    user("ada", groups=("admin",))
    early = NOW.replace(hour=7)
    with django_capture_on_commit_callbacks(execute=True):
        first = alerts_tick(now=early)
        # No digest before 08:00; November had nothing in production, so its report is empty and not mailed.
        assert first == {"stale": 3, "monthly": "2026-11"}
        assert alerts_tick(now=early + timedelta(minutes=1)) == {"stale": 0}
        assert alerts_tick(now=NOW) == {"stale": 0, "digest": 6}
        assert alerts_tick(now=NOW + timedelta(minutes=1)) == {"stale": 0}
    subjects = sorted((r[0], m["Subject"]) for r, m in mailbox.messages)
    assert subjects == [
        ("ada@example.com", "Review queue: 3 item(s) waiting more than 24 h"),
        ("rob@example.com", "Review digest 2026-12-04: 6 item(s) waiting"),
        ("rob@example.com", "Review queue: 3 item(s) waiting more than 24 h"),
    ]


def test_the_alerts_tick_is_on_beat_and_the_embedded_scheduler(settings: Any) -> None:
    assert "ftops.reports.tasks.alerts_tick" in settings.FTOPS_JOB_REAPER_TASKS
    assert settings.CELERY_BEAT_SCHEDULE["reports-alerts-tick"]["task"] == "ftops.reports.tasks.alerts_tick"
    from ftops.reports.tasks import alerts_tick as task

    result = task.apply().get()
    assert set(result) >= {"stale"}
    assert timezone.now() is not None
