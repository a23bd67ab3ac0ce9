"""Notifications against a real SMTP server (aiosmtpd) and a real HTTP receiver (http.server),
both listening on 127.0.0.1 for the duration of a test."""

from __future__ import annotations

import json
import runpy
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from celery.exceptions import Retry
from django.contrib.auth.models import Group, User
from django.db import transaction

from ftops.common.env import SettingsError
from ftops.common.models import AuditAction, AuditEvent
from ftops.common.notifications import notify, recipients
from ftops.common.tasks import notify_send

pytestmark = pytest.mark.django_db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def by_recipient(self) -> dict[str, Message]:
        return {rcpts[0]: msg for rcpts, msg in self.messages}


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order; 200 once used up


@pytest.fixture
def mailbox(settings: Any) -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", box.port, 5
    settings.DEFAULT_FROM_EMAIL = "ftops@example.com"
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.bodies.append(json.loads(raw))
            state.headers.append(dict(self.headers.items()))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/ftops"
    settings.FTOPS_NOTIFY_WEBHOOK_URL = state.url
    settings.FTOPS_OUTBOUND_ALLOW = ["127.0.0.1"]  # a loopback receiver must be allowed explicitly
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def user(name: str, *, groups: tuple[str, ...] = (), **flags: Any) -> User:
    u = User.objects.create_user(name, email=f"{name}@example.com", password="x", **flags)
    for g in groups:
        u.groups.add(Group.objects.get_or_create(name=g)[0])
    return u


def audit(action: AuditAction) -> list[dict[str, Any]]:
    return [e.detail for e in AuditEvent.objects.filter(action=action).order_by("pk")]


def approval_request(captured: Any) -> None:
    with captured(execute=True):
        notify(audience="approvers", subject="ftops-tiny-base-v1.2.0 awaits approval",
               text="7/7 gate checks passed against production.",
               payload={"model_version": "ftops-tiny-base-v1.2.0", "model_version_id": 12, "passed": True,
                        "failing_services": []})


def test_approvers_get_an_email_each_and_the_webhook_one_slack_body(
        mailbox: Mailbox, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    user("ann", groups=("approver",))
    user("ada", groups=("admin",))
    user("sam", is_staff=True)
    user("rita", groups=("reviewer",))
    user("gone", groups=("approver",), is_active=False)
    settings.FTOPS_NOTIFY_APPROVERS = ["release-desk@example.com", "ANN@example.com"]

    approval_request(django_capture_on_commit_callbacks)

    mails = mailbox.by_recipient()
    assert sorted(mails) == ["ada@example.com", "ann@example.com", "release-desk@example.com", "sam@example.com"]
    message = mails["ann@example.com"]
    assert message["Subject"] == "ftops-tiny-base-v1.2.0 awaits approval"
    assert message["From"] == "ftops@example.com"
    assert message["To"] == "ann@example.com"  # each recipient sees only their own address
    body_bytes = message.get_payload(decode=True)
    assert isinstance(body_bytes, bytes)
    assert body_bytes.decode().strip() == "7/7 gate checks passed against production."

    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert body["text"] == "ftops-tiny-base-v1.2.0 awaits approval\n7/7 gate checks passed against production."
    assert body["blocks"][0] == {"type": "header", "text": {"type": "plain_text",
                                                            "text": "ftops-tiny-base-v1.2.0 awaits approval"}}
    assert body["blocks"][2]["fields"] == [
        {"type": "mrkdwn", "text": "*model_version*\nftops-tiny-base-v1.2.0"},
        {"type": "mrkdwn", "text": "*model_version_id*\n12"},
        {"type": "mrkdwn", "text": "*passed*\nTrue"},
    ]
    assert body["ftops"] == {"audience": "approvers", "service": None,
                             "subject": "ftops-tiny-base-v1.2.0 awaits approval",
                             "text": "7/7 gate checks passed against production.",
                             "payload": {"model_version": "ftops-tiny-base-v1.2.0", "model_version_id": 12,
                                         "passed": True, "failing_services": []}}
    assert [(d["channel"], d.get("recipients"), d.get("status_code")) for d in audit(AuditAction.NOTIFICATION_SENT)] \
        == [("email", 4, None), ("webhook", None, 200)]
    assert audit(AuditAction.NOTIFICATION_FAILED) == []


def test_nothing_is_sent_before_commit_nor_after_a_rollback(
        mailbox: Mailbox, receiver: Receiver, django_capture_on_commit_callbacks: Any) -> None:
    user("ann", groups=("approver",))
    with (django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError),
          transaction.atomic()):
        notify(audience="approvers", subject="never", text="rolled back", payload={})
        assert mailbox.messages == [] and receiver.bodies == []  # still inside the transaction
        raise RuntimeError("the approval failed")
    assert callbacks == []
    assert mailbox.messages == [] and receiver.bodies == []
    assert AuditEvent.objects.filter(action__startswith="notification.").count() == 0


