"""API-key authentication, role permissions and per-key throttling for the REST API.

Clients send ``Authorization: Bearer ftk_…`` (or ``X-API-Key: ftk_…``). A request that is
authenticated but lacks the role gets 403 and leaves one ``permission.denied`` audit row.
Session-authenticated staff users act with every role; other users with the roles given
to their groups of the same name (``reviewer``, ``approver`` …).

Failed authentication (no key, an unknown or a revoked key) is counted per client address
and per key prefix in the cache; past ``FTOPS_AUTH_FAILURE_LIMIT`` failures in a window of
``FTOPS_AUTH_FAILURE_WINDOW_S`` seconds the answer is 429 with ``Retry-After``. A valid key is
never refused by this count, so clients sharing an address with an attacker keep working.
Failures are audited in aggregate: one ``auth.failed`` row per (address, prefix, reason) and
window whose ``detail.count`` is updated in place, so a flood costs one row, not one per
request. Wrong-password logins are django-axes' job (``AuditingAxesHandler`` audits them).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework.request import Request

from ftops.common.actors import Actor
from ftops.common.models import ApiKey, AuditAction, AuditEvent, Role
from ftops.common.selectors import api_key_by_hash, api_key_for_secret
from ftops.common.services import KEY_PREFIX, audit_record, hash_secret

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
            revoked = api_key_by_hash(hash_secret(secret)) if secret.startswith(KEY_PREFIX) else None
            wait = auth_failure(request, reason="revoked" if revoked is not None else "unknown", secret=secret,
                                api_key=revoked)
            if wait:
                raise exceptions.Throttled(wait=wait, detail="too many failed authentications; try again later")
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


class CsrfAuditingSessionScheme(SessionScheme):
    """Documents the session cookie for our subclass as for DRF's own."""

    target_class = "ftops.common.auth.CsrfAuditingSessionAuthentication"


class CsrfAuditingSessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication, with its CSRF refusals audited like the pages' ones."""

    def enforce_csrf(self, request: Request) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            from ftops.common.actors import actor_for

            # The Django request: asking DRF's for its user would authenticate again (and recurse).
            actor = actor_for(request._request)
            audit_aggregated(action=AuditAction.CSRF_FAILED, by=actor,
                             group=(actor.ip or "", request.path[:200], "api"), object_type="endpoint",
                             object_id=request.path[:200], detail={"reason": str(exc.detail), "method": request.method})
            raise


# --- aggregated audit ------------------------------------------------------------------------


