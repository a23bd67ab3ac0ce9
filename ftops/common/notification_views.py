"""The notifications pages: what was sent (admins see every send, others what reached them) and
each signed-in user's own choices of what to receive by email (admins also set the team webhook)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from ftops.common import notifications
from ftops.common.actors import actor_for
from ftops.common.auth import request_roles
from ftops.common.models import NotificationKind, NotificationStatus, Role
from ftops.common.views import paginate

PER_PAGE = 50


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    see_all = Role.ADMIN.value in request_roles(request)
    status = request.GET.get("status", "")
    kind = request.GET.get("kind", "")
    if status and status not in NotificationStatus.values:
        return HttpResponse(f"unknown status {status!r}; use one of {', '.join(NotificationStatus.values)}",
                            status=400, content_type="text/plain")
    if kind and kind not in NotificationKind.values:
        return HttpResponse(f"unknown kind {kind!r}; use one of {', '.join(NotificationKind.values)}",
                            status=400, content_type="text/plain")
    rows = notifications.notifications_visible(user_id=int(request.user.pk or 0), see_all=see_all, status=status,
                                               kind=kind)
    return render(request, "common/notifications.html", {
        "nav_section": "notifications", "page": paginate(request, rows, PER_PAGE), "see_all": see_all,
        "statuses": NotificationStatus.choices, "kinds": NotificationKind.choices, "status": status, "kind": kind,
    })


@login_required
@require_http_methods(["GET", "POST"])
def notification_preferences(request: HttpRequest) -> HttpResponse:
    is_admin = Role.ADMIN.value in request_roles(request)
    if request.method == "POST":
        email = {kind: request.POST.get(f"email_{kind}") == "on" for kind in NotificationKind.values}
        webhook = ({kind: request.POST.get(f"webhook_{kind}") == "on" for kind in NotificationKind.values}
                   if is_admin else None)
        changed = notifications.preferences_update(by=actor_for(request), email=email, webhook=webhook)
        messages.success(request, f"Saved: {len(changed)} change(s)." if changed else "Nothing changed.")
        return redirect("notification_preferences")
    return render(request, "common/notification_preferences.html", {
        "nav_section": "notifications", "preferences": notifications.preferences_for(user_id=int(request.user.pk or 0)),
        "is_admin": is_admin, "email": getattr(request.user, "email", ""),
    })
