"""Forms of the vitals, reaction and dosing-help panels (issue #8).

They parse what was typed; the ranges and rules live in charting/clinical.py
and the database (VITAL_RANGES builds both). Every form that creates a row
carries a one-time `client_token` (a hidden UUID rendered with the form), so
a double tap or a retried POST never charts twice. Datetime inputs are read
in the clinic's zone (the views set it).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms
from django.utils import timezone

from .forms import LocalDateTimeField
from .models import VITAL_RANGES, Intervention, ReactionOutcome, Symptom


def _testids(form: forms.Form, prefix: str) -> None:
    for name, field in form.fields.items():
        field.widget.attrs.setdefault("data-testid", f"{prefix}-{name.replace('_', '-')}")


class _TokenField(forms.UUIDField):
    """The hidden one-time token: a value that is not a UUID (an old or edited
    page) counts as no token, so what the nurse typed is saved rather than
    refused without a visible message (the token only guards double taps)."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError:
            return None


class TokenForm(forms.Form):
    client_token = _TokenField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("client_token", uuid.uuid4())
        super().__init__(*args, **kwargs)


def _measure_field(name: str) -> forms.Field:
    r = VITAL_RANGES[name]
    attrs = {"inputmode": "decimal" if r.decimals else "numeric", "min": str(r.low), "max": str(r.high), "step": "0.1" if r.decimals else "1"}
    label = f"{r.label} ({r.unit})" if r.unit else r.label
    messages = {"invalid": f"{r.label}: type a number."}
    if r.decimals:
        return forms.DecimalField(label=label, required=False, max_digits=5, decimal_places=r.decimals, widget=forms.NumberInput(attrs=attrs), error_messages=messages | {"max_decimal_places": f"{r.label}: at most one decimal.", "max_digits": r.message, "max_whole_digits": r.message})
    return forms.IntegerField(label=label, required=False, widget=forms.NumberInput(attrs=attrs), error_messages=messages)


class VitalsForm(TokenForm):
    """One set of vitals; the range checks are the service's (clear messages
    on the field, what was typed kept)."""

    systolic_mmhg = _measure_field("systolic_mmhg")
    diastolic_mmhg = _measure_field("diastolic_mmhg")
    pulse_per_min = _measure_field("pulse_per_min")
    respiratory_rate_per_min = _measure_field("respiratory_rate_per_min")
    temperature_c = _measure_field("temperature_c")
    spo2_percent = _measure_field("spo2_percent")
    weight_kg = _measure_field("weight_kg")
    pain_score = _measure_field("pain_score")
    taken_at = LocalDateTimeField(label="Taken at (if not now)", required=False)
    taken_at_reason = forms.CharField(label="Why that time", max_length=200, required=False)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "vitals")
        super().__init__(*args, **kwargs)
        _testids(self, "vitals")

    def measures(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in VITAL_RANGES}


class VitalsTimeForm(forms.Form):
    """Correct when a set of vitals was taken: which one (by its time), the
    time and why. The choices come from the list the page loaded."""

    target = forms.ChoiceField(label="Vitals taken at", error_messages={"required": "Pick the vitals to correct.", "invalid_choice": "Pick vitals of this encounter."})
    new_value = LocalDateTimeField(label="Correct time", error_messages={"required": "Give the time the vitals were taken."})
    reason = forms.CharField(label="Why", max_length=200, error_messages={"required": "A reason is required."})

    def __init__(self, *args, vitals=(), tz=None, **kwargs):
        """`vitals`: the encounter's, as loaded; `tz`: the clinic's zone (the times shown)."""
        kwargs.setdefault("prefix", "vitalstime")
        super().__init__(*args, **kwargs)
        self.rows = {str(v.pk): v for v in vitals if not v.is_entered_in_error}
        self.fields["target"].choices = [("", "—"), *((k, timezone.localtime(v.taken_at, tz).strftime("%H:%M") + (f" ({v.blood_pressure})" if v.blood_pressure else "")) for k, v in self.rows.items())]
        _testids(self, "vitalstime")

    def clean_target(self):
        return self.rows[self.cleaned_data["target"]]


class ReactionForm(TokenForm):
    """A reaction: the drugs it relates to (the page's running ones ticked),
    grade, symptoms, interventions, outcome, note."""

    administrations = forms.MultipleChoiceField(label="Related drugs", required=False, widget=forms.CheckboxSelectMultiple, help_text="A drug ticked here that is running when you save is paused.")
    grade = forms.TypedChoiceField(
        label="CTCAE grade",
        coerce=int,
        choices=[("", "—"), ("1", "1 (mild)"), ("2", "2 (moderate)"), ("3", "3 (severe)"), ("4", "4 (life-threatening)")],
        error_messages={"required": "Pick the CTCAE grade, 1 to 4."},
    )
    symptoms = forms.MultipleChoiceField(choices=Symptom.choices, widget=forms.CheckboxSelectMultiple, error_messages={"required": "Pick at least one symptom."})
    symptoms_other = forms.CharField(label="Other symptom", max_length=200, required=False)
    interventions = forms.MultipleChoiceField(choices=Intervention.choices, widget=forms.CheckboxSelectMultiple, required=False)
    interventions_other = forms.CharField(label="Other intervention", max_length=200, required=False)
    outcome = forms.ChoiceField(choices=ReactionOutcome.choices, initial=ReactionOutcome.ONGOING)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    onset_at = LocalDateTimeField(label="Onset (if not now)", required=False)
    onset_reason = forms.CharField(label="Why that time", max_length=200, required=False)

    def __init__(self, *args, administrations=(), **kwargs):
        """`administrations`: the encounter's drugs as the page loaded them
        (no query here); those not struck are offered, the running and
        paused ones ticked (static/js/reactions.js keeps the ticks in step
        with the drug cards' Start and Stop taps)."""
        kwargs.setdefault("prefix", "reaction")
        offered = [a for a in administrations if a.entered_in_error_at is None]
        kwargs.setdefault("initial", {}).setdefault("administrations", [str(a.pk) for a in offered if a.started_at is not None and a.stopped_at is None])
        super().__init__(*args, **kwargs)
        self.offered = {str(a.pk): a for a in offered}
        self.fields["administrations"].choices = [(k, f"{a.drug.name} ({a.label})") for k, a in self.offered.items()]
        _testids(self, "reaction")

    def clean_administrations(self):
        return [self.offered[k] for k in self.cleaned_data["administrations"]]


class DosingForm(forms.Form):
    """Weight and the ordered mg/kg (a GET form: it computes, never saves)."""

    weight_kg = forms.DecimalField(label="Weight (kg)", min_value=Decimal("0.5"), max_value=Decimal("500"), max_digits=5, decimal_places=1, error_messages={"required": "Give the weight in kg."})
    mg_per_kg = forms.DecimalField(label="Ordered dose (mg/kg)", min_value=Decimal("0.001"), max_value=Decimal("2000"), max_digits=8, decimal_places=3, error_messages={"required": "Give the ordered dose in mg/kg."})

    def __init__(self, *args, administration, **kwargs):
        kwargs.setdefault("auto_id", f"id_dosing_{administration.pk}_%s")
        super().__init__(*args, **kwargs)
        label = administration.label
        for name, field in self.fields.items():
            field.widget.attrs.update({"data-testid": f"dosing-{name.replace('_', '-')}-{label}", "inputmode": "decimal"})
