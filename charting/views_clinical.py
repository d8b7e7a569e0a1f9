"""Nurse views of the vitals, reaction and dosing-help panels (issue #8).

Same shape as charting/views.py: fetched through the user's clinics
(another clinic's id is a 404), NURSE role (else 403), one service per
write, `@phi` on every view. A bad value re-renders the form with what was
typed and the error on the field: htmx gets the section (200), a plain POST
the page (400). A signed encounter answers 409 ("amend instead"). A saved
vitals set returns the vitals section; a reaction, which pauses drug cards
too, reloads the page (HX-Redirect for htmx, a redirect without it).
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from audit.phi import phi
from audit.services import subject
from infusion_site.roles import NURSE, role_required

from . import clinical, services, views
from .forms import EditAdministrationForm
from .forms_clinical import DosingForm, ReactionForm, VitalsForm, VitalsTimeForm
from .models import Administration, DosingBasis, Encounter, Reaction, ReactionAdministration, VitalSigns
from .services import ChartingError, SignedEncounterError

VITALS = "charting/_vitals.html"
REACTIONS = "charting/_reactions.html"
DOSING = "charting/_dosing.html"


# --- what the encounter page needs (called once by views._chart_context) -----------


def clinical_context(encounter: Encounter, administrations: list[Administration], *, vitals_form=None, time_form=None, reaction_form=None, notice: str = "") -> dict:
    """The `clinical` context of the encounter page's vitals, reactions and
    dosing panels, from the page's own list of administrations: three
    queries whatever the number of rows (the vitals; the reactions; their
    drug links with the drug and the pause)."""
    vitals = list(VitalSigns.objects.filter(encounter=encounter).select_related("recorded_by", "entered_in_error_by"))
    return {
        "clinical": {
            "vitals": vitals,
            "vitals_form": vitals_form or VitalsForm(),
            "time_form": time_form or VitalsTimeForm(vitals=vitals, tz=encounter.clinic.tz),
            "latest_weight_kg": next((v.weight_kg for v in vitals if v.weight_kg is not None and not v.is_entered_in_error), None),
            "reactions": _reactions(encounter),
            "reaction_form": reaction_form or ReactionForm(administrations=administrations),
            "notice": notice,
        }
    }


def _reactions(encounter: Encounter) -> list[Reaction]:
    links = Prefetch("links", queryset=ReactionAdministration.objects.select_related("administration__drug", "pause").order_by("pk"))
    return list(Reaction.objects.filter(encounter=encounter).select_related("recorded_by", "entered_in_error_by").prefetch_related(links))


# --- helpers ---------------------------------------------------------------------------


def _encounter(request, pk) -> Encounter:
    encounter = get_object_or_404(Encounter.objects.visible_to(request.user).select_related("clinic"), pk=pk)
    subject(encounter, patient_id=encounter.patient_id)
    return encounter


def _signed(request, encounter: Encounter) -> HttpResponse | None:
    """409 before reading the form on a signed encounter (the services refuse too)."""
    if encounter.is_signed:
        return views._signed_conflict(request, encounter.pk, services.signed_encounter_error(encounter))
    return None


def _page_with(request, encounter: Encounter, status: int, **forms) -> HttpResponse:
    return views._render_page(request, views._encounter_for(request, encounter.pk), status=status, clinical_forms=forms)


def _section(request, template: str, encounter: Encounter, context: dict) -> HttpResponse:
    # No "chart-changed": vitals and a reaction's outcome change no check of
    # the ready panel (a reaction itself reloads the page).
    with timezone.override(encounter.clinic.tz):
        return views._vary(render(request, template, {"encounter": encounter, **context}))


def _anchor(encounter: Encounter, anchor: str) -> str:
    return reverse("charting:encounter", kwargs={"pk": encounter.pk}) + f"#{anchor}"


def _reload(request, encounter: Encounter, anchor: str) -> HttpResponse:
    """The page again: a plain POST is redirected to the section; htmx is
    sent to the page without the #anchor (a change of the fragment alone
    would not reload the page, and the drug cards changed)."""
    if request.htmx:
        return HttpResponseClientRedirect(reverse("charting:encounter", kwargs={"pk": encounter.pk}))
    return redirect(_anchor(encounter, anchor))


def _posted_row(model, request, encounter: Encounter, name: str):
    pk = views._posted_id(request, name)
    return model.objects.filter(encounter=encounter, pk=pk).first() if pk is not None else None


# --- vitals ------------------------------------------------------------------------------


@require_POST
@phi("charting.vitals.record", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def record_vitals(request: HttpRequest, pk) -> HttpResponse:
    """The Vitals form: any measures (at least one), optionally the time they were taken and why."""
    encounter = _encounter(request, pk)
    if (conflict := _signed(request, encounter)) is not None:
        return conflict
    with timezone.override(encounter.clinic.tz):
        form = VitalsForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                vitals = clinical.record_vitals(encounter, measures=form.measures(), taken_at=data["taken_at"], taken_at_reason=data["taken_at_reason"], client_token=data["client_token"], actor=request.user)
            except SignedEncounterError as exc:
                return views._signed_conflict(request, encounter.pk, exc)
            except ChartingError as exc:
                views._fail(form, exc)
            else:
                if not request.htmx:
                    messages.success(request, vitals.notice)
                    return redirect(_anchor(encounter, "vitals"))
                return _section(request, f"{VITALS}#vitals", encounter, clinical_context(encounter, [], notice=vitals.notice))
    if request.htmx:
        return _section(request, f"{VITALS}#vitals", encounter, clinical_context(encounter, [], vitals_form=form))
    return _page_with(request, encounter, 400, vitals_form=form)


@require_POST
@phi("charting.vitals.correct_time", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def correct_vitals_time(request: HttpRequest, pk) -> HttpResponse:
    """The vitals' Correct a time form: which set, the time, why."""
    encounter = _encounter(request, pk)
    if (conflict := _signed(request, encounter)) is not None:
        return conflict
    with timezone.override(encounter.clinic.tz):
        form = VitalsTimeForm(request.POST, vitals=list(VitalSigns.objects.filter(encounter=encounter)), tz=encounter.clinic.tz)
        if form.is_valid():
            data = form.cleaned_data
            try:
                vitals = clinical.correct_vitals_time(data["target"], new_value=data["new_value"], reason=data["reason"], actor=request.user)
            except SignedEncounterError as exc:
                return views._signed_conflict(request, encounter.pk, exc)
            except ChartingError as exc:
                views._fail(form, exc)
            else:
                if not request.htmx:
                    messages.success(request, vitals.notice)
                    return redirect(_anchor(encounter, "vitals"))
                return _section(request, f"{VITALS}#vitals", encounter, clinical_context(encounter, [], notice=vitals.notice))
    if request.htmx:
        return _section(request, f"{VITALS}#vitals", encounter, clinical_context(encounter, [], time_form=form))
    return _page_with(request, encounter, 400, time_form=form)


