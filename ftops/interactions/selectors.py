"""Reads of interactions, with the object-level rule for who may see which.

Reviewers and admins see every interaction. A caller holding only ``ingest`` (a service's
own key) sees the interactions that key ingested: one team's traffic is not another's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from ftops.catalog.models import Service, Tool
from ftops.common.errors import NotFound, NotFoundCrossTenant
from ftops.common.models import ApiKey, Role
from ftops.interactions.models import FeedbackEvent, IngestBatch, Interaction
from ftops.interactions.verdicts import ToolSchema

SEE_ALL_ROLES = frozenset({Role.REVIEWER, Role.ADMIN, Role.APPROVER, Role.ML_ORCHESTRATOR})


def services_by_name(names: Iterable[str]) -> dict[str, int]:
    return dict(Service.objects.filter(name__in=set(names)).values_list("name", "id"))


def tool_schemas_by_service(service_ids: Iterable[int]) -> dict[int, dict[str, ToolSchema]]:
    """Current schema of every tool of the given services, in one query."""
    out: dict[int, dict[str, ToolSchema]] = {sid: {} for sid in service_ids}
    rows = Tool.objects.filter(service_id__in=list(out)).values_list(
        "service_id", "name", "current_version__parameters", "current_version__content_hash"
    )
    for service_id, name, parameters, content_hash in rows:
        params = parameters if isinstance(parameters, dict) else None
        out[service_id][name] = ToolSchema(name=name, parameters=params, content_hash=content_hash or "")
    return out


def existing_by_external_id(external_ids: Iterable[str], *, scope: str) -> dict[str, dict[str, Any]]:
    """Stored interactions with these ids in one idempotency scope (another key's ids are not seen)."""
    fields = ("pk", "external_id", "body_hash", "call_verdict", "is_failure", "failure_kind", "redactions")
    rows = Interaction.objects.filter(scope=scope, external_id__in=list(external_ids)).values(*fields)
    return {row["external_id"]: row for row in rows}


def visible_interactions(*, roles: set[str], api_key: ApiKey | None = None) -> QuerySet[Interaction]:
    qs = Interaction.objects.select_related("service")
    if roles & SEE_ALL_ROLES:
        return qs
    if Role.INGEST in roles and api_key is not None:
        return qs.filter(api_key=api_key)
    if Role.INGEST in roles:
        return qs  # a session user in the ingest group acts for the whole platform
    return qs.none()


def interactions_list(
    *,
    roles: set[str],
    api_key: ApiKey | None = None,
    service: str | None = None,
    failure_kind: str | None = None,
    is_failure: bool | None = None,
    call_verdict: str | None = None,
    model_version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Interaction]:
    qs = visible_interactions(roles=roles, api_key=api_key)
    if service:
        qs = qs.filter(service__name=service)
    if failure_kind:
        qs = qs.filter(failure_kind=failure_kind)
    if is_failure is not None:
        qs = qs.filter(is_failure=is_failure)
    if call_verdict:
        qs = qs.filter(call_verdict=call_verdict)
    if model_version:
        qs = qs.filter(model_version=model_version)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lt=until)
    return qs


def interaction_get(*, external_id: str, roles: set[str], api_key: ApiKey | None = None) -> Interaction:
    """404 (not 403) for interactions the caller may not see, so ids do not leak."""
    found = visible_interactions(roles=roles, api_key=api_key).filter(external_id=external_id).first()
    if found is None:
        message = f"no interaction with id '{external_id}'"
        if Interaction.objects.filter(external_id=external_id).exists():
            # Same answer as a missing id; the error handler audits the probe.
            raise NotFoundCrossTenant(message, object_type="interaction", object_id=external_id[:120])
        raise NotFound(message)
    return found


def feedback_events(interaction: Interaction) -> QuerySet[FeedbackEvent]:
    return interaction.feedback_events.order_by("created_at", "id")


def failures(
    *,
    service: Service | str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Interaction]:
    """Interactions marked as failures, newest first (the review queue's source)."""
    qs = Interaction.objects.select_related("service").filter(is_failure=True)
    if isinstance(service, Service):
        qs = qs.filter(service=service)
    elif service:
        qs = qs.filter(service__name=service)
    if kind:
        qs = qs.filter(failure_kind=kind)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lt=until)
    return qs


