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


class AuditEvent(models.Model):
    """An append-only record of a sensitive action or a denied attempt."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=80, db_index=True)
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
