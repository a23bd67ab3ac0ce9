"""Reads for the review pages and API: the queue with its counts, one item in full, statistics.

Every page reads a fixed number of queries whatever the page size (the tests assert it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Max, Min, Q, QuerySet
from django.utils import timezone

from ftops.catalog.models import SchemaChange, Service, Tool, ToolSchemaVersion
from ftops.common.actors import Actor
from ftops.common.errors import Forbidden, NotFound
from ftops.core.toolcalls import parse_tool_call
from ftops.interactions.models import Interaction
from review.diagnosis import Diagnosis, SuggestedFix, chain_renames, diagnose_calls, suggest_fix
from review.forms import NO_TOOL, ToolInfo
from review.models import ReviewAction, ReviewEvent, ReviewItem, ReviewStatus, ReviewSubmission, open_q
from review.schema_form import as_dict


def _status_q(status: str, actor: Actor | None, now: datetime) -> Q:
    if status == "open":
        return open_q(now)
    if status == "mine":
        return Q(status=ReviewStatus.CLAIMED, holder=actor.label if actor else "", lease_expires_at__gte=now)
    if status == "claimed":
        return Q(status=ReviewStatus.CLAIMED, lease_expires_at__gte=now)
    if status in ReviewStatus.values:
        return Q(status=status)
    return Q()


def review_queue(
    *,
    status: str = "open",
    service: str = "",
    tool: str = "",
    kind: str = "",
    q: str = "",
    actor: Actor | None = None,
    now: datetime | None = None,
) -> QuerySet[ReviewItem]:
    """Items matching the queue's filters, newest interaction first."""
    now = now or timezone.now()
    qs = ReviewItem.objects.select_related("service").filter(_status_q(status, actor, now))
    if service:
        qs = qs.filter(service__name=service)
    if tool:
        # Calls that name no tool are stored with an empty name; the filter spells them NO_TOOL.
        qs = qs.filter(tool_name="" if tool == NO_TOOL else tool)
    if kind:
        qs = qs.filter(failure_kind=kind)
    if q:
        qs = qs.filter(_search_q(q))
    return qs.order_by("-occurred_at", "-id")


def _search_q(q: str) -> Q:
    return Q(user_query__icontains=q) | Q(tool_name__icontains=q)


@dataclass
class Facets:
    services: list[tuple[str, int]] = field(default_factory=list)
    tools: list[tuple[str, int]] = field(default_factory=list)
    kinds: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class QueueSummary:
    counts: dict[str, int]  # open, claimed, mine, corrected, rejected, skipped, all
    facets: Facets  # by service, tool and failure kind among the items of the status filter
    total: int  # items matching all filters and the search


def _share(status_filter: str, status: str, n: int, expired: int) -> int:
    """How many of a group's ``n`` items (``expired`` of them claimed past their lease) a status filter shows."""
    if status_filter == "open":
        if status in (ReviewStatus.PENDING, ReviewStatus.SKIPPED):
            return n
        return expired if status == ReviewStatus.CLAIMED else 0
    if status_filter == "claimed":
        return n - expired if status == ReviewStatus.CLAIMED else 0
    if status_filter == "all":
        return n
    return n if status == status_filter else 0


