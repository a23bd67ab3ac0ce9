"""Celery tasks of the common app."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from ftops.common import notifications

log = logging.getLogger(__name__)


@shared_task(name="ftops.common.tasks.notify_send", bind=True, acks_late=True)
def notify_send(self: Task, *, audience: str, subject: str, text: str, payload: dict[str, Any],
                service: str | None, channels: list[str], kind: str | None = None,
                notification_id: int | None = None) -> dict[str, Any]:
    """Deliver one notification; a transient failure is retried for that channel only.

    Retries back off 30 s, 60 s, 120 s … up to ``FTOPS_NOTIFY_MAX_RETRIES``. In-process
    (no broker) there is no later: the failure is recorded at once rather than blocking the
    request that triggered it with sleeps.
    """
    kind = kind or notifications.kind_infer(payload)
    if notification_id is None:  # sent without notify() (a retry from an older release, a test)
        notification_id = notifications.notification_create(kind=kind, audience=audience, subject=subject,
                                                            text=text, payload=payload, service=service or "")
    failures = notifications.notification_deliver(audience=audience, subject=subject, text=text, payload=payload,
                                                  service=service, channels=channels, kind=kind,
                                                  notification_id=notification_id)
    attempts = self.request.retries + 1
    retry = [channel for channel, error in failures.items() if error.transient]
    can_retry = not self.request.is_eager and self.request.retries < settings.FTOPS_NOTIFY_MAX_RETRIES
    for channel, error in failures.items():
        if not (can_retry and channel in retry):
            notifications.notification_failure_record(audience=audience, subject=subject, service=service,
                                                      channel=channel, reason=error.reason, attempts=attempts)
    notifications.notification_status_record(notification_id=notification_id, failures=failures,
                                             retrying=retry if can_retry else [], attempts=attempts)
    if can_retry and retry:
        raise self.retry(kwargs={"audience": audience, "subject": subject, "text": text, "payload": payload,
                                 "service": service, "channels": retry, "kind": kind,
                                 "notification_id": notification_id},
                         countdown=30 * 2 ** self.request.retries, max_retries=settings.FTOPS_NOTIFY_MAX_RETRIES)
    return {"audience": audience, "channels": channels, "failed": sorted(failures),
            "notification_id": notification_id}
