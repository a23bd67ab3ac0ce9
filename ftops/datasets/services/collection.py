"""Production collection: good interactions become examples, through the quality filters."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ftops.catalog.models import ToolSchemaVersion
from ftops.common.errors import ValidationFailed
from ftops.datasets.config import CurationConfig, load_config
from ftops.datasets.filters import expected_from_calls, has_unreadable_call, normalise_calls, rejection_reason
from ftops.datasets.models import Quality, Source, TrainingExample
from ftops.datasets.selectors import current_schemas
from ftops.datasets.services.examples import example_create
from ftops.interactions.models import CallVerdict, Interaction


@dataclass
class CollectReport:
    considered: int = 0
    created: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    example_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"considered": self.considered, "created": self.created, "rejected": dict(self.rejected)}


def collectable_interactions(cfg: CurationConfig) -> Any:
    """Successful interactions rated at least the threshold that have not been collected yet."""
    return (
        Interaction.objects.filter(success=True, is_failure=False,
                                   user_feedback__gte=math.ceil(cfg.quality_threshold))
        .exclude(examples__source=Source.PRODUCTION)
        .select_related("service")
        .order_by("timestamp", "id")
    )


def examples_collect_production(
    *,
    config: CurationConfig | None = None,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CollectReport:
    """Turn each good production interaction into at most one example (source production, quality medium).

    Idempotent: collected interactions are skipped (and a unique constraint backs it), so
    running twice, or two workers at once, never makes a second example.
    """
    cfg = config or load_config().curation
    report = CollectReport()
    rejected: Counter[str] = Counter()
    schema_cache: dict[int, dict[str, ToolSchemaVersion]] = {}
    qs = collectable_interactions(cfg)
    total = qs.count() if limit is None else min(limit, qs.count())
    for interaction in qs[:limit] if limit is not None else qs.iterator(chunk_size=500):
        report.considered += 1
        calls = normalise_calls(interaction.tool_calls)
        reason = rejection_reason(
            query=interaction.user_query, response_text=interaction.response_text or "",
            latency_ms=interaction.latency_ms, call_valid=interaction.call_verdict == CallVerdict.VALID,
            has_calls=bool(calls), cfg=cfg.filters,
        )
        if reason is None and has_unreadable_call(calls):
            reason = "unreadable_arguments"  # a call nobody can read is no example of a right call
        if reason is None:
            reason = _create_from_interaction(interaction, calls, schema_cache, report)
        if reason:
            rejected[reason] += 1
        if on_progress and report.considered % 200 == 0:
            on_progress(report.considered, total)
    report.rejected = dict(sorted(rejected.items()))
    return report


def _create_from_interaction(interaction: Interaction, calls: list[dict[str, Any]],
                             schema_cache: dict[int, dict[str, ToolSchemaVersion]], report: CollectReport) -> str:
    schemas = schema_cache.get(interaction.service_id)
    if schemas is None:
        schemas = schema_cache[interaction.service_id] = current_schemas(interaction.service)
    offered = [t.get("function", t).get("name") for t in interaction.tools or [] if isinstance(t, dict)]
    offered_known = [n for n in offered if isinstance(n, str) and n in schemas]
    messages = [m for m in interaction.messages or [] if isinstance(m, dict)]
    while messages and messages[-1].get("role") == "assistant":
        messages.pop()  # the logged answer is what we learn, not part of the request
    try:
        with transaction.atomic():
            example = example_create(
                service=interaction.service,
                user_query=interaction.user_query,
                messages=messages or None,
                tools=offered_known or None,
                behavior="call",
                expected=expected_from_calls(calls),
                source=Source.PRODUCTION,
                quality=Quality.MEDIUM,
                interaction=interaction,
                provenance={"interaction": interaction.external_id, "feedback": interaction.user_feedback,
                            "model_version": interaction.model_version,
                            "collected_at": timezone.now().isoformat()},
                schemas=schemas,
            )
    except ValidationFailed:
        return "schema_mismatch"
    except IntegrityError:
        return "already_collected"  # another worker collected it between our read and write
    report.created += 1
    report.example_ids.append(example.pk)
    return ""


def production_example_for(interaction: Interaction) -> TrainingExample | None:
    return TrainingExample.objects.filter(interaction=interaction, source=Source.PRODUCTION).first()
