"""API-key authentication, role permissions and per-key throttling for the REST API.

Clients send ``Authorization: Bearer ftk_…`` (or ``X-API-Key: ftk_…``). A request that is
authenticated but lacks the role gets 403 and leaves one ``permission.denied`` audit row.
Session-authenticated staff users act with every role; other users with the roles given
to their groups of the same name (``reviewer``, ``approver`` …).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request

from ftops.common.models import ApiKey, Role
from ftops.common.selectors import api_key_for_secret
from ftops.common.services import audit_record

if TYPE_CHECKING:
    from rest_framework.views import APIView


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKey, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        secret = ""
        if header.startswith(self.keyword + " "):
            secret = header[len(self.keyword) + 1 :].strip()
        elif request.META.get("HTTP_X_API_KEY"):
            secret = str(request.META["HTTP_X_API_KEY"]).strip()
        if not secret:
            return None
        key = api_key_for_secret(secret)
        if key is None:
            raise exceptions.AuthenticationFailed("invalid or revoked API key")
        now = timezone.now()
        # Touch at most once a minute: a hot ingest key must not write on every request.
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return key, key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def request_roles(request: Request | Any) -> set[str]:
    """Roles of whoever made the request: an API key's roles or a session user's."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return set(Role.values) if Role.ADMIN in auth.roles else set(auth.roles)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return set()
    if user.is_superuser or user.is_staff:
        return set(Role.values)
    names = set(user.groups.values_list("name", flat=True))
    return {r for r in Role.values if r in names}


def client_ip(request: Any) -> str | None:
    ip = request.META.get("REMOTE_ADDR")
    return str(ip) if ip else None


def deny(request: Any, *, needed: list[str], view_name: str) -> None:
    auth = getattr(request, "auth", None)
    audit_record(
        action="permission.denied",
        user=getattr(request, "user", None),
        api_key=auth if isinstance(auth, ApiKey) else None,
        object_type="endpoint",
        object_id=view_name,
        detail={"needed_roles": needed, "method": request.method, "path": request.path},
        ip=client_ip(request),
    )


def has_role(*roles: str) -> type[permissions.BasePermission]:
    """Permission class: the caller holds at least one of ``roles`` (admin holds all)."""
    needed = [str(r) for r in roles]  # plain strings: TextChoices members would show as Role.ADMIN

    class _HasRole(permissions.BasePermission):
        message = f"this endpoint needs one of the roles {needed}"

        def has_permission(self, request: Request, view: APIView) -> bool:
            if not getattr(request, "user", None) or not request.user.is_authenticated:
                return False
            if request_roles(request) & set(needed):
                return True
            deny(request, needed=needed, view_name=type(view).__name__)
            return False

    _HasRole.__name__ = f"HasRole_{'_'.join(needed)}"
    return _HasRole


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Per-key (or per-user, per-IP) request rate, set by FTOPS_API_KEY_RATE."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read the rate per request, not once at import, so settings overrides (and tests
        # with a tiny rate) take effect.
        from rest_framework.settings import api_settings

        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        return None if rate is None else str(rate)

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        auth = getattr(request, "auth", None)
        if isinstance(auth, ApiKey):
            ident = f"key-{auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents API-key authentication in the OpenAPI schema."""

    target_class = "ftops.common.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An ftops API key: 'Authorization: Bearer ftk_...' (or the X-API-Key header).",
        }
