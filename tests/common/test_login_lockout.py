"""Wrong-password logins lock the account out for a while (django-axes) and are audited; CSRF
refusals are audited and answer the usual 403."""

from __future__ import annotations

from typing import Any

from axes.models import AccessAttempt
from axes.utils import reset
from django.test import Client
from rest_framework.test import APIClient

from ftops.common.models import AuditAction, AuditEvent

PASSWORD = "ftops-admin-pw"  # tests/conftest.py's admin_user


def _login(client: Client, password: str, username: str = "admin", **extra: Any) -> Any:
    return client.post("/login/", {"username": username, "password": password}, **extra)


def test_thirty_wrong_passwords_lock_the_account_out_and_are_audited(admin_user: Any) -> None:
    client = Client()
    statuses = [_login(client, f"wrong-{i}").status_code for i in range(30)]
    # The form answers 200 with an error; from the 10th failure (AXES_FAILURE_LIMIT) on, 429.
    assert statuses == [200] * 9 + [429] * 21
    locked = _login(client, PASSWORD)
    assert locked.status_code == 429 and b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in client.session
    failed = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
    lockout = AuditEvent.objects.get(action=AuditAction.LOGIN_LOCKED_OUT)
    assert (failed.object_id, failed.ip, failed.detail["username"]) == ("admin", "127.0.0.1", "admin")
    assert failed.detail["count"] == 31  # the right password while locked out fails too
    assert lockout.detail["count"] == 22 and lockout.detail["cooloff_s"] == 15 * 60
    assert "password" not in str(failed.detail) and "wrong-" not in str(failed.detail)
    # Another address is not locked out of the same account.
    assert _login(Client(), PASSWORD, REMOTE_ADDR="10.1.2.3").status_code == 302
    # An administrator's reset lets the user in again at once.
    assert reset(username="admin") >= 1
    assert _login(client, PASSWORD).status_code == 302
    assert client.session["_auth_user_id"] == str(admin_user.pk)


def test_a_success_resets_the_failure_count(admin_user: Any) -> None:
    client = Client()
    assert [_login(client, "nope").status_code for _ in range(9)] == [200] * 9
    assert _login(client, PASSWORD).status_code == 302
    assert AccessAttempt.objects.count() == 0
    client.logout()
    assert [_login(client, "nope").status_code for _ in range(9)] == [200] * 9


def test_unknown_user_names_are_locked_out_too(db: Any) -> None:
    client = Client()
    statuses = [_login(client, "x", username="ghost").status_code for _ in range(12)]
    assert statuses == [200] * 9 + [429] * 3
    assert AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED).detail["count"] == 12


def test_a_csrf_failure_on_a_page_is_audited_and_answers_403(admin_user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    for _ in range(3):
        response = _login(client, PASSWORD)
        assert response.status_code == 403
        assert b"did not come from this site" in response.content
    # One row per reason (the first POST had no cookie yet; the 403 page then set one).
    rows = AuditEvent.objects.filter(action=AuditAction.CSRF_FAILED)
    assert {r.detail["reason"]: r.detail["count"] for r in rows} == {"CSRF cookie not set.": 1,
                                                                     "CSRF token missing.": 2}
    assert {(r.object_id, r.ip, r.detail["method"]) for r in rows} == {("/login/", "127.0.0.1", "POST")}


def test_a_csrf_failure_on_the_api_with_a_session_is_audited(admin_user: Any) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post("/api/v1/keys", {"name": "k", "roles": ["ingest"]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("CSRF Failed")
    row = AuditEvent.objects.get(action=AuditAction.CSRF_FAILED)
    assert (row.object_id, row.detail["count"]) == ("/api/v1/keys", 1)


def test_csrf_failure_view_answers_the_envelope_under_api(rf: Any, db: Any) -> None:
    from ftops.common.views import csrf_failure

    response = csrf_failure(rf.post("/api/v1/anything"), reason="CSRF token missing.")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert AuditEvent.objects.filter(action=AuditAction.CSRF_FAILED).count() == 1


def test_the_login_form_as_a_browser_uses_it_still_works(admin_user: Any) -> None:
    """What the browser tests and the demo do: GET the form, POST it with its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    form = client.get("/login/?next=/review/")
    assert form.status_code == 200
    token = form.cookies["csrftoken"].value
    response = client.post("/login/?next=/review/", {"username": "admin", "password": PASSWORD, "next": "/review/",
                                                     "csrfmiddlewaretoken": token})
    assert (response.status_code, response["Location"]) == (302, "/review/")
    assert client.get("/").status_code == 200
    assert not AuditEvent.objects.filter(action__in=[AuditAction.LOGIN_FAILED, AuditAction.CSRF_FAILED]).exists()
