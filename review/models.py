"""The human review queue: one item per failed interaction, its submissions and its events.

An item is *open* when it is pending or skipped, or claimed with a lease that has run out;
claiming is a conditional UPDATE on that condition, so two reviewers never hold one item.
``version`` grows whenever the item changes hands or state; forms carry it so a stale
submit is detected instead of silently overwriting someone else's work.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Claimed"
    CORRECTED = "corrected", "Corrected"
    REJECTED = "rejected", "Rejected"
    SKIPPED = "skipped", "Skipped"


# Statuses a reviewer may claim from (an expired claim counts too, see ``open_q``).
CLAIMABLE_STATUSES = (ReviewStatus.PENDING, ReviewStatus.SKIPPED)
DONE_STATUSES = (ReviewStatus.CORRECTED, ReviewStatus.REJECTED)


def open_q(now: object | None = None) -> Q:
    """Items anyone may claim: pending, skipped, or claimed with an expired lease."""
    moment = now or timezone.now()
    return Q(status__in=CLAIMABLE_STATUSES) | Q(status=ReviewStatus.CLAIMED, lease_expires_at__lt=moment)


class ReviewItem(models.Model):
    interaction = models.OneToOneField(
        "interactions.Interaction", on_delete=models.CASCADE, related_name="review_item"
    )
    # Denormalised from the interaction so the queue filters and sorts on one table.
    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="review_items")
    tool_name = models.CharField(max_length=200, blank=True, help_text="Tool of the model's first call")
    failure_kind = models.CharField(max_length=32, blank=True)
    user_query = models.CharField(max_length=500, blank=True, help_text="Last user message, for search")
    occurred_at = models.DateTimeField(help_text="When the interaction happened")

    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    version = models.PositiveIntegerField(default=1)
    holder = models.CharField(max_length=200, blank=True, help_text="Actor holding the lease")
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    required_reviews = models.PositiveSmallIntegerField(default=1, help_text="2 when chosen for double review")
    reviews_done = models.PositiveSmallIntegerField(default=0)
    first_reviewer = models.CharField(max_length=200, blank=True)
    agreement = models.JSONField(null=True, blank=True, help_text="Double review: agreement on tool and arguments")
    example = models.ForeignKey(
        "datasets.TrainingExample", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_by = models.CharField(max_length=200, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["-occurred_at", "-id"], name="ix_review_newest"),
            models.Index(fields=["status", "-occurred_at"], name="ix_review_status_newest"),
            models.Index(fields=["service", "-occurred_at"], name="ix_review_service_newest"),
            models.Index(fields=["failure_kind", "-occurred_at"], name="ix_review_kind_newest"),
            models.Index(fields=["tool_name", "-occurred_at"], name="ix_review_tool_newest"),
            models.Index(fields=["holder", "status"], name="ix_review_holder"),
            # Covers the queue's grouped counts (status x service x tool x kind) on PostgreSQL.
            models.Index(fields=["status", "service", "tool_name", "failure_kind"], include=["lease_expires_at"],
                         name="ix_review_summary"),
        ]

    def __str__(self) -> str:
        return f"review #{self.pk} ({self.status})"

    def is_open(self, now: object | None = None) -> bool:
        moment = now or timezone.now()
        if self.status in CLAIMABLE_STATUSES:
            return True
        return bool(
            self.status == ReviewStatus.CLAIMED and self.lease_expires_at is not None
            and self.lease_expires_at < moment  # type: ignore[operator]
        )

    def held_by(self, actor: str, now: object | None = None) -> bool:
        moment = now or timezone.now()
        return bool(
            self.status == ReviewStatus.CLAIMED and self.holder == actor
            and self.lease_expires_at is not None and self.lease_expires_at >= moment  # type: ignore[operator]
        )

    @property
    def needs_second_review(self) -> bool:
        return self.reviews_done < self.required_reviews and self.reviews_done > 0


class ReviewSubmission(models.Model):
    """What one reviewer answered for an item (two rows for a double-reviewed item)."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="submissions")
    round = models.PositiveSmallIntegerField(default=1)
    reviewer = models.CharField(max_length=200)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    behavior = models.CharField(max_length=20)
    tool = models.CharField(max_length=200, blank=True, help_text="The tool the answer is about")
    calls = models.JSONField(default=list, blank=True, help_text="[{name, arguments}] as the reviewer gave them")
    expected = models.JSONField(default=dict, help_text="As TrainingExample.expected")
    explanation = models.TextField(blank=True)
    common_mistakes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item_id", "round"]
        constraints = [models.UniqueConstraint(fields=["item", "round"], name="uniq_review_submission_round")]

    def __str__(self) -> str:
        return f"{self.item_id}#{self.round} by {self.reviewer}"


class ReviewAction(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Lease expired"
    SUBMITTED = "submitted", "First review submitted"
    CORRECTED = "corrected", "Corrected"
    REJECTED = "rejected", "Rejected"
    SKIPPED = "skipped", "Skipped"
    CONFLICT = "conflict", "Stale submit refused"
    CLAIM_REFUSED = "claim_refused", "Claim refused"


class ReviewEvent(models.Model):
    """Append-only log of everything reviewers did."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16, choices=ReviewAction.choices)
    actor = models.CharField(max_length=200)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(default=timezone.now)
    seconds_spent = models.PositiveIntegerField(null=True, blank=True, help_text="Claim to decision")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["actor", "action"], name="ix_review_event_actor"),
            models.Index(fields=["item", "at"], name="ix_review_event_item"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} #{self.item_id}"
