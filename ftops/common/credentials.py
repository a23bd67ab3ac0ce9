"""Named upstream credentials: admin-registered keys for model endpoints, encrypted at rest.

Why named and bound: a caller who could pick an environment variable and a URL could make a
worker send any secret of the server (``FTOPS_SECRET_KEY``, ``DATABASE_URL``) to a host of
its choice. Here an admin registers ``name -> (base_url, value)``; API callers only ever give
the name, and the value goes to the base URL it was entered for and nowhere else. Changing a
credential's base URL therefore requires entering the value again.

Encryption: Fernet (AES-128-CBC + HMAC-SHA256) with a key derived by HKDF from Django's
``SECRET_KEY``. Values written under an older key stay readable while that key is listed in
``SECRET_KEY_FALLBACKS``; setting a credential again re-encrypts it under the current key.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.errors import FtopsError, NotFound, ValidationFailed
from ftops.common.models import AuditAction, UpstreamCredential
from ftops.common.services import audit_record

__all__ = [
    "DEFAULT_OPENAI_CREDENTIAL",
    "CredentialUnavailable",
    "ResolvedCredential",
    "openai_client_for_credential",
    "upstream_credential_delete",
    "upstream_credential_exists",
    "upstream_credential_get_secret",
    "upstream_credential_list",
    "upstream_credential_set",
    "validate_base_url",
    "validate_credential_name",
]

# The credential OpenAI fine-tuning (and evaluating its models) uses when a run names none.
DEFAULT_OPENAI_CREDENTIAL = "openai"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
MAX_VALUE_CHARS = 8192
_KDF_SALT = b"ftops.upstream-credential"
_KDF_INFO = b"fernet-v1"


class CredentialUnavailable(FtopsError):
    """A named credential that exists but cannot be used (its value does not decrypt)."""

    status_code = 409
    code = "credential_unavailable"


@dataclass(frozen=True)
class ResolvedCredential:
    name: str
    base_url: str
    value: str = field(repr=False)  # kept out of reprs, tracebacks with locals, and logs


# --------------------------------------------------------------------------- validation


def validate_credential_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise ValidationFailed("a credential name is 1-100 lowercase letters, digits, '.', '_' or '-'",
                               fields={"name": ["e.g. 'openai-prod'"]})
    return name


def validate_base_url(base_url: str) -> str:
    """An http(s) URL with a host and no user info, query or fragment (they would carry or hide data)."""
    url = (base_url or "").strip().rstrip("/")
    problem = not url or len(url) > 500 or any(c.isspace() or ord(c) < 32 for c in url)
    if not problem:
        try:
            parts = urlsplit(url)
            problem = (parts.scheme not in ("http", "https") or not parts.hostname or parts.port == 0
                       or bool(parts.username or parts.password or parts.query or parts.fragment))
        except ValueError:  # a bad port or IPv6 literal
            problem = True
    if problem:
        raise ValidationFailed("base_url must be an http(s) URL with a host and no credentials, query or fragment",
                               fields={"base_url": ["e.g. https://api.openai.com/v1"]})
    return url


def _validate_value(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed("the credential value is empty", fields={"value": ["give the key (never echoed)"]})
    if len(value) > MAX_VALUE_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        # A header value cannot hold control characters (a trailing newline from stdin is stripped first).
        raise ValidationFailed("the credential value is too long or holds control characters",
                               fields={"value": [f"at most {MAX_VALUE_CHARS} printable characters"]})
    return value


# --------------------------------------------------------------------------- encryption


def _fernet_for(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_KDF_SALT, info=_KDF_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _cipher() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(k) for k in keys])


def _encrypt(value: str) -> str:
    return _cipher().encrypt(value.encode()).decode()


def _decrypt(credential: UpstreamCredential) -> str:
    try:
        return _cipher().decrypt(credential.encrypted_value.encode()).decode()
    except InvalidToken:
        raise CredentialUnavailable(
            f"upstream credential {credential.name!r} cannot be decrypted (was FTOPS_SECRET_KEY changed?): "
            "an admin sets it again with `manage.py upstream_credential set`") from None


# --------------------------------------------------------------------------- services


@transaction.atomic
def upstream_credential_set(
    *, name: str, base_url: str, value: str | None, by: Actor
) -> tuple[UpstreamCredential, str]:
    """Create or update a credential; returns it and "created", "updated" or "unchanged".

    A new base URL needs the value again: a value is only sent where it was entered for.
    Setting the same URL and value again writes nothing and audits nothing.
    """
    name = validate_credential_name(name)
    base_url = validate_base_url(base_url)
    if value is not None:
        value = _validate_value(value)
    existing = UpstreamCredential.objects.select_for_update().filter(name=name).first()
    now = timezone.now()
    if existing is None:
        if value is None:
            raise ValidationFailed(f"credential {name!r} is new: give its value",
                                   fields={"value": ["required when creating a credential"]})
        created = UpstreamCredential.objects.create(name=name, base_url=base_url, encrypted_value=_encrypt(value),
                                                    value_set_at=now, created_by=by.label[:200])
        audit_record(action=AuditAction.UPSTREAM_CREDENTIAL_CREATED, by=by, object_type="upstream_credential",
                     object_id=created.pk, detail={"name": name, "base_url": base_url})
        return created, "created"
    url_changed = existing.base_url != base_url
    if url_changed and value is None:
        raise ValidationFailed(f"changing the base_url of {name!r} needs its value again",
                               fields={"value": ["a value is only ever sent to the URL it was entered for"]})
    value_changed = value is not None and _value_differs(existing, value)
    if not url_changed and not value_changed:
        return existing, "unchanged"
    detail: dict[str, object] = {"name": name, "base_url": base_url, "value_changed": value_changed}
    if url_changed:
        detail["previous_base_url"] = existing.base_url
    existing.base_url = base_url
    if value is not None:
        existing.encrypted_value = _encrypt(value)
        existing.value_set_at = now
    existing.save()
    audit_record(action=AuditAction.UPSTREAM_CREDENTIAL_UPDATED, by=by, object_type="upstream_credential",
                 object_id=existing.pk, detail=detail)
    return existing, "updated"


def _value_differs(credential: UpstreamCredential, value: str) -> bool:
    try:
        return _decrypt(credential) != value
    except CredentialUnavailable:
        return True  # unreadable under the current key: writing it again repairs it


@transaction.atomic
def upstream_credential_delete(*, name: str, by: Actor) -> None:
    credential = UpstreamCredential.objects.select_for_update().filter(name=name).first()
    if credential is None:
        raise NotFound(f"no upstream credential named {name!r}")
    pk, base_url = credential.pk, credential.base_url
    credential.delete()
    audit_record(action=AuditAction.UPSTREAM_CREDENTIAL_DELETED, by=by, object_type="upstream_credential",
                 object_id=pk, detail={"name": name, "base_url": base_url})


# --------------------------------------------------------------------------- selectors


def upstream_credential_list() -> list[UpstreamCredential]:
    return list(UpstreamCredential.objects.defer("encrypted_value").order_by("name"))


def upstream_credential_exists(name: str) -> bool:
    return UpstreamCredential.objects.filter(name=name).exists()


def upstream_credential_get_secret(name: str) -> ResolvedCredential:
    """The value and the one base URL it may be sent to; for the code that makes the call, never for display."""
    credential = UpstreamCredential.objects.filter(name=name).first()
    if credential is None:
        raise NotFound(f"no upstream credential named {name!r}: an admin registers it with "
                       f"`manage.py upstream_credential set {name} --base-url URL`")
    return ResolvedCredential(name=credential.name, base_url=credential.base_url, value=_decrypt(credential))


def openai_client_for_credential(name: str, *, timeout: float, max_retries: int) -> Any:
    """An official ``openai`` client bound to a named credential's base URL.

    Redirects are off so the key can never follow a 3xx to another host.
    """
    from openai import DefaultHttpxClient, OpenAI

    credential = upstream_credential_get_secret(name)
    return OpenAI(api_key=credential.value, base_url=credential.base_url, max_retries=max_retries, timeout=timeout,
                  http_client=DefaultHttpxClient(follow_redirects=False))