def queue_summary(*, filters: dict[str, Any], actor: Actor | None = None,
                  now: datetime | None = None) -> QueueSummary:
    """Status counts, facets and the filtered total from one grouped pass over the queue.

    Every number follows the active filters and search, so a tab or an option says how many
    rows it would list: a status tab counts the items matching service, tool, kind and search;
    each dropdown counts its options under the status and the *other* dropdowns (so a reviewer
    can still see what switching service would give).

    The grouped rows (status x service x tool x kind: hundreds, not the 100,000 items) come
    from the ``ix_review_summary`` covering index (a search narrows them first); "claimed by
    me" adds one grouped, indexed query.
    """
    now = now or timezone.now()
    search = filters.get("q") or ""
    base = ReviewItem.objects.all()
    if search:
        base = base.filter(_search_q(search))
    rows = list(
        base.values_list("status", "service_id", "tool_name", "failure_kind")
        .annotate(n=Count("*"), expired=Count("lease_expires_at", filter=Q(lease_expires_at__lt=now))).order_by()
    )
    names = dict(Service.objects.filter(pk__in={r[1] for r in rows}).values_list("pk", "name")) if rows else {}
    label = actor.label if actor else ""
    mine_rows: list[tuple[int, str, str, int]] = []
    if label:
        mine_rows = list(
            base.filter(_status_q("mine", actor, now))
            .values_list("service_id", "tool_name", "failure_kind").annotate(n=Count("*")).order_by()
        )
    want_service = filters.get("service") or ""
    want_tool = filters.get("tool") or ""
    want_kind = filters.get("kind") or ""

    def matches(service_name: str, tool: str, kind: str, *, ignore: str = "") -> bool:
        return ((ignore == "service" or not want_service or want_service == service_name)
                and (ignore == "tool" or not want_tool or (NO_TOOL if tool == "" else tool) == want_tool)
                and (ignore == "kind" or not want_kind or want_kind == kind))

    def name_of(service_id: int) -> str:
        return names.get(service_id, str(service_id))

    counts = {key: sum(_share(key, r[0], r[4], r[5]) for r in rows if matches(name_of(r[1]), r[2], r[3]))
              for key in ("open", "claimed", "corrected", "rejected", "skipped", "all")}
    counts["mine"] = sum(r[3] for r in mine_rows if matches(name_of(r[0]), r[1], r[2]))
    status = filters.get("status") or "open"
    grouped = mine_rows if status == "mine" else [
        (r[1], r[2], r[3], _share(status, r[0], r[4], r[5])) for r in rows]
    by_service: dict[str, int] = defaultdict(int)
    by_tool: dict[str, int] = defaultdict(int)
    by_kind: dict[str, int] = defaultdict(int)
    total = 0
    for service_id, tool, kind, n in grouped:
        if not n:
            continue
        service_name = name_of(service_id)
        if matches(service_name, tool, kind, ignore="service"):
            by_service[service_name] += n
        if matches(service_name, tool, kind, ignore="tool"):
            by_tool[tool] += n
        if matches(service_name, tool, kind, ignore="kind"):
            by_kind[kind] += n
        if matches(service_name, tool, kind):
            total += n
    # The chosen option stays in its dropdown (with 0) so the form still shows what is filtered on.
    if want_service:
        by_service.setdefault(want_service, 0)
    if want_tool:
        by_tool.setdefault("" if want_tool == NO_TOOL else want_tool, 0)
    if want_kind:
        by_kind.setdefault(want_kind, 0)

    def ranked(values: dict[str, int]) -> list[tuple[str, int]]:
        return sorted(values.items(), key=lambda p: (-p[1], p[0]))

    return QueueSummary(
        counts=counts,
        facets=Facets(services=ranked(by_service), tools=ranked(by_tool), kinds=ranked(by_kind)),
        total=total,
    )


def review_item_get(*, item_id: int) -> ReviewItem:
    item = (
        ReviewItem.objects.select_related("interaction", "service", "example", "claimed_by")
        .filter(pk=item_id).first()
    )
    if item is None:
        raise NotFound(f"review item {item_id} does not exist")
    return item


def review_item_id_for_interaction(*, interaction_id: int) -> int:
    """The id of an interaction's review item; NotFound when it is not (or not yet) queued."""
    item_id = ReviewItem.objects.filter(interaction_id=interaction_id).values_list("pk", flat=True).first()
    if item_id is None:
        raise NotFound(
            f"interaction {interaction_id} has no review item: it is not a failure, or it has not been queued "
            "yet (the periodic sweep queues any failure that missed the queue at ingest)"
        )
    return item_id


def review_item_for_decision(*, item_id: int, actor: Actor) -> ReviewItem:
    """The item, if this actor may decide on it now (holds it or it is open); else Forbidden.

    Object-level check shared by the HTML views and the API before any form is processed.
    """
    item = review_item_get(item_id=item_id)
    if item.first_reviewer == actor.label and item.status != ReviewStatus.CORRECTED:
        raise Forbidden("you gave the first of two reviews of this item; a different reviewer gives the second")
    return item


def service_tools(*, service: Service, offered: list[dict[str, Any]] | None = None) -> dict[str, ToolInfo]:
    """The tools a correction may use: the service's catalogued tools at their current schema."""
    offered_names = set()
    for tool in offered or []:
        fn = tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
        if isinstance(fn, dict) and fn.get("name"):
            offered_names.add(str(fn["name"]))
    tools = Tool.objects.filter(service=service, current_version__isnull=False).select_related("current_version")
    out: dict[str, ToolInfo] = {}
    for t in tools:
        version = t.current_version
        if version is None:
            continue
        out[t.name] = ToolInfo(name=t.name, description=version.description or t.description,
                               schema=version.parameters if isinstance(version.parameters, dict) else {},
                               offered=t.name in offered_names)
    return out


@dataclass
class OfferedTool:
    name: str
    description: str
    schema: dict[str, Any]
    in_catalog: bool


