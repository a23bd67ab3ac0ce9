from django.contrib import admin

from ftops.interactions.models import FeedbackEvent, IngestBatch, Interaction


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ["external_id", "service", "timestamp", "call_verdict", "is_failure", "failure_kind"]
    list_filter = ["call_verdict", "is_failure", "failure_kind", "service"]
    search_fields = ["external_id"]
    raw_id_fields = ["api_key"]


@admin.register(FeedbackEvent)
class FeedbackEventAdmin(admin.ModelAdmin):
    list_display = ["interaction", "score", "created_at"]
    raw_id_fields = ["interaction"]


@admin.register(IngestBatch)
class IngestBatchAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "size", "attempts", "created_at", "finished_at"]
    list_filter = ["status"]
    exclude = ["rows"]
