"""Not-found and not-allowed pages keep the app's layout and say what to do next (issue 16)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.test import Client


def test_404_is_app_styled_and_says_what_was_not_found(client: Client, admin_user: Any) -> None:
    client.force_login(admin_user)
    response = client.get("/no-such-page/")
    body = response.content.decode()
    assert response.status_code == 404
    assert '<link rel="stylesheet" href="/static/css/ftops.css">' in body and 'id="main-nav"' in body
    assert "<h1>Not found</h1>" in body and "Resolver404" not in body
    assert '<a href="/">Back to the dashboard</a>' in body
    missing = client.get("/evaluation/runs/99999/").content.decode()
    assert "<h1>Not found</h1>" in missing and "run 99999 does not exist</p>" in missing


def test_403_is_app_styled_and_names_the_roles(client: Client, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("nobody", "n@example.com", "pw-nobody-1")
    user.groups.add(Group.objects.create(name="ingest"))
    client.force_login(user)
    response = client.get("/evaluation/")
    body = response.content.decode()
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in body and 'id="main-nav"' in body
    assert "You may not open this page: evaluation pages need the ml_orchestrator, approver or reviewer role." in body
