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
  service nobody owns goes to the admins instead, so the message is not lost;
- ``reviewers``: active users in the ``reviewer`` or ``admin`` group, staff and superusers.

Every notification has a ``kind`` (``NotificationKind``). Each user chooses per kind whether
they get an email (``NotificationPreference``; no row means ``EMAIL_DEFAULTS``: everything on
but the daily digest, which is opt-in); an address from the ``FTOPS_NOTIFY_*`` settings that
belongs to a user follows that user's choice, one that belongs to nobody always gets it (the
operator listed it). Whether the team's webhook gets a kind is one team-wide switch per kind
(``TeamWebhookSetting``, admins edit it). Every call leaves a ``Notification`` row with who
was told, each channel's outcome and the overall status (sent, retrying, failed), which the
notifications page lists.

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
from ftops.common.models import (
    AuditAction,
    Notification,
    NotificationKind,
    NotificationPreference,
    NotificationStatus,
    Role,
    TeamWebhookSetting,
)
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
REVIEWERS = "reviewers"
AUDIENCES = frozenset({APPROVERS, ADMINS, SERVICE_OWNERS, REVIEWERS})
K = NotificationKind
# A kind nobody chose for gets these; the digest is opt-in (a daily mail nobody asked for is noise).
EMAIL_DEFAULTS: dict[str, bool] = {**{kind: True for kind in K.values}, K.DAILY_DIGEST: False}
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


def notify(*, audience: str, subject: str, text: str, payload: dict[str, Any], service: str | None = None,
           kind: str | None = None) -> None:
    """Send ``subject``/``text`` to ``audience`` after the current transaction commits.

    ``kind`` (a ``NotificationKind``) decides who, among the audience, wants it; without it
    ``payload["kind"]`` is used, else the kind is recognised from the payload (``kind_infer``).
    Wrong arguments are the caller's bug and raise ``ValueError`` at once; delivery problems
    never reach the caller (they are logged, audited and retried by the task).
    """
    if kind is not None and kind not in K.values:
        raise ValueError(f"unknown notification kind {kind!r}; use one of {sorted(K.values)}")
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
    kind = kind or kind_infer(payload)
    kwargs: dict[str, Any] = {"audience": audience, "subject": subject[:SUBJECT_MAX], "text": text,
                              "payload": payload, "service": service if audience == SERVICE_OWNERS else None,
                              "channels": list(CHANNELS), "kind": kind}

    def enqueue() -> None:
        from ftops.common.tasks import notify_send

        try:
            kwargs["notification_id"] = notification_create(
                kind=kind, audience=audience, subject=kwargs["subject"], text=text, payload=payload,
                service=service or str(payload.get("service") or ""))
        except Exception:  # the list is a record; a database hiccup must not lose the message itself
            log.exception("could not record the notification %r", subject)
        try:
            notify_send.delay(**kwargs)
        except Exception:  # broker down: the decision stands, the message is lost and said so
            log.exception("could not queue the notification %r for %s", subject, audience)
            _audit_failure(kwargs, channel="queue", reason="the task could not be queued", attempts=0)
            if kwargs.get("notification_id"):
                notification_status_record(notification_id=kwargs["notification_id"], failures={
                    "queue": DeliveryError("the task could not be queued", transient=False)}, retrying=[], attempts=0)

    transaction.on_commit(enqueue)


def kind_infer(payload: dict[str, Any]) -> str:
    """The kind of a notification whose caller did not say, from the payload the registry and
    the gateway send (their shapes are fixed by their tests)."""
    named = payload.get("kind")
    if isinstance(named, str) and named in K.values:
        return named
    if "decision_id" in payload and "action" in payload:  # gateway.canary
        return K.CANARY_ROLLBACK if payload["action"] == "rollback" else K.CANARY_STEP
    if "justification" in payload and "approver" in payload:  # registry: gate override
        return K.GATE_OVERRIDE
    if payload.get("severity") == "critical" and "failing_services" in payload:  # registry: critical gates
        return K.GATE_FAILED
    if "gate_report" in payload and "service" in payload:  # registry: a service kept its model
        return K.GATE_FAILED
    if "model_version" in payload and "decision" in payload:  # registry: gates computed
        return K.GATE_FAILED if payload.get("status") == "gates_blocked" else K.APPROVAL_REQUESTED
    return K.OTHER


# ------------------------------------------------------------------ preferences

@dataclass(frozen=True)
class Preference:
    kind: str
    label: str
    email: bool
    default: bool
    webhook: bool


def preferences_for(*, user_id: int) -> list[Preference]:
    """Every kind with the user's email choice (or the default) and the team's webhook switch."""
    chosen = dict(NotificationPreference.objects.filter(user_id=user_id).values_list("kind", "email"))
    hooks = dict(TeamWebhookSetting.objects.values_list("kind", "webhook"))
    return [Preference(kind=kind, label=str(label), email=chosen.get(kind, EMAIL_DEFAULTS[kind]),
                       default=EMAIL_DEFAULTS[kind], webhook=hooks.get(kind, True))
            for kind, label in K.choices]


