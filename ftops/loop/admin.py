from django.contrib import admin

from ftops.loop.models import TriggerEvent


@admin.register(TriggerEvent)
class TriggerEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "service", "reason")
    list_filter = ("kind",)
