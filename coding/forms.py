"""Forms parse what the coder typed; the rules live in services and the database.

Every form that saves posts `version`, the review version the page loaded
(CON-1): services refuse a stale one with what changed.
"""

from __future__ import annotations

import datetime as dt

from django import forms

from charting.models import Clinic

from .models import ExportFormat, OverrideReason, Payer, ReviewStatus


class VersionForm(forms.Form):
    version = forms.IntegerField(min_value=0, widget=forms.HiddenInput, error_messages={"required": "The page's version is missing: reload the encounter."})


class ReasonField(forms.ModelChoiceField):
    def __init__(self, **kwargs):
        super().__init__(
            queryset=OverrideReason.objects.filter(is_active=True),
            empty_label="— pick a reason —",
            error_messages={"required": "A reason is required.", "invalid_choice": "Pick a reason from the list."},
            **kwargs,
        )


class LineFields(VersionForm):
    code = forms.CharField(max_length=5, label="Code", help_text="CPT or HCPCS, e.g. 96365, J1745.")
    units = forms.IntegerField(min_value=1, max_value=999)
    modifiers = forms.CharField(required=False, max_length=20, help_text="Two characters each, separated by spaces or commas (e.g. 59 JZ).")
    reason = ReasonField()
    reason_text = forms.CharField(label="Note", required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class ChangeLineForm(LineFields):
    pass


class AddLineForm(LineFields):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "add")
        super().__init__(*args, **kwargs)


class DeleteLineForm(VersionForm):
    reason = ReasonField()
    reason_text = forms.CharField(label="Note", required=False, max_length=2000)


class QueryForm(VersionForm):
    question = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), error_messages={"required": "Write the question for the nurse."})
    administration = forms.ModelChoiceField(queryset=None, required=False, empty_label="The encounter as a whole", label="About")

    def __init__(self, *args, encounter, **kwargs):
        kwargs.setdefault("prefix", "query")
        super().__init__(*args, **kwargs)
        self.fields["administration"].queryset = encounter.administrations.select_related("drug")
        self.fields["administration"].label_from_instance = lambda adm: f"{adm.label}: {adm.drug.name}"


STATUS_FILTERS = [("", "Any status"), *ReviewStatus.choices]


class QueueFilterForm(forms.Form):
    """The queue's filters (GET). A bad value (an unknown status, payer or
    clinic, a date not as YYYY-MM-DD, From after To) is a form error the page
    shows above the filters and next to the field, never a 500; the bad field
    is not applied, the others are (`filters()`)."""

    clinic = forms.ModelChoiceField(
        queryset=Clinic.objects.none(), required=False, empty_label="All my clinics",
        error_messages={"invalid_choice": "Unknown clinic: pick one of yours from the list."},
    )
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}), error_messages={"invalid": "Give the date as YYYY-MM-DD, e.g. 2026-03-10."})
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}), error_messages={"invalid": "Give the date as YYYY-MM-DD, e.g. 2026-03-10."})
    payer = forms.ChoiceField(required=False, error_messages={"invalid_choice": "Unknown payer “%(value)s”: pick one from the list."})
    status = forms.ChoiceField(choices=STATUS_FILTERS, required=False, error_messages={"invalid_choice": "Unknown status “%(value)s”: pick one from the list."})
    flags = forms.ChoiceField(choices=[("", "Any"), ("open", "Has open flags")], required=False, label="Flags", error_messages={"invalid_choice": "Unknown flags filter “%(value)s”: pick one from the list."})
    order = forms.ChoiceField(
        choices=[("", "Oldest first"), ("newest", "Newest first")], required=False, label="Order",
        error_messages={"invalid_choice": "Unknown order “%(value)s”: pick one from the list."},
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = Clinic.objects.filter(staff=user).order_by("name")
        self.fields["payer"].choices = [("", "Any payer"), *Payer.objects.values_list("code", "name")]
        for name, field in self.fields.items():
            field.widget.attrs.setdefault("data-testid", f"filter-{name.replace('_', '-')}")

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(f"From ({start.isoformat()}) is after To ({end.isoformat()}): no encounter can match.")
        return data

    def filters(self) -> dict:
        """The valid filters only: a field with an error is left out (the page
        says so), the others apply."""
        self.is_valid()
        return {k: v for k, v in getattr(self, "cleaned_data", {}).items() if v not in (None, "") and k not in self.errors}


class ExportForm(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date", "data-testid": "export-from"}))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date", "data-testid": "export-to"}))
    clinic = forms.ModelChoiceField(queryset=Clinic.objects.none(), required=False, empty_label="All my clinics", widget=forms.Select(attrs={"data-testid": "export-clinic"}))
    format = forms.ChoiceField(choices=ExportFormat.choices, widget=forms.Select(attrs={"data-testid": "export-format"}))

    MAX_DAYS = 366

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = Clinic.objects.filter(staff=user).order_by("name")

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if end < start:
                self.add_error("date_to", f"The end date {end.isoformat()} is before the start date {start.isoformat()}.")
            elif end - start > dt.timedelta(days=self.MAX_DAYS):
                self.add_error("date_to", f"Export at most {self.MAX_DAYS} days at a time.")
        return data
