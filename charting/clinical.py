"""Vital signs, infusion reactions and dosing help (issue #8): the state
changes, one function each, in the manner of charting/services.py.

Every write locks the encounter first (refusing a signed one with
SignedEncounterError, which the views answer with 409), checks what was
typed (ChartingError on the field, the message for the nurse), writes and
records its audit event in the same transaction. Times default to the
server's clock; a nurse who charts something after the fact gives the time
it happened and why.

A double tap or a retried POST carries the same `client_token` (a one-time
key the form renders): the second call returns the row the first one made,
with `notice` saying so, and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import services
from .dosing import ContainerPlan, DosingError, choose_containers, weight_based_dose
from .models import (
    VITAL_RANGES,
    Administration,
    DosingBasis,
    Drug,
    Encounter,
    Intervention,
    Pause,
    Reaction,
    ReactionAdministration,
    ReactionOutcome,
    Symptom,
    VitalSigns,
)
from .services import ChartingError, _audit, _locked_encounter, in_the_future, local_hhmm

# How far back a nurse may date vitals or a reaction's onset: the visit
# itself, not yesterday's (that is a late entry of another encounter).
MAX_BACKDATE = dt.timedelta(hours=12)


def _when(encounter: Encounter, value: dt.datetime | None, reason: str, *, field: str, reason_field: str) -> tuple[dt.datetime, str]:
    """The clinical time of an entry: the server's now, or `value` (aware,
    not in the future, at most MAX_BACKDATE ago) with a reason."""
    now = timezone.now()
    reason = (reason or "").strip()
    if value is None:
        return now, ""
    if timezone.is_naive(value):
        raise ChartingError("The time needs a time zone.", field=field)
    if value > now:
        raise ChartingError(in_the_future(value, encounter.clinic, now), field=field)
    if value < now - MAX_BACKDATE:
        raise ChartingError(f"{local_hhmm(value, encounter.clinic)} is more than {MAX_BACKDATE.seconds // 3600} hours ago: chart it on the encounter it belongs to.", field=field)
    if not reason:
        raise ChartingError("Say why the time differs from now (e.g. taken before charting).", field=reason_field)
    if len(reason) > 200:
        raise ChartingError("Keep the reason under 200 characters.", field=reason_field)
    return value, reason


def _replayed(model, token: uuid.UUID | None, encounter: Encounter):
    """The row a previous submission of the same form made, if any."""
    if token is None:
        return None
    row = model.objects.filter(client_token=token).first()
    if row is not None and row.encounter_id != encounter.pk:
        raise ChartingError("This form was already used for another encounter: reload the page.")
    return row


# --- vital signs ------------------------------------------------------------------


@transaction.atomic
def record_vitals(
    encounter: Encounter,
    *,
    measures: dict[str, Any],
    taken_at: dt.datetime | None = None,
    taken_at_reason: str = "",
    client_token: uuid.UUID | None = None,
    actor: Any,
) -> VitalSigns:
    """Chart one set of vital signs on a DRAFT encounter.

    `measures` maps VITAL_RANGES' names to values or None: systolic_mmhg and
    diastolic_mmhg (mmHg, together, diastolic below systolic),
    pulse_per_min, respiratory_rate_per_min (/min), temperature_c (°C, one
    decimal), spo2_percent (%), weight_kg (kg, one decimal), pain_score
    (0-10). At least one. Each must be in its physiological range (the same
    ranges as the table's CHECK constraints). `taken_at` (aware) defaults to
    the server's now; an earlier time needs `taken_at_reason`.

    Raises ChartingError(field=the measure) for a bad value,
    SignedEncounterError on a signed encounter. A replayed `client_token`
    returns the first row (`notice`).
    """
    encounter = _locked_encounter(encounter.pk)
    existing = _replayed(VitalSigns, client_token, encounter)
    if existing is not None:
        existing.notice = f"These vitals were already recorded at {local_hhmm(existing.recorded_at, encounter.clinic)}."
        return existing
    values = {name: measures.get(name) for name in VITAL_RANGES}
    for name, value in values.items():
        limits = VITAL_RANGES[name]
        if value is None:
            continue
        if isinstance(value, Decimal):
            if not value.is_finite() or value != value.quantize(Decimal(1).scaleb(-limits.decimals)):
                raise ChartingError(f"{limits.label}: at most {limits.decimals} decimal{'s' if limits.decimals != 1 else ''}.", field=name)
        if not (limits.low <= value <= limits.high):
            raise ChartingError(limits.message, field=name)
    if all(v is None for v in values.values()):
        raise ChartingError("Give at least one measure.")
    systolic, diastolic = values["systolic_mmhg"], values["diastolic_mmhg"]
    if (systolic is None) != (diastolic is None):
        raise ChartingError("Give the blood pressure as systolic and diastolic.", field="diastolic_mmhg" if diastolic is None else "systolic_mmhg")
    if systolic is not None and diastolic >= systolic:
        raise ChartingError(f"The diastolic pressure ({diastolic}) must be below the systolic ({systolic}).", field="diastolic_mmhg")
    when, reason = _when(encounter, taken_at, taken_at_reason, field="taken_at", reason_field="taken_at_reason")
    vitals = VitalSigns.objects.create(encounter=encounter, taken_at=when, taken_at_reason=reason, client_token=client_token, recorded_by=actor, **values)
    _audit("charting.vitals.recorded", vitals, encounter, actor, taken_at=when, taken_at_reason=reason, **{k: v for k, v in values.items() if v is not None})
    vitals.notice = "Vitals recorded."
    return vitals


@transaction.atomic
def correct_vitals_time(vitals: VitalSigns, *, new_value: dt.datetime | None, reason: str, actor: Any) -> VitalSigns:
    """Correct when a set of vitals was taken, on a DRAFT encounter, as the
    drug times are corrected: `new_value` (aware, not in the future, at most
    MAX_BACKDATE ago) with a `reason`; the time first charted stays in
    `taken_at_original` (and the history). ChartingError(field="new_value"
    / "reason"); refused for struck vitals."""
    encounter = _locked_encounter(vitals.encounter_id)
    vitals = VitalSigns.objects.select_for_update().get(pk=vitals.pk)
    if vitals.entered_in_error_at is not None:
        raise ChartingError("These vitals were struck as entered in error.")
    if new_value is None:
        raise ChartingError("Give the time the vitals were taken.", field="new_value")
    when, reason = _when(encounter, new_value, reason, field="new_value", reason_field="reason")
    if when == vitals.taken_at:
        vitals.notice = "Nothing changed."
        return vitals
    original = vitals.taken_at_original or vitals.taken_at
    old, vitals.taken_at, vitals.taken_at_reason, vitals.taken_at_original = vitals.taken_at, when, reason, original
    vitals.save(update_fields=["taken_at", "taken_at_reason", "taken_at_original"])
    _audit("charting.vitals.time_corrected", vitals, encounter, actor, old=old, new=when, reason=reason)
    vitals.notice = f"Time corrected to {local_hhmm(when, encounter.clinic)}; the original is kept."
    return vitals


@transaction.atomic
def strike_vitals(vitals: VitalSigns, *, reason: str, actor: Any) -> VitalSigns:
    """Strike a set of vitals charted by mistake (REC-4): kept, crossed out,
    with who, when (server time) and `reason`; on a draft only. A second
    strike is a no-op (`notice`)."""
    encounter = _locked_encounter(vitals.encounter_id)
    vitals = VitalSigns.objects.select_for_update().get(pk=vitals.pk)
    return _strike(vitals, encounter, reason, actor, "charting.vitals.entered_in_error", "These vitals")


def _strike(row, encounter: Encounter, reason: str, actor: Any, action: str, what: str):
    reason = (reason or "").strip() or services.ENTERED_IN_ERROR_DEFAULT_REASON
    if row.entered_in_error_at is not None:
        row.notice = f"{what} were already struck as entered in error."
        return row
    row.entered_in_error_at, row.entered_in_error_by, row.entered_in_error_reason = timezone.now(), actor, reason[:200]
    row.save(update_fields=["entered_in_error_at", "entered_in_error_by", "entered_in_error_reason"])
    _audit(action, row, encounter, actor, reason=row.entered_in_error_reason)
    row.notice = f"{what} struck as entered in error (kept in the record)."
    return row


# --- infusion reactions -------------------------------------------------------------


def pause_reason(grade: int, symptoms: list[str], symptoms_other: str = "") -> str:
    """The reason written on the pause a reaction opens, at most 200
    characters: "Reaction grade 2: flushing, dyspnoea"."""
    names = [symptoms_other.strip() if s == Symptom.OTHER and symptoms_other.strip() else Symptom(s).label.lower() for s in symptoms]
    return f"Reaction grade {grade}: {', '.join(names)}"[:200]


def _check_choices(values: list[str], choices, *, what: str, field: str) -> list[str]:
    unknown = [v for v in values if v not in choices.values]
    if unknown:
        raise ChartingError(f"Pick the {what} from the list.", field=field)
    return [v for v in choices.values if v in values]  # the list's order, no repeats


@transaction.atomic
def record_reaction(
    encounter: Encounter,
    *,
    administrations: list[Administration],
    grade: int | None,
    symptoms: list[str],
    symptoms_other: str = "",
    interventions: list[str] = (),
    interventions_other: str = "",
    outcome: str = ReactionOutcome.ONGOING,
    note: str = "",
    onset_at: dt.datetime | None = None,
    onset_reason: str = "",
    client_token: uuid.UUID | None = None,
    actor: Any,
) -> Reaction:
    """Chart an infusion reaction on a DRAFT encounter and, in the same
    transaction, PAUSE each related drug that is running: through
    `services.pause_administration` (server time, reason "Reaction grade 2:
    flushing, dyspnoea"), so its paused minutes are left out of the coded
    minutes (R17) and Resume on the drug card ends the pause. A related drug
    already paused or stopped gets no new pause. "Infusion paused" is added
    to the interventions when a pause was opened.

    `grade` is CTCAE 1-4 (5, death, is not charted here); `symptoms` (one or
    more) and `interventions` are values of Symptom / Intervention, "other"
    with its text; `outcome` a ReactionOutcome; `administrations` drugs of
    this encounter (not struck). `onset_at` defaults to the server's now; an
    earlier time needs `onset_reason`.

    Raises ChartingError(field=...) for what was typed, SignedEncounterError
    on a signed encounter. A replayed `client_token` returns the first
    reaction (`notice`): no second row, no second pause.
    """
    encounter = _locked_encounter(encounter.pk)
    existing = _replayed(Reaction, client_token, encounter)
    if existing is not None:
        existing.notice = f"This reaction was already recorded at {local_hhmm(existing.recorded_at, encounter.clinic)}."
        return existing
    if grade not in (1, 2, 3, 4):
        raise ChartingError("Pick the CTCAE grade, 1 to 4 (grade 5 is not charted here).", field="grade")
    symptoms = _check_choices(list(symptoms), Symptom, what="symptoms", field="symptoms")
    if not symptoms:
        raise ChartingError("Pick at least one symptom.", field="symptoms")
    interventions = _check_choices(list(interventions), Intervention, what="interventions", field="interventions")
    symptoms_other, interventions_other, note = (symptoms_other or "").strip(), (interventions_other or "").strip(), (note or "").strip()
    if Symptom.OTHER in symptoms and not symptoms_other:
        raise ChartingError("Describe the other symptom.", field="symptoms_other")
    if Intervention.OTHER in interventions and not interventions_other:
        raise ChartingError("Describe the other intervention.", field="interventions_other")
    if len(symptoms_other) > 200 or len(interventions_other) > 200:
        raise ChartingError("Keep the description under 200 characters.", field="symptoms_other" if len(symptoms_other) > 200 else "interventions_other")
    if outcome not in ReactionOutcome.values:
        raise ChartingError("Pick the outcome.", field="outcome")
    ids = {a.pk for a in administrations}
    related = list(Administration.objects.charted().filter(encounter=encounter, pk__in=ids).select_related("drug").order_by("started_at", "recorded_at"))
    if len(related) != len(ids):
        raise ChartingError("Pick drugs of this encounter.", field="administrations")
    when, reason = _when(encounter, onset_at, onset_reason, field="onset_at", reason_field="onset_reason")

    reason_text = pause_reason(grade, symptoms, symptoms_other)
    paused = {}
    for adm in related:
        # Only a drug running now is paused; the pause service locks it and
        # checks again (a drug paused meanwhile raises, which rolls back all).
        if adm.started_at is not None and adm.stopped_at is None and not Pause.objects.filter(administration=adm, resumed_at__isnull=True).exists():
            services.pause_administration(adm, reason=reason_text, actor=actor)
            paused[adm.pk] = Pause.objects.get(administration=adm, resumed_at__isnull=True)
    if paused and Intervention.INFUSION_PAUSED not in interventions:
        interventions = [v for v in Intervention.values if v in {*interventions, Intervention.INFUSION_PAUSED}]
    reaction = Reaction.objects.create(
        encounter=encounter,
        onset_at=when,
        onset_reason=reason,
        grade=grade,
        symptoms=",".join(symptoms),
        symptoms_other=symptoms_other,
        interventions=",".join(interventions),
        interventions_other=interventions_other,
        outcome=outcome,
        note=note,
        client_token=client_token,
        recorded_by=actor,
    )
    ReactionAdministration.objects.bulk_create([ReactionAdministration(reaction=reaction, administration=adm, pause=paused.get(adm.pk)) for adm in related])
    _audit(
        "charting.reaction.recorded",
        reaction,
        encounter,
        actor,
        grade=grade,
        symptoms=symptoms,
        interventions=interventions,
        outcome=outcome,
        onset_at=when,
        administrations=[str(a.pk) for a in related],
        paused=[str(pk) for pk in paused],
    )
    names = ", ".join(a.drug.name for a in related if a.pk in paused)
    reaction.notice = f"Reaction recorded. Paused: {names}." if names else "Reaction recorded."
    reaction.paused = list(paused)
    return reaction


@transaction.atomic
def set_reaction_outcome(reaction: Reaction, *, outcome: str, actor: Any) -> Reaction:
    """Chart how a reaction ended (resolved, ongoing, transferred to ED) on
    a DRAFT encounter; the earlier value stays in the row's history. The
    same outcome again is a no-op (`notice`). ChartingError(field="outcome")
    for an unknown one; refused for a struck reaction."""
    encounter = _locked_encounter(reaction.encounter_id)
    reaction = Reaction.objects.select_for_update().get(pk=reaction.pk)
    if outcome not in ReactionOutcome.values:
        raise ChartingError("Pick the outcome.", field="outcome")
    if reaction.entered_in_error_at is not None:
        raise ChartingError("This reaction was struck as entered in error.")
    if reaction.outcome == outcome:
        reaction.notice = f"The outcome is already “{reaction.get_outcome_display()}”."
        return reaction
    previous, reaction.outcome = reaction.outcome, outcome
    reaction.save(update_fields=["outcome"])
    _audit("charting.reaction.outcome_changed", reaction, encounter, actor, old=previous, new=outcome)
    reaction.notice = f"Outcome: {reaction.get_outcome_display()}."
    return reaction


@transaction.atomic
def strike_reaction(reaction: Reaction, *, reason: str, actor: Any) -> Reaction:
    """Strike a reaction charted by mistake (REC-4), on a draft only. The
    pause it opened stays (the drug was not running): Resume ends it."""
    encounter = _locked_encounter(reaction.encounter_id)
    reaction = Reaction.objects.select_for_update().get(pk=reaction.pk)
    return _strike(reaction, encounter, reason, actor, "charting.reaction.entered_in_error", "This reaction's records")


# --- dosing help ----------------------------------------------------------------------


def container_sizes(drug: Drug) -> tuple[Decimal, ...]:
    """The drug's catalog container sizes in mg (Drug.vial_sizes_mg), the
    positive numbers only (an admin's typo is left out, not guessed at)."""
    sizes = []
    values = drug.vial_sizes_mg if isinstance(drug.vial_sizes_mg, list) else [drug.vial_sizes_mg] if drug.vial_sizes_mg else []
    for value in values:
        try:
            size = Decimal(str(value))
        except ArithmeticError:
            continue
        # Below a thousandth of a mg a size is a typo (and 0 in the thousandths
        # the container choice works in).
        if size.is_finite() and size >= Decimal("0.001"):
            sizes.append(size)
    return tuple(sorted(set(sizes)))


class DosingAnswer:
    """What the Dosing help panel shows: the dose (mg), the containers to
    open and the waste, or an error for the nurse."""

    def __init__(self, *, dose_mg: Decimal | None = None, plan: ContainerPlan | None = None, error: str = "", containers_error: str = ""):
        self.dose_mg, self.plan, self.error, self.containers_error = dose_mg, plan, error, containers_error


def dosing_help(drug: Drug, *, weight_kg: Decimal | None, mg_per_kg: Decimal | None) -> DosingAnswer:
    """Dose for `weight_kg` (kg) x `mg_per_kg` (mg/kg), rounded by
    dosing.round_dose, and the containers of `drug` to open for it
    (dosing.choose_containers: least waste, then fewest containers). Only
    for drugs an admin marked mg/kg. Reads nothing; writes nothing."""
    if drug.dosing_basis != DosingBasis.MG_PER_KG:
        return DosingAnswer(error=f"{drug.name} is not dosed by weight in the catalog.")
    try:
        dose = weight_based_dose(weight_kg, mg_per_kg)
    except DosingError as exc:
        return DosingAnswer(error=exc.message)
    try:
        plan = choose_containers(dose, container_sizes(drug))
    except DosingError as exc:
        return DosingAnswer(dose_mg=dose, containers_error=exc.message)
    return DosingAnswer(dose_mg=dose, plan=plan)
