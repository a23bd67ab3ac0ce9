"""Registry pages through the Django test client: access, 404s, htmx partials, and each decision
answered with the service's message and status (never a 500)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from ftops.common.models import AuditEvent
from ftops.evaluation.models import EvalSuite
from ftops.evaluation.services import eval_suite_for_dataset
from ftops.training.models import TrainingRun
from registry import services
from registry.gates import model_version_gates_compute
from registry.models import Approval, Deployment, DeploymentState, ModelVersion, VersionStatus
from tests.evaluation.factories import dataset_version
from tests.registry.factories import APPROVER, approved, finished_run, force_status, version

pytestmark = pytest.mark.django_db

CONFIG = """
evaluation:
  deployment_criteria:
    min_accuracy_improvement: 0.05
    max_latency_increase_ms: 200
    max_error_rate: 0.05
    max_regression_points: 0.02
    min_accuracy_required: 0.98
    min_cases: 3
    min_group_cases: 2
"""
PASSWORD = "pw-registry-7"


@pytest.fixture(autouse=True)
def small_gates(settings: Any, tmp_path: Path) -> None:
    path = tmp_path / "ft_ops_config.yaml"
    path.write_text(CONFIG)
    settings.FTOPS_CONFIG_FILE = str(path)


@pytest.fixture
def suite() -> EvalSuite:
    return eval_suite_for_dataset(dataset_version=dataset_version(), split="test")


def user_client(django_user_model: Any, username: str, *roles: str) -> Client:
    user = django_user_model.objects.create_user(username, f"{username}@example.com", PASSWORD)
    for role in roles:
        group, _ = Group.objects.get_or_create(name=role)
        user.groups.add(group)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice(django_user_model: Any) -> Client:
    return user_client(django_user_model, "alice", "approver")


@pytest.fixture
def carol(django_user_model: Any) -> Client:
    """Started the training runs in these tests, and is an approver too."""
    return user_client(django_user_model, "carol", "approver", "ml_orchestrator")


@pytest.fixture
def rita(django_user_model: Any) -> Client:
    return user_client(django_user_model, "rita", "reviewer")


def gated(suite: EvalSuite, *, cand_exact: float = 90.0, **kwargs: Any) -> ModelVersion:
    """A version with a gate report: passed at 90% vs 50%, blocked when ``cand_exact`` is low."""
    mv = force_status(version(**kwargs), VersionStatus.EVALUATED)
    base = finished_run(suite, exact=50.0, n=12)
    cand = finished_run(suite, exact=cand_exact, n=12, model_version_id=mv.pk,
                        failures=[("1", "payments", "value_error:string")])
    ModelVersion.objects.filter(pk=mv.pk).update(eval_run=cand, baseline_eval_run=base,
                                                 eval_results={"overall": {"exact": cand_exact, "n": 12},
                                                               "by_service": {"payments": {"exact": cand_exact,
                                                                                           "n": 12}}})
    return model_version_gates_compute(model_version_id=mv.pk)


def test_pages_need_login_and_a_registry_role(client: Client, django_user_model: Any, suite: EvalSuite) -> None:
    mv = gated(suite)
    url = reverse("registry:version", args=[mv.pk])
    assert client.get(url).status_code == 302
    nobody = user_client(django_user_model, "nobody")
    assert nobody.get(url).status_code == 403
    assert nobody.get(reverse("registry:models")).status_code == 403
    assert AuditEvent.objects.filter(action="permission.denied", object_id="registry:version").count() == 1


def test_list_shows_versions_with_semver_status_scope_and_production(alice: Client, suite: EvalSuite) -> None:
    first = approved()
    services.model_version_promote(model_version_id=first.pk, by=APPROVER)
    second = gated(suite)
    response = alice.get(reverse("registry:models"))
    assert response.status_code == 200
    html = response.content.decode()
    assert second.name in html and f"<code>{second.semver}</code>" in html
    assert 'data-status="gates_passed"' in html and 'data-status="production"' in html
    assert 'data-scope="enterprise"' in html
    assert "1</strong> version awaiting approval" in html
    # The sparkline of the second version has two points (the first was never evaluated: one point only).
    assert f'data-chart="spark-{second.pk}"' not in html
    filtered = alice.get(reverse("registry:models"), {"status": "production"}).content.decode()
    assert first.name in filtered and second.name not in filtered
    blocked = gated(suite, cand_exact=52.0)
    awaiting = alice.get(reverse("registry:models"), {"status": "awaiting"}).content.decode()
    assert f'data-row="{second.pk}"' in awaiting and f'data-row="{blocked.pk}"' in awaiting
    assert f'data-row="{first.pk}"' not in awaiting
    assert alice.get(reverse("registry:models"), {"status": "nonsense"}).status_code == 200


def test_sparkline_follows_the_family(alice: Client, suite: EvalSuite) -> None:
    one = gated(suite, cand_exact=70.0)
    two = gated(suite, cand_exact=90.0)
    assert one.family == two.family
    html = alice.get(reverse("registry:models")).content.decode()
    assert f'data-chart="spark-{two.pk}"' in html
    assert f'id="spark-{two.pk}"' in html and '"data": [70.0, 90.0]' in html


def test_version_page_shows_gates_comparison_lineage_and_buttons(alice: Client, suite: EvalSuite) -> None:
    run = TrainingRun.objects.create(name="lora-1", base_model="/models/tiny-base", created_by="carol",
                                     status="succeeded", dataset_version=suite.dataset_version)
    mv = gated(suite, training_run=run, dataset_version=suite.dataset_version)
    html = alice.get(reverse("registry:version", args=[mv.pk])).content.decode()
    assert 'class="gate-pass" data-check="overall_improvement"' in html
    assert "of" in html and 'id="gate-summary"' in html
    assert 'id="approve-form"' in html and 'id="override-form"' not in html
    assert reverse("training:run", args=[run.pk]) in html
    assert reverse("evaluation:run", args=[mv.eval_run_id]) in html
    assert reverse("datasets:version", args=[suite.dataset_version.number]) in html  # type: ignore[union-attr]
    assert 'id="compare-service"' in html and 'id="chart-service"' in html


def test_missing_things_are_404(alice: Client) -> None:
    assert alice.get(reverse("registry:version", args=[999999])).status_code == 404
    assert alice.post(reverse("registry:approve", args=[999999])).status_code == 404
    assert alice.get(reverse("registry:run", args=[999999])).status_code == 404
    assert alice.get(reverse("registry:example", args=[999999])).status_code == 404


def test_reviewer_reads_but_cannot_decide(rita: Client, suite: EvalSuite) -> None:
    mv = gated(suite)
    html = rita.get(reverse("registry:version", args=[mv.pk])).content.decode()
    assert 'id="approve-form"' not in html and "need the approver role" in html
    response = rita.post(reverse("registry:approve", args=[mv.pk]), {"comment": "sneaky"})
    assert response.status_code == 403
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_PASSED and not Approval.objects.exists()


def test_htmx_approve_returns_the_release_panel(alice: Client, suite: EvalSuite) -> None:
    mv = gated(suite)
    response = alice.post(reverse("registry:approve", args=[mv.pk]), {"comment": "ship it"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="release"') and "<html" not in html
    assert 'data-status="approved"' in html and "approved." in html and 'id="promote-form"' in html
    mv.refresh_from_db()
    assert mv.status == VersionStatus.APPROVED
    assert Approval.objects.get(model_version=mv).actor == "alice"


def test_plain_post_redirects_back_with_a_message(alice: Client, suite: EvalSuite) -> None:
    mv = gated(suite)
    response = alice.post(reverse("registry:approve", args=[mv.pk]), {"comment": ""}, follow=True)
    assert response.redirect_chain == [(reverse("registry:version", args=[mv.pk]), 302)]
    assert f"{mv.name} approved." in response.content.decode()


def test_the_run_creator_is_refused_with_the_two_person_message(carol: Client, suite: EvalSuite) -> None:
    run = TrainingRun.objects.create(name="lora-2", base_model="/models/tiny-base", created_by="carol",
                                     status="succeeded")
    mv = gated(suite, training_run=run)
    response = carol.post(reverse("registry:approve", args=[mv.pk]), {"comment": "mine"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert "two-person rule" in response.content.decode() and 'id="release-error"' in response.content.decode()
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_PASSED and not Approval.objects.exists()
    assert AuditEvent.objects.filter(action="model_version.approval_refused").count() == 1


def test_failed_gates_need_an_override_justification(alice: Client, suite: EvalSuite) -> None:
    mv = gated(suite, cand_exact=52.0)
    assert mv.status == VersionStatus.GATES_BLOCKED
    html = alice.get(reverse("registry:version", args=[mv.pk])).content.decode()
    assert 'id="override-form"' in html and 'id="approve-form"' not in html
    assert 'class="gate-fail" data-check="overall_improvement"' in html
    # Approving without the override is refused with the service's message.
    refused = alice.post(reverse("registry:approve", args=[mv.pk]), {"comment": "fine"}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 422 and "written justification" in refused.content.decode()
    empty = alice.post(reverse("registry:override", args=[mv.pk]), {"justification": "   "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 422 and "needs a written justification" in empty.content.decode()
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_BLOCKED and not Approval.objects.exists()
    done = alice.post(reverse("registry:override", args=[mv.pk]),
                      {"justification": "payments outage fix; accepted risk"}, HTTP_HX_REQUEST="true")
    assert done.status_code == 200
    approval = Approval.objects.get(model_version=mv)
    assert (approval.override, approval.justification) == (True, "payments outage fix; accepted risk")


def test_reject_needs_a_comment(alice: Client, suite: EvalSuite) -> None:
    mv = gated(suite)
    assert alice.post(reverse("registry:reject", args=[mv.pk]), {"comment": ""}).status_code == 422
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_PASSED
    assert alice.post(reverse("registry:reject", args=[mv.pk]), {"comment": "worse on refunds"}).status_code == 302
    mv.refresh_from_db()
    assert mv.status == VersionStatus.REJECTED


def test_promote_then_rollback_restores_the_previous_version(alice: Client) -> None:
    first, second = approved(), approved()
    for mv in (first, second):
        response = alice.post(reverse("registry:promote", args=[mv.pk]), {"scope": ""}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200, response.content
    current = Deployment.objects.get(scope="enterprise", state=DeploymentState.PRODUCTION)
    assert current.model_version_id == second.pk
    html = alice.get(reverse("registry:version", args=[second.pk])).content.decode()
    assert 'id="rollback-form"' in html
    no_reason = alice.post(reverse("registry:rollback", args=[second.pk]), {"reason": ""}, HTTP_HX_REQUEST="true")
    assert no_reason.status_code == 422
    response = alice.post(reverse("registry:rollback", args=[second.pk]), {"reason": "refund errors spiked"},
                          HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and f"{first.name} serves again" in response.content.decode()
    current = Deployment.objects.get(scope="enterprise", state=DeploymentState.PRODUCTION)
    assert current.model_version_id == first.pk
    second.refresh_from_db()
    assert second.status == VersionStatus.ROLLED_BACK
    # Promoting the rolled-back version again is a 409 with the service's message.
    again = alice.post(reverse("registry:promote", args=[second.pk]), {}, HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and "needs a new approval" in again.content.decode()


def test_get_on_a_decision_url_is_405(alice: Client, suite: EvalSuite) -> None:
    mv = gated(suite)
    assert alice.get(reverse("registry:approve", args=[mv.pk])).status_code == 405


def test_run_page_redirects_to_its_version_or_offers_registration(carol: Client, rita: Client,
                                                                 suite: EvalSuite,
                                                                 django_capture_on_commit_callbacks: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = TrainingRun.objects.create(name="lora-3", backend="lora", base_model="/models/tiny-base", created_by="carol",
                                     status="succeeded", dataset_version=suite.dataset_version,
                                     artifact_path="/a/lora-3")
    page = carol.get(reverse("registry:run", args=[run.pk]))
    assert page.status_code == 200 and 'id="register-form"' in page.content.decode()
    assert 'id="register-form"' not in rita.get(reverse("registry:run", args=[run.pk])).content.decode()
    assert rita.post(reverse("registry:run_register", args=[run.pk])).status_code == 403
    sent: list[str] = []
    monkeypatch.setattr(services, "_send", lambda name, kwargs, **kw: sent.append(name))
    with django_capture_on_commit_callbacks(execute=True):
        response = carol.post(reverse("registry:run_register", args=[run.pk]))
    assert response.status_code == 302, response.content.decode()
    mv = ModelVersion.objects.get(training_run=run)
    assert response.status_code == 302 and response["Location"] == reverse("registry:version", args=[mv.pk])
    assert mv.eval_run_id is not None and mv.baseline_eval_run_id is not None
    assert sent == ["registry.tasks.model_version_evaluation_run"]
    assert carol.get(reverse("registry:run", args=[run.pk]))["Location"] == reverse("registry:version", args=[mv.pk])


def test_an_unfinished_run_cannot_be_registered(carol: Client) -> None:
    run = TrainingRun.objects.create(name="lora-4", base_model="/m", created_by="carol", status="running")
    assert "Only a succeeded run" in carol.get(reverse("registry:run", args=[run.pk])).content.decode()
    response = carol.post(reverse("registry:run_register", args=[run.pk]))
    assert response.status_code == 409 and "only a succeeded run is registered" in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_example_page_lists_every_version_it_trained(alice: Client, suite: EvalSuite) -> None:
    dv = suite.dataset_version
    assert dv is not None
    member = dv.members.filter(split="train").first()
    assert member is not None
    trained = version(dataset_version=dv)
    other = version(base="/models/other-base")
    html = alice.get(reverse("registry:example", args=[member.example_id])).content.decode()
    assert trained.name in html and other.name not in html


def test_training_run_page_links_to_the_registry(carol: Client) -> None:
    run = TrainingRun.objects.create(name="lora-5", base_model="/m", created_by="carol", status="succeeded")
    html = carol.get(reverse("training:run", args=[run.pk])).content.decode()
    assert reverse("registry:run", args=[run.pk]) in html


def test_nav_has_the_registry(alice: Client) -> None:
    assert f'href="{reverse("registry:models")}"' in alice.get(reverse("registry:models")).content.decode()


def test_htmx_get_returns_only_the_release_panel(alice: Client, suite: EvalSuite) -> None:
    mv = gated(suite)
    html = alice.get(reverse("registry:version", args=[mv.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert html.lstrip().startswith('<section id="release"') and 'id="gates"' not in html


def test_partial_deployment_button_deploys_to_passing_services(alice: Client, suite: EvalSuite) -> None:
    from ftops.catalog.models import Service

    names = ["payments", *(f"svc{i}" for i in range(5))]
    for name in names[1:]:
        Service.objects.create(name=name)
    mv = force_status(version(), VersionStatus.EVALUATED)
    rows = {name: (80.0, 2) for name in names}
    base = finished_run(suite, exact=50.0, n=12, by_service=rows)
    cand = finished_run(suite, exact=90.0, n=12, by_service={**rows, "svc4": (50.0, 2)})
    ModelVersion.objects.filter(pk=mv.pk).update(eval_run=cand, baseline_eval_run=base)
    mv = model_version_gates_compute(model_version_id=mv.pk)
    services.model_version_approve(model_version_id=mv.pk, by=APPROVER, comment="ok")
    html = alice.get(reverse("registry:version", args=[mv.pk])).content.decode()
    assert 'id="partial-form"' in html and "svc4 keeps their model" in html
    whole = alice.post(reverse("registry:promote", args=[mv.pk]), {"scope": "enterprise"}, HTTP_HX_REQUEST="true")
    assert whole.status_code == 409 and "partial deployment" in whole.content.decode()
    response = alice.post(reverse("registry:promote_partial", args=[mv.pk]), {}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    deployed = sorted(Deployment.objects.filter(state=DeploymentState.PRODUCTION).values_list("scope", flat=True))
    assert deployed == sorted(n for n in names if n != "svc4")


def test_evaluate_button_needs_the_operator_role_and_a_dataset(alice: Client, carol: Client) -> None:
    mv = version()
    assert alice.post(reverse("registry:evaluate", args=[mv.pk])).status_code == 403
    response = carol.post(reverse("registry:evaluate", args=[mv.pk]))
    assert response.status_code == 422 and "no dataset version to evaluate on" in response.content.decode()
    mv.refresh_from_db()
    assert mv.eval_run_id is None


def test_long_tool_tables_are_cut_to_the_biggest_changes(alice: Client, suite: EvalSuite) -> None:
    mv = gated(suite)
    tools = {f"tool_{i:03d}": {"exact": float(i % 100), "n": 3} for i in range(150)}
    ModelVersion.objects.filter(pk=mv.pk).update(eval_results={**mv.eval_results, "by_tool": tools})
    html = alice.get(reverse("registry:version", args=[mv.pk])).content.decode()
    assert "The 100 biggest changes of 150 tools" in html


@pytest.mark.parametrize("size", [2, 12])
def test_registry_pages_take_the_same_queries_whatever_the_rows(alice: Client, suite: EvalSuite, size: int,
                                                                django_assert_max_num_queries: Any) -> None:
    from tests.common.pages import get_within

    versions = [gated(suite, cand_exact=60.0 + n) for n in range(size)]
    last = versions[-1]
    services.model_version_approve(model_version_id=versions[0].pk, by=APPROVER, comment="ok")
    services.model_version_promote(model_version_id=versions[0].pk, by=APPROVER)
    html = get_within(alice, django_assert_max_num_queries, reverse("registry:models"), 9)
    assert html.count('data-row="') == size
    get_within(alice, django_assert_max_num_queries, reverse("registry:version", args=[last.pk]), 13)


def test_home_cards_show_awaiting_versions_and_production_per_scope(suite: EvalSuite) -> None:
    from django.template.loader import render_to_string

    from registry.selectors import registry_summary

    live = approved()
    services.model_version_promote(model_version_id=live.pk, by=APPROVER)
    waiting = gated(suite)
    html = render_to_string("registry/_home_cards.html", {"summary": registry_summary()})
    assert reverse("registry:version", args=[waiting.pk]) in html and waiting.name in html
    assert '<th scope="row">enterprise</th>' in html and live.name in html


def test_a_rolled_back_version_is_approved_again_with_a_reason(alice: Client) -> None:
    first, second = approved(), approved()
    for mv in (first, second):
        services.model_version_promote(model_version_id=mv.pk, by=APPROVER)
    services.model_version_rollback(model_version_id=second.pk, by=APPROVER, reason="errors")
    html = alice.get(reverse("registry:version", args=[second.pk])).content.decode()
    assert "Approve again" in html and 'id="rollback-form"' not in html
    response = alice.post(reverse("registry:override", args=[second.pk]), {"justification": "fixed upstream"},
                          HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "approved again" in response.content.decode()
    second.refresh_from_db()
    assert second.status == VersionStatus.APPROVED
    assert not Approval.objects.filter(model_version=second, override=True).exists()


def test_the_dataset_example_page_links_to_the_versions_it_trained(django_user_model: Any, suite: EvalSuite) -> None:
    dv = suite.dataset_version
    assert dv is not None
    member = dv.members.filter(split="train").first()
    assert member is not None
    staff = django_user_model.objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True)
    client = Client()
    client.force_login(staff)
    html = client.get(reverse("datasets:example", args=[member.example_id])).content.decode()
    assert reverse("registry:example", args=[member.example_id]) in html


# --- stored JSON shown as JSON: serving, tool manifest, evaluation summary, thresholds, cost ------

def _section(html: str, anchor: str) -> str:
    return html.split(f'id="{anchor}"')[1].split("</details>")[0]


def test_version_page_shows_configs_as_json_and_the_change_from_its_predecessor(alice: Client,
                                                                               suite: EvalSuite) -> None:
    serving = {"kind": "hf_lora", "base_model": "/models/tiny-base", "adapter_path": "/a/lora-1", "merge": False}
    first = version(serving=serving, cost={"gpu_seconds": 12.5, "spot": True, "fine_tune_usd": None})
    second = gated(suite, serving={**serving, "adapter_path": "/a/lora-2"})
    assert second.predecessor_id == first.pk
    ModelVersion.objects.filter(pk=second.pk).update(tool_manifest={"payments/create_payment": 2})
    ModelVersion.objects.filter(pk=first.pk).update(tool_manifest={"payments/create_payment": 2})

    html = alice.get(reverse("registry:version", args=[second.pk])).content.decode()
    changed = _section(html, "config-serving")
    assert f'<span class="badge warn">changed since {first.name}</span>' in changed
    assert '<th scope="row"><code>adapter_path</code> <span class="badge bad">differs</span></th>' in changed
    assert "<td><code>&quot;/a/lora-1&quot;</code></td>" in changed and "&quot;/a/lora-2&quot;" in changed
    assert "<td><code>false</code></td>" in changed and "False" not in changed
    same = _section(html, "config-tool_manifest")
    assert f"(same as {first.name})" in same
    assert "{\n  &quot;payments/create_payment&quot;: 2\n}" in same
    results = _section(html, "config-eval_results")
    assert "&quot;overall&quot;: {" in results and "by_service" not in results
    criteria = _section(html, "gate-criteria")
    assert "Thresholds used" in criteria and "&quot;" in criteria and "{'" not in criteria

    first_html = alice.get(reverse("registry:version", args=[first.pk])).content.decode()
    cost = first_html.split("Cost of producing it:")[1].split("</p>")[0]  # (jsonb orders keys its own way)
    for shown in ("gpu_seconds <code>12.5</code>", "spot <code>true</code>", "fine_tune_usd <code>null</code>"):
        assert shown in cost
    own = _section(first_html, "config-serving")
    assert "changed since" not in own and "&quot;merge&quot;: false" in own
