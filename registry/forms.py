"""Forms of the registry pages: list filters and the approver's decisions.

They only check shape (lengths, required text); whether a decision is allowed (status, the
two-person rule, failed gates) is the services' call, and their messages are shown as given.
"""

from __future__ import annotations

from django import forms

from registry.models import VersionStatus

COMMENT_MAX = 4000
AWAITING = "awaiting"  # gates computed, passed or blocked: an approver's turn


class VersionFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status"), (AWAITING, "Awaiting approval"), *VersionStatus.choices],
                               required=False)
    scope = forms.CharField(max_length=100, required=False)

    def filters(self) -> dict[str, str | None]:
        if not self.is_valid():
            return {"status": None, "scope": None}
        return {"status": self.cleaned_data["status"] or None, "scope": self.cleaned_data["scope"].strip() or None}


class ApproveForm(forms.Form):
    comment = forms.CharField(max_length=COMMENT_MAX, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class OverrideForm(forms.Form):
    comment = forms.CharField(max_length=COMMENT_MAX, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    justification = forms.CharField(
        max_length=COMMENT_MAX, widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Overriding a failed gate needs a written justification."},
        help_text="Why may it ship although gates failed? The admins are told.")

    def clean_justification(self) -> str:
        text = str(self.cleaned_data["justification"]).strip()
        if not text:
            raise forms.ValidationError("Overriding a failed gate needs a written justification.")
        return text


class RejectForm(forms.Form):
    comment = forms.CharField(max_length=COMMENT_MAX, widget=forms.Textarea(attrs={"rows": 2}),
                              error_messages={"required": "Say why it is rejected."})


class PromoteForm(forms.Form):
    scope = forms.CharField(max_length=100, required=False)
    reason = forms.CharField(max_length=COMMENT_MAX, required=False)


class RollbackForm(forms.Form):
    scope = forms.CharField(max_length=100, required=False)
    reason = forms.CharField(max_length=COMMENT_MAX, error_messages={"required": "Say what went wrong."})