@require_POST
@phi("charting.vitals.entered_in_error", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def strike_vitals(request: HttpRequest, pk) -> HttpResponse:
    """A vitals row's "entered in error" button (POST `vitals` = its id, `reason`)."""
    encounter = _encounter(request, pk)
    if (conflict := _signed(request, encounter)) is not None:
        return conflict
    vitals = _posted_row(VitalSigns, request, encounter, "vitals")
    if vitals is None:
        return views._not_in_encounter(request, encounter.pk, "set of vitals")
    try:
        vitals = clinical.strike_vitals(vitals, reason=request.POST.get("reason", ""), actor=request.user)
    except SignedEncounterError as exc:
        return views._signed_conflict(request, encounter.pk, exc)
    if not request.htmx:
        messages.info(request, vitals.notice)
        return redirect(_anchor(encounter, "vitals"))
    return _section(request, f"{VITALS}#vitals", encounter, clinical_context(encounter, [], notice=vitals.notice))


# --- reactions ----------------------------------------------------------------------------


def _reaction_drugs(encounter: Encounter) -> list[Administration]:
    return list(Administration.objects.filter(encounter=encounter).select_related("drug"))


@require_POST
@phi("charting.reaction.record", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def record_reaction(request: HttpRequest, pk) -> HttpResponse:
    """The Reaction form. Saving pauses the related running drugs in the same
    transaction, so the page is reloaded (the drug cards changed)."""
    encounter = _encounter(request, pk)
    if (conflict := _signed(request, encounter)) is not None:
        return conflict
    with timezone.override(encounter.clinic.tz):
        form = ReactionForm(request.POST, administrations=_reaction_drugs(encounter))
        if form.is_valid():
            data = form.cleaned_data
            try:
                reaction = clinical.record_reaction(
                    encounter,
                    administrations=data["administrations"],
                    grade=data["grade"],
                    symptoms=data["symptoms"],
                    symptoms_other=data["symptoms_other"],
                    interventions=data["interventions"],
                    interventions_other=data["interventions_other"],
                    outcome=data["outcome"],
                    note=data["note"],
                    onset_at=data["onset_at"],
                    onset_reason=data["onset_reason"],
                    client_token=data["client_token"],
                    actor=request.user,
                )
            except SignedEncounterError as exc:
                return views._signed_conflict(request, encounter.pk, exc)
            except ChartingError as exc:
                views._fail(form, exc)
            else:
                messages.success(request, reaction.notice)
                return _reload(request, encounter, "reactions")
    if request.htmx:
        return _section(request, f"{REACTIONS}#reactions", encounter, {"clinical": {"reactions": _reactions(encounter), "reaction_form": form}})
    return _page_with(request, encounter, 400, reaction_form=form)


@require_POST
@phi("charting.reaction.outcome", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def reaction_outcome(request: HttpRequest, pk) -> HttpResponse:
    """A reaction's Outcome form (POST `reaction` = its id, `outcome`)."""
    encounter = _encounter(request, pk)
    if (conflict := _signed(request, encounter)) is not None:
        return conflict
    reaction = _posted_row(Reaction, request, encounter, "reaction")
    if reaction is None:
        return views._not_in_encounter(request, encounter.pk, "reaction")
    try:
        reaction = clinical.set_reaction_outcome(reaction, outcome=request.POST.get("outcome", ""), actor=request.user)
        notice, error = reaction.notice, ""
    except SignedEncounterError as exc:
        return views._signed_conflict(request, encounter.pk, exc)
    except ChartingError as exc:
        notice, error = "", exc.message
    if not request.htmx:
        messages.error(request, error) if error else messages.info(request, notice)
        return redirect(_anchor(encounter, "reactions"))
    context = {"reactions": _reactions(encounter), "reaction_form": ReactionForm(administrations=_reaction_drugs(encounter)), "notice": notice, "error": error}
    return _section(request, f"{REACTIONS}#reactions", encounter, {"clinical": context})


@require_POST
@phi("charting.reaction.entered_in_error", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def strike_reaction(request: HttpRequest, pk) -> HttpResponse:
    """A reaction's "entered in error" button (POST `reaction` = its id, `reason`)."""
    encounter = _encounter(request, pk)
    if (conflict := _signed(request, encounter)) is not None:
        return conflict
    reaction = _posted_row(Reaction, request, encounter, "reaction")
    if reaction is None:
        return views._not_in_encounter(request, encounter.pk, "reaction")
    try:
        reaction = clinical.strike_reaction(reaction, reason=request.POST.get("reason", ""), actor=request.user)
    except SignedEncounterError as exc:
        return views._signed_conflict(request, encounter.pk, exc)
    messages.info(request, reaction.notice)
    return _reload(request, encounter, "reactions")


# --- dosing help ----------------------------------------------------------------------------


@require_GET
@never_cache
@phi("charting.administration.dosing_help", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def dosing_help(request: HttpRequest, pk) -> HttpResponse:
    """The Dosing help panel of an mg/kg drug: GET weight_kg and mg_per_kg ->
    the dose, the containers to open and the waste. Computes only; "Use this
    dose" fills the drug's Edit form (JavaScript), or without JavaScript
    (`use=1`) shows that form here with the dose filled in, for the nurse to
    check and save."""
    adm = get_object_or_404(Administration.objects.visible_to(request.user).select_related("drug", "encounter__clinic"), pk=pk)
    subject(adm, patient_id=adm.encounter.patient_id)
    encounter = adm.encounter
    form = DosingForm(request.GET or None, administration=adm)
    answer = None
    if form.is_valid():
        answer = clinical.dosing_help(adm.drug, weight_kg=form.cleaned_data["weight_kg"], mg_per_kg=form.cleaned_data["mg_per_kg"])
    elif adm.drug.dosing_basis != DosingBasis.MG_PER_KG:
        answer = clinical.DosingAnswer(error=f"{adm.drug.name} is not dosed by weight in the catalog.")
    dosing = {"form": form, "answer": answer, "weight": request.GET.get("weight_kg", ""), "mg_per_kg": request.GET.get("mg_per_kg", "")}
    context = {"adm": adm, "encounter": encounter, "dosing": dosing}
    with timezone.override(encounter.clinic.tz):
        if request.htmx:
            return views._vary(render(request, f"{DOSING}#dosing-panel", context))
        if request.GET.get("use") and answer is not None and answer.dose_mg is not None and not encounter.is_signed:
            edit = EditAdministrationForm(administration=adm, initial={"dose_value": answer.dose_mg, "dose_unit": "mg"}, **views._card_choices(encounter))
            context["edit_form"] = edit
        return views._vary(render(request, "charting/dosing.html", context))
