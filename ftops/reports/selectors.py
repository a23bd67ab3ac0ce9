"""What the alerts and reports say: the review digest and the monthly production-vs-offline report.

The monthly report puts two numbers of the same model version side by side:

- production, from live traffic (interactions the gateway or the ingest API logged with that
  ``model_version`` while the version held production for the scope, within the month): calls
  whose arguments validate against the tool's schema (``schema-valid``, of the turns that made
  a call) and interactions marked as failures (``failure rate``, of all of them), by service and
  by tool (the tool of the model's first call; ``(no call)`` when it made none);
- offline, from the registry: the exact-match accuracy the version scored on its test split
  (``eval_results``), overall, by service and by tool.

``gap`` is production success (100 - failure rate) minus offline exact match, in points: a
large negative gap means the test split flatters the model (traffic it never saw, drift).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Q

from ftops.interactions.models import CallVerdict, Interaction
from registry.models import ENTERPRISE_SCOPE, Deployment, DeploymentState
from review.selectors import open_items_by_service_and_kind

NO_CALL = "(no call)"
GAP_WARN = -10.0  # points: production this far below the test split is called out


# --------------------------------------------------------------------------- digest


@dataclass
class Digest:
    day: date
    total: int
    groups: list[dict[str, Any]]  # {service, failure_kind, n, oldest}
    by_service: dict[str, int]
    stale: int  # items older than the stale threshold
    stale_hours: int

    @property
    def subject(self) -> str:
        return f"Review digest {self.day:%Y-%m-%d}: {self.total} item(s) waiting"

    def text(self, *, now: datetime) -> str:
        if not self.total:
            return "The review queue is empty."
        lines = [f"{self.total} failure(s) wait for review in {len(self.by_service)} service(s)."]
        if self.stale:
            lines.append(f"{self.stale} of them have waited more than {self.stale_hours} h.")
        lines += ["", "By service and failure kind:"]
        width = max(len(g["service"]) for g in self.groups)
        kind_width = max(len(g["failure_kind"]) for g in self.groups)
        for g in self.groups:
            age = _age(now - g["oldest"]) if g["oldest"] else "?"
            lines.append(f"  {g['service']:<{width}}  {g['failure_kind']:<{kind_width}}  {g['n']:>5}  "
                         f"(oldest {age})")
        lines += ["", "Totals by service: " + ", ".join(f"{s} {n}" for s, n in self.by_service.items()),
                  "", "Open the queue: /review/"]
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        return {"kind": "daily_digest", "day": self.day.isoformat(), "total": self.total, "stale": self.stale,
                "by_service": self.by_service,
                "groups": [{"service": g["service"], "failure_kind": g["failure_kind"], "n": g["n"]}
                           for g in self.groups]}


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours >= 48:
        return f"{hours // 24} days"
    return f"{hours} h" if hours >= 1 else f"{int(delta.total_seconds() // 60)} min"


def digest_build(*, now: datetime, stale_hours: int) -> Digest:
    groups = open_items_by_service_and_kind(now=now)
    by_service: dict[str, int] = {}
    for g in groups:
        by_service[g["service"]] = by_service.get(g["service"], 0) + g["n"]
    by_service = dict(sorted(by_service.items(), key=lambda kv: (-kv[1], kv[0])))
    stale = sum(g["n"] for g in open_items_by_service_and_kind(now=now, older_than=now - timedelta(hours=stale_hours)))
    return Digest(day=now.date(), total=sum(by_service.values()), groups=groups, by_service=by_service, stale=stale,
                  stale_hours=stale_hours)


def stale_groups(*, now: datetime, stale_hours: int) -> list[dict[str, Any]]:
    return open_items_by_service_and_kind(now=now, older_than=now - timedelta(hours=stale_hours))


# --------------------------------------------------------------------------- monthly report


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in UTC."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def month_parse(text: str) -> date:
    """``2026-11`` -> date(2026, 11, 1); ValueError with the reason otherwise."""
    try:
        parsed = datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise ValueError(f"month {text!r} is not YYYY-MM (e.g. 2026-11)") from None
    if (parsed.year, parsed.month) == (9999, 12):  # its end, January 10000, is past the calendar
        raise ValueError(f"month {text!r} is past the last month there is (9999-11)")
    return date(parsed.year, parsed.month, 1)


def previous_month(day: date) -> date:
    first = date(day.year, day.month, 1)
    last = first - timedelta(days=1)
    return date(last.year, last.month, 1)


@dataclass
class Row:
    name: str
    n: int = 0
    calls: int = 0
    valid: int = 0
    failures: int = 0
    offline_exact: float | None = None
    offline_n: int | None = None

    @property
    def schema_valid_pct(self) -> float | None:
        return round(100.0 * self.valid / self.calls, 1) if self.calls else None

    @property
    def failure_pct(self) -> float | None:
        return round(100.0 * self.failures / self.n, 1) if self.n else None

    @property
    def gap(self) -> float | None:
        if self.failure_pct is None or self.offline_exact is None:
            return None
        return round((100.0 - self.failure_pct) - self.offline_exact, 1)

    @property
    def warn(self) -> bool:
        return self.gap is not None and self.gap <= GAP_WARN

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "schema_valid_pct": self.schema_valid_pct,
                "failure_pct": self.failure_pct, "offline_exact": self.offline_exact, "offline_n": self.offline_n,
                "gap": self.gap}


@dataclass
class VersionReport:
    version: str
    version_id: int
    scopes: list[str]
    test_suite: str
    overall: Row
    services: list[Row] = field(default_factory=list)
    tools: list[Row] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "scopes": self.scopes, "test_suite": self.test_suite,
                "overall": self.overall.as_dict(), "by_service": [r.as_dict() for r in self.services],
                "by_tool": [r.as_dict() for r in self.tools]}


@dataclass
class MonthlyReport:
    month: date
    versions: list[VersionReport]
    unattributed: int  # interactions of the month served by no production version (canaries, other labels)

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"

    @property
    def subject(self) -> str:
        return f"Monthly report {self.label}: production vs offline accuracy"

    def text(self) -> str:
        if not self.versions:
            return f"No model version served production in {self.label}."
        lines = [f"Production (live traffic) against offline test accuracy, {self.label}.",
                 "schema-valid: calls whose arguments fit the tool's schema; failures: interactions marked failed;",
                 "offline: exact match on the version's test split; gap: (100 - failures) - offline, in points.", ""]
        for v in self.versions:
            o = v.overall
            lines.append(f"{v.version} ({', '.join(v.scopes)}; test suite {v.test_suite or 'none'}): "
                         f"{o.n} interactions, schema-valid {_pct(o.schema_valid_pct)}, failures "
                         f"{_pct(o.failure_pct)}, offline {_pct(o.offline_exact)}, gap {_pts(o.gap)}")
            for title, rows in (("service", v.services), ("tool", v.tools)):
                for r in rows:
                    flag = "  <- below the test split" if r.warn else ""
                    lines.append(f"  {title} {r.name}: {r.n} interactions, schema-valid {_pct(r.schema_valid_pct)}, "
                                 f"failures {_pct(r.failure_pct)}, offline {_pct(r.offline_exact)}, "
                                 f"gap {_pts(r.gap)}{flag}")
            lines.append("")
        if self.unattributed:
            lines.append(f"{self.unattributed} interaction(s) of the month came from no production version "
                         "(canaries, shadows, other models) and are left out.")
        lines.append(f"The page: /reports/monthly/?month={self.label}")
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        return {"kind": "monthly_report", "month": self.label, "unattributed": self.unattributed,
                "versions": [v.as_dict() for v in self.versions]}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _pts(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} pts"


def _offline(results: dict[str, Any], group: str, *names: str) -> tuple[float | None, int | None]:
    rows = results.get(group) or {}
    for name in names:
        row = rows.get(name)
        if isinstance(row, dict) and isinstance(row.get("exact"), int | float):
            return float(row["exact"]), int(row.get("n") or 0)
    return None, None


def monthly_report_build(*, month: date) -> MonthlyReport:
    """The report for ``month``: every version that held production for some scope during it.

    Reads the month's attributed interactions in one query, whatever the number of versions (one
    grouped pass in Python: the tool is inside the ``tool_calls`` JSON, which no portable SQL
    groups on), with only the columns it needs; a row goes to the version whose name it carries.
    """
    start, end = month_bounds(month)
    deployments = (Deployment.objects
                   .filter(state__in=[DeploymentState.PRODUCTION, DeploymentState.RETIRED], created_at__lt=end)
                   .filter(Q(ended_at__isnull=True) | Q(ended_at__gte=start))
                   .select_related("model_version").order_by("model_version__name", "scope", "created_at"))
    windows: dict[int, list[Deployment]] = {}
    for d in deployments:
        windows.setdefault(d.model_version_id, []).append(d)
    attributed = Q(pk__in=[])
    for deps in windows.values():
        version = deps[0].model_version
        for d in deps:  # every window names the version: a row it matches carries that version's name
            window = Q(model_version=version.name, timestamp__gte=max(start, d.created_at),
                       timestamp__lt=min(end, d.ended_at) if d.ended_at else end)
            if d.scope != ENTERPRISE_SCOPE:
                window &= Q(service__name=d.scope)
            attributed |= window
    tallies: dict[str, tuple[Row, dict[str, Row], dict[tuple[str, str], Row]]] = {
        deps[0].model_version.name: (Row(name="overall"), {}, {}) for deps in windows.values()}
    rows = (Interaction.objects.filter(attributed).order_by()
            .values_list("model_version", "service__name", "tool_calls", "call_verdict", "is_failure"))
    for label, service, calls, verdict, failed in rows.iterator(chunk_size=5000) if windows else ():
        overall, services, tools = tallies[label]
        tool = _first_tool(calls)
        for row in (overall, services.setdefault(service, Row(name=service)),
                    tools.setdefault((service, tool), Row(name=f"{service}.{tool}"))):
            row.n += 1
            row.failures += int(bool(failed))
            if verdict in (CallVerdict.VALID, CallVerdict.INVALID):
                row.calls += 1
                row.valid += int(verdict == CallVerdict.VALID)
    versions: list[VersionReport] = []
    for deps in windows.values():
        version = deps[0].model_version
        overall, services, tools = tallies[version.name]
        results = version.eval_results or {}
        overall.offline_exact, overall.offline_n = _offline({"o": {"overall": results.get("overall") or {}}},
                                                            "o", "overall")
        for name, row in services.items():
            row.offline_exact, row.offline_n = _offline(results, "by_service", name)
        for (service, tool), row in tools.items():
            row.offline_exact, row.offline_n = _offline(results, "by_tool", f"{service}.{tool}", tool)
        versions.append(VersionReport(
            version=version.name, version_id=version.pk, scopes=sorted({d.scope for d in deps}),
            test_suite=str(results.get("test_suite") or ""), overall=overall,
            services=sorted(services.values(), key=lambda r: r.name),
            tools=sorted(tools.values(), key=lambda r: r.name)))
    unattributed = Interaction.objects.filter(timestamp__gte=start, timestamp__lt=end).exclude(attributed).count()
    return MonthlyReport(month=month, versions=versions, unattributed=unattributed)


def _first_tool(calls: Any) -> str:
    if isinstance(calls, list) and calls and isinstance(calls[0], dict):
        name = calls[0].get("name") or (calls[0].get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return name
    return NO_CALL
