"""Read-mostly admin: release decisions go through the services (and their audit rows), so
status, deployments and approvals are not editable here."""

from django.contrib import admin

from registry.models import Approval, CriticalScenario, Deployment, GateReport, ModelVersion, ModelVersionEvent


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "scope", "backend", "semver_bump", "created_by", "created_at"]
    list_filter = ["status", "scope", "backend"]
    search_fields = ["name", "family", "base_model"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]


@admin.register(ModelVersionEvent)
class ModelVersionEventAdmin(admin.ModelAdmin):
    list_display = ["at", "model_version", "kind", "from_status", "to_status", "scope", "actor"]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in ModelVersionEvent._meta.fields]


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["scope", "state", "model_version", "created_by", "created_at", "ended_at"]
    list_filter = ["state", "scope"]
    readonly_fields = [f.name for f in Deployment._meta.fields]


@admin.register(GateReport)
class GateReportAdmin(admin.ModelAdmin):
    list_display = ["model_version", "passed", "checks_passed", "checks_total", "decision", "created_at"]
    list_filter = ["passed", "decision"]
    readonly_fields = [f.name for f in GateReport._meta.fields]


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["model_version", "decision", "override", "actor", "created_at"]
    list_filter = ["decision", "override"]
    readonly_fields = [f.name for f in Approval._meta.fields]


@admin.register(CriticalScenario)
class CriticalScenarioAdmin(admin.ModelAdmin):
    list_display = ["record_id", "service", "note", "created_by", "created_at"]
    list_filter = ["service"]
    search_fields = ["record_id", "note"]
