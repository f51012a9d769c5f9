"""The support search form: every filter optional, all combined; bad input is refused with why."""

from typing import Any

from django import forms

from audit.selectors import CursorInvalid, cursor_decode
from dispatch.models import Zone


class AuditSearchForm(forms.Form):
    order = forms.CharField(required=False, max_length=64, help_text="Vendure order code, or our order id")
    driver = forms.IntegerField(required=False, min_value=1, help_text="Driver id")
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    kind = forms.CharField(required=False, max_length=64, help_text="e.g. offer.expired")
    actor = forms.CharField(required=False, max_length=150, help_text="Who did it: a user name, a driver's name, a shop, dispatch")
    zone = forms.ModelChoiceField(queryset=Zone.objects.order_by("name"), to_field_name="slug", required=False, empty_label="any zone")
    correlation_id = forms.CharField(required=False, max_length=64, label="Correlation id")
    cursor = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)

    def clean_cursor(self) -> Any:
        value = self.cleaned_data["cursor"]
        if not value:
            return None
        try:
            return cursor_decode(value)
        except CursorInvalid as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("'since' must not be after 'until'.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """The filters given, without the cursor."""
        return {k: v for k, v in self.cleaned_data.items() if k != "cursor" and v not in (None, "")}
