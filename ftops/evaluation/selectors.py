"""Reads for evaluation: suites, runs, failures and run comparisons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Exists, OuterRef, QuerySet

from ftops.common.errors import NotFound, ValidationFailed
from ftops.datasets.config import ConfigError, load_config
from ftops.evaluation.models import EvalFailure, EvalRun, EvalSuite, RunStatus

GROUP_KEYS = {"category": "by_category", "service": "by_service", "tool": "by_tool", "dimension": "by_dimension"}
CHART_LIMIT = 30  # bars per chart; BFCL suites have thousands of distinct tools

# Display names for stored group names that would otherwise read alike. "multi_step" is both a
# category (``core.scoring.record_category``: every case whose behaviour is a sequence) and a
# split dimension (``datasets.splitting``: sequences over tools seen in training; a sequence
# that calls a zero-shot tool is counted under zero_shot_tool), so the dimension is a subset of
# the category and their counts differ. The stored names stay (filters, API keys, old runs);
# pages and the API's ``label`` fields show these. {group key: {stored name: (label, meaning)}}
GROUP_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "category": {
        "multi_step": ("sequence", "every multi-step sequence case (ordered calls), whatever its split "
                                   "dimension"),
        "multi_turn_base": ("multi_turn_base", "BFCL's multi-turn entries: the model's calls run turn by turn on "
                                               "simulated back-ends, right when each turn leaves their state and "
                                               "results as the ground truth's calls do"),
    },
    "dimension": {
        "multi_step": ("multi-step, seen tools", "multi-step sequences over tools seen in training; a sequence "
                                                 "that calls a zero-shot tool counts under zero_shot_tool"),
        "zero_shot_tool": ("zero_shot_tool", "cases that call a tool held out of training, sequences included"),
    },
}


def group_label(key: str, name: str) -> str:
    """What a page shows for the stored group ``name`` of grouping ``key``."""
    found = GROUP_LABELS.get(key, {}).get(name)
    return found[0] if found else name


def group_meaning(key: str, name: str) -> str:
    """One line on what the group counts; empty where the name says it."""
    found = GROUP_LABELS.get(key, {}).get(name)
    return found[1] if found else ""


def suites_list() -> QuerySet[EvalSuite]:
    return EvalSuite.objects.select_related("dataset_version").order_by("name")


def suite_get(*, ref: int | str) -> EvalSuite:
    """A suite by id or by name."""
    suites = EvalSuite.objects.select_related("dataset_version")
    suite = suites.filter(pk=int(ref)).first() if str(ref).isdigit() else suites.filter(name=str(ref)).first()
    if suite is None:
        raise NotFound(f"evaluation suite {ref!r} does not exist")
    return suite


def runs_list(*, status: str = "", suite_id: int | None = None) -> QuerySet[EvalRun]:
    runs = EvalRun.objects.select_related("suite").order_by("-created_at", "-id")
    if status:
        runs = runs.filter(status=status)
    if suite_id:
        runs = runs.filter(suite_id=suite_id)
    return runs


def run_get(*, run_id: int | str) -> EvalRun:
    try:
        pk = int(run_id)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"run id must be a number, not {run_id!r}", fields={"run": ["a run id"]}) from exc
    run = EvalRun.objects.select_related("suite", "suite__dataset_version").filter(pk=pk).first()
    if run is None:
        raise NotFound(f"evaluation run {pk} does not exist")
    return run


def failures_for(run: EvalRun, *, category: str = "", error_type: str = "", service: str = "", tool: str = "",
                 dimension: str = "") -> QuerySet[EvalFailure]:
    failures = EvalFailure.objects.filter(run=run).order_by("id")
    for name, value in (("category", category), ("error_type", error_type), ("service", service), ("tool", tool),
                        ("dimension", dimension)):
        if value:
            failures = failures.filter(**{name: value})
    return failures


def failure_counts(run: EvalRun) -> list[dict[str, Any]]:
    """``[{"error_type", "n"}]``, most frequent first."""
    rows = EvalFailure.objects.filter(run=run).values("error_type").annotate(n=Count("id")).order_by("-n", "error_type")
    return [dict(row) for row in rows]


def group_labels_of(run: EvalRun) -> dict[str, dict[str, dict[str, str]]]:
    """``{grouping: {stored name: {"label", "meaning"}}}`` for the run's groups listed in GROUP_LABELS."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for key, metric in GROUP_KEYS.items():
        names = (run.metrics or {}).get(metric) or {}
        found = {name: {"label": label, "meaning": meaning}
                 for name, (label, meaning) in GROUP_LABELS.get(key, {}).items() if name in names}
        if found:
            out[key] = found
    return out


