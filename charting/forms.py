"""Forms parse what the nurse typed; the rules live in services and the database.

Datetime inputs are read in the current time zone, which the views set to the
clinic's zone (`timezone.override(clinic.tz)`).
"""

import datetime
from decimal import Decimal

from django import forms
from django.utils import timezone

from .clock import wall_clock_problem
from .models import (
    AMEND_FORM_FIELDS,
    AccessSite,
    AdminFamily,
    Administration,
    AmendmentReason,
    ContainerType,
    DoseUnit,
    Drug,
    Patient,
    Purpose,
    Route,
    Setting,
    SiteFinding,
)

LOCAL_INPUT = "%Y-%m-%dT%H:%M"


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=LOCAL_INPUT, **kwargs)


class LocalDateTimeField(forms.DateTimeField):
    """A wall-clock time in the current (clinic's) zone. A time the clocks
    skipped (spring forward) or repeated (fall back) is refused with a
    message saying so (TIM-2, charting/clock.py), not Django's generic one."""

    widget = LocalDateTimeInput
    INPUT_FORMATS = [LOCAL_INPUT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]

    def __init__(self, **kwargs):
        kwargs.setdefault("input_formats", self.INPUT_FORMATS)
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            for fmt in self.input_formats:
                try:
                    naive = datetime.datetime.strptime(value.strip(), fmt)
                except ValueError:
                    continue
                problem = wall_clock_problem(naive, timezone.get_current_timezone())
                if problem:
                    raise forms.ValidationError(problem, code="wall_clock")
                break
        return super().to_python(value)


class DrugChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, drug: Drug) -> str:
        brand = f" ({drug.brand})" if drug.brand else ""
        return f"{drug.name}{brand}{'' if drug.is_verified else ' — unverified'}"


class OpenEncounterForm(forms.Form):
    patient = forms.ModelChoiceField(queryset=Patient.objects.none())
    setting = forms.ChoiceField(choices=Setting.choices, initial=Setting.OFFICE)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["patient"].queryset = Patient.objects.filter(clinic__staff=user).order_by("family_name", "given_name")
        self.fields["patient"].label_from_instance = lambda p: f"{p.family_name}, {p.given_name} — MRN {p.mrn}"
        _testids(self, "open")


def _testids(form: forms.Form, prefix: str) -> None:
    """data-testid="<prefix>-<field>" on every input, for the browser tests."""
    for name, field in form.fields.items():
        field.widget.attrs.setdefault("data-testid", f"{prefix}-{name.replace('_', '-')}")


class AccessSiteForm(forms.ModelForm):
    placed_at = LocalDateTimeField(required=False, help_text="Leave empty if it was placed before this visit.")

    class Meta:
        model = AccessSite
        fields = ["kind", "location", "gauge", "placed_at", "separate_site_medically_required", "reason"]
        widgets = {
            "reason": forms.Textarea(attrs={"rows": 2}),
        }
        labels = {"separate_site_medically_required": "Separate site medically required"}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "site")
        super().__init__(*args, **kwargs)
        _testids(self, "site")


class AdministrationForm(forms.Form):
    drug = DrugChoiceField(queryset=Drug.objects.all())
    route = forms.ChoiceField(choices=Route.choices)
    access_site = forms.ModelChoiceField(queryset=AccessSite.objects.none(), required=False, help_text="Needed for IV infusion, IV push and intra-arterial.")
    dose_value = forms.DecimalField(label="Dose", max_digits=12, decimal_places=3, min_value=0.001, required=False)
    dose_unit = forms.ChoiceField(choices=[("", "—"), *DoseUnit.choices], required=False)
    purpose = forms.ChoiceField(choices=Purpose.choices, initial=Purpose.TREATMENT)
    admin_class = forms.ChoiceField(label="Administration family", choices=[("", "Catalog default"), *AdminFamily.choices], required=False)

    def __init__(self, *args, encounter, **kwargs):
        kwargs.setdefault("prefix", "adm")
        super().__init__(*args, **kwargs)
        self.fields["access_site"].queryset = AccessSite.objects.filter(encounter=encounter)
        _testids(self, "adm")


class PauseForm(forms.Form):
    # The view shows the error on its own, away from the input: say what is missing.
    reason = forms.CharField(max_length=200, error_messages={"required": "Say why the drug is paused."})


class SiteCheckForm(forms.Form):
    """An access site's check (rendered by hand in the site card, see encounter.html)."""

    finding = forms.ChoiceField(choices=SiteFinding.choices, initial=SiteFinding.PATENT)
    note = forms.CharField(max_length=300, required=False, strip=True)


