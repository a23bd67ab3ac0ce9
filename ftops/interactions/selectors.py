"""Reads of interactions, with the object-level rule for who may see which.

Reviewers and admins see every interaction. A caller holding only ``ingest`` (a service's
own key) sees the interactions that key ingested: one team's traffic is not another's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from ftops.catalog.models import Service, Tool
from ftops.common.errors import NotFound, NotFoundCrossTenant
from ftops.common.models import ApiKey, Role
from ftops.interactions.models import FeedbackEvent, IngestBatch, Interaction
from ftops.interactions.verdicts import ToolSchema

SEE_ALL_ROLES = frozenset({Role.REVIEWER, Role.ADMIN, Role.APPROVER, Role.ML_ORCHESTRATOR})


def services_by_name(names: Iterable[str]) -> dict[str, int]:
    return dict(Service.objects.filter(name__in=set(names)).values_list("name", "id"))


def tool_schemas_by_service(service_ids: Iterable[int]) -> dict[int, dict[str, ToolSchema]]:
    """Current schema of every tool of the given services, in one query."""
    out: dict[int, dict[str, ToolSchema]] = {sid: {} for sid in service_ids}
    rows = Tool.objects.filter(service_id__in=list(out)).values_list(
        "service_id", "name", "current_version__parameters", "current_version__content_hash"
    )
    for service_id, name, parameters, content_hash in rows:
        params = parameters if isinstance(parameters, dict) else None
        out[service_id][name] = ToolSchema(name=name, parameters=params, content_hash=content_hash or "")
    return out


def existing_by_external_id(external_ids: Iterable[str], *, scope: str) -> dict[str, dict[str, Any]]:
    """Stored interactions with these ids in one idempotency scope (another key's ids are not seen)."""
    fields = ("pk", "external_id", "body_hash", "call_verdict", "is_failure", "failure_kind", "redactions")
    rows = Interaction.objects.filter(scope=scope, external_id__in=list(external_ids)).values(*fields)
    return {row["external_id"]: row for row in rows}


def visible_interactions(*, roles: set[str], api_key: ApiKey | None = None) -> QuerySet[Interaction]:
    qs = Interaction.objects.select_related("service")
    if roles & SEE_ALL_ROLES:
        return qs
    if Role.INGEST in roles and api_key is not None:
        return qs.filter(api_key=api_key)
    if Role.INGEST in roles:
        return qs  # a session user in the ingest group acts for the whole platform
    return qs.none()


def interactions_list(
    *,
    roles: set[str],
    api_key: ApiKey | None = None,
    service: str | None = None,
    failure_kind: str | None = None,
    is_failure: bool | None = None,
    call_verdict: str | None = None,
    model_version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Interaction]:
    qs = visible_interactions(roles=roles, api_key=api_key)
    if service:
        qs = qs.filter(service__name=service)
    if failure_kind:
        qs = qs.filter(failure_kind=failure_kind)
    if is_failure is not None:
        qs = qs.filter(is_failure=is_failure)
    if call_verdict:
        qs = qs.filter(call_verdict=call_verdict)
    if model_version:
        qs = qs.filter(model_version=model_version)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lt=until)
    return qs


def interaction_get(*, external_id: str, roles: set[str], api_key: ApiKey | None = None) -> Interaction:
    """404 (not 403) for interactions the caller may not see, so ids do not leak."""
    found = visible_interactions(roles=roles, api_key=api_key).filter(external_id=external_id).first()
    if found is None:
        message = f"no interaction with id '{external_id}'"
        if Interaction.objects.filter(external_id=external_id).exists():
            # Same answer as a missing id; the error handler audits the probe.
            raise NotFoundCrossTenant(message, object_type="interaction", object_id=external_id[:120])
        raise NotFound(message)
    return found


def feedback_events(interaction: Interaction) -> QuerySet[FeedbackEvent]:
    return interaction.feedback_events.order_by("created_at", "id")


def failures(
    *,
    service: Service | str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Interaction]:
    """Interactions marked as failures, newest first (the review queue's source)."""
    qs = Interaction.objects.select_related("service").filter(is_failure=True)
    if isinstance(service, Service):
        qs = qs.filter(service=service)
    elif service:
        qs = qs.filter(service__name=service)
    if kind:
        qs = qs.filter(failure_kind=kind)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lt=until)
    return qs


def ingest_batch_get(*, batch_id: int, roles: set[str], api_key: ApiKey | None = None) -> IngestBatch:
    qs = IngestBatch.objects.all()
    if not roles & SEE_ALL_ROLES and api_key is not None:
        qs = qs.filter(api_key=api_key)
    found = qs.filter(pk=batch_id).first()
    if found is None:
        if IngestBatch.objects.filter(pk=batch_id).exists():
            raise NotFoundCrossTenant(f"no ingest batch {batch_id}", object_type="ingest_batch", object_id=batch_id)
        raise NotFound(f"no ingest batch {batch_id}")
    return found