def group_rows(run: EvalRun, key: str) -> list[dict[str, Any]]:
    """``[{"name", "n", "exact", "tool", "args", "values"}]`` for one grouping of a run."""
    groups = (run.metrics or {}).get(GROUP_KEYS[key]) or {}
    return [{"name": name, "label": group_label(key, name), "meaning": group_meaning(key, name), **values}
            for name, values in groups.items()]


def target_key(category: str, targets: Mapping[str, float]) -> str | None:
    """The ``evaluation.targets`` entry a run category is judged by: its own name, else its family
    (multi_turn: BFCL's multi-turn categories and our multi-step sequences; relevance: relevance
    detection, irrelevance included; then parallel, multiple, simple). None: no target."""
    if category in targets:
        return category
    name = category.lower()
    if "multi_turn" in name or name == "multi_step":
        family = "multi_turn"
    elif "relevance" in name:
        family = "relevance"
    elif "parallel" in name:
        family = "parallel"
    elif "multiple" in name:
        family = "multiple"
    elif "simple" in name:
        family = "simple"
    else:
        return None
    return family if family in targets else None


def configured_targets() -> dict[str, float]:
    """``evaluation.targets`` (fractions); none when the configuration cannot be read (the pages
    that show targets still render; the configuration's own checks report the error)."""
    try:
        return dict(load_config().evaluation.targets)
    except ConfigError:
        return {}


