"""The home dashboard: figures from every app's summary selector, charts, the registry and loop cards."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from ftops.home.selectors import DASHBOARD_WINDOWS, home_dashboard, home_inbox, home_live_cards


def _url(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _charts(dash: dict[str, Any]) -> dict[str, Any]:
    """Chart.js configs (rendered with json_script; static/js/charts.js draws them)."""
    return {
        "rate_by_service": {
            "type": "bar",
            "data": {"labels": [r["name"] for r in dash["per_service"]],
                     "datasets": [{"label": "failure rate (%)", "maxBarThickness": 64,
                                   "data": [r["failure_rate"] for r in dash["per_service"]]}]},
            "options": {"plugins": {"legend": {"display": False}},
                        "scales": {"y": {"beginAtZero": True, "title": {"display": True, "text": "% failed"}}}},
        },
        "by_kind": {
            "type": "bar",
            "data": {"labels": [r["label"] for r in dash["by_kind"]],
                     "datasets": [{"label": "failures", "data": [r["n"] for r in dash["by_kind"]],
                                   "maxBarThickness": 40,
                                   "backgroundColor": "#c0392b"}]},
            "options": {"indexAxis": "y", "plugins": {"legend": {"display": False}},
                        "scales": {"x": {"beginAtZero": True}}},
        },
        "daily": _daily_chart(dash["daily"]),
    }


def _daily_chart(daily: list[dict[str, Any]]) -> dict[str, Any]:
    """Whole days as solid lines; today (the hours so far) as a dashed segment from yesterday,
    so a partial day is not drawn as a sudden drop."""
    labels = [d["day"][5:] + (" (so far)" if d.get("partial") else "") for d in daily]
    datasets: list[dict[str, Any]] = []
    for key, label, colour in (("total", "interactions", "#2957d8"), ("failures", "failures", "#c0392b")):
        whole = [None if d.get("partial") else d[key] for d in daily]
        datasets.append({"label": label, "data": whole, "borderColor": colour, "backgroundColor": colour})
        if daily and daily[-1].get("partial"):
            today = [None] * len(daily)
            if len(daily) > 1:
                today[-2] = daily[-2][key]
            today[-1] = daily[-1][key]
            datasets.append({"label": f"{label}, today so far", "data": today, "borderColor": colour,
                             "backgroundColor": "#ffffff", "borderDash": [6, 4], "pointStyle": "rectRot"})
    return {"type": "line", "data": {"labels": labels, "datasets": datasets},
            "options": {"scales": {"y": {"beginAtZero": True}}, "spanGaps": False}}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    try:
        days = int(request.GET.get("days") or DASHBOARD_WINDOWS[0])
    except ValueError:
        days = DASHBOARD_WINDOWS[0]
    if days not in DASHBOARD_WINDOWS:
        days = DASHBOARD_WINDOWS[0]
    dash = home_dashboard(days=days)
    live = home_live_cards()
    return render(request, "home/dashboard.html", {
        "nav_section": "home",
        "dash": dash,
        **live,
        "inbox": home_inbox(dash, live),
        "charts": _charts(dash),
        "windows": DASHBOARD_WINDOWS,
        "links": {name: _url(f"{name}:{page}") for name, page in (
            ("review", "queue"), ("catalog", "services"), ("interactions", "list"), ("datasets", "versions"),
            ("loop", "triggers"))},
    })