class CorrectTimeForm(forms.Form):
    """Which time (start, stop, or a pause's ends), its new local value, and why."""

    target = forms.ChoiceField(label="Time to correct")
    new_value = LocalDateTimeField(label="Correct time")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=1000)

    def __init__(self, *args, administration: Administration, **kwargs):
        # Several of these forms share one page: unique ids per administration.
        kwargs.setdefault("auto_id", f"id_fix_{administration.pk}_%s")
        super().__init__(*args, **kwargs)
        self.administration = administration
        choices = [("started_at", "Start"), ("stopped_at", "Stop")]
        for n, pause in enumerate(administration.pauses.all(), start=1):
            choices.append((f"paused_at:{pause.pk}", f"Pause {n}: paused"))
            choices.append((f"resumed_at:{pause.pk}", f"Pause {n}: resumed"))
        self.fields["target"].choices = choices
        self.fields["new_value"].error_messages["required"] = "Give the correct time."
        self.fields["reason"].error_messages["required"] = "A reason is required."
        _testids(self, f"fix-{administration.label}")

    def cleaned_target(self):
        """(field, pause or None) from the chosen target."""
        field, _, pause_id = self.cleaned_data["target"].partition(":")
        pause = next((p for p in self.administration.pauses.all() if str(p.pk) == pause_id), None) if pause_id else None
        return field, pause



class VialForm(forms.Form):
    """Containers opened for one drug: NDC and lot as printed, size, how many.

    Prefilled: single/multi-dose from what is charted already, else from the
    catalog (`Drug.single_dose`); the size unit from the dose. The NDC is never
    prefilled from the catalog's example: it must be read off the package.
    """

    ndc = forms.CharField(label="NDC", max_length=13, widget=forms.TextInput(attrs={"placeholder": "as printed, with hyphens", "autocomplete": "off"}))
    lot = forms.CharField(max_length=40)
    expiry = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    container_type = forms.ChoiceField(label="Container", choices=ContainerType.choices)
    size_value = forms.DecimalField(label="Size per container", max_digits=12, decimal_places=3, min_value=0.001)
    size_unit = forms.ChoiceField(label="Unit", choices=DoseUnit.choices)
    count = forms.IntegerField(label="How many opened", min_value=1, max_value=999, initial=1)

    def __init__(self, *args, administration: Administration, **kwargs):
        kwargs.setdefault("auto_id", f"id_vial_{administration.pk}_%s")
        initial = kwargs.setdefault("initial", {})
        initial.setdefault("container_type", administration.container_type or (ContainerType.SINGLE_DOSE if administration.drug.single_dose else ContainerType.MULTI_DOSE))
        initial.setdefault("size_unit", administration.dose_unit or DoseUnit.MG)
        super().__init__(*args, **kwargs)
        self.fields["ndc"].error_messages["required"] = "Give the NDC printed on the package."
        self.fields["lot"].error_messages["required"] = "Give the lot number printed on the vial."
        self.fields["size_value"].error_messages["required"] = "Give the size of one container."
        self.fields["count"].error_messages["required"] = "Give how many containers were opened."
        label = administration.label
        for name, testid in {"ndc": "vial-ndc", "lot": "vial-lot", "expiry": "vial-expiry", "container_type": "vial-type", "size_value": "vial-size", "size_unit": "vial-size-unit", "count": "vial-count"}.items():
            self.fields[name].widget.attrs["data-testid"] = f"{testid}-{label}"


class WasteForm(forms.Form):
    """What was discarded from single-dose containers: "none" or an amount (R47, R48)."""

    none = forms.BooleanField(label="None wasted", required=False)
    wasted_value = forms.DecimalField(label="Amount wasted", max_digits=12, decimal_places=3, min_value=0, required=False)
    wasted_unit = forms.ChoiceField(label="Unit", choices=DoseUnit.choices)

    def __init__(self, *args, administration: Administration, **kwargs):
        kwargs.setdefault("auto_id", f"id_waste_{administration.pk}_%s")
        initial = kwargs.setdefault("initial", {})
        initial.setdefault("wasted_unit", administration.wasted_unit or administration.dose_unit or DoseUnit.MG)
        super().__init__(*args, **kwargs)
        label = administration.label
        for name, testid in {"none": "waste-none", "wasted_value": "waste-amount", "wasted_unit": "waste-unit"}.items():
            self.fields[name].widget.attrs["data-testid"] = f"{testid}-{label}"

    def clean(self):
        data = super().clean()
        if data.get("none"):
            if data.get("wasted_value"):
                raise forms.ValidationError("Either “none wasted” or an amount, not both.")
            data["wasted_value"] = Decimal(0)
        elif data.get("wasted_value") is None and "wasted_value" not in self.errors:
            self.add_error("wasted_value", "Give the amount wasted, or tick “none wasted”.")
        return data