def test_admins_and_service_owners(mailbox: Mailbox, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    user("ann", groups=("approver",))
    user("ada", groups=("admin",))
    user("root", is_superuser=True)
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    settings.FTOPS_NOTIFY_ADMINS = ["oncall@example.com"]
    settings.FTOPS_NOTIFY_SERVICE_OWNERS = {"payments": ["pay-team@example.com"]}
    with django_capture_on_commit_callbacks(execute=True):
        notify(audience="admins", subject="Gate override", text="approved despite a failed gate", payload={})
        notify(audience="service_owners", subject="payments keeps its current model", text="why",
               payload={"service": "payments"})
        notify(audience="service_owners", service="orders", subject="orders keeps its current model", text="why",
               payload={})
    sent = sorted((rcpts[0], msg["Subject"]) for rcpts, msg in mailbox.messages)
    assert sent == [
        ("ada@example.com", "Gate override"),
        ("ada@example.com", "orders keeps its current model"),  # nobody owns orders: the admins hear it
        ("oncall@example.com", "Gate override"),
        ("oncall@example.com", "orders keeps its current model"),
        ("pay-team@example.com", "payments keeps its current model"),
        ("root@example.com", "Gate override"),
        ("root@example.com", "orders keeps its current model"),
    ]
    fallback = [d["fallback_to_admins"] for d in audit(AuditAction.NOTIFICATION_SENT)]
    assert fallback == [False, False, True]
    assert recipients(audience="approvers").emails == ("ada@example.com", "ann@example.com", "root@example.com")


def test_outages_never_reach_the_caller_and_are_audited(
        receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    user("ann", groups=("approver",))
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2  # nobody listens
    receiver.statuses = [503]

    approval_request(django_capture_on_commit_callbacks)  # no exception

    failed = {d["channel"]: d for d in audit(AuditAction.NOTIFICATION_FAILED)}
    assert sorted(failed) == ["email", "webhook"]
    assert failed["email"]["reason"].startswith("ConnectionRefusedError")
    assert failed["webhook"]["reason"] == "the webhook answered HTTP 503"
    assert failed["webhook"]["subject"] == "ftops-tiny-base-v1.2.0 awaits approval"
    assert len(receiver.bodies) == 1
    assert audit(AuditAction.NOTIFICATION_SENT) == []


def test_a_private_webhook_outside_the_allow_list_is_refused_and_the_email_still_goes(
        mailbox: Mailbox, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    user("ann", groups=("approver",))
    settings.FTOPS_OUTBOUND_ALLOW = []

    approval_request(django_capture_on_commit_callbacks)

    assert receiver.bodies == []
    assert [rcpts for rcpts, _ in mailbox.messages] == [["ann@example.com"]]
    refused = audit(AuditAction.OUTBOUND_REFUSED)
    assert len(refused) == 1 and refused[0]["purpose"] == "notification webhook"
    [failed] = audit(AuditAction.NOTIFICATION_FAILED)
    assert failed["channel"] == "webhook" and failed["attempts"] == 1
    assert failed["reason"].startswith("the webhook URL is refused by the outbound policy")


def test_a_worker_retries_only_the_channel_that_failed_transiently(mailbox: Mailbox, receiver: Receiver) -> None:
    user("ann", groups=("approver",))
    receiver.statuses = [502]
    kwargs: dict[str, Any] = {"audience": "approvers", "subject": "s", "text": "t", "payload": {}, "service": None,
              "channels": ["email", "webhook"]}
    notify_send.push_request(retries=0, is_eager=False, called_directly=False)
    try:
        with pytest.raises(Retry) as caught:
            notify_send.run(**kwargs)
    finally:
        notify_send.pop_request()
    assert caught.value.sig is not None and caught.value.sig.kwargs["channels"] == ["webhook"]
    assert caught.value.when == 30
    # Without a broker the retry message ran in-process at once: the webhook was called again
    # (and answered 200), the email went out once only, and nothing was given up.
    assert len(mailbox.messages) == 1 and len(receiver.bodies) == 2
    assert [d["channel"] for d in audit(AuditAction.NOTIFICATION_SENT)] == ["email", "webhook"]
    assert audit(AuditAction.NOTIFICATION_FAILED) == []


def test_the_last_retry_gives_up_and_audits(receiver: Receiver, settings: Any) -> None:
    settings.FTOPS_NOTIFY_MAX_RETRIES = 2
    receiver.statuses = [500]
    notify_send.push_request(retries=2, is_eager=False, called_directly=False)
    try:
        result = notify_send.run(audience="admins", subject="s", text="t", payload={}, service=None,
                                 channels=["webhook"])
    finally:
        notify_send.pop_request()
    assert result["failed"] == ["webhook"]
    [failed] = audit(AuditAction.NOTIFICATION_FAILED)
    assert failed["attempts"] == 3 and failed["reason"] == "the webhook answered HTTP 500"


def test_a_client_error_from_the_webhook_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [400]
    notify_send.push_request(retries=0, is_eager=False, called_directly=False)
    try:
        result = notify_send.run(audience="admins", subject="s", text="t", payload={}, service=None,
                                 channels=["webhook"])
    finally:
        notify_send.pop_request()
    assert result["failed"] == ["webhook"]
    assert [d["reason"] for d in audit(AuditAction.NOTIFICATION_FAILED)] == ["the webhook answered HTTP 400"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"audience": "everyone"}, "unknown audience 'everyone'"),
    ({"audience": "service_owners"}, "audience 'service_owners' needs service=<service name>"),
    ({"audience": "admins", "subject": " \n "}, "a notification needs a subject"),
    ({"audience": "admins", "payload": {"when": object()}}, "the payload must be JSON-serialisable"),
])
def test_a_wrong_call_is_the_callers_bug(kwargs: dict[str, Any], message: str,
                                         django_capture_on_commit_callbacks: Any) -> None:
    call = {"subject": "s", "text": "t", "payload": {}, **kwargs}
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValueError) as caught:
        notify(**call)
    assert str(caught.value).startswith(message)
    assert callbacks == []


