"""Demo stage: simulated production traffic through the ingest service, in API-sized batches."""

from __future__ import annotations

from typing import Any

from ftops.common.demo import DemoContext
from ftops.interactions.models import INTERNAL_SCOPE, Interaction
from ftops.interactions.selectors import existing_by_external_id
from ftops.interactions.services import interactions_ingest

BATCH = 1000


def _payloads(ctx: DemoContext) -> list[dict[str, Any]]:
    from django.utils import timezone

    from ftops.catalog.sample import generate_interactions

    # Traffic up to now, so the dashboard's last-24-hours and last-7-days figures are live.
    return generate_interactions(seed=ctx.seed, n=600 if ctx.quick else 2000, now=timezone.now())


def run(ctx: DemoContext) -> None:
    payloads = _payloads(ctx)
    # The generator dates traffic relative to now, so a second demo run on the same database
    # produces other bodies for the same ids: keep what is stored rather than hit 409s.
    stored = existing_by_external_id((p["id"] for p in payloads), scope=INTERNAL_SCOPE)
    fresh = [p for p in payloads if p["id"] not in stored]
    created = 0
    for start in range(0, len(fresh), BATCH):
        result = interactions_ingest(payloads=fresh[start : start + BATCH])
        created += result.created
        ctx.log(f"ingested {start + len(result.items)}/{len(fresh)} interactions")
    if stored:
        ctx.log(f"{len(stored)} interactions were already stored; kept them")
    total = Interaction.objects.count()
    failures = Interaction.objects.filter(is_failure=True).count()
    redactions = sum(sum(counts.values()) for counts in Interaction.objects.values_list("redactions", flat=True))
    ctx.log(f"{created} new interactions, {failures} of {total} marked as failures, {redactions} PII redactions")
    ctx.summary["interactions"] = total
    ctx.summary["failures"] = failures
    ctx.summary["pii_redactions"] = redactions
