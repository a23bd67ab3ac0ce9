"""Reads for API keys and the audit log."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from ftops.common.models import ApiKey, AuditEvent
from ftops.common.services import KEY_PREFIX, hash_secret


def api_key_for_secret(secret: str) -> ApiKey | None:
    if not secret.startswith(KEY_PREFIX):
        return None
    return ApiKey.objects.filter(hashed_secret=hash_secret(secret), revoked_at__isnull=True).first()


def api_key_by_hash(hashed: str) -> ApiKey | None:
    """The key with this hashed secret, revoked or not (to tell "revoked" from "unknown")."""
    return ApiKey.objects.filter(hashed_secret=hashed).first()


def api_keys_list() -> QuerySet[ApiKey]:
    return ApiKey.objects.order_by("-created_at", "-id")


def audit_events(*, action: str | None = None) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.select_related("user", "api_key")
    if action:
        qs = qs.filter(action=action)
    return qs


class CappedPaginator(Paginator):
    """A paginator that stops counting at ``cap`` rows.

    An exact ``COUNT(*)`` over a million rows costs more than rendering the page itself, and
    nobody pages through more than a few hundred pages: past the cap the page says "more than
    ``cap``" and the pages beyond it are reached by narrowing the filters.
    """

    def __init__(self, object_list: Any, per_page: int, *, cap: int = 10_000) -> None:
        super().__init__(object_list, per_page)
        self.cap = cap

    @cached_property
    def _counted(self) -> int:
        # COUNT over a LIMITed subquery: the database stops after cap + 1 rows.
        head: Any = self.object_list[: self.cap + 1]
        return int(head.count()) if isinstance(head, QuerySet) else len(head)

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.cap)

    @property
    def capped(self) -> bool:
        return self._counted > self.cap
