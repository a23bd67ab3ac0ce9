"""Reads for API keys and the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from ftops.common.models import ApiKey, AuditEvent
from ftops.common.services import KEY_PREFIX, hash_secret


def api_key_for_secret(secret: str) -> ApiKey | None:
    if not secret.startswith(KEY_PREFIX):
        return None
    return ApiKey.objects.filter(hashed_secret=hash_secret(secret), revoked_at__isnull=True).first()


def api_key_by_hash(hashed: str) -> ApiKey | None:
    """The key with this hashed secret, revoked or not (to tell "revoked" from "unknown")."""
    return ApiKey.objects.filter(hashed_secret=hashed).first()


def api_keys_list() -> QuerySet[ApiKey]:
    return ApiKey.objects.order_by("-created_at", "-id")


def audit_events(*, action: str | None = None) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.select_related("user", "api_key")
    if action:
        qs = qs.filter(action=action)
    return qs


class CappedPaginator(Paginator):
    """A paginator that stops counting at ``cap`` rows.

    An exact ``COUNT(*)`` over a million rows costs more than rendering the page itself, and
    nobody pages through more than a few hundred pages: past the cap the page says "more than
    ``cap``" and the pages beyond it are reached by narrowing the filters.
    """

    def __init__(self, object_list: Any, per_page: int, *, cap: int = 10_000) -> None:
        super().__init__(object_list, per_page)
        self.cap = cap

    @cached_property
    def _counted(self) -> int:
        # COUNT over a LIMITed subquery: the database stops after cap + 1 rows.
        head: Any = self.object_list[: self.cap + 1]
        return int(head.count()) if isinstance(head, QuerySet) else len(head)

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @property
    def capped(self) -> bool:
        return self._counted > self.cap


DASHBOARD_WINDOWS = (7, 30, 120)
DASHBOARD_CACHE_SECONDS = 60


def home_dashboard(*, days: int = 7, now: datetime | None = None, use_cache: bool = True) -> dict[str, Any]:
    """Everything the home page shows, cached for a minute.

    Computed in a fixed handful of queries whatever the data size: one grouped pass over the
    window's interactions (service x failure kind x day) gives the rates, the kinds and the daily
    series; one count gives the rolling 24 h / 7 day figures. The default window is a week: on
    millions of interactions a month-long window costs several times more (it stays one click away).
    """
    from django.core.cache import cache

    if not use_cache or now is not None:
        return _home_dashboard(days=days, now=now)
    key = f"ftops:home-dashboard:{days}"
    found = cache.get(key)
    if found is None:
        found = _home_dashboard(days=days, now=None)
        cache.set(key, found, DASHBOARD_CACHE_SECONDS)
    return found


def _home_dashboard(*, days: int, now: datetime | None) -> dict[str, Any]:
    from collections import defaultdict

    from django.db.models import Count, Q
    from django.db.models.functions import TruncDate
    from django.utils import timezone

    from ftops.catalog.models import Service, Tool
    from ftops.interactions.models import FailureKind, Interaction
    from review.models import CLAIMABLE_STATUSES, ReviewItem, ReviewStatus

    now = now or timezone.now()
    today = now.date()
    # Whole UTC days, so the window and the daily series come from the same day buckets.
    first_day = today - timedelta(days=days - 1)
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    services = dict(Service.objects.values_list("id", "name"))
    tools = Tool.objects.count()
    rolling = Interaction.objects.filter(timestamp__gte=now - timedelta(days=7), timestamp__lte=now).aggregate(
        last_24h=Count("timestamp", filter=Q(timestamp__gte=now - timedelta(hours=24))),
        last_7d=Count("*"),
    )
    grouped = (
        Interaction.objects.filter(timestamp__gte=start, timestamp__lte=now)
        .annotate(day=TruncDate("timestamp")).values_list("service_id", "is_failure", "failure_kind", "day")
        .annotate(n=Count("*")).order_by()
    )
    per_service: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    by_kind: dict[str, int] = defaultdict(int)
    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    window_total = window_failures = 0
    for service_id, is_failure, kind, day, n in grouped:
        by_day[str(day)][0] += n
        if is_failure:
            by_day[str(day)][1] += n
        per_service[service_id][0] += n
        window_total += n
        if is_failure:
            per_service[service_id][1] += n
            by_kind[kind] += n
            window_failures += n
    labels = dict(FailureKind.choices)
    service_rows: list[dict[str, Any]] = [
        {"name": services.get(sid, str(sid)), "total": total, "failures": failures,
         "failure_rate": round(100.0 * failures / total, 1) if total else 0.0}
        for sid, (total, failures) in per_service.items()
    ]
    service_rows.sort(key=lambda r: (-r["failure_rate"], r["name"]))
    series_days = [(first_day + timedelta(days=i)).isoformat() for i in range(days)]
    review = {"open": 0, "all": 0}
    for status, n, expired in (ReviewItem.objects.values_list("status").order_by()
                               .annotate(n=Count("*"), expired=Count("lease_expires_at",
                                                                     filter=Q(lease_expires_at__lt=now)))):
        review["all"] += n
        review["open"] += n if status in CLAIMABLE_STATUSES else (expired if status == ReviewStatus.CLAIMED else 0)
    return {
        "days": days,
        "computed_at": now,
        "services": len(services),
        "tools": tools,
        "last_24h": rolling["last_24h"],
        "last_7d": rolling["last_7d"],
        "window_total": window_total,
        "window_failures": window_failures,
        "window_failure_rate": round(100.0 * window_failures / window_total, 1) if window_total else 0.0,
        "per_service": service_rows,
        "by_kind": [{"failure_kind": k, "label": labels.get(k, k or "other"), "n": n}
                    for k, n in sorted(by_kind.items(), key=lambda p: (-p[1], p[0]))],
        "daily": [{"day": d, "total": by_day[d][0], "failures": by_day[d][1]} for d in series_days],
        "review_open": review["open"],
        "review_all": review["all"],
    }
