"""Per-user notification preferences, the team webhook switch and the notifications list, against
the real SMTP server and HTTP receiver of test_notifications."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from ftops.common.models import (
    AuditAction,
    AuditEvent,
    Notification,
    NotificationKind,
    NotificationPreference,
    NotificationStatus,
)
from ftops.common.notifications import DeliveryError, kind_infer, notification_status_record, notify, recipients
from tests.common.test_notifications import Mailbox, Receiver, free_port, user

pytestmark = pytest.mark.django_db
K = NotificationKind


def approval_request(captured: Any) -> None:
    """What registry.services sends when a version's gates passed (its payload's shape)."""
    with captured(execute=True):
        notify(audience="approvers", subject="ftops-tiny-base-v1.2.0 awaits approval",
               text="7/7 gate checks passed against production.",
               payload={"model_version": "ftops-tiny-base-v1.2.0", "model_version_id": 12, "status": "gates_passed",
                        "decision": "release"})


def table(client: Client, url: str) -> str:
    """The notifications table of a page ('' when it shows none)."""
    html = client.get(url).content.decode()
    return html.split('<table id="notifications">', 1)[1] if '<table id="notifications">' in html else ""


def logged_in(u: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(u)
    return client


def save_preferences(client: Client, checked: dict[str, bool], webhook: dict[str, bool] | None = None) -> Any:
    page = client.get("/notifications/preferences/")
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token is not None
    data = {"csrfmiddlewaretoken": token.group(1)}
    data.update({f"email_{kind}": "on" for kind, on in checked.items() if on})
    data.update({f"webhook_{kind}": "on" for kind, on in (webhook or {}).items() if on})
    return client.post("/notifications/preferences/", data)


def all_on(**off: bool) -> dict[str, bool]:
    """Every kind at its default, with the named ones set."""
    chosen = {kind: kind != K.DAILY_DIGEST for kind in K.values}
    chosen.update(off)
    return chosen


def test_an_opted_out_user_gets_no_email_and_the_list_shows_who_did(
        mailbox: Mailbox, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    ann = user("ann", groups=("approver",))
    ada = user("ada", groups=("admin",))
    response = save_preferences(logged_in(ann), all_on(approval_requested=False))
    assert response.status_code == 302 and response["Location"] == "/notifications/preferences/"
    assert list(NotificationPreference.objects.values_list("user__username", "kind", "email")) == [
        ("ann", "approval_requested", False)]
    [audited] = AuditEvent.objects.filter(action=AuditAction.NOTIFICATION_PREFERENCES_UPDATED)
    assert (audited.actor, audited.detail) == ("ann", {"email": {"approval_requested": False}})

    approval_request(django_capture_on_commit_callbacks)  # the registry's payload: kind inferred

    assert [rcpts for rcpts, _ in mailbox.messages] == [["ada@example.com"]]
    assert len(receiver.bodies) == 1  # the team webhook is not a person's choice
    row = Notification.objects.get()
    assert (row.kind, row.audience, row.status, row.recipients, row.attempts) == (
        "approval_requested", "approvers", "sent", ["ada@example.com"], 1)
    assert list(row.users.values_list("username", flat=True)) == ["ada"]
    assert row.channels["email"] == {"status": "sent", "recipients": 1, "declined": 1}
    assert row.channels["webhook"] == {"status": "sent", "status_code": 200}

    # Other kinds still reach ann: she only turned approvals off.
    with django_capture_on_commit_callbacks(execute=True):
        notify(audience="approvers", subject="Gate override: v2", text="t", payload={}, kind=K.GATE_OVERRIDE)
    assert sorted(r[0] for r, _ in mailbox.messages[1:]) == ["ada@example.com", "ann@example.com"]

    # The list: ada (admin) sees every send with its recipients, ann only what reached her.
    page = table(logged_in(ada), "/notifications/")
    assert "ftops-tiny-base-v1.2.0 awaits approval" in page and "Gate override: v2" in page
    assert "ada@example.com" in page
    mine = table(logged_in(ann), "/notifications/")
    assert "Gate override: v2" in mine and "awaits approval" not in mine
    assert ada.pk is not None


def test_the_daily_digest_is_opt_in(mailbox: Mailbox, settings: Any,
                                    django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    user("rita", groups=("reviewer",))
    rob = user("rob", groups=("reviewer",))
    assert recipients(audience="reviewers", kind=K.DAILY_DIGEST).emails == ()
    save_preferences(logged_in(rob), all_on(daily_digest=True))
    assert recipients(audience="reviewers", kind=K.DAILY_DIGEST).emails == ("rob@example.com",)
    assert recipients(audience="reviewers", kind=K.REVIEW_QUEUE_STALE).emails == ("rita@example.com",
                                                                                  "rob@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        notify(audience="reviewers", subject="digest", text="3 waiting", payload={}, kind=K.DAILY_DIGEST)
    assert [r for r, _ in mailbox.messages] == [["rob@example.com"]]


def test_a_configured_address_follows_its_users_choice(mailbox: Mailbox, settings: Any,
                                                       django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    owner = user("pat")
    settings.FTOPS_NOTIFY_SERVICE_OWNERS = {"payments": ["PAT@example.com", "pay-team@example.com"]}
    NotificationPreference.objects.create(user=owner, kind=K.SCHEMA_BREAKING, email=False)
    with django_capture_on_commit_callbacks(execute=True):
        notify(audience="service_owners", service="payments", subject="Breaking change", text="t",
               payload={}, kind=K.SCHEMA_BREAKING)
    assert [r for r, _ in mailbox.messages] == [["pay-team@example.com"]]  # a list address nobody owns still gets it
    row = Notification.objects.get()
    assert (row.recipients, row.service, list(row.users.all())) == (["pay-team@example.com"], "payments", [])


def test_an_admin_switches_the_team_webhook_off_for_a_kind(
        mailbox: Mailbox, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    root = user("root", groups=("admin",))
    response = save_preferences(logged_in(root), all_on(), webhook={k: k != K.CANARY_STEP for k in K.values})
    assert response.status_code == 302
    assert AuditEvent.objects.get(action=AuditAction.NOTIFICATION_TEAM_WEBHOOK_UPDATED).detail == {
        "webhook": {"canary_step": False}}
    with django_capture_on_commit_callbacks(execute=True):
        notify(audience="approvers", subject="Canary v2 in payments: promoted to the next stage", text="t",
               payload={"decision_id": 1, "action": "stage"})
        notify(audience="approvers", subject="Canary v2 in payments: rolled back", text="t",
               payload={"decision_id": 2, "action": "rollback"})
    assert [b["ftops"]["subject"] for b in receiver.bodies] == ["Canary v2 in payments: rolled back"]
    assert len(mailbox.messages) == 2
    assert list(Notification.objects.order_by("pk").values_list("kind", flat=True)) == ["canary_step",
                                                                                       "canary_rollback"]


def test_a_non_admin_cannot_touch_the_team_webhook(receiver: Receiver) -> None:
    rita = user("rita", groups=("reviewer",))
    save_preferences(logged_in(rita), all_on(), webhook={k: False for k in K.values})
    assert not AuditEvent.objects.filter(action=AuditAction.NOTIFICATION_TEAM_WEBHOOK_UPDATED).exists()
    assert "Team webhook" not in logged_in(rita).get("/notifications/preferences/").content.decode()


def test_failures_are_listed_with_their_reason(receiver: Receiver, settings: Any,
                                               django_capture_on_commit_callbacks: Any) -> None:
    ada = user("ada", groups=("admin",))
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2  # nobody listens
    receiver.statuses = [503]
    approval_request(django_capture_on_commit_callbacks)
    row = Notification.objects.get()
    assert row.status == NotificationStatus.FAILED
    assert row.channels["email"]["status"] == "failed" and row.channels["webhook"]["status"] == "failed"
    assert row.error.startswith("email: ConnectionRefusedError")
    assert row.error.endswith("webhook: the webhook answered HTTP 503")
    page = table(logged_in(ada), "/notifications/?status=failed")
    assert "the webhook answered HTTP 503" in page and "Failed" in page
    assert table(logged_in(ada), "/notifications/?status=sent") == ""


def test_a_transient_failure_shows_as_retrying_until_it_is_given_up() -> None:
    row = Notification.objects.create(kind=K.OTHER, audience="admins", subject="s",
                                      channels={"email": {"status": "sent", "recipients": 1}})
    flaky = {"webhook": DeliveryError("the webhook answered HTTP 502", transient=True)}
    assert notification_status_record(notification_id=row.pk, failures=flaky, retrying=["webhook"],
                                      attempts=1) == "retrying"
    assert notification_status_record(notification_id=row.pk, failures=flaky, retrying=[], attempts=6) == "failed"
    row.refresh_from_db()
    assert (row.attempts, row.error) == (6, "webhook: the webhook answered HTTP 502")
    assert notification_status_record(notification_id=row.pk, failures={}, retrying=[], attempts=7) == "failed"


def test_pages_need_a_login_and_a_csrf_token_and_reject_bad_filters() -> None:
    assert Client().get("/notifications/").status_code == 302
    assert Client().get("/notifications/preferences/").status_code == 302
    ann = user("ann", groups=("approver",))
    client = logged_in(ann)
    assert client.post("/notifications/preferences/", {"email_gate_failed": "on"}).status_code == 403
    assert NotificationPreference.objects.count() == 0
    bad = client.get("/notifications/?status=lost")
    assert bad.status_code == 400 and "unknown status 'lost'" in bad.content.decode()
    assert client.get("/notifications/?kind=spam").status_code == 400


def test_the_list_is_paginated_and_in_the_nav() -> None:
    ada = user("ada", groups=("admin",))
    for i in range(55):
        Notification.objects.create(kind=K.OTHER, audience="admins", subject=f"note {i:02d}", status="sent")
    client = logged_in(ada)
    first = client.get("/notifications/").content.decode()
    assert "note 54" in first and "note 04" not in first and 'href="/notifications/"' in first
    assert "page 1 of 2" in first
    assert "note 04" in client.get("/notifications/?page=2").content.decode()


@pytest.mark.parametrize(("payload", "kind"), [
    ({"decision_id": 3, "action": "rollback"}, "canary_rollback"),
    ({"decision_id": 3, "action": "promote"}, "canary_step"),
    ({"model_version": "v", "approver": "al", "justification": "hotfix"}, "gate_override"),
    ({"severity": "critical", "failing_services": ["a", "b"]}, "gate_failed"),
    ({"model_version": "v", "status": "gates_blocked", "decision": "blocked"}, "gate_failed"),
    ({"model_version": "v", "status": "gates_passed", "decision": "release"}, "approval_requested"),
    ({"service": "payments", "gate_report": 4}, "gate_failed"),
    ({"kind": "aggregation_failed"}, "aggregation_failed"),
    ({}, "other"),
])
def test_the_kind_of_an_existing_callers_payload(payload: dict[str, Any], kind: str) -> None:
    assert kind_infer(payload) == kind


def test_an_unknown_kind_is_the_callers_bug(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValueError, match="unknown notification"):
        notify(audience="admins", subject="s", text="t", payload={}, kind="gossip")
    assert callbacks == []