class AmendForm(forms.Form):
    """An amendment of one field of a signed administration: the value as
    typed (services.amend_administration parses it per field), a reason from
    the maintained list and an optional note."""

    field = forms.ChoiceField(choices=[("", "— field —"), *AMEND_FORM_FIELDS], error_messages={"required": "Pick the field to amend."})
    new_value = forms.CharField(label="New value", max_length=100, help_text="Dose: a number · unit/purpose/route: as listed · site: its label · times: YYYY-MM-DD HH:MM.")
    reason = forms.ModelChoiceField(
        queryset=AmendmentReason.objects.filter(is_active=True),
        empty_label="— pick a reason —",
        error_messages={"required": "A reason is required.", "invalid_choice": "Pick a reason from the list."},
    )
    reason_text = forms.CharField(label="Note", required=False, max_length=2000)

    def __init__(self, *args, administration: Administration | None = None, **kwargs):
        kwargs.setdefault("prefix", f"amend-{administration.pk}" if administration is not None else "amend")
        super().__init__(*args, **kwargs)
        _testids(self, "amend")


class AnswerForm(forms.Form):
    """The nurse's answer to a coder's query (`query` = its id), with an
    optional amendment of one administration of the encounter."""

    query = forms.IntegerField(widget=forms.HiddenInput)
    answer = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), error_messages={"required": "Write an answer for the coder."})
    administration = forms.ModelChoiceField(queryset=Administration.objects.none(), required=False, empty_label="No amendment", label="Amend")
    field = forms.ChoiceField(choices=[("", "—"), *AMEND_FORM_FIELDS], required=False)
    new_value = forms.CharField(label="New value", max_length=100, required=False)
    reason = forms.ModelChoiceField(queryset=AmendmentReason.objects.filter(is_active=True), required=False, empty_label="— reason —")
    reason_text = forms.CharField(label="Note", required=False, max_length=2000)

    def __init__(self, *args, encounter, **kwargs):
        kwargs.setdefault("prefix", "answer")
        super().__init__(*args, **kwargs)
        self.fields["administration"].queryset = Administration.objects.charted().filter(encounter=encounter).select_related("drug")
        self.fields["administration"].label_from_instance = lambda adm: f"{adm.label}: {adm.drug.name}"
        _testids(self, "answer")

    def amendment(self) -> dict | None:
        """The amendment's arguments (for coding.services.answer_query), or None."""
        data = self.cleaned_data
        if not data.get("administration") and not data.get("field"):
            return None
        return {"adm": data.get("administration"), "field": data.get("field"), "new_value": data.get("new_value", ""), "reason": data.get("reason"), "reason_text": data.get("reason_text", "")}

    def clean(self):
        data = super().clean()
        if data.get("field") and not data.get("administration"):
            self.add_error("administration", "Pick the drug to amend.")
        if data.get("administration") and not data.get("field"):
            self.add_error("field", "Pick the field to amend.")
        if (data.get("administration") or data.get("field")) and not data.get("reason"):
            self.add_error("reason", "A reason is required.")
        return data


# --- fixing a draft (issue #5): the forms the flags' fix links land on ----------------
#
# Every drug card and site of a page has one of these, so their choices come
# from lists the page has loaded already (never a queryset per card: the
# page's query count stays the same for 1 or 30 drugs), and their ids carry
# the record's id (checks.ADMINISTRATION_FIELD_ANCHORS links to them).


