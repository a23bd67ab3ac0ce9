from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ftops.common.actors import actor_for
from ftops.common.credentials import (
    upstream_credential_delete,
    upstream_credential_set,
    validate_base_url,
    validate_credential_name,
)
from ftops.common.errors import ValidationFailed
from ftops.common.models import ApiKey, AuditEvent, UpstreamCredential


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "roles", "created_at", "revoked_at", "last_used_at"]
    readonly_fields = ["prefix", "hashed_secret"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "action", "object_type", "object_id"]
    list_filter = ["action"]


class UpstreamCredentialForm(forms.ModelForm):
    # Write-only: the page never renders a value back, not even the one just typed.
    value = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="The key. Never shown again; leave empty to keep the current one (a new base URL needs it).",
    )

    class Meta:
        model = UpstreamCredential
        fields = ["name", "base_url"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        value = data.get("value") or None
        data["value"] = value
        creating = self.instance.pk is None
        try:
            if creating:
                data["name"] = validate_credential_name(data.get("name", ""))
            data["base_url"] = validate_base_url(data.get("base_url", ""))
        except ValidationFailed as exc:
            for field_name, problems in exc.fields.items():
                self.add_error(field_name if field_name in self.fields else None, f"{exc.message} ({problems[0]})")
            return data
        if creating and value is None:
            self.add_error("value", "required when creating a credential")
        elif not creating and value is None and data["base_url"] != self.instance.base_url:
            self.add_error("value", "a new base URL needs the value again: it is only sent where it was entered for")
        return data


@admin.register(UpstreamCredential)
class UpstreamCredentialAdmin(admin.ModelAdmin):
    """Create, rotate and delete through the same audited services as ``manage.py upstream_credential``."""

    form = UpstreamCredentialForm
    list_display = ["name", "base_url", "value_set_at", "created_by", "updated_at"]
    search_fields = ["name", "base_url"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A rename would silently re-point every run that names the credential.
        base = ["value_set_at", "created_by", "created_at", "updated_at"]
        return ["name", *base] if obj is not None else base

    def get_queryset(self, request: HttpRequest) -> QuerySet[UpstreamCredential]:
        return super().get_queryset(request).defer("encrypted_value")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        saved, _ = upstream_credential_set(name=obj.name, base_url=form.cleaned_data["base_url"],
                                           value=form.cleaned_data.get("value"), by=actor_for(request))
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        upstream_credential_delete(name=obj.name, by=actor_for(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        actor = actor_for(request)
        for name in queryset.values_list("name", flat=True):
            upstream_credential_delete(name=name, by=actor)
