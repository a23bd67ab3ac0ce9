from django.contrib import admin

from review.models import ReviewEvent, ReviewItem, ReviewSubmission


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["id", "service", "tool_name", "failure_kind", "status", "holder", "occurred_at"]
    list_filter = ["status", "failure_kind"]
    raw_id_fields = ["interaction", "example", "claimed_by"]


@admin.register(ReviewSubmission)
class ReviewSubmissionAdmin(admin.ModelAdmin):
    list_display = ["item", "round", "reviewer", "behavior", "created_at"]
    raw_id_fields = ["item", "user"]


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "action", "item"]
    list_filter = ["action"]
    raw_id_fields = ["item", "user"]