@dataclass
class ItemView:
    item: ReviewItem
    conversation: list[dict[str, Any]]
    offered: list[OfferedTool]
    model_calls: list[dict[str, Any]]
    diagnosis: Diagnosis
    expected_calls: list[dict[str, Any]]
    expected_behavior: str
    expected_tool: str
    tool_results: list[dict[str, Any]]
    tools: dict[str, ToolInfo]
    submissions: list[ReviewSubmission]
    newer_id: int | None = None
    older_id: int | None = None
    suggested: SuggestedFix | None = None


DEMO_SOURCE_PREFIX = "sample:"


def is_demo_service(source: str | None) -> bool:
    """Services of the demo enterprise (``manage.py`` sample data) carry a ``sample:`` source."""
    return str(source or "").startswith(DEMO_SOURCE_PREFIX)


def demo_expectation(*, source: str | None, metadata: Any) -> dict[str, Any]:
    """The simulated expected answer (``metadata.simulated``) of a demo interaction, else ``{}``.

    It is sample-data scaffolding written by the demo's traffic simulator. Real clients may send
    any metadata, so for a service that is not the demo enterprise's it is ignored: it must not
    steer the diagnosis, the highlighted arguments or a suggested fix.
    """
    if not is_demo_service(source) or not isinstance(metadata, dict):
        return {}
    simulated = metadata.get("simulated")
    return simulated if isinstance(simulated, dict) else {}


def _normalise_call(call: Any) -> dict[str, Any]:
    """The stored call; one that names no tool shows as a nameless call rather than vanishing."""
    parsed = parse_tool_call(call)
    return parsed.as_dict() if parsed is not None else {"name": "", "arguments": {}}


def item_view(*, item: ReviewItem, actor: Actor, filters: dict[str, Any] | None = None) -> ItemView:
    """Everything the item page shows (a fixed handful of queries)."""
    interaction = item.interaction
    tools = service_tools(service=item.service, offered=interaction.tools)
    offered: list[OfferedTool] = []
    offered_schemas: dict[str, dict[str, Any]] = {}
    for tool in interaction.tools if isinstance(interaction.tools, list) else []:
        fn = tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
        if not isinstance(fn, dict) or not fn.get("name"):
            continue
        name = str(fn["name"])
        params = as_dict(fn.get("parameters"))
        offered.append(OfferedTool(name=name, description=str(fn.get("description") or ""), schema=params,
                                   in_catalog=name in tools))
        offered_schemas[name] = params
    calls = [_normalise_call(c) for c in (interaction.tool_calls if isinstance(interaction.tool_calls, list) else [])]
    simulated = demo_expectation(source=item.service.source, metadata=interaction.metadata)
    expected_calls = [c for c in simulated.get("expected_calls") or [] if isinstance(c, dict)]
    expected_behavior = str(simulated.get("expected_behavior") or "")
    # What the model saw is the judge of "unknown tool"; the catalog fills in tools not sent along.
    schemas = {name: info.schema for name, info in tools.items() if name in offered_schemas or not offered_schemas}
    schemas.update(offered_schemas)
    diagnosis = diagnose_calls(calls, schemas, expected_calls, expected_behavior)
    suggested = None
    if expected_behavior in ("", "call"):
        # Against the catalog's current schemas: the ones a submitted correction is checked against.
        suggested = suggest_fix(calls, {name: info.schema for name, info in tools.items()},
                                renames=tool_renames([item.service_id]).get(item.service_id),
                                expected_calls=expected_calls)
    conversation = [m for m in interaction.messages if isinstance(m, dict)] if isinstance(
        interaction.messages, list) else []
    tool_results = [m for m in conversation if m.get("role") == "tool"]
    newer, older = neighbours(item=item, actor=actor, filters=filters)
    return ItemView(
        item=item, conversation=conversation, offered=offered, model_calls=calls, diagnosis=diagnosis,
        expected_calls=expected_calls, expected_behavior=expected_behavior,
        expected_tool=str(simulated.get("tool") or ""), tool_results=tool_results, tools=tools,
        submissions=list(item.submissions.all()), newer_id=newer, older_id=older, suggested=suggested,
    )


def item_events(*, item: ReviewItem) -> QuerySet[ReviewEvent]:
    """The item's history, newest first (the page shows it a page at a time)."""
    return ReviewEvent.objects.filter(item=item).order_by("-at", "-id")


