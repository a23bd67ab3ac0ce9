"""Reads the registry's HTML pages need beyond ``registry.selectors``: sparklines, the
candidate-vs-production comparison, the gate checklist with links, and the timeline.

Everything here is read-only and shaped for templates (plain dicts and lists), so the views
stay access check -> selector -> render.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from registry.models import (
    ENTERPRISE_SCOPE,
    Deployment,
    DeploymentState,
    GateCheck,
    GateOutcome,
    GateReport,
    ModelVersion,
    VersionStatus,
)

SPARK_POINTS = 12
GROUPS = (("category", "by_category"), ("service", "by_service"), ("tool", "by_tool"))
CHART_LIMIT = 30  # bars per chart
TABLE_LIMIT = 100  # rows per table: imported suites have thousands of tools; the biggest changes come first
# Gate checks whose failing cases are read from the candidate run's failures, filtered by the subject.
FAILURE_FILTER = {"category_regression": "category", "service_regression": "service", "tool_regression": "tool",
                  "service_critical_accuracy": "service"}
CHECK_LABELS = {
    "overall_improvement": "Overall exact-match improvement",
    "category_regression": "No category regresses",
    "service_regression": "No service regresses",
    "tool_regression": "No tool regresses",
    "critical_scenarios": "Every critical scenario passes",
    "service_critical_accuracy": "Service minimum on its critical scenarios",
    "latency_p95": "Latency p95 increase",
    "error_rate": "Error rate (unparseable answers)",
    "schema_invalid_rate": "Schema-valid output rate",
    "perplexity": "No perplexity regression",
}


def _exact(results: dict[str, Any] | None) -> float | None:
    value = ((results or {}).get("overall") or {}).get("exact")
    return float(value) if isinstance(value, int | float) else None


def sparklines(versions: list[ModelVersion]) -> dict[int, list[float]]:
    """{version id: overall exact of its family's evaluated versions up to and including it}.

    One query for every family on the page; versions never evaluated leave no point, so a
    line shows how accuracy moved release after release.
    """
    families = {v.family for v in versions}
    history: dict[str, list[tuple[int, float]]] = defaultdict(list)
    rows = (ModelVersion.objects.filter(family__in=families).order_by("created_at", "id")
            .values_list("id", "family", "eval_results"))
    order: dict[int, int] = {}
    for position, (pk, family, results) in enumerate(rows):
        order[pk] = position
        exact = _exact(results)
        if exact is not None:
            history[family].append((position, exact))
    out: dict[int, list[float]] = {}
    for version in versions:
        upto = order.get(version.pk, -1)
        out[version.pk] = [exact for position, exact in history[version.family] if position <= upto][-SPARK_POINTS:]
    return out


def sparkline_chart(points: list[float]) -> dict[str, Any]:
    """A Chart.js config for a tiny line without axes (drawn by static/js/charts.js)."""
    return {
        "type": "line",
        "data": {"labels": list(range(1, len(points) + 1)),
                 "datasets": [{"label": "exact match %", "data": points, "borderColor": "#2957d8",
                               "borderWidth": 2, "pointRadius": 2, "fill": False}]},
        "options": {"plugins": {"legend": {"display": False}, "tooltip": {"enabled": True}},
                    "scales": {"x": {"display": False}, "y": {"display": False, "min": 0, "max": 100}}},
    }


@dataclass
class Comparison:
    """The candidate's numbers next to what it is compared with (production or the base model)."""

    baseline_label: str
    baseline_version: ModelVersion | None
    overall: dict[str, Any]
    # [{"group": "category", "rows": [...], "total": rows before TABLE_LIMIT}, ...]
    tables: list[dict[str, Any]] = field(default_factory=list)
    charts: dict[str, Any] = field(default_factory=dict)


def _baseline_metrics(version: ModelVersion, report: GateReport | None) -> tuple[str, ModelVersion | None,
                                                                                 dict[str, Any]]:
    """What the version is compared with: the gate report's baseline run when gates ran, else
    the baseline evaluation run the registry started, else production's written-back results."""
    run = (report.baseline_run if report is not None and report.baseline_run_id else None) or \
        version.baseline_eval_run
    baseline_version = report.baseline_version if report is not None else None
    if run is not None and run.metrics:
        label = report.baseline_label if report is not None and report.baseline_label else (
            run.model_label or run.name or f"run #{run.pk}")
        return label, baseline_version, dict(run.metrics)
    production = (Deployment.objects.filter(scope__in=[version.scope, ENTERPRISE_SCOPE],
                                            state=DeploymentState.PRODUCTION)
                  .exclude(model_version=version).select_related("model_version").order_by("-created_at").first())
    if production is not None:
        return production.model_version.name, production.model_version, dict(production.model_version.eval_results
                                                                               or {})
    return "no baseline yet", None, {}


def _bar_chart(rows: list[dict[str, Any]], candidate_label: str, baseline_label: str) -> dict[str, Any]:
    shown = rows[:CHART_LIMIT]
    return {
        "type": "bar",
        "data": {"labels": [r["name"] for r in shown],
                 "datasets": [{"label": baseline_label[:60], "data": [r["baseline"] for r in shown],
                               "backgroundColor": "#9aa3b2"},
                              {"label": candidate_label[:60], "data": [r["candidate"] for r in shown],
                               "backgroundColor": "#2957d8"}]},
        "options": {"scales": {"y": {"min": 0, "max": 100, "title": {"display": True, "text": "exact match %"}}}},
    }


def version_comparison(*, version: ModelVersion, report: GateReport | None) -> Comparison:
    """Exact match by category, service and tool, candidate and baseline side by side.

    Rows are sorted by the change, regressions first, so the table opens on what an approver
    must look at; the charts show at most ``CHART_LIMIT`` rows each.
    """
    label, baseline_version, base = _baseline_metrics(version, report)
    cand = version.eval_results or {}
    if not cand and version.eval_run is not None and version.eval_run.metrics:
        cand = dict(version.eval_run.metrics)
    overall = {"candidate": _exact(cand), "baseline": _exact(base),
               "n": ((cand.get("overall") or {}).get("n"))}
    if overall["candidate"] is not None and overall["baseline"] is not None:
        overall["delta"] = round(overall["candidate"] - overall["baseline"], 2)
    comparison = Comparison(baseline_label=label, baseline_version=baseline_version, overall=overall)
    for group, key in GROUPS:
        cand_rows, base_rows = cand.get(key) or {}, base.get(key) or {}
        rows = []
        for name in sorted(set(cand_rows) | set(base_rows)):
            c_row, b_row = cand_rows.get(name) or {}, base_rows.get(name) or {}
            c_val = c_row.get("exact") if isinstance(c_row.get("exact"), int | float) else None
            b_val = b_row.get("exact") if isinstance(b_row.get("exact"), int | float) else None
            delta = round(c_val - b_val, 2) if c_val is not None and b_val is not None else None
            rows.append({"name": name, "candidate": c_val, "baseline": b_val, "delta": delta,
                         "n": c_row.get("n") or b_row.get("n") or 0})
        rows.sort(key=lambda r: (r["delta"] if r["delta"] is not None else 0.0, r["name"]))
        if rows:
            comparison.tables.append({"group": group, "rows": rows[:TABLE_LIMIT], "total": len(rows)})
            comparison.charts[group] = _bar_chart(rows, version.name, label)
    return comparison


@dataclass
class CheckRow:
    check: GateCheck
    label: str
    passed: bool
    blocks: bool
    failing_links: list[dict[str, Any]] = field(default_factory=list)
    failures_url_query: str = ""


def gate_rows(*, report: GateReport | None) -> list[CheckRow]:
    """The checklist: each check with green/red, its numbers, and where its failing cases are.

    Dataset suites score training examples, so a failing record id that is a number links to
    the example; checks about one category, service or tool link to the candidate run's
    failures filtered by it.
    """
    if report is None:
        return []
    from urllib.parse import urlencode

    dataset_suite = report.candidate_run is not None and report.candidate_run.suite.kind == "dataset"
    rows = []
    for check in report.checks.all():
        row = CheckRow(check=check, label=CHECK_LABELS.get(check.name, check.name.replace("_", " ")),
                       passed=check.outcome == GateOutcome.PASSED, blocks=check.blocks)
        for record_id in (check.failing_cases or [])[:50]:
            row.failing_links.append({"record_id": record_id,
                                      "example_id": int(record_id) if dataset_suite and str(record_id).isdigit()
                                      else None})
        facet = FAILURE_FILTER.get(check.name)
        if check.blocks and facet and check.subject:
            row.failures_url_query = urlencode({facet: check.subject})
        rows.append(row)
    return rows


# Per-group numbers of ``eval_results``: the comparison tables show them (a BFCL suite has
# thousands of tools), so the JSON view of the results leaves them out.
GROUPED_RESULTS = ("by_category", "by_service", "by_tool", "by_dimension")


@dataclass
class ConfigSection:
    """One stored JSON value of a version, with its predecessor's for the side-by-side diff."""

    key: str
    title: str
    value: Any
    previous: Any = None
    has_previous: bool = False

    @property
    def changed(self) -> bool:
        return self.has_previous and self.previous != self.value


def version_config(*, version: ModelVersion) -> list[ConfigSection]:
    """What the version serves with, which tool schemas it learned and its evaluation summary,
    each as stored JSON; the first two beside the predecessor's (no query: the predecessor is
    read with the version)."""
    previous = version.predecessor if version.predecessor_id else None
    results = {k: v for k, v in (version.eval_results or {}).items() if k not in GROUPED_RESULTS}
    sections = [
        ConfigSection("serving", "Serving configuration", version.serving or {}),
        ConfigSection("tool_manifest", "Tool schemas it was trained on", version.tool_manifest or {}),
    ]
    if previous is not None:
        sections[0].previous, sections[0].has_previous = previous.serving or {}, True
        sections[1].previous, sections[1].has_previous = previous.tool_manifest or {}, True
    if results:
        sections.append(ConfigSection("eval_results", "Evaluation results (summary)", results))
    return sections


def version_timeline(*, version: ModelVersion) -> list[dict[str, Any]]:
    """Events and deployments of a version in time order (the deployment timeline)."""
    items: list[dict[str, Any]] = [
        {"at": e.at, "kind": e.kind, "from": e.from_status, "to": e.to_status, "scope": e.scope,
         "reason": e.reason, "actor": e.actor}
        for e in version.events.order_by("at", "id")
    ]
    return items


def version_deployments(*, version: ModelVersion) -> QuerySet[Deployment]:
    return (Deployment.objects.filter(model_version=version)
            .select_related("previous", "previous__model_version").order_by("-created_at", "-id"))


def scope_history(*, scope: str, limit: int = 20) -> QuerySet[Deployment]:
    """Every deployment of one scope, newest first: what served it and when."""
    return (Deployment.objects.filter(scope=scope).select_related("model_version")
            .order_by("-created_at", "-id")[:limit])


def production_rows() -> list[dict[str, Any]]:
    """What is in production per scope, with the deployment a rollback would restore."""
    rows = []
    for d in (Deployment.objects.filter(state=DeploymentState.PRODUCTION)
              .select_related("model_version", "previous", "previous__model_version").order_by("scope")):
        rows.append({"scope": d.scope, "version": d.model_version, "since": d.created_at,
                     "previous": d.previous.model_version if d.previous_id and d.previous else None})
    return rows


def awaiting_count() -> int:
    return ModelVersion.objects.filter(status__in=(VersionStatus.GATES_PASSED, VersionStatus.GATES_BLOCKED)).count()


def scopes_in_use() -> list[str]:
    return sorted(set(ModelVersion.objects.values_list("scope", flat=True).distinct()))


def versions_for_run_page(*, training_run_id: int) -> ModelVersion | None:
    return (ModelVersion.objects.select_related("eval_run", "baseline_eval_run")
            .filter(training_run_id=training_run_id).first())