def preferences_update(*, by: Actor, email: dict[str, bool], webhook: dict[str, bool] | None = None) -> list[str]:
    """Store ``by``'s email choice per kind (and, for an admin, the team's webhook switches).

    Only kinds whose value changes are written and audited; returns them. ``webhook`` is for
    admins only: the caller checks the role (the view does).
    """
    unknown = sorted((set(email) | set(webhook or {})) - set(K.values))
    if unknown:
        raise ValueError(f"unknown notification kind(s) {unknown}")
    if by.user is None:
        raise ValueError("preferences belong to a signed-in user")
    user_id = by.user.pk
    changed: list[str] = []
    with transaction.atomic():
        current = {p.kind: p.email for p in preferences_for(user_id=user_id)}
        for kind, value in sorted(email.items()):
            if current[kind] != value:
                NotificationPreference.objects.update_or_create(user_id=user_id, kind=kind, defaults={"email": value})
                changed.append(kind)
        if changed:
            audit_record(action=AuditAction.NOTIFICATION_PREFERENCES_UPDATED, by=by, object_type="user",
                         object_id=user_id, detail={"email": {k: email[k] for k in changed}})
        hooks = dict(TeamWebhookSetting.objects.values_list("kind", "webhook"))
        hook_changed = [k for k, v in sorted((webhook or {}).items()) if hooks.get(k, True) != v]
        for kind in hook_changed:
            TeamWebhookSetting.objects.update_or_create(kind=kind, defaults={"webhook": (webhook or {})[kind],
                                                                             "updated_by": by.label[:200]})
        if hook_changed:
            audit_record(action=AuditAction.NOTIFICATION_TEAM_WEBHOOK_UPDATED, by=by, object_type="webhook",
                         object_id="team", detail={"webhook": {k: (webhook or {})[k] for k in hook_changed}})
    return changed + [f"webhook:{k}" for k in hook_changed]


def webhook_wanted(kind: str) -> bool:
    value = TeamWebhookSetting.objects.filter(kind=kind).values_list("webhook", flat=True).first()
    return True if value is None else bool(value)


# ------------------------------------------------------------------ recipients

@dataclass(frozen=True)
class Recipients:
    emails: tuple[str, ...]
    fallback: bool = False  # service owners unknown: the admins were told instead
    user_ids: tuple[int, ...] = ()  # the users behind those addresses (whose notifications list shows it)
    declined: int = 0  # addresses left out because their user turned this kind off


def recipients(*, audience: str, service: str | None = None, kind: str = K.OTHER) -> Recipients:
    """Who gets the email for ``kind``: the audience less the users who turned the kind off."""
    if audience == SERVICE_OWNERS:
        owners = settings.FTOPS_NOTIFY_SERVICE_OWNERS.get(service or "", [])
        if owners:
            return _resolve([], owners, kind)
        admins = recipients(audience=ADMINS, kind=kind)
        return Recipients(admins.emails, fallback=True, user_ids=admins.user_ids, declined=admins.declined)
    if audience == APPROVERS:
        groups = [Role.APPROVER, Role.ADMIN]
        extra = settings.FTOPS_NOTIFY_APPROVERS
    elif audience == ADMINS:
        groups = [Role.ADMIN]
        extra = settings.FTOPS_NOTIFY_ADMINS
    elif audience == REVIEWERS:
        groups = [Role.REVIEWER, Role.ADMIN]
        extra = []
    else:
        raise ValueError(f"unknown audience {audience!r}")
    users = (get_user_model().objects
             .filter(Q(groups__name__in=[str(g) for g in groups]) | Q(is_staff=True) | Q(is_superuser=True),
                     is_active=True)
             .exclude(email="").order_by("email").values_list("email", "pk").distinct())
    return _resolve(list(users), extra, kind)


