"""Demo stage: failed interactions into the review queue; a few reviewed by a simulated reviewer.

The simulated reviewer only acts where the sample data records the right answer
(``metadata["simulated"]``), and goes through the same claim/submit services as a person,
so the corrections reach the dataset stage as ``source=correction`` examples.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from ftops.common.actors import Actor
from ftops.common.demo import DemoContext
from ftops.common.errors import FtopsError
from review import services
from review.correction import Correction
from review.models import ReviewItem, ReviewStatus

DEMO_REVIEWER = "demo-reviewer (simulated)"


def _correction_for(item: ReviewItem) -> Correction | None:
    simulated = (item.interaction.metadata or {}).get("simulated") or {}
    behavior = simulated.get("expected_behavior") or "call"
    calls = [c for c in simulated.get("expected_calls") or [] if isinstance(c, dict) and c.get("name")]
    if behavior == "call" and calls:
        return Correction(behavior="call", calls=[{"name": c["name"], "arguments": dict(c.get("arguments") or {})}
                                                  for c in calls],
                          explanation="Corrected from the recorded expected call.")
    return None


def run(ctx: DemoContext) -> None:
    Group.objects.get_or_create(name="reviewer")
    created = services.review_items_enqueue_failures()
    open_items = ReviewItem.objects.filter(status=ReviewStatus.PENDING).count()
    ctx.log(f"queued {created} failed interactions for review ({open_items} open)")
    actor = Actor(label=DEMO_REVIEWER)
    budget = 10 if ctx.quick else 40
    corrected = 0
    candidates: Any = (ReviewItem.objects.filter(status=ReviewStatus.PENDING, required_reviews=1)
                       .select_related("interaction").order_by("-occurred_at", "-id")[: budget * 3])
    for item in candidates:
        if corrected >= budget:
            break
        correction = _correction_for(item)
        if correction is None:
            continue
        try:
            claimed = services.review_item_claim(item_id=item.pk, actor=actor)
            services.review_item_submit(item_id=item.pk, actor=actor, version=claimed.version, correction=correction)
            corrected += 1
        except FtopsError as exc:
            # An expected call the current schema refuses is worth a human look: leave it queued.
            if ReviewItem.objects.filter(pk=item.pk, holder=actor.label).exists():
                services.review_item_release(item_id=item.pk, actor=actor)
            ctx.log(f"  left #{item.pk} for a person: {exc.message}")
    ctx.summary["review_queue"] = ReviewItem.objects.filter(status=ReviewStatus.PENDING).count()
    ctx.summary["review_corrections"] = corrected
    ctx.log(f"simulated reviewer corrected {corrected} items; {ctx.summary['review_queue']} remain open")
