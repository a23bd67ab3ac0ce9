from django.contrib import admin

from ftops.evaluation.models import EvalFailure, EvalRun, EvalSuite


@admin.register(EvalSuite)
class EvalSuiteAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "dataset_version", "split", "case_count", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name"]


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "model_label", "suite", "status", "exact", "created_at"]
    list_filter = ["status", "suite"]
    search_fields = ["name", "model_label"]
    readonly_fields = ["metrics", "adapter_config"]


@admin.register(EvalFailure)
class EvalFailureAdmin(admin.ModelAdmin):
    list_display = ["run", "record_id", "category", "error_type"]
    list_filter = ["error_type", "category"]
    search_fields = ["record_id", "user_query"]