def _resolve(users: list[tuple[str, int]], extra: Iterable[str], kind: str) -> Recipients:
    """Addresses in order, one per person, each linked to its user when it has one, less those
    whose user declined ``kind``."""
    found: dict[str, tuple[str, int | None]] = {}
    for email, pk in users:
        found.setdefault(email.strip().lower(), (email.strip(), pk))
    for email in extra:
        key = email.strip().lower()
        if key not in found:
            owner = (get_user_model().objects.filter(email__iexact=key, is_active=True)
                     .order_by("pk").values_list("pk", flat=True).first())
            found[key] = (email.strip(), owner)
    ids = {pk for _, pk in found.values() if pk is not None}
    chosen = dict(NotificationPreference.objects.filter(user_id__in=ids, kind=kind).values_list("user_id", "email"))
    default = EMAIL_DEFAULTS.get(kind, True)
    kept = [(email, pk) for email, pk in found.values() if pk is None or chosen.get(pk, default)]
    return Recipients(tuple(email for email, _ in kept), user_ids=tuple(pk for _, pk in kept if pk is not None),
                      declined=len(found) - len(kept))


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
                         service: str | None, channels: list[str], kind: str = K.OTHER,
                         notification_id: int | None = None) -> dict[str, DeliveryError]:
    """Try each channel in ``channels`` once; audit what went out; return the failures by channel.

    The caller (the task) decides whether a transient failure is tried again or recorded
    (``notification_status_record``).
    """
    failures: dict[str, DeliveryError] = {}
    done: dict[str, dict[str, Any]] = {}
    if EMAIL in channels:
        who = recipients(audience=audience, service=service, kind=kind)
        _record_recipients(notification_id, who)
        if not who.emails:
            log.warning("notification %r for %s: nobody to email (no users with the role who want %s, and no "
                        "FTOPS_NOTIFY_* addresses)", subject, audience, kind)
            done[EMAIL] = {"status": "skipped", "recipients": 0, "declined": who.declined}
        else:
            try:
                sent = deliver_email(to=who.emails, subject=subject, text=text)
            except DeliveryError as exc:
                failures[EMAIL] = exc
            else:
                done[EMAIL] = {"status": NotificationStatus.SENT.value, "recipients": sent, "declined": who.declined}
                _audit_sent(audience=audience, subject=subject, service=service, channel=EMAIL,
                            detail={"recipients": sent, "fallback_to_admins": who.fallback})
    url = settings.FTOPS_NOTIFY_WEBHOOK_URL
    if WEBHOOK in channels and url and webhook_wanted(kind):
        try:
            status = deliver_webhook(url=url, body=webhook_body(audience=audience, subject=subject, text=text,
                                                                payload=payload, service=service))
        except DeliveryError as exc:
            failures[WEBHOOK] = exc
        else:
            done[WEBHOOK] = {"status": NotificationStatus.SENT.value, "status_code": status}
            _audit_sent(audience=audience, subject=subject, service=service, channel=WEBHOOK,
                        detail={"status_code": status})
    _record_channels(notification_id, done)
    for channel, error in failures.items():
        log.warning("notification %r for %s via %s failed (%s): %s", subject, audience, channel,
                    "transient" if error.transient else "permanent", error.reason)
    return failures


# ------------------------------------------------------------------ the notifications list

def notification_create(*, kind: str, audience: str, subject: str, text: str, payload: dict[str, Any],
                        service: str = "") -> int:
    return int(Notification.objects.create(kind=kind, audience=audience, subject=subject[:SUBJECT_MAX], text=text,
                                           payload=payload, service=(service or "")[:100]).pk)


def _record_recipients(notification_id: int | None, who: Recipients) -> None:
    if notification_id is None:
        return
    row = Notification.objects.filter(pk=notification_id).first()
    if row is None:
        return
    row.recipients = list(who.emails)
    row.save(update_fields=["recipients", "updated_at"])
    row.users.set(who.user_ids)


def _record_channels(notification_id: int | None, done: dict[str, dict[str, Any]]) -> None:
    if notification_id is None or not done:
        return
    with transaction.atomic():
        row = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if row is None:
            return
        row.channels = {**(row.channels or {}), **done}
        row.save(update_fields=["channels", "updated_at"])


def notification_status_record(*, notification_id: int, failures: dict[str, DeliveryError], retrying: list[str],
                               attempts: int) -> str:
    """After one attempt: each failed channel is ``retrying`` or ``failed``; the row's status is
    the worst of its channels (failed, then retrying, then sent; ``skipped`` when nobody was told)."""
    with transaction.atomic():
        row = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if row is None:
            return ""
        channels = dict(row.channels or {})
        for channel, error in failures.items():
            state = NotificationStatus.RETRYING if channel in retrying else NotificationStatus.FAILED
            channels[channel] = {"status": state.value, "error": error.reason[:1000], "attempts": attempts}
        states = {str(c.get("status")) for c in channels.values()}
        if NotificationStatus.FAILED in states:
            status = NotificationStatus.FAILED
        elif NotificationStatus.RETRYING in states:
            status = NotificationStatus.RETRYING
        elif NotificationStatus.SENT in states:
            status = NotificationStatus.SENT
        else:
            status = NotificationStatus.SKIPPED
        errors = [f"{c}: {v['error']}" for c, v in sorted(channels.items()) if v.get("error")
                  and v.get("status") != NotificationStatus.SENT]
        row.channels, row.status, row.attempts, row.error = channels, status, attempts, "\n".join(errors)
        row.save(update_fields=["channels", "status", "attempts", "error", "updated_at"])
        return str(status)


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


# ------------------------------------------------------------------ reads

def notifications_visible(*, user_id: int, see_all: bool, status: str = "", kind: str = "") -> Any:
    """Newest first: every notification for an admin, else those that reached ``user_id``."""
    rows = Notification.objects.all() if see_all else Notification.objects.filter(users__id=user_id)
    if status:
        rows = rows.filter(status=status)
    if kind:
        rows = rows.filter(kind=kind)
    return rows.order_by("-created_at", "-id")
