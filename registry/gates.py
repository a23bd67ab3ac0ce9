"""Deployment gates: the candidate's evaluation against its baseline's, on the same frozen split.

The thresholds come from ``ft_ops_config.yaml`` (``evaluation.deployment_criteria``). Every
check is stored with its numbers (``GateCheck``). A check that cannot be computed (too few
cases, the two runs scored different cases) blocks and says what it needed: a release must
never pass because nothing was measured.

Evaluation keeps per-case results as failures only (``EvalFailure``); a case of the run's
record set that has no failure row passed. That is what the critical-scenario checks read.

Partial deployment (the seed's fallback rule) looks at the checks that belong to one service
(its accuracy regression and its critical scenarios): fewer than ``partial_max_failing_share``
of the services failing -> deploy to the passing ones; up to ``critical_failing_share`` ->
blocked with the failure pattern; more -> blocked with a critical alert.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, ValidationFailed
from registry.models import (
    ENTERPRISE_SCOPE,
    CriticalScenario,
    GateCheck,
    GateOutcome,
    GateReport,
    ModelVersion,
    ReleaseDecision,
    VersionStatus,
)

# Failure kinds that mean the output did not fit the tool's schema (wrong type, unparseable).
SCHEMA_ERROR_PREFIXES = ("type_error", "ast_decoder", "parse_error", "simple_function_checker:missing_required",
                         "simple_function_checker:unexpected_param", "relevance_error:decoder_failed")
GROUPS = (("category", "by_category"), ("service", "by_service"), ("tool", "by_tool"))


@dataclass
class Check:
    name: str
    outcome: str
    subject: str = ""
    observed: float | None = None
    baseline: float | None = None
    threshold: float | None = None
    n: int | None = None
    needed: int | None = None
    message: str = ""
    failing_cases: list[str] = field(default_factory=list)

    @property
    def blocks(self) -> bool:
        return self.outcome in (GateOutcome.FAILED, GateOutcome.NOT_COMPUTABLE)


def criteria() -> Any:
    from ftops.datasets.config import load_config

    return load_config().evaluation.deployment_criteria


def _points(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _failed_ids(run: Any) -> set[str]:
    from ftops.evaluation.models import EvalFailure

    return set(EvalFailure.objects.filter(run=run).values_list("record_id", flat=True))


def _failures_by(run: Any, key: str) -> dict[str, Counter[str]]:
    from ftops.evaluation.models import EvalFailure

    out: dict[str, Counter[str]] = {}
    for value, error_type in EvalFailure.objects.filter(run=run).values_list(key, "error_type"):
        out.setdefault(value or "", Counter())[error_type.split(":")[0]] += 1
    return out


def _records(run: Any) -> list[Any]:
    from ftops.evaluation.services import suite_records

    return suite_records(run.suite, categories=run.category_filter, limit=run.case_limit)


def _record_ids(run: Any, scope: str | None = None) -> dict[str, str]:
    """{record id: service} of the cases a run scored (of one service, with ``scope``)."""
    return {r.id: r.service for r in _records(run) if scope is None or r.service == scope}


PARSE_ERROR_PREFIXES = ("parse_error", "ast_decoder")


def scoped_metrics(run: Any, service: str) -> dict[str, Any]:
    """A run's metrics over one service's cases only, rebuilt from its per-case failures.

    A per-service adapter is judged on its own service: the other services' cases say nothing
    about it. Only exact match can be rebuilt per case (a failure row says the case failed);
    latency stays the run's own, as per-case latency is not stored.
    """
    from ftops.core.scoring import record_category
    from ftops.evaluation.models import EvalFailure

    records = [r for r in _records(run) if r.service == service]
    failures = dict(EvalFailure.objects.filter(run=run, service=service).values_list("record_id", "error_type"))

    def rates(rows: list[Any]) -> dict[str, Any]:
        passed = sum(1 for r in rows if r.id not in failures)
        return {"n": len(rows), "exact": round(100.0 * passed / len(rows), 2) if rows else 0.0}

    def by(key: Any) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[Any]] = {}
        for record in records:
            value = key(record)
            if value:
                groups.setdefault(value, []).append(record)
        return {name: rates(rows) for name, rows in sorted(groups.items())}

    metrics = run.metrics or {}
    return {"overall": rates(records), "by_category": by(record_category), "by_service": by(lambda r: r.service),
            "by_tool": by(lambda r: r.tool), "by_dimension": by(lambda r: r.dimension),
            "latency_ms": metrics.get("latency_ms") or {}, "perplexity": metrics.get("perplexity"),
            "parse_errors": sum(1 for e in failures.values() if e.startswith(PARSE_ERROR_PREFIXES))}


def compute_checks(*, candidate: Any, baseline: Any | None, c: Any, scope: str | None = None) -> list[Check]:
    """All checks for a finished candidate run against a finished baseline run (None: no baseline).

    ``scope`` (a service) judges a per-service adapter on that service's cases only.
    """
    checks: list[Check] = []
    cm = candidate.metrics or {} if scope is None else scoped_metrics(candidate, scope)
    n = int((cm.get("overall") or {}).get("n") or 0)
    if baseline is None:
        bm: dict[str, Any] = {}
    else:
        bm = baseline.metrics or {} if scope is None else scoped_metrics(baseline, scope)
    same_cases = baseline is not None and (baseline.suite_id, baseline.case_limit, sorted(baseline.category_filter
                                           or [])) == (candidate.suite_id, candidate.case_limit,
                                                       sorted(candidate.category_filter or []))
    # 1. Overall improvement.
    need_points = round(100.0 * c.min_accuracy_improvement, 4)
    if baseline is None or not same_cases:
        checks.append(Check("overall_improvement", GateOutcome.NOT_COMPUTABLE, threshold=need_points, n=n,
                            message="no baseline run on the same frozen split to compare with"))
    elif n < c.min_cases:
        checks.append(Check("overall_improvement", GateOutcome.NOT_COMPUTABLE, threshold=need_points, n=n,
                            needed=c.min_cases, message=f"{n} test cases; at least {c.min_cases} are needed"))
    else:
        cand, base = _points(cm["overall"].get("exact")), _points(bm.get("overall", {}).get("exact"))
        delta = round((cand or 0.0) - (base or 0.0), 2)
        checks.append(Check("overall_improvement", GateOutcome.PASSED if delta >= need_points else GateOutcome.FAILED,
                            observed=cand, baseline=base, threshold=need_points, n=n,
                            message=f"exact match {cand}% vs {base}% ({delta:+.2f} points; needs "
                                    f"+{need_points:g})"))
    # 2. No category, service or tool regresses by more than max_regression_points.
    limit = round(100.0 * c.max_regression_points, 4)
    if baseline is not None and same_cases:
        for group, key in GROUPS:
            base_rows, cand_rows = bm.get(key) or {}, cm.get(key) or {}
            for name in sorted(base_rows):
                base_row, cand_row = base_rows[name], cand_rows.get(name) or {}
                size = int(cand_row.get("n") or base_row.get("n") or 0)
                cand_v, base_v = _points(cand_row.get("exact")), _points(base_row.get("exact"))
                check_name = f"{group}_regression"
                if size < c.min_group_cases:
                    checks.append(Check(check_name, GateOutcome.NOT_APPLICABLE, subject=name, observed=cand_v,
                                        baseline=base_v, threshold=limit, n=size, needed=c.min_group_cases,
                                        message=f"{size} cases: too few to judge a {limit:g}-point regression"))
                    continue
                drop = round((base_v or 0.0) - (cand_v or 0.0), 2)
                checks.append(Check(check_name, GateOutcome.FAILED if drop > limit else GateOutcome.PASSED,
                                    subject=name, observed=cand_v, baseline=base_v, threshold=limit, n=size,
                                    message=f"{cand_v}% vs {base_v}% ({-drop:+.2f} points)"))
    # 3. Critical scenarios pass; each service meets its minimum on them.
    scored = _record_ids(candidate, scope)
    marked = dict(CriticalScenario.objects.filter(record_id__in=list(scored)).values_list("record_id", "service"))
    if not marked:
        checks.append(Check("critical_scenarios", GateOutcome.NOT_APPLICABLE, n=0,
                            message="no test case of this split is marked critical"))
    else:
        failed = _failed_ids(candidate)
        broken = sorted(r for r in marked if r in failed)
        checks.append(Check("critical_scenarios", GateOutcome.FAILED if broken else GateOutcome.PASSED,
                            observed=float(len(marked) - len(broken)), threshold=float(len(marked)), n=len(marked),
                            failing_cases=broken[:200],
                            message=f"{len(marked) - len(broken)} of {len(marked)} critical scenarios pass"))
        per_service: dict[str, list[str]] = {}
        for record_id, service in marked.items():
            per_service.setdefault(service, []).append(record_id)
        for service in sorted(per_service):
            cases = per_service[service]
            need = float(c.service_min_accuracy.get(service, c.min_accuracy_required))
            passed = sum(1 for r in cases if r not in failed)
            share = passed / len(cases)
            checks.append(Check("service_critical_accuracy", GateOutcome.PASSED if share >= need else
                                GateOutcome.FAILED, subject=service, observed=round(100 * share, 2),
                                threshold=round(100 * need, 2), n=len(cases),
                                failing_cases=sorted(r for r in cases if r in failed)[:200],
                                message=f"{passed}/{len(cases)} critical cases pass ({100 * share:.1f}%; needs "
                                        f"{100 * need:g}%)"))
    # 4. Latency p95 increase.
    cand_p95 = _points((cm.get("latency_ms") or {}).get("p95"))
    base_p95 = _points((bm.get("latency_ms") or {}).get("p95")) if baseline is not None else None
    if cand_p95 is None or base_p95 is None:
        checks.append(Check("latency_p95", GateOutcome.NOT_COMPUTABLE, observed=cand_p95, baseline=base_p95,
                            threshold=c.max_latency_increase_ms, message="latency not measured for both models"))
    else:
        increase = round(cand_p95 - base_p95, 2)
        checks.append(Check("latency_p95", GateOutcome.PASSED if increase <= c.max_latency_increase_ms
                            else GateOutcome.FAILED, observed=cand_p95, baseline=base_p95,
                            threshold=c.max_latency_increase_ms, n=n,
                            message=f"p95 {cand_p95} ms vs {base_p95} ms ({increase:+.1f} ms)"))
    # 5. Error rate and schema-valid output rate.
    max_rate = round(100.0 * c.max_error_rate, 4)
    if n == 0:
        checks.append(Check("error_rate", GateOutcome.NOT_COMPUTABLE, threshold=max_rate, n=0, needed=1,
                            message="no cases were scored"))
    else:
        errors = int(cm.get("parse_errors") or 0)
        rate = round(100.0 * errors / n, 2)
        checks.append(Check("error_rate", GateOutcome.PASSED if rate <= max_rate else GateOutcome.FAILED,
                            observed=rate, threshold=max_rate, n=n,
                            message=f"{errors} of {n} answers could not be parsed ({rate}%)"))
        from ftops.evaluation.models import EvalFailure

        invalid_rows = EvalFailure.objects.filter(run=candidate)
        if scope is not None:
            invalid_rows = invalid_rows.filter(service=scope)
        invalid = list(invalid_rows.values_list("record_id", "error_type"))
        bad = sorted(r for r, e in invalid if e.startswith(SCHEMA_ERROR_PREFIXES))
        rate = round(100.0 * len(bad) / n, 2)
        checks.append(Check("schema_invalid_rate", GateOutcome.PASSED if rate <= max_rate else GateOutcome.FAILED,
                            observed=rate, threshold=max_rate, n=n, failing_cases=bad[:200],
                            message=f"{len(bad)} of {n} answers broke the tool schema ({rate}%)"))
    # 6. Perplexity of the expected answers, where both models expose log-probabilities.
    cand_ppl, base_ppl = _points(cm.get("perplexity")), _points(bm.get("perplexity"))
    if cand_ppl is None or base_ppl is None:
        checks.append(Check("perplexity", GateOutcome.NOT_APPLICABLE, observed=cand_ppl, baseline=base_ppl,
                            message="perplexity needs log-probabilities from both models"))
    else:
        checks.append(Check("perplexity", GateOutcome.PASSED if cand_ppl <= base_ppl else GateOutcome.FAILED,
                            observed=cand_ppl, baseline=base_ppl, threshold=base_ppl,
                            message=f"{cand_ppl:.3f} vs {base_ppl:.3f}"))
    return checks


SERVICE_CHECKS = ("service_regression", "service_critical_accuracy")


def release_decision(checks: list[Check], services: list[str], c: Any) -> tuple[str, list[str], list[str],
                                                                                 dict[str, Any]]:
    """(decision, failing services, passing services, failure pattern)."""
    failing: dict[str, list[Check]] = {}
    for check in checks:
        if check.name in SERVICE_CHECKS and check.blocks:
            failing.setdefault(check.subject, []).append(check)
    names = sorted(set(services) | set(failing))
    failing_names = sorted(failing)
    passing = [s for s in names if s not in failing]
    share = len(failing_names) / len(names) if names else 0.0
    pattern: dict[str, Any] = {
        "failing_share": round(share, 4),
        "services": {s: {"why": "; ".join(f"{c_.name}: {c_.message}" for c_ in failing[s]),
                         "accuracy": next((c_.observed for c_ in failing[s]), None)} for s in failing_names},
    }
    global_blocks = [ch for ch in checks if ch.blocks and ch.name not in SERVICE_CHECKS]
    if share > c.critical_failing_share:
        return ReleaseDecision.BLOCKED_CRITICAL, failing_names, passing, pattern
    if global_blocks:
        pattern["blocking_checks"] = [f"{ch.name} {ch.subject}".strip() for ch in global_blocks]
        return ReleaseDecision.BLOCKED, failing_names, passing, pattern
    if not failing_names:
        return ReleaseDecision.DEPLOY_ALL, [], passing, pattern
    if share < c.partial_max_failing_share:
        return ReleaseDecision.PARTIAL, failing_names, passing, pattern
    return ReleaseDecision.BLOCKED, failing_names, passing, pattern


def _pattern_details(candidate: Any, failing: list[str], pattern: dict[str, Any]) -> dict[str, Any]:
    """What the failing services have in common: error kinds, categories and dimensions."""
    if not failing:
        return pattern
    from ftops.evaluation.models import EvalFailure

    rows = EvalFailure.objects.filter(run=candidate, service__in=failing).values_list("error_type", "category",
                                                                                       "dimension")
    errors: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    dimensions: Counter[str] = Counter()
    for error_type, category, dimension in rows:
        errors[error_type.split(":")[0]] += 1
        categories[category] += 1
        if dimension:
            dimensions[dimension] += 1
    return {**pattern, "error_types": dict(errors.most_common(5)), "categories": dict(categories.most_common(5)),
            "dimensions": dict(dimensions.most_common(5))}


def model_version_gates_compute(*, model_version_id: int, by: Actor | None = None) -> ModelVersion:
    """Compute and store the gates of an evaluated version, then move it to gates_passed or
    gates_blocked (PARTIAL counts as passed: approval is possible, promotion goes per service)."""
    from dataclasses import asdict

    from ftops.evaluation.models import EvalRun
    from registry.services import _lock, model_version_record_gates

    by = by or Actor.system("registry")
    c = criteria()
    with transaction.atomic():
        version = _lock(model_version_id)
        if version.status not in (VersionStatus.EVALUATED, VersionStatus.GATES_PASSED, VersionStatus.GATES_BLOCKED):
            raise Conflict(f"{version.name} is {version.status}; gates are computed for evaluated versions")
        candidate = EvalRun.objects.select_related("suite").filter(pk=version.eval_run_id or 0).first()
        if candidate is None or candidate.status != "succeeded":
            raise ValidationFailed(f"{version.name} has no finished evaluation run")
        baseline = EvalRun.objects.filter(pk=version.baseline_eval_run_id or 0, status="succeeded").first()
        baseline_version = (ModelVersion.objects.filter(pk=baseline.model_version_id).first()
                            if baseline is not None and baseline.model_version_id else None)
        scope = None if version.scope == ENTERPRISE_SCOPE else version.scope
        checks = compute_checks(candidate=candidate, baseline=baseline, c=c, scope=scope)
        services = [scope] if scope else sorted((candidate.metrics or {}).get("by_service") or {})
        decision, failing, passing, pattern = release_decision(checks, services, c)
        pattern = _pattern_details(candidate, failing, pattern)
        judged = [ch for ch in checks if ch.outcome != GateOutcome.NOT_APPLICABLE]
        passed = decision in (ReleaseDecision.DEPLOY_ALL, ReleaseDecision.PARTIAL)
        report = GateReport.objects.create(
            model_version=version, baseline_version=baseline_version,
            baseline_label=(baseline_version.name if baseline_version else
                            f"base model {version.base_model}" if baseline is not None else "none"),
            candidate_run=candidate, baseline_run=baseline, passed=passed,
            checks_passed=sum(1 for ch in judged if not ch.blocks), checks_total=len(judged),
            criteria=asdict(c), decision=decision, failing_services=failing, passing_services=passing,
            failure_pattern=pattern)
        GateCheck.objects.bulk_create([GateCheck(report=report, **asdict(ch)) for ch in checks])
        model_version_record_gates(version=version, report=report, by=by)
    return version