def audit_window_s() -> int:
    return int(getattr(settings, "FTOPS_AUTH_FAILURE_WINDOW_S", 300))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def audit_aggregated(
    *,
    action: AuditAction,
    by: Actor,
    group: tuple[str, ...],
    object_type: str = "",
    object_id: str = "",
    detail: dict[str, Any] | None = None,
    window_s: int | None = None,
    api_key: ApiKey | None = None,
) -> int:
    """Count one occurrence of ``action`` for ``group`` in the current window; returns the count.

    The first occurrence in a window writes an audit row; later ones update that row's
    ``detail.count`` (and ``last_at``) in place. The counter lives in the cache (atomic
    ``incr`` on Redis), the row id too; an update only moves the count forward, so
    concurrent requests never set it back. Losing the cache costs at most one extra row.
    """
    window = window_s or audit_window_s()
    now = time.time()
    start = int(now // window) * window
    digest = hashlib.sha256("\x1f".join((str(action), *group)).encode("utf-8", "replace")).hexdigest()[:32]
    base = f"ftops:audit-agg:{digest}:{start}"
    count = _incr(base + ":n", ttl=2 * window)
    values = {**(detail or {}), "count": count, "window_s": window, "window_start": _iso(start),
              "last_at": _iso(now)}
    row_id = cache.get(base + ":row")
    if row_id is not None:
        updated = AuditEvent.objects.filter(pk=row_id, action=str(action), detail__count__lt=count).update(
            detail=values)
        if updated or AuditEvent.objects.filter(pk=row_id).exists():
            return count
    elif not cache.add(base + ":lock", 1, timeout=2 * window):
        return count  # another request is writing this window's row; the next one updates it
    row = audit_record(action=action, by=by, api_key=api_key, object_type=object_type, object_id=object_id,
                       detail=values)
    cache.set(base + ":row", row.pk, timeout=2 * window)
    return count


def _incr(key: str, *, ttl: int) -> int:
    cache.add(key, 0, timeout=ttl)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1


# --- failed API authentication ---------------------------------------------------------------


def auth_failure_limit() -> int:
    return int(getattr(settings, "FTOPS_AUTH_FAILURE_LIMIT", 20))


def key_prefix_of(secret: str) -> str:
    """The public part of ``ftk_<prefix>_<secret>``; "" for anything else."""
    if not secret.startswith(KEY_PREFIX):
        return ""
    prefix = secret[len(KEY_PREFIX):].split("_", 1)[0]
    return prefix[:16] if prefix.isascii() and prefix.isalnum() else ""


def _secret_of(request: Any) -> str:
    header = authentication.get_authorization_header(request).decode("latin-1")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip()
    return str(request.META.get("HTTP_X_API_KEY") or "").strip()


def auth_failure(request: Any, *, reason: str, secret: str | None = None, api_key: ApiKey | None = None) -> int:
    """Count and audit one failed authentication; returns the seconds to wait when the caller is
    now over the limit (by address or by key prefix), else 0."""
    window = audit_window_s()
    limit = auth_failure_limit()
    ip = client_ip(request) or ""
    prefix = key_prefix_of(secret if secret is not None else _secret_of(request))
    start = int(time.time() // window) * window
    over = _incr(f"ftops:auth-fail:ip:{ip}:{start}", ttl=2 * window) > limit
    if prefix:
        over = _incr(f"ftops:auth-fail:prefix:{prefix}:{start}", ttl=2 * window) > limit or over
    audit_aggregated(
        action=AuditAction.AUTH_FAILED,
        by=Actor(label="anonymous", ip=ip or None),
        group=(ip, prefix, "throttled" if over else reason),
        object_type="api_key" if prefix else "endpoint",
        object_id=prefix or request.path[:120],
        detail={"reason": "throttled" if over else reason, "prefix": prefix, "path": request.path[:200],
                "method": request.method},
        window_s=window,
        api_key=api_key,
    )
    return max(1, int(start + window - time.time())) if over else 0


# --- wrong-password logins (django-axes) -------------------------------------------------------


class AuditingAxesHandler(AxesDatabaseHandler):
    """django-axes' database handler, plus aggregated audit rows for failed logins and lockouts."""

    def user_login_failed(self, sender: Any, credentials: dict[str, Any], request: Any = None,
                          **kwargs: Any) -> None:
        super().user_login_failed(sender, credentials, request=request, **kwargs)
        if request is None:
            return
        field = str(getattr(settings, "AXES_USERNAME_FORM_FIELD", "username"))
        username = str(credentials.get(field) or credentials.get("username") or "")[:150].replace("\x00", "")
        ip = client_ip(request) or ""
        actor = Actor(label="anonymous", ip=ip or None)
        failures = int(getattr(request, "axes_failures_since_start", 0) or 0)
        detail = {"username": username, "path": request.path[:200], "failures": failures}
        audit_aggregated(action=AuditAction.LOGIN_FAILED, by=actor, group=(ip, username), object_type="user",
                         object_id=username, detail=detail)
        if getattr(request, "axes_locked_out", False):
            audit_aggregated(action=AuditAction.LOGIN_LOCKED_OUT, by=actor, group=(ip, username),
                             object_type="user", object_id=username,
                             detail={**detail, "cooloff_s": _cooloff_s()})


def _cooloff_s() -> int | None:
    cooloff: Any = getattr(settings, "AXES_COOLOFF_TIME", None)
    return int(cooloff.total_seconds()) if isinstance(cooloff, timedelta) else None
