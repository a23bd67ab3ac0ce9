"""The triggers page, its htmx partial (loaded by the datasets page), and the API route."""

from __future__ import annotations

from typing import Any

from django.test import Client

from ftops.catalog.models import Service
from ftops.loop.models import TriggerEvent, TriggerKind


def fired(service: Service | None = None, reason: str = "3 new high-quality examples for payments") -> TriggerEvent:
    return TriggerEvent.objects.create(kind=TriggerKind.HIGH_QUALITY_EXAMPLES, service=service,
                                       fingerprint="service:payments", reason=reason, details={"count": 3})


def test_triggers_page_and_partial(client: Client, admin_user: Any, payments: Service) -> None:
    client.force_login(admin_user)
    assert "No trigger has fired yet." in client.get("/loop/triggers/").content.decode()
    fired(payments)
    page = client.get("/loop/triggers/").content.decode()
    assert "<h1>Retraining triggers</h1>" in page and "3 new high-quality examples for payments" in page
    partial = client.get("/loop/triggers/", HTTP_HX_REQUEST="true").content.decode()
    assert partial.strip().startswith('<div id="triggers-table">') and "<html" not in partial
    assert "New high-quality examples" in partial and "payments" in partial


def test_datasets_page_loads_the_triggers_by_url_name(client: Client, admin_user: Any, db: Any) -> None:
    client.force_login(admin_user)
    body = client.get("/datasets/").content.decode()
    assert 'hx-get="/loop/triggers/" hx-trigger="load"' in body


def test_triggers_page_needs_a_curation_role(client: Client, django_user_model: Any, db: Any) -> None:
    user = django_user_model.objects.create_user("nobody", "n@example.com", "pw-nobody-123")
    client.force_login(user)
    assert client.get("/loop/triggers/").status_code == 403


def test_triggers_api_keeps_its_path(make_key: Any, payments: Service) -> None:
    event = fired(payments)
    client, _ = make_key("reviewer")
    rows = client.get("/api/v1/curation/triggers").json()
    assert rows == [{"id": event.pk, "kind": "high_quality_examples", "service": "payments",
                     "fingerprint": "service:payments", "reason": event.reason, "details": {"count": 3},
                     "created_at": rows[0]["created_at"]}]
    ingest, _ = make_key("ingest")
    assert ingest.get("/api/v1/curation/triggers").status_code == 403