def ingest_batch_get(*, batch_id: int, roles: set[str], api_key: ApiKey | None = None) -> IngestBatch:
    qs = IngestBatch.objects.all()
    if not roles & SEE_ALL_ROLES and api_key is not None:
        qs = qs.filter(api_key=api_key)
    found = qs.filter(pk=batch_id).first()
    if found is None:
        if IngestBatch.objects.filter(pk=batch_id).exists():
            raise NotFoundCrossTenant(f"no ingest batch {batch_id}", object_type="ingest_batch", object_id=batch_id)
        raise NotFound(f"no ingest batch {batch_id}")
    return found


def interactions_summary(*, days: int, now: datetime) -> dict[str, Any]:
    """For the home dashboard: rolling 24 h / 7 day counts and, over the rolling window of the
    last ``days`` × 24 hours, totals, failures per service id and per kind, and a daily series.

    One definition everywhere: "last N days" is the N × 24 hours up to ``now`` (last 7 days =
    168 hours), for the counts and for the failure rates alike. The daily series has the last
    ``days`` UTC calendar days, today included and flagged ``partial`` (the hours so far).

    One query whatever the data size: a grouped pass (service x failure kind x day) over the
    window, each group also split at the 24 hour and 7 day marks, gives the rolling counts and
    everything else. It reads only the covering index on the timestamp (ix_interaction_ts_cover).
    """
    from collections import defaultdict
    from datetime import timedelta

    from django.db.models import BooleanField, Count, ExpressionWrapper, Q
    from django.db.models.functions import TruncDate

    from ftops.interactions.models import FailureKind

    today = now.date()
    first_day = today - timedelta(days=days - 1)
    # The same rolling window as "last 7 days" (168 hours): its first hours fall on the day
    # before ``first_day``; they count in the totals but get no point of their own in the series.
    start = now - timedelta(days=days)
    day_ago, week_ago = now - timedelta(hours=24), now - timedelta(days=7)
    lower = min(start, week_ago)  # the pass covers both the window and the rolling week

    def flag(since: datetime) -> ExpressionWrapper:
        return ExpressionWrapper(Q(timestamp__gte=since), output_field=BooleanField())

    # Flags only where they can differ inside the pass: "in the window" when the window is shorter
    # than the rolling week, "in the week" when it is longer.
    flags: dict[str, ExpressionWrapper] = {"in_24h": flag(day_ago)}
    if lower < week_ago:
        flags["in_week"] = flag(week_ago)
    if lower < start:
        flags["in_window"] = flag(start)
    grouped = (
        Interaction.objects.filter(timestamp__gte=lower, timestamp__lte=now)
        .annotate(day=TruncDate("timestamp"), **flags)
        .values_list("service_id", "is_failure", "failure_kind", "day", *flags)
        .annotate(n=Count("*")).order_by()
    )
    per_service: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    by_kind: dict[str, int] = defaultdict(int)
    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    window_total = window_failures = last_24h = last_7d = 0
    for row in grouped:
        service_id, is_failure, kind, day = row[:4]
        n = row[-1]
        marks = dict(zip(flags, row[4:-1], strict=True))
        if marks.get("in_week", True):
            last_7d += n
            if marks["in_24h"]:
                last_24h += n
        if not marks.get("in_window", True):
            continue
        by_day[str(day)][0] += n
        per_service[service_id][0] += n
        window_total += n
        if is_failure:
            by_day[str(day)][1] += n
            per_service[service_id][1] += n
            by_kind[kind] += n
            window_failures += n
    labels = dict(FailureKind.choices)
    series_days = [(first_day + timedelta(days=i)).isoformat() for i in range(days)]
    return {
        "last_24h": last_24h,
        "last_7d": last_7d,
        "window_total": window_total,
        "window_failures": window_failures,
        "per_service": {sid: {"total": total, "failures": failures} for sid, (total, failures) in per_service.items()},
        "by_kind": [{"failure_kind": k, "label": labels.get(k, k or "other"), "n": n}
                    for k, n in sorted(by_kind.items(), key=lambda p: (-p[1], p[0]))],
        "daily": [{"day": d, "total": by_day[d][0], "failures": by_day[d][1], "partial": d == today.isoformat()}
                  for d in series_days],
    }
