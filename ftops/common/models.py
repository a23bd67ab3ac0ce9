"""Shared base model, API keys with roles, and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Role(models.TextChoices):
    INGEST = "ingest", "Ingest"
    REVIEWER = "reviewer", "Reviewer"
    APPROVER = "approver", "Approver"
    ML_ORCHESTRATOR = "ml_orchestrator", "ML orchestrator"
    GATEWAY = "gateway", "Gateway (calls models through the OpenAI-compatible endpoint)"
    ADMIN = "admin", "Admin"


class ApiKey(TimeStampedModel):
    """An API key. Only a SHA-256 hash of the secret is stored; the key is shown once."""

    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part shown in lists")
    hashed_secret = models.CharField(max_length=64, unique=True)
    roles = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_role(self, role: str) -> bool:
        return Role.ADMIN in self.roles or role in self.roles

    # DRF's IsAuthenticated reads request.user.is_authenticated; an API key acts as the user.
    @property
    def is_authenticated(self) -> bool:
        return True


class AuditAction(models.TextChoices):
    """Every action the audit log knows. Add new actions here, never as bare strings."""

    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    PERMISSION_DENIED = "permission.denied"
    AUTH_FAILED = "auth.failed"
    LOGIN_FAILED = "auth.login_failed"
    LOGIN_LOCKED_OUT = "auth.login_locked_out"
    CSRF_FAILED = "auth.csrf_failed"
    NOT_FOUND_CROSS_TENANT = "access.not_found"
    CATALOG_IMPORTED = "catalog.imported"
    CATALOG_IMPORT_FAILED = "catalog.import_failed"
    EXAMPLE_CREATED = "example.created"
    EXAMPLE_UPDATED = "example.updated"
    EXAMPLES_SCHEMA_MIGRATED = "examples.schema_migrated"
    DATASET_EXPORTED = "dataset.exported"
    DATASET_DOWNLOADED = "dataset.downloaded"
    HOLDOUT_EXPORT_DENIED = "dataset.holdout_denied"
    DATASET_BUILD_REQUESTED = "dataset.build_requested"
    REVIEW_CORRECTED = "review.corrected"
    REVIEW_REJECTED = "review.rejected"
    REVIEW_BULK_REJECTED = "review.bulk_rejected"
    TRAINING_RUN_CREATED = "training_run.created"
    TRAINING_RUN_CANCELLED = "training_run.cancelled"
    EVALUATION_RUN_CREATED = "evaluation_run.created"
    UPSTREAM_CREDENTIAL_CREATED = "upstream_credential.created"
    UPSTREAM_CREDENTIAL_UPDATED = "upstream_credential.updated"
    UPSTREAM_CREDENTIAL_DELETED = "upstream_credential.deleted"
    OUTBOUND_REFUSED = "outbound.refused"
    MODEL_VERSION_REGISTERED = "model_version.registered"
    MODEL_VERSION_EVALUATION_REQUESTED = "model_version.evaluation_requested"
    MODEL_VERSION_EVALUATED = "model_version.evaluated"
    MODEL_VERSION_GATES_COMPUTED = "model_version.gates_computed"
    MODEL_VERSION_APPROVED = "model_version.approved"
    MODEL_VERSION_REJECTED = "model_version.rejected"
    MODEL_VERSION_GATE_OVERRIDDEN = "model_version.gate_overridden"
    MODEL_VERSION_APPROVAL_REFUSED = "model_version.approval_refused"
    MODEL_VERSION_PROMOTED = "model_version.promoted"
    MODEL_VERSION_PARTIALLY_PROMOTED = "model_version.partially_promoted"
    MODEL_VERSION_ROLLED_BACK = "model_version.rolled_back"
    MODEL_VERSION_RETIRED = "model_version.retired"
    MODEL_VERSION_CANARY_STARTED = "model_version.canary_started"
    MODEL_VERSION_CANARY_PROMOTED = "model_version.canary_promoted"
    MODEL_VERSION_CANARY_ROLLED_BACK = "model_version.canary_rolled_back"
    CANARY_DECIDED = "canary.decided"  # every canary decision (gateway.canary), automatic or manual
    SHADOW_STARTED = "shadow.started"
    SHADOW_ENDED = "shadow.ended"
    CRITICAL_SCENARIO_SET = "critical_scenario.set"
    CRITICAL_SCENARIO_CLEARED = "critical_scenario.cleared"
    NOTIFICATION_SENT = "notification.sent"
    NOTIFICATION_FAILED = "notification.failed"
    NOTIFICATION_PREFERENCES_UPDATED = "notification.preferences_updated"
    NOTIFICATION_TEAM_WEBHOOK_UPDATED = "notification.team_webhook_updated"
    RETRAINING_TRIGGER_FIRED = "retraining_trigger.fired"
    CYCLE_STARTED = "cycle.started"
    CYCLE_FINISHED = "cycle.finished"
    DISCOVERY_PUBLISHING_UPDATED = "discovery.publishing_updated"
    DISCOVERY_DATASET_READ = "discovery.dataset_read"
    DISCOVERY_DATASET_DENIED = "discovery.dataset_denied"
    DISCOVERY_SOURCE_SAVED = "discovery.source_saved"
    DISCOVERY_AGGREGATED = "discovery.aggregated"


class AuditEvent(models.Model):
    """An append-only record of a sensitive action or a denied attempt."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=80, db_index=True)  # an AuditAction value
    actor = models.CharField(max_length=200, help_text="username, 'key:<prefix>' or 'system'")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=120, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action}"


