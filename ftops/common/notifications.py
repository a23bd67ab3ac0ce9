"""Tell people that something awaits them: email through Django's mail backend, plus an optional webhook.

``notify`` is what services call. It never sends anything itself: it checks its arguments and
hands them to the ``ftops.common.tasks.notify_send`` task after the caller's transaction
commits, so a rolled-back decision is never announced and a slow or dead mail server never
holds a row lock or fails a release. The task resolves recipients when it runs (a user added to
the ``approver`` group in between is told too) and delivers each channel on its own: a webhook
outage is retried without sending the email twice.

Recipients by audience:

- ``approvers``: active users in the ``approver`` or ``admin`` group, staff and superusers (they
  hold every role, see ``ftops.common.auth.request_roles``), and ``FTOPS_NOTIFY_APPROVERS``;
- ``admins``: active users in the ``admin`` group, staff and superusers, and ``FTOPS_NOTIFY_ADMINS``;
- ``service_owners``: the addresses ``FTOPS_NOTIFY_SERVICE_OWNERS`` lists for ``service``; a
  service nobody owns goes to the admins instead, so the message is not lost.

The webhook (``FTOPS_NOTIFY_WEBHOOK_URL``, set by the operator, never by a caller) gets one JSON
body per notification whatever the audience: ``text`` (what Slack, Mattermost and Rocket.Chat
show), ``blocks`` (Slack's layout) and ``ftops`` (the structured fields, for receivers that
route on them). It goes through the guarded outbound client like every server-side request.
"""

from __future__ import annotations

import json
import logging
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q

from ftops.common.actors import Actor
from ftops.common.models import AuditAction, Role
from ftops.common.outbound import (
    OutboundError,
    OutboundRefused,
    guarded_async_client,
    limits_from_settings,
    record_refusal,
    run_sync,
)
from ftops.common.services import audit_record

log = logging.getLogger(__name__)

APPROVERS = "approvers"
ADMINS = "admins"
SERVICE_OWNERS = "service_owners"
AUDIENCES = frozenset({APPROVERS, ADMINS, SERVICE_OWNERS})
EMAIL = "email"
WEBHOOK = "webhook"
CHANNELS = (EMAIL, WEBHOOK)
SUBJECT_MAX = 200  # mail headers fold long subjects; past this it is a body, not a subject
SYSTEM = Actor.system("system:notifications")


class DeliveryError(Exception):
    """A channel failed. ``transient``: worth another try later (connection refused, 4xx SMTP
    reply, 5xx or 429 from the webhook, timeout); otherwise retrying cannot help."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def notify(*, audience: str, subject: str, text: str, payload: dict[str, Any], service: str | None = None) -> None:
    """Send ``subject``/``text`` to ``audience`` after the current transaction commits.

    Wrong arguments are the caller's bug and raise ``ValueError`` at once; delivery problems
    never reach the caller (they are logged, audited and retried by the task).
    """
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}; use one of {sorted(AUDIENCES)}")
    if audience == SERVICE_OWNERS and not service:
        service = str(payload.get("service") or "")  # registry passes the service inside the payload
        if not service:
            raise ValueError("audience 'service_owners' needs service=<service name>")
    subject = " ".join(subject.split())  # a newline in a subject would be a header injection
    if not subject:
        raise ValueError("a notification needs a subject")
    try:
        payload = json.loads(json.dumps(payload))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the payload must be JSON-serialisable: {exc}") from None
    kwargs = {"audience": audience, "subject": subject[:SUBJECT_MAX], "text": text, "payload": payload,
              "service": service if audience == SERVICE_OWNERS else None, "channels": list(CHANNELS)}

    def enqueue() -> None:
        from ftops.common.tasks import notify_send

        try:
            notify_send.delay(**kwargs)
        except Exception:  # broker down: the decision stands, the message is lost and said so
            log.exception("could not queue the notification %r for %s", subject, audience)
            _audit_failure(kwargs, channel="queue", reason="the task could not be queued", attempts=0)

    transaction.on_commit(enqueue)


# ------------------------------------------------------------------ recipients

@dataclass(frozen=True)
class Recipients:
    emails: tuple[str, ...]
    fallback: bool = False  # service owners unknown: the admins were told instead


def recipients(*, audience: str, service: str | None = None) -> Recipients:
    if audience == SERVICE_OWNERS:
        owners = settings.FTOPS_NOTIFY_SERVICE_OWNERS.get(service or "", [])
        if owners:
            return Recipients(_unique(owners))
        return Recipients(recipients(audience=ADMINS).emails, fallback=True)
    if audience == APPROVERS:
        groups = [Role.APPROVER, Role.ADMIN]
        extra = settings.FTOPS_NOTIFY_APPROVERS
    elif audience == ADMINS:
        groups = [Role.ADMIN]
        extra = settings.FTOPS_NOTIFY_ADMINS
    else:
        raise ValueError(f"unknown audience {audience!r}")
    users = (get_user_model().objects
             .filter(Q(groups__name__in=[str(g) for g in groups]) | Q(is_staff=True) | Q(is_superuser=True),
                     is_active=True)
             .exclude(email="").order_by("email").values_list("email", flat=True).distinct())
    return Recipients(_unique([*users, *extra]))


def _unique(emails: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for email in emails:
        seen.setdefault(email.strip().lower(), email.strip())
    return tuple(seen.values())


# ------------------------------------------------------------------ channels

def deliver_email(*, to: Iterable[str], subject: str, text: str) -> int:
    """One message per recipient (nobody sees who else was told) over one connection."""
    addresses = list(to)
    if not addresses:
        return 0
    messages = [EmailMessage(subject=subject, body=text, to=[address]) for address in addresses]
    try:
        with get_connection(fail_silently=False) as connection:
            return int(connection.send_messages(messages) or 0)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(f"the mail server refused the recipients: {codes}",
                            transient=any(400 <= code < 500 for code in codes)) from None
    except smtplib.SMTPResponseException as exc:  # authentication, sender refused, data refused
        raise DeliveryError(f"the mail server answered {exc.smtp_code}: {exc.smtp_error!r}",
                            transient=400 <= exc.smtp_code < 500) from None
    except OSError as exc:  # connection refused or dropped, timeouts, TLS; SMTPException is an OSError
        raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=True) from None


def webhook_body(*, audience: str, subject: str, text: str, payload: dict[str, Any],
                 service: str | None) -> dict[str, Any]:
    fields = [{"type": "mrkdwn", "text": f"*{key}*\n{value}"}
              for key, value in payload.items() if isinstance(value, str | int | float | bool)][:10]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": subject[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000] or subject}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})  # Slack shows at most 10 fields
    return {"text": f"{subject}\n{text}" if text else subject, "blocks": blocks,
            "ftops": {"audience": audience, "service": service, "subject": subject, "text": text,
                      "payload": payload}}


def deliver_webhook(*, url: str, body: dict[str, Any]) -> int:
    """POST ``body`` as JSON under the outbound policy; the receiver's status code on 2xx."""
    limits = limits_from_settings()

    async def post() -> int:
        with anyio.fail_after(limits.timeout_s):
            async with guarded_async_client(timeout_s=limits.timeout_s, max_bytes=limits.max_bytes) as client:
                response = await client.post(url, json=body)
                await response.aread()
                return int(response.status_code)

    try:
        status = run_sync(post)
    except OutboundRefused as exc:
        record_refusal(exc, by=SYSTEM, purpose="notification webhook")
        raise DeliveryError(f"the webhook URL is refused by the outbound policy: {exc.reason}",
                            transient=False) from None
    except OutboundError as exc:
        raise DeliveryError(f"webhook {exc.kind}: {exc.reason}", transient=exc.kind != "too_large") from None
    except TimeoutError:
        raise DeliveryError(f"the webhook did not answer within {limits.timeout_s:g} s", transient=True) from None
    except OSError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=True) from None
    except Exception as exc:  # httpx2's own transport and protocol errors
        raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=True) from None
    if 200 <= status < 300:
        return status
    raise DeliveryError(f"the webhook answered HTTP {status}", transient=status == 429 or status >= 500)