def category_targets(run: EvalRun, targets: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """``[{"category", "target_key", "target", "exact", "n", "met"}]`` for the run's categories that
    have a target; ``target`` and ``exact`` in percent, ``met`` when exact reaches the target."""
    targets = configured_targets() if targets is None else targets
    rows: list[dict[str, Any]] = []
    for name, values in sorted(((run.metrics or {}).get("by_category") or {}).items()):
        key = target_key(name, targets)
        if key is None:
            continue
        target = round(100.0 * float(targets[key]), 1)
        exact = values.get("exact") if isinstance(values, Mapping) else None
        rows.append({"category": name, "target_key": key, "target": target, "exact": exact,
                     "n": values.get("n") if isinstance(values, Mapping) else None,
                     "met": exact is not None and float(exact) >= target})
    return rows


def chart_data(run: EvalRun, targets: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Bar-chart series per grouping; the weakest groups first when there are too many. The
    category chart carries a ``target`` series (percent, or null where no target applies)."""
    targets = configured_targets() if targets is None else targets
    charts: dict[str, Any] = {}
    for key in GROUP_KEYS:
        rows = group_rows(run, key)
        if len(rows) > CHART_LIMIT:
            rows = sorted(rows, key=lambda r: (r["exact"], -r["n"]))[:CHART_LIMIT]
        if rows:
            charts[key] = {
                "labels": [r["label"] for r in rows],
                "exact": [r["exact"] for r in rows],
                "tool": [r["tool"] for r in rows],
                "args": [r["args"] for r in rows],
                "n": [r["n"] for r in rows],
            }
            if key == "category":
                charts[key].update(target_series([r["name"] for r in rows], targets))
    return charts


def target_series(categories: list[str], targets: Mapping[str, float] | None = None) -> dict[str, Any]:
    """``{"target": [percent or None per category]}`` for a category chart; empty without targets."""
    targets = configured_targets() if targets is None else targets
    keys = [target_key(name, targets) for name in categories]
    if not any(k is not None for k in keys):
        return {}
    return {"target": [round(100.0 * float(targets[k]), 1) if k is not None else None for k in keys]}


@dataclass
class DeltaRow:
    name: str
    base_n: int | None
    base_exact: float | None
    other_n: int | None
    other_exact: float | None
    label: str = ""  # what pages show for ``name`` (``group_label``)

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    @property
    def delta(self) -> float | None:
        if self.base_exact is None or self.other_exact is None:
            return None
        return round(self.other_exact - self.base_exact, 2)


@dataclass
class RunComparison:
    base: EvalRun
    other: EvalRun
    groups: dict[str, list[DeltaRow]] = field(default_factory=dict)
    comparable_cases: bool = False  # same suite and case selection: per-case flips are meaningful
    fixed: list[str] = field(default_factory=list)  # failed in base, right in other
    regressed: list[str] = field(default_factory=list)  # right in base, failed in other

    @property
    def delta(self) -> float | None:
        if self.base.exact is None or self.other.exact is None:
            return None
        return round(self.other.exact - self.base.exact, 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.pk, "other": self.other.pk,
            "base_exact": self.base.exact, "other_exact": self.other.exact, "delta": self.delta,
            "groups": {key: [{"name": r.name, "label": r.label, "base_n": r.base_n, "base_exact": r.base_exact,
                              "other_n": r.other_n, "other_exact": r.other_exact, "delta": r.delta} for r in rows]
                       for key, rows in self.groups.items()},
            "comparable_cases": self.comparable_cases, "fixed": self.fixed, "regressed": self.regressed,
        }


def cases_fixed(*, base: EvalRun, other: EvalRun) -> QuerySet[EvalFailure]:
    """Base's failures that ``other`` got right (an anti-join on the (run, record_id) index), by case id."""
    return (EvalFailure.objects.filter(run=base)
            .filter(~Exists(EvalFailure.objects.filter(run=other, record_id=OuterRef("record_id"))))
            .order_by("record_id"))


def cases_regressed(*, base: EvalRun, other: EvalRun) -> QuerySet[EvalFailure]:
    """Other's failures on cases that ``base`` got right, by case id."""
    return cases_fixed(base=other, other=base)


def runs_compare(*, base: EvalRun, other: EvalRun, case_lists: bool = True) -> RunComparison:
    """Per-group accuracy deltas (other - base) and, on the same cases, which cases flipped.

    ``case_lists=False`` leaves ``fixed``/``regressed`` empty for callers that page through
    ``cases_fixed``/``cases_regressed`` instead of holding every id in memory.
    """
    for run, label in ((base, "base"), (other, "other")):
        if run.status != RunStatus.SUCCEEDED:
            raise ValidationFailed(f"run {run.pk} has status {run.status}; only finished runs can be compared",
                                   fields={label: ["choose a succeeded run"]})
    comparison = RunComparison(base=base, other=other)
    for key, metric in GROUP_KEYS.items():
        a = (base.metrics or {}).get(metric) or {}
        b = (other.metrics or {}).get(metric) or {}
        rows = [DeltaRow(name, a.get(name, {}).get("n"), a.get(name, {}).get("exact"), b.get(name, {}).get("n"),
                         b.get(name, {}).get("exact"), label=group_label(key, name))
                for name in sorted(set(a) | set(b))]
        if rows:
            comparison.groups[key] = rows
    comparison.comparable_cases = (
        base.suite_id == other.suite_id and base.case_limit == other.case_limit
        and sorted(base.category_filter or []) == sorted(other.category_filter or [])
    )
    if comparison.comparable_cases and case_lists:
        failed_base = set(EvalFailure.objects.filter(run=base).values_list("record_id", flat=True))
        failed_other = set(EvalFailure.objects.filter(run=other).values_list("record_id", flat=True))
        comparison.fixed = sorted(failed_base - failed_other)
        comparison.regressed = sorted(failed_other - failed_base)
    return comparison
