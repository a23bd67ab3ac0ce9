"""What a service publishes about its training data, and where the aggregator pulls from."""

from __future__ import annotations

from django.db import models

from ftops.catalog.models import Service
from ftops.common.models import TimeStampedModel


class PublishingSettings(TimeStampedModel):
    """A service's consent and contact as shown in its ``.well-known`` document.

    Nothing is shared until someone says so: both flags default off. ``share_with_orchestrators``
    opens ``/mcp/training-dataset`` and ``/mcp/test-dataset`` to ``ml_orchestrator`` keys;
    ``public_model_training`` is the separate, public consent of the seed's document.
    """

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="publishing")
    share_with_orchestrators = models.BooleanField(
        default=False, help_text="ML orchestrator keys may pull this service's examples (PII redacted)")
    public_model_training = models.BooleanField(
        default=False, help_text="Consent to improve public foundation models with this data")
    opt_in_text = models.TextField(blank=True)
    restrictions = models.JSONField(default=list, blank=True)
    contact_team = models.CharField(max_length=200, blank=True)
    contact_documentation = models.CharField(max_length=500, blank=True)
    updated_by = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"publishing of {self.service_id}"


class AggregationSource(TimeStampedModel):
    """A remote ftops-speaking service set up by an admin. The URL is fixed here, never taken from
    a request, and the token is a named upstream credential bound to the same base URL."""

    name = models.SlugField(max_length=100, unique=True)
    base_url = models.CharField(max_length=500, help_text="e.g. https://payments.internal:8000")
    credential_name = models.CharField(max_length=100, blank=True,
                                       help_text="An upstream credential (manage.py upstream_credential)")
    enabled = models.BooleanField(default=True)
    timeout_s = models.FloatField(default=10.0)
    # Per remote service: the cursor of the last page stored, so the next run asks only for what is new.
    cursors = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OutcomeStatus(models.TextChoices):
    OK = "ok", "OK"
    DOWN = "down", "Down (unreachable)"
    TIMEOUT = "timeout", "Slow past its timeout"
    MALFORMED = "malformed", "Malformed answer"
    FORBIDDEN = "forbidden", "Refused (401/403)"
    ERROR = "error", "Other error"


class AggregationOutcome(models.Model):
    """What one aggregation run got from one source: a row even when the source failed."""

    run_id = models.CharField(max_length=40, db_index=True)
    source = models.ForeignKey(AggregationSource, on_delete=models.CASCADE, related_name="outcomes")
    status = models.CharField(max_length=12, choices=OutcomeStatus.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    services = models.JSONField(default=list, blank=True)
    pulled = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    tools_imported = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    actor = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.source_id} {self.status} @ {self.started_at:%Y-%m-%d %H:%M}"
