"""The dashboard's figures: each app's summary selector, put together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from ftops.catalog.selectors import catalog_summary
from ftops.gateway.page_selectors import canaries_in_flight
from ftops.interactions.selectors import interactions_summary
from ftops.loop.selectors import cycles_attention, loop_summary
from registry.selectors import registry_summary
from review.selectors import review_queue, review_summary, suggested_fixes

DASHBOARD_WINDOWS = (7, 30, 120)
DASHBOARD_CACHE_SECONDS = 60
# The one-click-fix count looks at the newest open items only: a suggestion needs the item's
# calls and schemas, and on a million-item queue the newest few hundred say enough.
FIX_SAMPLE = 300


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
        **_review_fixable(now),
    }


def _review_fixable(now: datetime) -> dict[str, int]:
    """How many of the newest open review items have a confident suggested fix (one click)."""
    # Only the columns suggested_fixes reads: building 300 full items (and their services) costs
    # more than the query itself.
    newest = (list(review_queue(status="open", now=now).select_related(None)
                   .only("status", "service", "interaction")[:FIX_SAMPLE]) if FIX_SAMPLE else [])
    return {"review_fixable": len(suggested_fixes(newest)), "review_fix_sample": len(newest)}


def _url(name: str, query: str = "") -> str:
    try:
        return reverse(name) + (f"?{query}" if query else "")
    except NoReverseMatch:
        return ""


def home_inbox(dash: dict[str, Any], live: dict[str, Any]) -> list[dict[str, Any]]:
    """What needs someone, most pressing first, each with the page where it is handled. Rows
    with nothing to do stay in the list (count 0) so the page always says what it checked."""
    awaiting = len(live["registry"].awaiting_approval)
    cycles = live["cycles"]
    canaries = live["canaries"]
    paused = sum(1 for c in canaries if c["paused"])
    fixable, sample = dash.get("review_fixable", 0), dash.get("review_fix_sample", 0)
    rows = [
        {"key": "review", "count": dash["review_open"], "label": "open failures to review",
         "detail": (f"{fixable} of the newest {sample} have a confident one-click fix" if sample
                    else "nothing waiting"),
         "url": _url("review:queue"), "action": "Review queue"},
        {"key": "approval", "count": awaiting, "label": "model versions awaiting approval",
         "detail": "gates computed; an approver decides" if awaiting else "nothing to approve",
         "url": _url("registry:models", "status=awaiting"), "action": "Approve or reject"},
        {"key": "canaries", "count": len(canaries), "label": "canaries in flight",
         "detail": (f"{paused} paused" if paused else "watching their error rates") if canaries else "none running",
         "url": _url("registry:models", "status=canary"), "action": "Deployments"},
        {"key": "cycles-failed", "count": cycles["failed"], "label": "improvement cycles failed (last 7 days)",
         "detail": "see the failed stage and its error" if cycles["failed"] else "no failure",
         "url": _url("loop:cycles"), "action": "Cycles"},
        {"key": "cycles-running", "count": cycles["running"], "label": "improvement cycles running",
         "detail": "stages run one after another" if cycles["running"] else "none running",
         "url": _url("loop:cycles"), "action": "Cycles"},
        {"key": "triggers", "count": live["loop"].fired_last_7d, "label": "retraining triggers fired (last 7 days)",
         "detail": "each starts or joins a cycle", "url": _url("loop:triggers"), "action": "Triggers"},
    ]
    for row in rows:
        row["urgent"] = bool(row["count"]) and row["key"] in ("review", "approval", "cycles-failed")
    return rows


def home_live_cards() -> dict[str, Any]:
    """Cards read fresh on every visit (small tables): an approver who just approved a version,
    or a trigger that just fired, shows at once rather than after the figures' minute of cache."""
    return {"registry": registry_summary(), "loop": loop_summary(), "canaries": canaries_in_flight(),
            "cycles": cycles_attention()}
