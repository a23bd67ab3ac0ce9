"""Who acts: one ``Actor`` type for users (session login), API keys, the CLI and the system.

Every write service takes an ``Actor`` and writes its audit row from it, so the web, the API
and the management commands leave the same trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser

from ftops.common.models import ApiKey


@dataclass(frozen=True)
class Actor:
    """``label`` is what leases, events and audit rows record ("alice", "key:ab12cd34", "cli:root")."""

    label: str
    user: Any = None
    api_key: ApiKey | None = None
    ip: str | None = None

    @property
    def user_id(self) -> int | None:
        return getattr(self.user, "pk", None) if self.user is not None and self.api_key is None else None

    @classmethod
    def system(cls, what: str = "system") -> Actor:
        return cls(label=what)

    @classmethod
    def cli(cls, name: str | None = None) -> Actor:
        import getpass

        try:
            who = name or getpass.getuser()
        except Exception:  # no login name in some containers
            who = "unknown"
        return cls(label=f"cli:{who}")

    @classmethod
    def for_key(cls, api_key: ApiKey, *, ip: str | None = None) -> Actor:
        return cls(label=f"key:{api_key.prefix}", api_key=api_key, ip=ip)


def actor_for(request: Any) -> Actor:
    """The actor behind an HTTP request: its API key when it used one, else the logged-in user."""
    from ftops.common.auth import client_ip

    ip = client_ip(request)
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return Actor.for_key(auth, ip=ip)
    user = getattr(request, "user", None)
    if user is not None and not isinstance(user, AnonymousUser) and getattr(user, "is_authenticated", False):
        return Actor(label=str(user.get_username()), user=user, ip=ip)
    return Actor(label="anonymous", ip=ip)
