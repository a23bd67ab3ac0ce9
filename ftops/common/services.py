"""Writes for API keys and the audit log."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.errors import ValidationFailed
from ftops.common.models import ApiKey, AuditAction, AuditEvent, Role

KEY_PREFIX = "ftk_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret: str  # shown once, never stored


def actor_label(*, user: Any = None, api_key: ApiKey | None = None) -> str:
    if api_key is not None:
        return f"key:{api_key.prefix}"
    if user is not None and not isinstance(user, AnonymousUser) and getattr(user, "is_authenticated", False):
        return str(user.get_username())
    return "anonymous"


def audit_record(
    *,
    action: AuditAction | str,
    by: Actor | None = None,
    user: Any = None,
    api_key: ApiKey | None = None,
    actor: str | None = None,
    object_type: str = "",
    object_id: str | int = "",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """One audit row. Pass ``by`` (the acting ``Actor``); the older keyword shapes remain for callers
    not yet moved over."""
    if by is not None:
        user = user if user is not None else by.user
        api_key = api_key if api_key is not None else by.api_key
        actor = actor or by.label
        ip = ip or by.ip
    real_user: Any = user if isinstance(user, AbstractBaseUser) else None  # the stubs want the concrete User
    return AuditEvent.objects.create(
        action=str(action),
        actor=actor or actor_label(user=user, api_key=api_key),
        user=real_user,
        api_key=api_key,
        object_type=object_type,
        object_id=str(object_id),
        detail=detail or {},
        ip=ip,
    )


@transaction.atomic
def api_key_create(
    *, name: str, roles: list[str], created_by: Any = None, by_key: ApiKey | None = None, actor: str | None = None
) -> IssuedKey:
    name = name.strip()
    if not name:
        raise ValidationFailed("name is required", fields={"name": ["give the key a name, e.g. 'payments-ingest'"]})
    valid = set(Role.values)
    unknown = [r for r in roles if r not in valid]
    if not roles or unknown:
        raise ValidationFailed(
            "roles must be a non-empty list of known roles",
            fields={"roles": [f"unknown role(s) {unknown}; choose from {sorted(valid)}" if unknown
                              else "give at least one role"]},
        )
    public = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        name=name,
        prefix=public,
        hashed_secret=hash_secret(secret),
        roles=sorted(set(roles)),
        created_by=cast(Any, created_by) if isinstance(created_by, AbstractBaseUser) else None,
    )
    audit_record(action="api_key.created", user=created_by, api_key=by_key, actor=actor, object_type="api_key",
                 object_id=key.pk, detail={"name": name, "roles": key.roles, "prefix": public})
    return IssuedKey(api_key=key, secret=secret)


@transaction.atomic
def api_key_revoke(
    *, api_key: ApiKey, user: Any = None, by_key: ApiKey | None = None, actor: str | None = None
) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
        audit_record(action="api_key.revoked", user=user, api_key=by_key, actor=actor, object_type="api_key",
                     object_id=api_key.pk, detail={"prefix": api_key.prefix})
    return api_key
