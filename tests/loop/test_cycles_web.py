"""Cycles from the outside: the pages (list, start button, timeline partial), the API and ``manage.py cycle``."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from ftops.catalog.models import Service
from ftops.loop.cycles import cycle_start
from ftops.loop.models import Cycle, CycleStage
from tests.loop.test_cycles import ME, fake_ml_stages  # noqa: F401  (fixture)


def test_cycles_page_shows_the_schedule_and_a_start_button(client: Client, admin_user: Any,
                                                           payments: Service) -> None:
    client.force_login(admin_user)
    page = client.get("/loop/cycles/").content.decode()
    assert "<h1>Improvement cycles</h1>" in page and "No cycle has run yet." in page
    assert "every Sunday at 02:00" in page and "next Sun" in page
    assert 'action="/loop/cycles/start"' in page and "csrfmiddlewaretoken" in page
    assert '<option value="payments">payments</option>' in page


def test_start_button_starts_a_cycle_and_the_timeline_shows_it(client: Client, admin_user: Any,
                                                                payments: Service) -> None:
    client.force_login(admin_user)
    response = client.post("/loop/cycles/start", {"service": "payments"})
    cycle = Cycle.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/loop/cycles/{cycle.pk}/"
    assert (cycle.scope, cycle.origin, cycle.started_by) == ("payments", "manual", admin_user.username)
    # Embedded default: the request does not run the stages; the scheduler thread's sender does.
    assert CycleStage.objects.get(cycle=cycle).enqueued_at is None
    page = client.get(f"/loop/cycles/{cycle.pk}/").content.decode()
    assert "Collect production examples" in page and "Canary" in page and 'hx-trigger="every 5s"' in page
    partial = client.get(f"/loop/cycles/{cycle.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert partial.strip().startswith('<div id="timeline"') and "<html" not in partial
    again = client.post("/loop/cycles/start", {"service": "payments"}, follow=True).content.decode()
    assert "is still in flight" in again


def test_start_needs_a_post_with_csrf_and_an_orchestrator(client: Client, django_user_model: Any,
                                                          admin_user: Any, payments: Service) -> None:
    reviewer = django_user_model.objects.create_user("rita", "r@example.com", "pw-rita-12345")
    from django.contrib.auth.models import Group

    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    client.force_login(reviewer)
    assert client.get("/loop/cycles/").status_code == 200
    assert client.post("/loop/cycles/start", {}).status_code == 403
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(admin_user)
    assert csrf.post("/loop/cycles/start", {}).status_code == 403
    assert not Cycle.objects.exists()


def test_api_lists_starts_and_shows_cycles(client: Client, admin_user: Any, payments: Service) -> None:
    client.force_login(admin_user)
    assert client.get("/api/v1/loop/cycles").json()["results"] == []
    created = client.post("/api/v1/loop/cycles", {"service": "payments", "reason": "api"},
                          content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["scope"], body["origin"], body["reason"], body["status"]) == ("payments", "manual", "api", "running")
    assert [s["name"] for s in body["stages"]] == ["collect"]
    assert client.get(f"/api/v1/loop/cycles/{body['id']}").json()["id"] == body["id"]
    listed = client.get("/api/v1/loop/cycles").json()
    assert [c["id"] for c in listed["results"]] == [body["id"]] and listed["count"] == 1
    conflict = client.post("/api/v1/loop/cycles", {"service": "payments"}, content_type="application/json")
    assert conflict.status_code == 409 and "still in flight" in conflict.content.decode()
    bad = client.post("/api/v1/loop/cycles", {"service": "nope"}, content_type="application/json")
    assert bad.status_code == 422 and "unknown service" in bad.content.decode()
    assert client.get("/api/v1/loop/cycles/99999").status_code == 404


def test_api_is_in_the_openapi_schema(client: Client, admin_user: Any, db: Any) -> None:
    client.force_login(admin_user)
    schema = client.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    text = schema.content.decode()
    assert schema.status_code == 200
    assert "/api/v1/loop/cycles" in text and "loop_cycles_start" in text and "loop_cycles_detail" in text


@pytest.mark.django_db(transaction=True)
def test_cli_starts_a_cycle_and_runs_it_here(payments: Service, fake_ml_stages: Any) -> None:  # noqa: F811
    out = StringIO()
    call_command("cycle", "start", "--service", "payments", stdout=out)
    cycle = Cycle.objects.get()
    # No examples: curate fails, and the command says so.
    assert f"cycle {cycle.pk} (payments): failed, 2/10 stages done" in out.getvalue()
    assert "error: curate: no active examples" in out.getvalue()
    with pytest.raises(CommandError, match="unknown service 'nope'"):
        call_command("cycle", "start", "--service", "nope", stdout=StringIO())
    listing = StringIO()
    call_command("cycle", "list", stdout=listing)
    assert listing.getvalue().startswith(f"{cycle.pk}\tpayments\tmanual\tfailed\t2/10")


def test_cli_refuses_a_second_cycle_for_a_scope(payments: Service) -> None:
    cycle_start(actor=ME, scope="payments", send=False)
    with pytest.raises(CommandError, match="still in flight"):
        call_command("cycle", "start", "--service", "payments", stdout=StringIO())
