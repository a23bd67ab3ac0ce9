"""The dashboard's figures: each app's summary selector, put together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from ftops.catalog.selectors import catalog_summary
from ftops.gateway.page_selectors import canaries_in_flight
from ftops.interactions.selectors import interactions_summary
from ftops.loop.selectors import loop_summary
from registry.selectors import registry_summary
from review.selectors import review_summary

DASHBOARD_WINDOWS = (7, 30, 120)
DASHBOARD_CACHE_SECONDS = 60


def home_dashboard(*, days: int = 7, now: datetime | None = None, use_cache: bool = True) -> dict[str, Any]:
    """The traffic figures the home page shows, cached for a minute.

    A fixed handful of queries whatever the data size (see each summary). The default window is
    a week: on millions of interactions a month-long window costs several times more (it stays
    one click away).
    """
    if not use_cache or now is not None:
        return _home_dashboard(days=days, now=now)
    key = f"ftops:home-dashboard:{days}"
    found = cache.get(key)
    if found is None:
        found = _home_dashboard(days=days, now=None)
        cache.set(key, found, DASHBOARD_CACHE_SECONDS)
    return found


def _home_dashboard(*, days: int, now: datetime | None) -> dict[str, Any]:
    now = now or timezone.now()
    catalog = catalog_summary()
    traffic = interactions_summary(days=days, now=now)
    review = review_summary(now=now)
    names = catalog["service_names"]
    per_service: list[dict[str, Any]] = [
        {"name": names.get(sid, str(sid)), "total": row["total"], "failures": row["failures"],
         "failure_rate": round(100.0 * row["failures"] / row["total"], 1) if row["total"] else 0.0}
        for sid, row in traffic["per_service"].items()
    ]
    per_service.sort(key=lambda r: (-r["failure_rate"], r["name"]))
    total, failures = traffic["window_total"], traffic["window_failures"]
    return {
        "days": days,
        "computed_at": now,
        "services": catalog["services"],
        "tools": catalog["tools"],
        "last_24h": traffic["last_24h"],
        "last_7d": traffic["last_7d"],
        "window_total": total,
        "window_failures": failures,
        "window_failure_rate": round(100.0 * failures / total, 1) if total else 0.0,
        "per_service": per_service,
        "by_kind": traffic["by_kind"],
        "daily": traffic["daily"],
        "review_open": review["open"],
        "review_all": review["all"],
    }


def home_live_cards() -> dict[str, Any]:
    """Cards read fresh on every visit (small tables): an approver who just approved a version,
    or a trigger that just fired, shows at once rather than after the figures' minute of cache."""
    return {"registry": registry_summary(), "loop": loop_summary(), "canaries": canaries_in_flight()}
