from django.contrib import admin

from ftops.common.models import ApiKey, AuditEvent


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "roles", "created_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "hashed_secret"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "action", "object_type", "object_id"]
    list_filter = ["action"]
