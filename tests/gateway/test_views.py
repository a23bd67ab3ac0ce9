"""The deployments page and its canary buttons: who may see, who may act, what a refusal shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ftops.catalog.models import Service
from ftops.common.models import AuditAction, AuditEvent
from ftops.gateway.models import CanaryDecision, CanaryTraffic, ShadowComparison, ShadowDeployment
from ftops.gateway.services import arm_outcomes_record
from registry.models import Deployment, DeploymentState
from tests.gateway.conftest import deploy, make_version


def user_client(django_user_model: Any, username: str, *roles: str) -> Client:
    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw-12345678")
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def canary(db: Any) -> Deployment:
    Service.objects.create(name="payments", display_name="Payments")
    prod = deploy(make_version("acme-gpt-v1.0.0"))
    dep = deploy(make_version("acme-gpt-v1.1.0", status="canary"), scope="payments", state=DeploymentState.CANARY)
    Deployment.objects.filter(pk=dep.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    dep.refresh_from_db()
    at = (timezone.now() - timedelta(minutes=1)).timestamp()
    arm_outcomes_record(records=[{"kind": "call", "id": f"p{i}", "model_version_id": prod.model_version_id,
                                  "scope": "enterprise", "arm": "production", "finished_at": at, "latency_ms": 40.0}
                                 for i in range(30)])
    arm_outcomes_record(records=[{"kind": "error" if i < 2 else "call", "id": f"c{i}",
                                  "model_version_id": dep.model_version_id, "scope": "payments", "arm": "canary",
                                  "finished_at": at, "latency_ms": 90.0, "error": "upstream_error"}
                                 for i in range(10)])
    return dep


def test_page_shows_what_is_live_the_split_and_per_arm_numbers(django_user_model: Any, canary: Deployment) -> None:
    client = user_client(django_user_model, "rita", "reviewer")
    page = client.get(reverse("gateway:deployments", args=["payments"]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "acme-gpt-v1.0.0" in html and "acme-gpt-v1.1.0" in html
    assert "production 90% &middot; canary 10%" in html
    assert page.context["canary"].numbers["canary"]["requests"] == 10
    assert page.context["canary"].numbers["canary"]["errors"] == 2
    assert 20.0 in page.context["charts"]["canary"]["error_rate"]  # 2 of 10 failed in that minute
    assert "Roll back now" not in html  # a reviewer reads; only an approver acts
    assert client.get(reverse("gateway:deployments", args=["nope"])).status_code == 404


def test_pages_need_login_and_a_role(client: Client, django_user_model: Any, canary: Deployment) -> None:
    url = reverse("gateway:deployments", args=["payments"])
    assert client.get(url).status_code == 302
    assert user_client(django_user_model, "nobody").get(url).status_code == 403
    act = reverse("gateway:canary-action", args=[canary.pk, "pause"])
    reviewer = user_client(django_user_model, "rita", "reviewer")
    assert reviewer.post(act).status_code == 403
    assert not CanaryDecision.objects.exists()


def test_approver_pauses_and_rolls_back_with_htmx(django_user_model: Any, canary: Deployment) -> None:
    alice = user_client(django_user_model, "alice", "approver")
    pause = alice.post(reverse("gateway:canary-action", args=[canary.pk, "pause"]), {"service": "payments"},
                       HTTP_HX_REQUEST="true")
    assert pause.status_code == 200
    assert "canary 0%" in pause.content.decode()
    assert CanaryTraffic.objects.get(deployment=canary).paused is True
    again = alice.post(reverse("gateway:canary-action", args=[canary.pk, "pause"]), HTTP_HX_REQUEST="true")
    assert again.status_code == 409
    assert "already paused" in again.content.decode()
    no_reason = alice.post(reverse("gateway:canary-action", args=[canary.pk, "rollback"]), {"reason": ""})
    assert no_reason.status_code == 422
    rolled = alice.post(reverse("gateway:canary-action", args=[canary.pk, "rollback"]),
                        {"reason": "support tickets", "service": "payments"}, HTTP_HX_REQUEST="true")
    assert rolled.status_code == 200
    canary.refresh_from_db()
    assert canary.state == DeploymentState.ROLLED_BACK
    assert list(CanaryDecision.objects.order_by("id").values_list("action", "decided_by")) == [
        ("pause", "alice"), ("rollback", "alice")]
    assert alice.post(reverse("gateway:canary-action", args=[canary.pk, "explode"])).status_code == 404


def test_home_dashboard_shows_canaries_in_flight(django_user_model: Any, canary: Deployment) -> None:
    client = user_client(django_user_model, "alice", "approver")
    html = client.get("/").content.decode()
    assert "Canaries in flight" in html
    assert "acme-gpt-v1.1.0</a> in payments: 10% of traffic" in html


def test_page_of_a_service_with_nothing_live_and_of_the_enterprise_scope(django_user_model: Any, db: Any) -> None:
    Service.objects.create(name="shipping", display_name="Shipping")
    client = user_client(django_user_model, "alice", "approver")
    empty = client.get(reverse("gateway:deployments", args=["shipping"]))
    assert empty.status_code == 200
    assert empty.context["canary"] is None and empty.context["production"] is None
    assert "No canary decision yet." in empty.content.decode()
    assert client.get(reverse("gateway:deployments", args=["enterprise"])).status_code == 200


def test_canary_period_and_its_note_are_shown(django_user_model: Any, canary: Deployment) -> None:
    CanaryTraffic.objects.create(deployment=canary, share=0.1, stage_started_at=canary.created_at,
                                 duration_hours=0.1, note="its 0.1 h canary period is over; it keeps running: "
                                 "too few requests")
    page = user_client(django_user_model, "rita", "reviewer").get(reverse("gateway:deployments", args=["payments"]))
    html = page.content.decode()
    assert page.context["canary"].period_hours == 0.1
    assert "0.1 h, over since" in html and "it keeps running: too few requests" in html


def test_approver_starts_and_stops_a_shadow_and_reads_its_agreement(django_user_model: Any,
                                                                    canary: Deployment) -> None:
    candidate = make_version("acme-gpt-v1.2.0", status="approved")
    make_version("acme-gpt-v1.3.0", status="registered")  # not approved: not offered
    make_version("billing-v1.0.0", status="approved", scope="billing")  # another service's: not offered
    alice = user_client(django_user_model, "alice", "approver")
    url = reverse("gateway:deployments", args=["payments"])
    page = alice.get(url)
    assert [v.name for v in page.context["shadow_candidates"]] == ["acme-gpt-v1.2.0"]
    html = page.content.decode()
    assert 'id="shadow-start"' in html and "hx-confirm=" in html and "csrfmiddlewaretoken" in html

    start = reverse("gateway:shadow-start", args=["payments"])
    started = alice.post(start, {"model_version_id": str(candidate.pk), "sample_rate": "0.5"}, HTTP_HX_REQUEST="true")
    assert started.status_code == 200
    assert "acme-gpt-v1.2.0 now shadows payments" in started.content.decode()
    shadow = ShadowDeployment.objects.get()
    assert (shadow.model_version_id, shadow.scope, shadow.sample_rate, shadow.active) == (candidate.pk, "payments",
                                                                                          0.5, True)
    audit = AuditEvent.objects.get(action=AuditAction.SHADOW_STARTED)
    assert (audit.actor, audit.detail["scope"]) == ("alice", "payments")
    again = alice.post(start, {"model_version_id": str(candidate.pk)}, HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and "already shadows payments" in again.content.decode()

    # Agreement: 4 copies compared, 3 with the same tools, 2 also with the same arguments, 1 failed.
    for tools, arguments, error in [(True, True, ""), (True, True, ""), (True, False, ""), (False, False, "timeout")]:
        ShadowComparison.objects.create(shadow=shadow, model_version=candidate, call_id="c", service="payments",
                                        production_version="acme-gpt-v1.0.0", tools_agree=tools,
                                        arguments_agree=arguments, error=error)
    shown = alice.get(url)
    [row] = shown.context["shadows"]
    assert (row.compared, row.answered, row.tools_agree, row.arguments_agree, row.errors) == (4, 3, 3, 2, 1)
    html = shown.content.decode()
    assert "100% (3 of 3)" in html and "67% (2 of 3)" in html
    assert shown.context["shadow_candidates"] == []  # already shadowing

    stopped = alice.post(reverse("gateway:shadow-stop", args=[shadow.pk]), {"service": "payments"},
                         HTTP_HX_REQUEST="true")
    assert stopped.status_code == 200 and "no longer shadows payments" in stopped.content.decode()
    shadow.refresh_from_db()
    assert shadow.active is False and shadow.ended_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.SHADOW_ENDED).count() == 1
    assert alice.post(reverse("gateway:shadow-stop", args=[shadow.pk])).status_code == 409
    assert "stopped" in alice.get(url).content.decode()  # the ended shadow keeps its numbers on the page


def test_shadow_buttons_refuse_bad_input_and_other_roles(django_user_model: Any, canary: Deployment) -> None:
    candidate = make_version("acme-gpt-v1.2.0", status="approved")
    registered = make_version("acme-gpt-v1.3.0", status="registered")
    other = make_version("billing-v1.0.0", status="approved", scope="billing")
    start = reverse("gateway:shadow-start", args=["payments"])
    reviewer = user_client(django_user_model, "rita", "reviewer")
    assert reviewer.post(start, {"model_version_id": str(candidate.pk)}).status_code == 403
    assert 'id="shadow-start"' not in reviewer.get(reverse("gateway:deployments", args=["payments"])).content.decode()
    alice = user_client(django_user_model, "alice", "approver")
    assert alice.post(start, {"model_version_id": "x"}).status_code == 422
    assert alice.post(start, {"model_version_id": "999999"}).status_code == 404
    assert alice.post(start, {"model_version_id": str(candidate.pk), "sample_rate": "lots"}).status_code == 422
    assert alice.post(start, {"model_version_id": str(candidate.pk), "sample_rate": "1.5"}).status_code == 422
    refused = alice.post(start, {"model_version_id": str(registered.pk)})
    assert refused.status_code == 409 and "only an approved version" in refused.content.decode()
    assert alice.post(start, {"model_version_id": str(other.pk)}).status_code == 409
    assert alice.post(reverse("gateway:shadow-start", args=["nope"]), {"model_version_id": "1"}).status_code == 404
    assert alice.post(reverse("gateway:shadow-stop", args=[424242])).status_code == 404
    assert alice.get(start).status_code == 405
    assert not ShadowDeployment.objects.exists()
    # CSRF holds for a browser session like the other deployment buttons.
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(django_user_model.objects.get(username="alice"))
    assert strict.post(start, {"model_version_id": str(candidate.pk)}).status_code == 403
    assert not ShadowDeployment.objects.exists()
