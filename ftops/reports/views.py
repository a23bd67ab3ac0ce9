"""The monthly report page: production accuracy from live traffic next to the offline test accuracy."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from ftops.common.auth import deny, request_roles
from ftops.common.models import Role
from ftops.reports.selectors import GAP_WARN, month_parse, monthly_report_build, previous_month

READ_ROLES = [Role.APPROVER.value, Role.REVIEWER.value, Role.ML_ORCHESTRATOR.value, Role.ADMIN.value]


@login_required
def monthly_report(request: HttpRequest) -> HttpResponse:
    if not request_roles(request) & set(READ_ROLES):
        deny(request, needed=READ_ROLES, view_name="reports:monthly")
        raise PermissionDenied(f"this page needs one of the roles {READ_ROLES}")
    text = request.GET.get("month", "")
    try:
        month = month_parse(text) if text else previous_month(timezone.now().date())
    except ValueError as exc:
        return render(request, "reports/monthly.html", {"nav_section": "notifications", "error": str(exc),
                                                        "month_text": text}, status=400)
    report = monthly_report_build(month=month)
    return render(request, "reports/monthly.html", {"nav_section": "notifications", "report": report,
                                                    "month_text": report.label, "gap_warn": GAP_WARN})