def answers_visible(*, item: ReviewItem, actor: Actor, is_admin: bool = False) -> bool:
    """May this actor read the reviewers' answers (submissions) of ``item`` now?

    Double review is blind: while an item waits for its second review, only the first
    reviewer (their own answer) and admins see round 1; everyone sees both once both are in.
    """
    if not item.needs_second_review:
        return True
    return is_admin or item.first_reviewer == actor.label


def tool_renames(service_ids: list[int] | set[int]) -> dict[int, dict[str, dict[str, str]]]:
    """Parameters the catalog recorded as renamed: {service_id: {tool: {old name: newest name}}} (one query)."""
    rows = (
        ToolSchemaVersion.objects.filter(tool__service_id__in=set(service_ids), change=SchemaChange.BREAKING)
        .order_by("tool_id", "number").values_list("tool__service_id", "tool__name", "diff")
    )
    steps: dict[tuple[int, str], list[dict[str, str]]] = defaultdict(list)
    for service_id, tool, diff in rows:
        renames = diff.get("renames") if isinstance(diff, dict) else None
        if isinstance(renames, dict) and renames:
            steps[(service_id, tool)].append({str(k): str(v) for k, v in renames.items()})
    out: dict[int, dict[str, dict[str, str]]] = defaultdict(dict)
    for (service_id, tool), chain in steps.items():
        out[service_id][tool] = chain_renames(chain)
    return dict(out)


def suggested_fixes(items: list[ReviewItem]) -> dict[int, SuggestedFix]:
    """{item id: confident suggested fix} for ``items`` (three queries whatever their number).

    Only items still waiting for a decision are looked at; the interactions' calls and the
    services' current schemas are read in bulk rather than per item.
    """
    waiting = [it for it in items if it.status not in (ReviewStatus.CORRECTED, ReviewStatus.REJECTED)]
    if not waiting:
        return {}
    service_ids = {it.service_id for it in waiting}
    calls_by_interaction = {
        pk: (calls, demo_expectation(source=source, metadata=metadata)) for pk, calls, metadata, source in
        Interaction.objects.filter(pk__in=[it.interaction_id for it in waiting])
        .values_list("pk", "tool_calls", "metadata", "service__source")
    }
    schemas: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for tool in Tool.objects.filter(service_id__in=service_ids, current_version__isnull=False).select_related(
            "current_version"):
        if tool.current_version is not None and isinstance(tool.current_version.parameters, dict):
            schemas[tool.service_id][tool.name] = tool.current_version.parameters
    renames = tool_renames(service_ids)
    out: dict[int, SuggestedFix] = {}
    for it in waiting:
        raw_calls, simulated = calls_by_interaction.get(it.interaction_id, ([], {}))
        if str(simulated.get("expected_behavior") or "call") != "call":
            continue  # the model should not have called a tool at all: nothing mechanical to fix
        calls = [_normalise_call(c) for c in (raw_calls if isinstance(raw_calls, list) else [])]
        expected = [c for c in simulated.get("expected_calls") or [] if isinstance(c, dict)]
        fix = suggest_fix(calls, schemas.get(it.service_id, {}), renames=renames.get(it.service_id),
                          expected_calls=expected)
        if fix is not None:
            out[it.pk] = fix
    return out


def neighbours(*, item: ReviewItem, actor: Actor | None = None,
               filters: dict[str, Any] | None = None) -> tuple[int | None, int | None]:
    """The ids before and after ``item`` in the queue's order (newest first) under ``filters``."""
    base = review_queue(actor=actor, **(filters or {"status": "all"}))
    newer = (base.filter(Q(occurred_at__gt=item.occurred_at) | Q(occurred_at=item.occurred_at, id__gt=item.pk))
             .order_by("occurred_at", "id").values_list("pk", flat=True).first())
    older = (base.filter(Q(occurred_at__lt=item.occurred_at) | Q(occurred_at=item.occurred_at, id__lt=item.pk))
             .order_by("-occurred_at", "-id").values_list("pk", flat=True).first())
    return newer, older


@dataclass
class ReviewerStats:
    actor: str
    corrected: int = 0
    first_reviews: int = 0
    rejected: int = 0
    skipped: int = 0
    claimed: int = 0
    conflicts: int = 0
    avg_seconds: float | None = None
    last_at: datetime | None = None
    double_reviews: int = 0
    agreed: int = 0
    arguments_agreed: int = 0
    arguments_total: int = 0

    @property
    def decisions(self) -> int:
        return self.corrected + self.first_reviews + self.rejected

    @property
    def agreement_rate(self) -> float | None:
        return round(100.0 * self.agreed / self.double_reviews, 1) if self.double_reviews else None

    @property
    def argument_agreement_rate(self) -> float | None:
        return round(100.0 * self.arguments_agreed / self.arguments_total, 1) if self.arguments_total else None