class EditAdministrationForm(forms.Form):
    """What was charted about a drug on a draft: dose, unit, purpose, route,
    site, and how it relates to another drug on the same site."""

    dose_value = forms.DecimalField(label="Dose", max_digits=12, decimal_places=3, min_value=Decimal("0.001"), required=False, error_messages={"min_value": "The dose must be more than 0."})
    dose_unit = forms.ChoiceField(label="Dose unit", choices=[("", "—"), *DoseUnit.choices], required=False)
    purpose = forms.ChoiceField(label="Purpose / indication", choices=Purpose.choices)
    route = forms.ChoiceField(choices=Route.choices)
    access_site = forms.ChoiceField(label="Access site", required=False, help_text="Needed for IV infusion, IV push and intra-arterial.")
    concurrent_with = forms.ChoiceField(label="Runs concurrently with", required=False, help_text="Another drug running at the same time on the same site, in its own bag.")
    bag = forms.CharField(label="Bag", max_length=20, required=False, help_text="Drugs mixed in one container share this value (R26).")

    def __init__(self, *args, administration: Administration, sites, siblings, **kwargs):
        kwargs.setdefault("auto_id", f"id_edit_{administration.pk}_%s")
        initial = kwargs.setdefault("initial", {})
        for name in ("dose_value", "dose_unit", "purpose", "route", "bag"):
            initial.setdefault(name, getattr(administration, name))
        initial.setdefault("access_site", str(administration.access_site_id or ""))
        initial.setdefault("concurrent_with", str(administration.concurrent_with_id or ""))
        super().__init__(*args, **kwargs)
        self.sites = {str(s.pk): s for s in sites}
        self.siblings = {str(a.pk): a for a in siblings if a.pk != administration.pk and a.entered_in_error_at is None}
        self.fields["access_site"].choices = [("", "—"), *((k, f"{s.label}: {s.get_kind_display()}{f', {s.location}' if s.location else ''}") for k, s in self.sites.items())]
        self.fields["concurrent_with"].choices = [("", "— none —"), *((k, f"{a.drug.name} ({a.label})") for k, a in self.siblings.items())]
        self.fields["purpose"].error_messages["required"] = "Pick the purpose."
        label = administration.label
        for name in self.fields:
            self.fields[name].widget.attrs["data-testid"] = f"edit-{name.replace('_', '-')}-{label}"

    def clean_access_site(self):
        return self.sites.get(self.cleaned_data["access_site"])

    def clean_concurrent_with(self):
        return self.siblings.get(self.cleaned_data["concurrent_with"])


class EditAccessSiteForm(forms.Form):
    """A site's "separate site medically required" and why (R10)."""

    separate_site_medically_required = forms.BooleanField(label="Separate site medically required", required=False)
    reason = forms.CharField(label="Why a separate site was required", widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000)

    def __init__(self, *args, site: AccessSite, **kwargs):
        kwargs.setdefault("auto_id", f"id_siteedit_{site.pk}_%s")
        initial = kwargs.setdefault("initial", {})
        initial.setdefault("separate_site_medically_required", site.separate_site_medically_required)
        initial.setdefault("reason", site.reason)
        super().__init__(*args, **kwargs)
        for name in self.fields:
            self.fields[name].widget.attrs["data-testid"] = f"siteedit-{name.replace('_', '-')}-{site.label}"


class EmNoteForm(forms.Form):
    """The E/M visit's significant, separately identifiable work (R40).

    `first`: the E/M visit the check points at (the first without the note):
    its inputs get the fixed ids the fix link names ("em-note")."""

    significant_separately_identifiable = forms.BooleanField(label="Significant, separately identifiable work", required=False)
    note = forms.CharField(label="What was done beyond the routine pre-administration assessment", widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=4000)

    def __init__(self, *args, service, first: bool = False, **kwargs):
        kwargs.setdefault("auto_id", "em-%s" if first else f"em-{service.pk}-%s")
        initial = kwargs.setdefault("initial", {})
        initial.setdefault("significant_separately_identifiable", service.significant_separately_identifiable)
        initial.setdefault("note", service.detail)
        super().__init__(*args, **kwargs)
        for name in self.fields:
            self.fields[name].widget.attrs["data-testid"] = f"em-{name.replace('_', '-')}-{service.pk}"


class EnteredInErrorForm(forms.Form):
    """Strike a drug charted by mistake (REC-4). On a signed encounter it is
    an amendment: `amendment_reason` from the maintained list (choices given
    by the page, loaded once)."""

    reason = forms.CharField(label="Why it was entered in error", max_length=200, error_messages={"required": "Say why this drug was entered in error."})
    amendment_reason = forms.ChoiceField(label="Amendment reason", required=False)

    def __init__(self, *args, administration: Administration, amendment_reasons=None, **kwargs):
        kwargs.setdefault("auto_id", f"id_eie_{administration.pk}_%s")
        super().__init__(*args, **kwargs)
        self.signed = amendment_reasons is not None
        if self.signed:
            self.fields["amendment_reason"].choices = [("", "— pick a reason —"), *((r.code, r.label) for r in amendment_reasons)]
            self.fields["amendment_reason"].required = True
            self.fields["amendment_reason"].error_messages["required"] = "A reason is required."
        else:
            del self.fields["amendment_reason"]
        label = administration.label
        for name in self.fields:
            self.fields[name].widget.attrs["data-testid"] = f"eie-{name.replace('_', '-')}-{label}"