def test_a_subject_cannot_inject_mail_headers(mailbox: Mailbox, settings: Any,
                                              django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    settings.FTOPS_NOTIFY_ADMINS = ["oncall@example.com"]
    with django_capture_on_commit_callbacks(execute=True):
        notify(audience="admins", subject="hello\r\nBcc: eve@example.com", text="t", payload={})
    [(rcpts, message)] = mailbox.messages
    assert rcpts == ["oncall@example.com"] and message["Subject"] == "hello Bcc: eve@example.com"
    assert message["Bcc"] is None


SETTINGS_FILE = Path(__file__).resolve().parents[2] / "ftops" / "settings.py"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("FTOPS_NOTIFY_APPROVERS", "a@example.com,not-an-address", "FTOPS_NOTIFY_APPROVERS entry 'not-an-address'"),
    ("FTOPS_NOTIFY_ADMINS", "root@", "FTOPS_NOTIFY_ADMINS entry 'root@' is not an email address"),
    ("FTOPS_NOTIFY_SERVICE_OWNERS", "payments", "FTOPS_NOTIFY_SERVICE_OWNERS entry 'payments' is not service=address"),
    ("FTOPS_NOTIFY_WEBHOOK_URL", "ftp://hooks.example.com/x", "FTOPS_NOTIFY_WEBHOOK_URL has the unsupported scheme"),
    ("EMAIL_PORT", "0", "EMAIL_PORT=0 must be at least 1"),
    ("MLFLOW_TRACKING_URI", "mlflow.internal:5000", "MLFLOW_TRACKING_URI is not a URL (no scheme://)"),
])
def test_notification_settings_are_checked_at_start_up(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                       message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        runpy.run_path(str(SETTINGS_FILE))
    assert str(caught.value).startswith(message)


def test_email_backend_follows_email_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMAIL_HOST", raising=False)
    monkeypatch.delenv("EMAIL_BACKEND", raising=False)
    assert runpy.run_path(str(SETTINGS_FILE))["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    monkeypatch.setenv("EMAIL_HOST", "smtp.example.com")
    monkeypatch.setenv("FTOPS_NOTIFY_SERVICE_OWNERS", "payments=a@example.com,payments=b@example.com")
    loaded = runpy.run_path(str(SETTINGS_FILE))
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert loaded["FTOPS_NOTIFY_SERVICE_OWNERS"] == {"payments": ["a@example.com", "b@example.com"]}