# ------------------------------------------------------------------ one attempt (the task's body)

def notification_deliver(*, audience: str, subject: str, text: str, payload: dict[str, Any],
                         service: str | None, channels: list[str]) -> dict[str, DeliveryError]:
    """Try each channel in ``channels`` once; audit what went out; return the failures by channel.

    The caller (the task) decides whether a transient failure is tried again or recorded.
    """
    failures: dict[str, DeliveryError] = {}
    if EMAIL in channels:
        who = recipients(audience=audience, service=service)
        if not who.emails:
            log.warning("notification %r for %s: nobody to email (no users with the role and no "
                        "FTOPS_NOTIFY_* addresses)", subject, audience)
        else:
            try:
                sent = deliver_email(to=who.emails, subject=subject, text=text)
            except DeliveryError as exc:
                failures[EMAIL] = exc
            else:
                _audit_sent(audience=audience, subject=subject, service=service, channel=EMAIL,
                            detail={"recipients": sent, "fallback_to_admins": who.fallback})
    url = settings.FTOPS_NOTIFY_WEBHOOK_URL
    if WEBHOOK in channels and url:
        try:
            status = deliver_webhook(url=url, body=webhook_body(audience=audience, subject=subject, text=text,
                                                                payload=payload, service=service))
        except DeliveryError as exc:
            failures[WEBHOOK] = exc
        else:
            _audit_sent(audience=audience, subject=subject, service=service, channel=WEBHOOK,
                        detail={"status_code": status})
    for channel, error in failures.items():
        log.warning("notification %r for %s via %s failed (%s): %s", subject, audience, channel,
                    "transient" if error.transient else "permanent", error.reason)
    return failures


def notification_failure_record(*, audience: str, subject: str, service: str | None, channel: str,
                                reason: str, attempts: int) -> None:
    """The last word on a channel that will not be tried again."""
    log.error("notification %r for %s via %s given up after %d attempt(s): %s",
              subject, audience, channel, attempts, reason)
    audit_record(action=AuditAction.NOTIFICATION_FAILED, by=SYSTEM, object_type="notification",
                 object_id=audience, detail={"channel": channel, "subject": subject, "service": service,
                                             "reason": reason, "attempts": attempts})


def _audit_sent(*, audience: str, subject: str, service: str | None, channel: str, detail: dict[str, Any]) -> None:
    audit_record(action=AuditAction.NOTIFICATION_SENT, by=SYSTEM, object_type="notification", object_id=audience,
                 detail={"channel": channel, "subject": subject, "service": service, **detail})


def _audit_failure(kwargs: dict[str, Any], *, channel: str, reason: str, attempts: int) -> None:
    try:
        notification_failure_record(audience=kwargs["audience"], subject=kwargs["subject"],
                                    service=kwargs["service"], channel=channel, reason=reason, attempts=attempts)
    except Exception:  # the database is what failed: the log line above is all we can leave
        log.exception("could not audit a failed notification")