class UpstreamCredential(TimeStampedModel):
    """A named key for an upstream model endpoint, chosen by an admin and bound to one base URL.

    The value is stored encrypted (``ftops.common.credentials``) and is only ever sent to
    ``base_url``: API callers name a credential, never an endpoint or an environment variable,
    so no caller can make the server send a secret somewhere else.
    """

    name = models.CharField(max_length=100, unique=True, help_text="What API callers name, e.g. 'openai-prod'")
    base_url = models.CharField(max_length=500, help_text="The only endpoint this value is ever sent to")
    encrypted_value = models.TextField(editable=False)  # a Fernet token; never shown, never logged
    value_set_at = models.DateTimeField(help_text="When the value was last entered (rotation age)")
    created_by = models.CharField(max_length=200, blank=True, help_text="The admin who registered it")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} -> {self.base_url}"


# --- notifications: what each user receives, and every send (ftops.common.notifications) ----


class NotificationKind(models.TextChoices):
    """What a notification is about; users choose per kind whether they get an email."""

    CYCLE_STAGE_FAILED = "cycle_stage_failed", "Failed improvement-cycle stage"
    GATE_FAILED = "gate_failed", "Release gates failed"
    CANARY_ROLLBACK = "canary_rollback", "Canary rolled back"
    CANARY_STEP = "canary_step", "Canary promoted or paused"
    SCHEMA_BREAKING = "schema_breaking", "Breaking tool-schema change on import"
    REVIEW_QUEUE_STALE = "review_queue_stale", "Stale review queue"
    DAILY_DIGEST = "daily_digest", "Daily review digest"
    MONTHLY_REPORT = "monthly_report", "Monthly production-vs-offline report"
    APPROVAL_REQUESTED = "approval_requested", "A version awaits approval"
    GATE_OVERRIDE = "gate_override", "Gate override"
    AGGREGATION_FAILED = "aggregation_failed", "Aggregation from a service failed"
    OTHER = "other", "Other"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Nobody to tell"


class NotificationPreference(models.Model):
    """One user's choice for one kind; no row means the kind's default
    (``ftops.common.notifications.EMAIL_DEFAULTS``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="notification_preferences")
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    email = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="notification_pref_user_kind")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}: {'on' if self.email else 'off'}"


class TeamWebhookSetting(models.Model):
    """Whether the team's webhook (``FTOPS_NOTIFY_WEBHOOK_URL``) gets a kind; no row means yes.
    Admins edit it: the webhook is the team's channel, not one user's."""

    kind = models.CharField(max_length=32, choices=NotificationKind.choices, unique=True)
    webhook = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"webhook {self.kind}: {'on' if self.webhook else 'off'}"


class Notification(TimeStampedModel):
    """One ``notify()`` call and what became of it, channel by channel."""

    kind = models.CharField(max_length=32, choices=NotificationKind.choices, db_index=True)
    audience = models.CharField(max_length=32)
    service = models.CharField(max_length=100, blank=True)
    subject = models.CharField(max_length=200)
    text = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    recipients = models.JSONField(default=list, blank=True, help_text="Email addresses told")
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="notifications_received")
    channels = models.JSONField(default=dict, blank=True, help_text="{channel: {status, error, attempts}}")
    status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING,
                              db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} ({self.status})"


class AlertMark(models.Model):
    """A periodic alert already sent for its period (``daily_digest:2026-12-04``): the unique key
    makes "once per day" hold across beat, several scheduler threads and restarts."""

    key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    detail = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.key
