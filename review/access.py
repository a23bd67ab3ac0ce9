"""Who is reviewing: the acting identity and the role check for the review pages.

Reviewers are staff users, members of the group ``reviewer`` (session login) or API keys with
the ``reviewer`` role. A logged-in user without the role gets a 403 page and leaves one
``permission.denied`` audit row, like the API.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ftops.common.auth import deny, request_roles
from ftops.common.models import Role


def is_reviewer(request: Any) -> bool:
    return Role.REVIEWER in request_roles(request)


def reviewer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """HTML views: log in first, then hold the reviewer role (403 page and an audit row if not)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_reviewer(request):
            deny(request, needed=[Role.REVIEWER.value], view_name=f"review.{view.__name__}")
            return render(request, "review/forbidden.html", {"nav_section": "review"}, status=403)
        return view(request, *args, **kwargs)

    return wrapped
