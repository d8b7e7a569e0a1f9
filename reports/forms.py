"""The filters every report page and export takes from its query string."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from charting.models import Clinic

from .reports import Filters

# Default range: the last 30 days, today included.
DEFAULT_DAYS = 30


class ReportFilterForm(forms.Form):
    """Clinic (one of the admin's, or all of them), dates of service from/to
    (inclusive; default the last 30 days), and for the chart access log a user
    and a patient (by id: no patient data in URLs)."""

    clinic = forms.ModelChoiceField(queryset=Clinic.objects.none(), required=False, empty_label="All my clinics")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data, *, user, access_log: bool = False):
        super().__init__(data)
        self.clinics = list(Clinic.objects.filter(staff=user).order_by("name"))
        self.fields["clinic"].queryset = Clinic.objects.filter(pk__in=[c.pk for c in self.clinics]).order_by("name")
        if access_log:
            users = get_user_model().objects.filter(clinics__in=[c.pk for c in self.clinics]).distinct().order_by("username")
            self.fields["user"] = forms.ModelChoiceField(queryset=users, required=False, empty_label="Everyone")
            self.fields["patient"] = forms.UUIDField(required=False, widget=forms.HiddenInput)
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-select" if isinstance(field, forms.ModelChoiceField) else "form-control")

    # Dates a report can mean; beyond them the date arithmetic overflows (VAL-1).
    EARLIEST, LATEST = dt.date(1990, 1, 1), dt.date(2100, 12, 31)

    def clean(self):
        data = super().clean()
        for name in ("date_from", "date_to"):
            if data.get(name) and not self.EARLIEST <= data[name] <= self.LATEST:
                raise forms.ValidationError(f"Dates must fall between {self.EARLIEST:%d %b %Y} and {self.LATEST:%d %b %Y}.")
        today = timezone.localdate()
        data["date_to"] = data.get("date_to") or today
        data["date_from"] = data.get("date_from") or data["date_to"] - dt.timedelta(days=DEFAULT_DAYS - 1)
        if data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filters(self) -> Filters:
        data = self.cleaned_data
        clinics = tuple(c for c in self.clinics if data["clinic"] is None or c.pk == data["clinic"].pk)
        user = data.get("user")
        return Filters(clinics=clinics, date_from=data["date_from"], date_to=data["date_to"], user_id=user.pk if user else None, patient_id=data.get("patient"))
