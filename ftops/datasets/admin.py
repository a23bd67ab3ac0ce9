"""Read-mostly admin views; writes go through the services (the API and pages)."""

from __future__ import annotations

from django.contrib import admin

from ftops.datasets.models import CurationRun, DatasetVersion, TrainingExample


@admin.register(TrainingExample)
class TrainingExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "service", "tool", "behavior", "source", "quality", "status", "created_at")
    list_filter = ("source", "quality", "status", "behavior", "service")
    search_fields = ("user_query",)
    list_select_related = ("service", "tool")
    readonly_fields = ("content_hash", "tool_versions", "created_at", "updated_at")
    raw_id_fields = ("interaction", "parent", "schema_version", "tool")


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ("number", "status", "seed", "content_hash", "built_at")
    readonly_fields = [f.name for f in DatasetVersion._meta.fields]

    def has_add_permission(self, request: object) -> bool:  # built by the service only
        return False


@admin.register(CurationRun)
class CurationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "progress", "created_at", "finished_at")
