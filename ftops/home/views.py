"""The home dashboard: figures from every app's summary selector, charts, the registry and loop cards."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from ftops.home.selectors import DASHBOARD_WINDOWS, home_dashboard, home_live_cards


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
        "daily": {
            "type": "line",
            "data": {"labels": [d["day"][5:] for d in dash["daily"]],
                     "datasets": [
                         {"label": "interactions", "data": [d["total"] for d in dash["daily"]],
                          "borderColor": "#2957d8", "backgroundColor": "#2957d8"},
                         {"label": "failures", "data": [d["failures"] for d in dash["daily"]],
                          "borderColor": "#c0392b", "backgroundColor": "#c0392b"}]},
            "options": {"scales": {"y": {"beginAtZero": True}}},
        },
    }


@login_required
def home(request: HttpRequest) -> HttpResponse:
    try:
        days = int(request.GET.get("days") or DASHBOARD_WINDOWS[0])
    except ValueError:
        days = DASHBOARD_WINDOWS[0]
    if days not in DASHBOARD_WINDOWS:
        days = DASHBOARD_WINDOWS[0]
    dash = home_dashboard(days=days)
    return render(request, "home/dashboard.html", {
        "nav_section": "home",
        "dash": dash,
        **home_live_cards(),
        "charts": _charts(dash),
        "windows": DASHBOARD_WINDOWS,
        "links": {name: _url(f"{name}:{page}") for name, page in (
            ("review", "queue"), ("catalog", "services"), ("interactions", "list"), ("datasets", "versions"),
            ("loop", "triggers"))},
    })