def reviewer_stats(*, days: int | None = 30, now: datetime | None = None) -> list[ReviewerStats]:
    """Per reviewer: decisions, skips, time per decision and double-review agreement (2 queries)."""
    now = now or timezone.now()
    since = now - timedelta(days=days) if days else None
    events = ReviewEvent.objects.exclude(actor="system")
    if since:
        events = events.filter(at__gte=since)
    decided = [ReviewAction.CORRECTED, ReviewAction.SUBMITTED, ReviewAction.REJECTED]
    rows = events.values("actor").annotate(
        corrected=Count("id", filter=Q(action=ReviewAction.CORRECTED)),
        first_reviews=Count("id", filter=Q(action=ReviewAction.SUBMITTED)),
        rejected=Count("id", filter=Q(action=ReviewAction.REJECTED)),
        skipped=Count("id", filter=Q(action=ReviewAction.SKIPPED)),
        claimed=Count("id", filter=Q(action=ReviewAction.CLAIMED)),
        conflicts=Count("id", filter=Q(action=ReviewAction.CONFLICT)),
        avg_seconds=Avg("seconds_spent", filter=Q(action__in=decided)),
        last_at=Max("at"),
    ).order_by()
    stats = {r["actor"]: ReviewerStats(**r) for r in rows}
    doubles = ReviewItem.objects.filter(agreement__isnull=False)
    if since:
        doubles = doubles.filter(resolved_at__gte=since)
    for first, second, info in doubles.values_list("first_reviewer", "resolved_by", "agreement"):
        for who in {first, second}:
            if not who:
                continue
            s = stats.setdefault(who, ReviewerStats(actor=who))
            s.double_reviews += 1
            s.agreed += int(bool((info or {}).get("full")))
            s.arguments_agreed += int((info or {}).get("arguments_agreed") or 0)
            s.arguments_total += int((info or {}).get("arguments_total") or 0)
    return sorted(stats.values(), key=lambda s: (-s.decisions, s.actor))


def review_summary(*, now: datetime | None = None) -> dict[str, int]:
    """For the home dashboard, in one query: items a reviewer can pick up now (claimable, or
    claimed with an expired lease) and all items.

    All items and the claimable ones are counted in one pass over a narrow index holding the
    status (an index-only scan; no grouping, no lease column read for every row); the expired
    claims, a handful, are counted apart through the status index and joined in with UNION ALL.
    """
    from django.db.models import IntegerField, Value

    from review.models import CLAIMABLE_STATUSES

    now = now or timezone.now()

    def part(rows: QuerySet[ReviewItem], tag: int, claimable: Q | None) -> QuerySet[Any]:
        # Grouped by a constant, which Django leaves out of GROUP BY: one row of plain aggregates.
        return (rows.order_by().annotate(part=Value(tag, output_field=IntegerField())).values_list("part")
                .annotate(n=Count("status"), claimable=Count("status", filter=claimable)))

    expired_claims = ReviewItem.objects.filter(status=ReviewStatus.CLAIMED, lease_expires_at__lt=now)
    everything = part(ReviewItem.objects.all(), 0, Q(status__in=CLAIMABLE_STATUSES))
    out = {"open": 0, "all": 0}
    for tag, n, claimable in everything.union(part(expired_claims, 1, None), all=True):
        if tag == 0:
            out["all"] += n
            out["open"] += claimable
        else:
            out["open"] += n
    return out


def open_items_by_service_and_kind(*, now: datetime | None = None,
                                   older_than: datetime | None = None) -> list[dict[str, Any]]:
    """Open items (claimable, or claimed with an expired lease) grouped by service and failure
    kind, in one query: ``[{"service", "failure_kind", "n", "oldest"}]`` with the biggest groups
    first. ``older_than`` keeps only items that entered the queue before it (the daily digest
    and the stale-queue alert)."""
    now = now or timezone.now()
    rows = ReviewItem.objects.filter(open_q(now))
    if older_than is not None:
        rows = rows.filter(created_at__lt=older_than)
    grouped = (rows.values("service__name", "failure_kind").order_by()
               .annotate(n=Count("*"), oldest=Min("created_at")))
    out = [{"service": r["service__name"], "failure_kind": r["failure_kind"] or "unknown", "n": r["n"],
            "oldest": r["oldest"]} for r in grouped]
    return sorted(out, key=lambda r: (-r["n"], r["service"], r["failure_kind"]))
