"""Failed API authentication is throttled (429 + Retry-After) and audited in aggregate."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient

from ftops.common.models import AuditAction, AuditEvent
from ftops.common.services import api_key_create, api_key_revoke

URL = "/api/v1/keys"


def _failed_rows() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.AUTH_FAILED).order_by("id"))


def _by_reason() -> dict[str, int]:
    return {row.detail["reason"]: row.detail["count"] for row in _failed_rows()}


@pytest.mark.django_db
def test_forty_requests_without_a_key_get_429s_and_two_audit_rows() -> None:
    client = APIClient()
    statuses = [client.get(URL).status_code for _ in range(40)]
    # The default limit is 20 failures per address in a 5-minute window.
    assert Counter(statuses) == {401: 20, 429: 20}
    assert statuses[:20] == [401] * 20
    throttled = client.get(URL)
    assert throttled.status_code == 429
    assert 1 <= int(throttled["Retry-After"]) <= 300
    assert throttled.json()["error"]["code"] == "throttled"
    rows = _failed_rows()
    assert len(rows) == 2  # one per (address, prefix, reason) and window, not one per request
    assert _by_reason() == {"missing": 20, "throttled": 21}
    assert {(r.actor, r.ip, r.detail["prefix"], r.detail["path"]) for r in rows} == {
        ("anonymous", "127.0.0.1", "", URL)}


@pytest.mark.django_db
@override_settings(FTOPS_AUTH_FAILURE_LIMIT=10)
def test_unknown_and_revoked_keys_are_counted_per_address_and_named() -> None:
    issued = api_key_create(name="old", roles=["admin"])
    api_key_revoke(api_key=issued.api_key)
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    unknown = APIClient()
    unknown.credentials(HTTP_AUTHORIZATION="Bearer ftk_0badc0de_not-a-real-secret")
    statuses = [revoked.get(URL).status_code for _ in range(6)] + [unknown.get(URL).status_code for _ in range(6)]
    assert statuses == [401] * 10 + [429] * 2
    rows = {(r.detail["prefix"], r.detail["reason"]): r for r in _failed_rows()}
    assert {k: r.detail["count"] for k, r in rows.items()} == {
        (issued.api_key.prefix, "revoked"): 6, ("0badc0de", "unknown"): 4, ("0badc0de", "throttled"): 2}
    assert rows[(issued.api_key.prefix, "revoked")].api_key_id == issued.api_key.pk
    assert rows[("0badc0de", "unknown")].object_id == "0badc0de"


@pytest.mark.django_db
@override_settings(FTOPS_AUTH_FAILURE_LIMIT=5)
def test_one_key_prefix_tried_from_many_addresses_is_throttled_too() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer ftk_cafe1234_guess")
    statuses = [client.get(URL, REMOTE_ADDR=f"10.0.0.{i}").status_code for i in range(1, 9)]
    assert statuses == [401] * 5 + [429] * 3
    # Another prefix from a fresh address is not affected.
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION="Bearer ftk_beef5678_guess")
    assert other.get(URL, REMOTE_ADDR="10.0.1.1").status_code == 401


@pytest.mark.django_db
@override_settings(FTOPS_AUTH_FAILURE_LIMIT=3)
def test_a_valid_key_from_a_throttled_address_still_works() -> None:
    anonymous = APIClient()
    assert [anonymous.get(URL).status_code for _ in range(5)] == [401, 401, 401, 429, 429]
    good = APIClient()
    good.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='ok', roles=['admin']).secret}")
    assert good.get(URL).status_code == 200


@pytest.mark.django_db
@override_settings(FTOPS_AUTH_FAILURE_LIMIT=3, FTOPS_AUTH_FAILURE_WINDOW_S=60)
def test_a_new_window_starts_a_new_row(monkeypatch: Any) -> None:
    import ftops.common.auth as auth

    now = [1_800_000_000.0]  # a window boundary (divisible by 60)
    monkeypatch.setattr(auth.time, "time", lambda: now[0])
    client = APIClient()
    assert [client.get(URL).status_code for _ in range(4)] == [401, 401, 401, 429]
    assert client.get(URL)["Retry-After"] == "60"
    now[0] += 61
    assert client.get(URL).status_code == 401
    counts = sorted((r.detail["window_start"], r.detail["reason"], r.detail["count"]) for r in _failed_rows())
    assert counts == [("2027-01-15T08:00:00+00:00", "missing", 3), ("2027-01-15T08:00:00+00:00", "throttled", 2),
                      ("2027-01-15T08:01:00+00:00", "missing", 1)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_counters_in_redis_bound_the_audit_rows(redis_url: str) -> None:
    caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    with override_settings(CACHES=caches):
        cache.clear()
        try:
            client = APIClient()
            statuses = [client.get(URL).status_code for _ in range(40)]
            assert Counter(statuses) == {401: 20, 429: 20}
            assert _by_reason() == {"missing": 20, "throttled": 20}
            assert len(_failed_rows()) == 2
        finally:
            cache.clear()
