"""The notifications pages answer in a fixed number of queries whatever the rows, and a user who is
not an admin sees only what reached them, with hostile filters refused rather than a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from ftops.common.models import Notification, NotificationKind, NotificationStatus
from tests.common.pages import get_within
from tests.common.test_notifications import user

pytestmark = pytest.mark.django_db


def _notifications(n: int, *, told: Any) -> None:
    for i in range(n):
        row = Notification.objects.create(kind=NotificationKind.GATE_FAILED, audience="admins", subject=f"n{i}",
                                          recipients=[f"a{i}@example.com", "ann@example.com"],
                                          status=NotificationStatus.FAILED, error="smtp: refused", attempts=3)
        row.users.set(told)


@pytest.mark.parametrize("size", [2, 30])
def test_the_notifications_pages_take_the_same_queries_whatever_the_rows(
        size: int, django_assert_max_num_queries: Any) -> None:
    ada = user("ada", groups=("admin",))
    ann = user("ann", groups=("approver",))
    _notifications(size, told=[ada, ann])
    for who in (ada, ann):
        client = Client()
        client.force_login(who)
        html = get_within(client, django_assert_max_num_queries, "/notifications/", 6)
        assert html.count("<td>Release gates failed</td>") == size
        get_within(client, django_assert_max_num_queries, "/notifications/", 6, kind="gate_failed", status="failed")
        get_within(client, django_assert_max_num_queries, "/notifications/preferences/", 6)


def test_a_user_sees_only_what_reached_them_and_never_the_addresses() -> None:
    ada = user("ada", groups=("admin",))
    ann = user("ann", groups=("approver",))
    bob = user("bob", groups=("reviewer",))
    _notifications(1, told=[ann])
    Notification.objects.create(kind=NotificationKind.OTHER, audience="admins", subject="for admins only",
                                recipients=["ada@example.com"]).users.set([ada])
    client = Client()
    client.force_login(ann)
    html = client.get("/notifications/").content.decode()
    assert "n0" in html and "for admins only" not in html and "a0@example.com" not in html
    client.force_login(bob)
    html = client.get("/notifications/").content.decode()
    assert "n0" not in html and "No notifications yet." in html
    client.force_login(ada)
    html = client.get("/notifications/").content.decode()
    assert "for admins only" in html and "a0@example.com" in html


@pytest.mark.parametrize("query", [{"page": "-1"}, {"page": "x"}, {"page": "99999999999999999999"},
                                   {"kind": "<script>"}, {"status": "\u0661"}])
def test_hostile_filters_are_a_page_or_a_400_never_a_500(query: dict[str, str]) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(user("ada", groups=("admin",)))
    response = client.get("/notifications/", query)
    assert response.status_code in (200, 400), response.status_code
    if response.status_code == 400:  # the message repeats the input: plain text a browser will not sniff
        assert response["Content-Type"].startswith("text/plain")
        assert response["X-Content-Type-Options"] == "nosniff"
