"""Deployment gates: each check with its numbers, partial deployment, and the evaluate -> gates flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftops.core.adapters import ModelOutput, ReplayAdapter
from ftops.evaluation.models import EvalRun, EvalSuite
from ftops.evaluation.services import eval_suite_for_dataset
from registry import services
from registry.gates import compute_checks, criteria, model_version_gates_compute, release_decision
from registry.models import (
    CriticalScenario,
    Deployment,
    DeploymentState,
    GateCheck,
    GateOutcome,
    GateReport,
    ModelVersion,
    ReleaseDecision,
    VersionStatus,
)
from tests.evaluation.factories import dataset_version
from tests.registry.factories import APPROVER, finished_run, force_status, version

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


@pytest.fixture(autouse=True)
def small_gates(settings: Any, tmp_path: Path) -> None:
    path = tmp_path / "ft_ops_config.yaml"
    path.write_text(CONFIG)
    settings.FTOPS_CONFIG_FILE = str(path)


@pytest.fixture
def suite() -> EvalSuite:
    return eval_suite_for_dataset(dataset_version=dataset_version(), split="test")


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {f"{c.name}:{c.subject}" if c.subject else c.name: c for c in checks}


def test_checks_pass_with_their_numbers(suite: EvalSuite) -> None:
    base = finished_run(suite, exact=60.0, n=5, p95=100.0)
    cand = finished_run(suite, exact=80.0, n=5, p95=250.0)
    checks = by_name(compute_checks(candidate=cand, baseline=base, c=criteria()))
    overall = checks["overall_improvement"]
    assert (overall.outcome, overall.observed, overall.baseline, overall.threshold, overall.n) == (
        GateOutcome.PASSED, 80.0, 60.0, 5.0, 5)
    assert checks["latency_p95"].outcome == GateOutcome.PASSED and "+150.0 ms" in checks["latency_p95"].message
    assert checks["error_rate"].outcome == GateOutcome.PASSED
    assert checks["critical_scenarios"].outcome == GateOutcome.NOT_APPLICABLE
    assert checks["perplexity"].outcome == GateOutcome.NOT_APPLICABLE
    assert checks["service_regression:payments"].outcome == GateOutcome.PASSED


def test_each_failing_check_blocks(suite: EvalSuite) -> None:
    base = finished_run(suite, exact=60.0, n=5, p95=100.0, by_category={"simple": (80.0, 3), "multi": (40.0, 2)},
                        perplexity=3.0)
    cand = finished_run(suite, exact=62.0, n=5, p95=400.0, by_category={"simple": (70.0, 3), "multi": (60.0, 2)},
                        parse_errors=1, failures=[("1", "payments", "type_error:simple")], perplexity=3.5)
    checks = by_name(compute_checks(candidate=cand, baseline=base, c=criteria()))
    assert checks["overall_improvement"].outcome == GateOutcome.FAILED
    assert checks["category_regression:simple"].outcome == GateOutcome.FAILED
    assert checks["category_regression:multi"].outcome == GateOutcome.PASSED
    assert checks["latency_p95"].outcome == GateOutcome.FAILED
    assert (checks["error_rate"].outcome, checks["error_rate"].observed) == (GateOutcome.FAILED, 20.0)
    schema = checks["schema_invalid_rate"]
    assert (schema.outcome, schema.failing_cases) == (GateOutcome.FAILED, ["1"])
    assert checks["perplexity"].outcome == GateOutcome.FAILED


def test_too_few_cases_blocks_and_says_how_many_were_needed(suite: EvalSuite, settings: Any,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "strict.yaml"
    path.write_text(CONFIG.replace("min_cases: 3", "min_cases: 50"))
    settings.FTOPS_CONFIG_FILE = str(path)
    base, cand = finished_run(suite, exact=0.0, n=5), finished_run(suite, exact=100.0, n=5)
    overall = by_name(compute_checks(candidate=cand, baseline=base, c=criteria()))["overall_improvement"]
    assert (overall.outcome, overall.n, overall.needed) == (GateOutcome.NOT_COMPUTABLE, 5, 50)
    assert overall.blocks and "at least 50" in overall.message


def test_no_baseline_on_the_same_split_is_not_computable(suite: EvalSuite) -> None:
    cand = finished_run(suite, exact=100.0, n=5)
    overall = by_name(compute_checks(candidate=cand, baseline=None, c=criteria()))["overall_improvement"]
    assert overall.outcome == GateOutcome.NOT_COMPUTABLE


def test_critical_scenarios_must_pass_and_meet_the_service_minimum(suite: EvalSuite) -> None:
    assert suite.dataset_version is not None
    record_ids = [str(m.example_id) for m in suite.dataset_version.members.filter(split="test").order_by("position")]
    for record_id in record_ids[:2]:
        services.critical_scenario_set(record_id=record_id, service="payments", by=APPROVER)
    base = finished_run(suite, exact=0.0, n=5)
    cand = finished_run(suite, exact=80.0, n=5, failures=[(record_ids[0], "payments", "value_error:string")])
    checks = by_name(compute_checks(candidate=cand, baseline=base, c=criteria()))
    critical = checks["critical_scenarios"]
    assert (critical.outcome, critical.failing_cases, critical.n) == (GateOutcome.FAILED, [record_ids[0]], 2)
    service = checks["service_critical_accuracy:payments"]
    assert (service.outcome, service.observed, service.threshold) == (GateOutcome.FAILED, 50.0, 98.0)


@pytest.mark.parametrize(("failing", "decision"), [
    (0, ReleaseDecision.DEPLOY_ALL), (1, ReleaseDecision.PARTIAL), (2, ReleaseDecision.BLOCKED),
    (3, ReleaseDecision.BLOCKED), (4, ReleaseDecision.BLOCKED_CRITICAL)])
def test_partial_deployment_rule_by_share_of_failing_services(failing: int, decision: str) -> None:
    from registry.gates import Check

    names = [f"s{i}" for i in range(6)]
    checks = [Check("service_regression", GateOutcome.FAILED if i < failing else GateOutcome.PASSED, subject=name,
                    message="dropped") for i, name in enumerate(names)]
    got, failing_names, passing, pattern = release_decision(checks, names, criteria())
    assert (got, failing_names, len(passing)) == (decision, names[:failing], 6 - failing)
    assert pattern["failing_share"] == round(failing / 6, 4)


def _gated(suite: EvalSuite, *, base_service: dict[str, tuple[float, int]],
           cand_service: dict[str, tuple[float, int]]) -> ModelVersion:
    mv = force_status(version(), VersionStatus.EVALUATED)
    base = finished_run(suite, exact=50.0, n=12, by_service=base_service)
    cand = finished_run(suite, exact=90.0, n=12, by_service=cand_service)
    ModelVersion.objects.filter(pk=mv.pk).update(eval_run=cand, baseline_eval_run=base)
    return model_version_gates_compute(model_version_id=mv.pk)


def test_partial_deployment_goes_to_passing_services_and_tells_the_owners(
        suite: EvalSuite, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftops.catalog.models import Service

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(services, "_notify", lambda **kw: sent.append(kw))
    names = ["payments", *(f"svc{i}" for i in range(5))]
    for name in names[1:]:
        Service.objects.create(name=name)
    base_rows = {name: (80.0, 2) for name in names}
    mv = _gated(suite, base_service=base_rows, cand_service={**base_rows, "svc4": (50.0, 2)})
    report = GateReport.objects.get(model_version=mv)
    assert (mv.status, report.decision, report.failing_services) == (VersionStatus.GATES_PASSED,
                                                                     ReleaseDecision.PARTIAL, ["svc4"])
    assert GateCheck.objects.get(report=report, name="service_regression", subject="svc4").outcome == "failed"
    services.model_version_approve(model_version_id=mv.pk, by=APPROVER, comment="ok")
    with pytest.raises(services.Conflict, match="partial deployment"):
        services.model_version_promote(model_version_id=mv.pk, by=APPROVER)
    services.model_version_promote_partial(model_version_id=mv.pk, by=APPROVER)
    deployed = sorted(Deployment.objects.filter(state=DeploymentState.PRODUCTION).values_list("scope", flat=True))
    assert deployed == sorted(n for n in names if n != "svc4")
    owners = [n for n in sent if n["audience"] == "service_owners"]
    assert [n["payload"]["service"] for n in owners] == ["svc4"]


def test_most_services_failing_blocks_with_a_critical_alert(suite: EvalSuite,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(services, "_notify", lambda **kw: sent.append(kw))
    base_rows = {f"s{i}": (90.0, 2) for i in range(4)}
    mv = _gated(suite, base_service=base_rows, cand_service={k: (50.0, 2) for k in base_rows})
    report = GateReport.objects.get(model_version=mv)
    assert (mv.status, report.decision) == (VersionStatus.GATES_BLOCKED, ReleaseDecision.BLOCKED_CRITICAL)
    assert [n["payload"].get("severity") for n in sent if n["audience"] == "admins"] == ["critical"]


def test_evaluate_runs_candidate_and_base_model_on_the_same_split_and_writes_back(
        suite: EvalSuite, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any) -> None:
    from ftops.datasets.selectors import dataset_records
    from ftops.evaluation import services as evaluation

    assert suite.dataset_version is not None
    records = dataset_records(version=suite.dataset_version, split="test")
    right = {r.id: ModelOutput(calls=[{"name": c["name"], "arguments": {k: v[0] for k, v in c["arguments"].items()}}
                                      for c in r.expected["calls"]] if r.behavior == "call" else [],
                               text="" if r.behavior == "call" else "Which customer?", latency_ms=10.0)
             for r in records}
    # The tuned model (an adapter) answers the plain calls; the base model answers nothing.
    monkeypatch.setattr(evaluation, "build_adapter", lambda config: ReplayAdapter(
        answers=right if config.get("adapter_path") else {}))
    mv = version(dataset_version=suite.dataset_version)
    with django_capture_on_commit_callbacks(execute=True):
        services.model_version_evaluate(model_version_id=mv.pk, by=APPROVER)
    mv.refresh_from_db()
    assert mv.status == VersionStatus.GATES_PASSED
    assert (mv.eval_results["overall"]["n"], mv.eval_results["overall"]["exact"]) == (5, 60.0)
    assert mv.eval_results["test_suite"] == suite.name and mv.eval_results["latency_p95_ms"] == 10.0
    assert mv.baseline_eval_run_id is not None
    baseline = EvalRun.objects.get(pk=mv.baseline_eval_run_id)
    assert (baseline.suite_id, baseline.model_version_id, baseline.exact) == (suite.pk, None, 0.0)
    assert baseline.adapter_config == {"kind": "hf_local", "model_path": "/models/tiny-base"}
    report = GateReport.objects.get(model_version=mv)
    assert report.baseline_label == "base model /models/tiny-base" and report.passed
    kinds = list(mv.events.values_list("kind", flat=True))
    assert kinds == ["registered", "evaluation_requested", "evaluated", "gates"]


def test_critical_scenario_marking_checks_the_service() -> None:
    version_ = dataset_version()
    member = version_.members.first()
    assert member is not None
    example_id = str(member.example_id)
    with pytest.raises(services.ValidationFailed, match="unknown service"):
        services.critical_scenario_set(record_id=example_id, service="nope", by=APPROVER)
    scenario = services.critical_scenario_set(record_id=example_id, service="payments", by=APPROVER, note="money")
    assert scenario.example_id == int(example_id) and CriticalScenario.objects.count() == 1
    services.critical_scenario_clear(record_id=example_id, by=APPROVER)
    assert CriticalScenario.objects.count() == 0


def test_beat_writes_back_evaluations_nobody_collected(suite: EvalSuite) -> None:
    from registry.services import model_versions_collect_evaluations

    mv = version()
    waiting = version(artifact_path="/a/2")
    base, cand = finished_run(suite, exact=20.0, n=5), finished_run(suite, exact=80.0, n=5)
    unfinished = EvalRun.objects.create(suite=suite, adapter_config={"kind": "replay", "path": "x"})
    ModelVersion.objects.filter(pk=mv.pk).update(eval_run=cand, baseline_eval_run=base)
    ModelVersion.objects.filter(pk=waiting.pk).update(eval_run=unfinished, baseline_eval_run=base)
    assert model_versions_collect_evaluations() == [mv.pk]
    mv.refresh_from_db()
    assert (mv.status, mv.eval_results["overall"]["exact"]) == (VersionStatus.GATES_PASSED, 80.0)
    assert ModelVersion.objects.get(pk=waiting.pk).status == VersionStatus.REGISTERED
    assert model_versions_collect_evaluations() == []


def test_a_failed_evaluation_is_recorded_once_and_gates_nothing(suite: EvalSuite) -> None:
    from registry.services import model_version_collect_evaluation

    mv = version()
    base = finished_run(suite, exact=20.0, n=5)
    broken = EvalRun.objects.create(suite=suite, adapter_config={"kind": "replay", "path": "x"}, status="failed",
                                    error="model folder missing")
    ModelVersion.objects.filter(pk=mv.pk).update(eval_run=broken, baseline_eval_run=base)
    for _ in range(2):
        assert model_version_collect_evaluation(model_version_id=mv.pk).status == VersionStatus.REGISTERED
    failures = list(mv.events.filter(kind="evaluation_failed").values_list("reason", flat=True))
    assert failures == ["model folder missing"] and not GateReport.objects.exists()


def test_a_per_service_adapter_is_judged_on_its_own_service(suite: EvalSuite) -> None:
    assert suite.dataset_version is not None
    ids = [str(m.example_id) for m in suite.dataset_version.members.filter(split="test").order_by("position")]
    mv = force_status(version(scope="payments"), VersionStatus.EVALUATED)
    assert mv.family == "ftops-tiny-base-payments"
    base = finished_run(suite, exact=40.0, n=5, failures=[(i, "payments", "value_error:string") for i in ids[:3]])
    # Another service's broken answers in the same run say nothing about this adapter.
    cand = finished_run(suite, exact=60.0, n=5, failures=[("x1", "orders", "type_error:simple"),
                                                          ("x2", "orders", "type_error:simple")])
    ModelVersion.objects.filter(pk=mv.pk).update(eval_run=cand, baseline_eval_run=base)
    mv = model_version_gates_compute(model_version_id=mv.pk)
    report = GateReport.objects.get(model_version=mv)
    overall = report.checks.get(name="overall_improvement")
    assert (overall.observed, overall.baseline, overall.n) == (100.0, 40.0, 5)
    assert report.checks.get(name="schema_invalid_rate").observed == 0.0
    assert (mv.status, report.passing_services) == (VersionStatus.GATES_PASSED, ["payments"])
