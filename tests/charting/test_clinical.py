"""Vital signs and infusion reactions (issue #8): the constraints, the
services (charting/clinical.py) and the views (charting/views_clinical.py).

A reaction pauses the related running drug in the same transaction, through
the pause service (the coded minutes leave the pause out, R17); a replayed
form charts nothing twice; a signed encounter is frozen (409 and the
triggers); bad input comes back as typed with the error on the field.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from charting import clinical, services
from charting.models import Encounter, Pause, Reaction, ReactionAdministration, VitalSigns
from coding import services as coding_services
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory, chart_vials

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic))


@pytest.fixture
def running(encounter):
    """Infliximab running for 30 minutes."""
    drug = DrugFactory(name="infliximab", dosing_basis="mg_per_kg", vial_sizes_mg=[100])
    return AdministrationFactory(encounter=encounter, drug=drug, label="infliximab", started_at=timezone.now() - dt.timedelta(minutes=30))


def _sign(encounter):
    signer = UserFactory(username="signer", roles=["nurse"], clinics=[encounter.clinic])
    Encounter.objects.filter(pk=encounter.pk).update(status="signed", signed_by=signer, signed_at=timezone.now())


def vitals_data(**overrides):
    data = {"vitals-systolic_mmhg": "128", "vitals-diastolic_mmhg": "82", "vitals-pulse_per_min": "76", "vitals-spo2_percent": "98", "vitals-temperature_c": "36.8", "vitals-client_token": str(uuid.uuid4())}
    data.update({f"vitals-{k}": v for k, v in overrides.items()})
    return data


def reaction_data(adm=None, **overrides):
    data = {
        "reaction-grade": "2",
        "reaction-symptoms": ["flushing", "dyspnoea"],
        "reaction-interventions": ["antihistamine"],
        "reaction-outcome": "ongoing",
        "reaction-client_token": str(uuid.uuid4()),
    }
    if adm is not None:
        data["reaction-administrations"] = [str(adm.pk)]
    data.update({f"reaction-{k}": v for k, v in overrides.items()})
    return data


# --- constraints (a bad insert each) ----------------------------------------------------


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"systolic_mmhg": 30, "diastolic_mmhg": 20}, "vitals_systolic_mmhg_range"),
        ({"systolic_mmhg": 310, "diastolic_mmhg": 80}, "vitals_systolic_mmhg_range"),
        ({"systolic_mmhg": 120, "diastolic_mmhg": 130}, "vitals_diastolic_below_systolic"),
        ({"systolic_mmhg": 120}, "vitals_blood_pressure_pair"),
        ({"spo2_percent": 49}, "vitals_spo2_percent_range"),
        ({"spo2_percent": 101}, "vitals_spo2_percent_range"),
        ({"temperature_c": Decimal("29.9")}, "vitals_temperature_c_range"),
        ({"temperature_c": Decimal("45.1")}, "vitals_temperature_c_range"),
        ({"pulse_per_min": 19}, "vitals_pulse_per_min_range"),
        ({"respiratory_rate_per_min": 61}, "vitals_respiratory_rate_per_min_range"),
        ({"pain_score": 11}, "vitals_pain_score_range"),
        ({"weight_kg": Decimal("0.4")}, "vitals_weight_kg_range"),
        ({}, "vitals_at_least_one_measure"),
    ],
)
def test_vitals_constraints(encounter, values, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        VitalSigns.objects.create(encounter=encounter, taken_at=timezone.now(), **values)


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"grade": 5}, "reaction_grade_1_to_4"),
        ({"grade": 0}, "reaction_grade_1_to_4"),
        ({"symptoms": ""}, "reaction_symptoms_valid"),
        ({"symptoms": "flushing,sneezing"}, "reaction_symptoms_valid"),
        ({"interventions": "prayer"}, "reaction_interventions_valid"),
        ({"symptoms": "flushing,other"}, "reaction_other_symptom_described"),
        ({"interventions": "other"}, "reaction_other_intervention_described"),
        ({"outcome": "gone"}, "reaction_outcome_valid"),
    ],
)
def test_reaction_constraints(encounter, values, constraint):
    row = {"grade": 2, "symptoms": "flushing", "onset_at": timezone.now()} | values
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Reaction.objects.create(encounter=encounter, **row)


# --- vitals -----------------------------------------------------------------------------------


def test_vitals_are_recorded_at_server_time_and_listed_newest_first(nurse_client, nurse, encounter):
    url = reverse("charting:record_vitals", kwargs={"pk": encounter.pk})
    assert nurse_client.post(url, vitals_data()).status_code == 302
    response = nurse_client.post(url, vitals_data(systolic_mmhg="104", diastolic_mmhg="60", weight_kg="73.0"), **HTMX)
    assert response.status_code == 200
    first, second = VitalSigns.objects.order_by("pk")
    assert (first.systolic_mmhg, first.diastolic_mmhg, first.temperature_c, first.recorded_by) == (128, 82, Decimal("36.8"), nurse)
    assert abs(first.taken_at - timezone.now()) < dt.timedelta(minutes=1) and first.taken_at_reason == ""
    html = nurse_client.get(reverse("charting:encounter", kwargs={"pk": encounter.pk})).content.decode()
    assert html.index("104/60") < html.index("128/82")  # newest first
    assert 'data-testid="vitals-bp-1">104/60<' in html


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"systolic_mmhg": "1200"}, "systolic_mmhg", "Systolic pressure must be between 40 and 300 mmHg."),
        ({"diastolic_mmhg": "140"}, "diastolic_mmhg", "The diastolic pressure (140) must be below the systolic (128)."),
        ({"spo2_percent": "37"}, "spo2_percent", "SpO2 must be between 50 and 100%."),
        ({"temperature_c": "98.6"}, "temperature_c", "Temperature must be between 30.0 and 45.0 °C."),
        ({"diastolic_mmhg": ""}, "diastolic_mmhg", "Give the blood pressure as systolic and diastolic."),
        ({"pulse_per_min": "fast"}, "pulse_per_min", "Pulse: type a number."),
    ],
)
def test_bad_vitals_keep_what_was_typed_with_the_error_on_the_field(nurse_client, encounter, overrides, field, message):
    url = reverse("charting:record_vitals", kwargs={"pk": encounter.pk})
    data = vitals_data(**overrides)
    for extra, status in ((HTMX, 200), ({}, 400)):
        response = nurse_client.post(url, data, **extra)
        assert response.status_code == status
        html = response.content.decode()
        assert message in html
        assert f'id="id_vitals-{field}"' in html and "is-invalid" in html
        # What was typed is still there.
        assert all(f'value="{v}"' in html for k, v in data.items() if v and k != "vitals-client_token"), html
    assert not VitalSigns.objects.exists()


def test_vitals_need_at_least_one_measure(nurse_client, encounter):
    response = nurse_client.post(reverse("charting:record_vitals", kwargs={"pk": encounter.pk}), {"vitals-client_token": str(uuid.uuid4())}, **HTMX)
    assert "Give at least one measure." in response.content.decode()
    assert not VitalSigns.objects.exists()


def test_vitals_taken_earlier_need_a_reason_and_not_the_future(nurse, encounter):
    earlier = timezone.now() - dt.timedelta(minutes=20)
    with pytest.raises(services.ChartingError) as excinfo:
        clinical.record_vitals(encounter, measures={"pulse_per_min": 80}, taken_at=earlier, actor=nurse)
    assert excinfo.value.field == "taken_at_reason"
    with pytest.raises(services.ChartingError) as excinfo:
        clinical.record_vitals(encounter, measures={"pulse_per_min": 80}, taken_at=timezone.now() + dt.timedelta(minutes=5), taken_at_reason="x", actor=nurse)
    assert excinfo.value.field == "taken_at" and "future" in excinfo.value.message
    vitals = clinical.record_vitals(encounter, measures={"pulse_per_min": 80}, taken_at=earlier, taken_at_reason="Taken at the door", actor=nurse)
    assert (vitals.taken_at, vitals.taken_at_reason) == (earlier, "Taken at the door")
    assert vitals.recorded_at > vitals.taken_at


def test_a_vitals_time_is_corrected_with_a_reason_and_the_original_kept(nurse_client, nurse, encounter):
    vitals = clinical.record_vitals(encounter, measures={"pulse_per_min": 80}, actor=nurse)
    first = vitals.taken_at
    url = reverse("charting:correct_vitals_time", kwargs={"pk": encounter.pk})
    earlier = timezone.localtime(first - dt.timedelta(minutes=15), encounter.clinic.tz).strftime("%Y-%m-%dT%H:%M")
    response = nurse_client.post(url, {"vitalstime-target": vitals.pk, "vitalstime-new_value": earlier, "vitalstime-reason": ""}, **HTMX)
    assert "A reason is required." in response.content.decode() and f'value="{earlier}"' in response.content.decode()
    response = nurse_client.post(url, {"vitalstime-target": vitals.pk, "vitalstime-new_value": earlier, "vitalstime-reason": "Taken in triage"}, **HTMX)
    assert response.status_code == 200 and "the original is kept" in response.content.decode()
    vitals.refresh_from_db()
    assert vitals.taken_at_original == first and vitals.taken_at_reason == "Taken in triage"
    assert abs((first - vitals.taken_at) - dt.timedelta(minutes=15)) < dt.timedelta(minutes=1)
    future = timezone.localtime(timezone.now() + dt.timedelta(hours=1), encounter.clinic.tz).strftime("%Y-%m-%dT%H:%M")
    response = nurse_client.post(url, {"vitalstime-target": vitals.pk, "vitalstime-new_value": future, "vitalstime-reason": "x"})
    assert response.status_code == 400 and "is in the future" in response.content.decode()


def test_a_double_submit_of_the_vitals_form_records_one_row(nurse_client, encounter):
    url = reverse("charting:record_vitals", kwargs={"pk": encounter.pk})
    data = vitals_data()
    nurse_client.post(url, data, **HTMX)
    response = nurse_client.post(url, data, **HTMX)
    assert VitalSigns.objects.count() == 1
    assert "already recorded" in response.content.decode()


def test_vitals_entered_in_error_are_struck_not_deleted(nurse_client, nurse, encounter):
    vitals = clinical.record_vitals(encounter, measures={"weight_kg": Decimal("73.0")}, actor=nurse)
    response = nurse_client.post(reverse("charting:strike_vitals", kwargs={"pk": encounter.pk}), {"vitals": vitals.pk, "reason": "Other patient's scale"}, **HTMX)
    assert response.status_code == 200
    vitals.refresh_from_db()
    assert vitals.is_entered_in_error and vitals.entered_in_error_reason == "Other patient's scale" and vitals.entered_in_error_by == nurse
    assert 'data-entered-in-error="true"' in response.content.decode()
    # A struck weight does not prefill the dosing help.
    from charting.views_clinical import clinical_context

    assert clinical_context(encounter, [])["clinical"]["latest_weight_kg"] is None


# --- reactions --------------------------------------------------------------------------------


def test_a_reaction_pauses_the_running_drug_in_the_same_transaction(nurse_client, nurse, encounter, running):
    response = nurse_client.post(reverse("charting:record_reaction", kwargs={"pk": encounter.pk}), reaction_data(running, note="Settled with cetirizine"))
    assert response.status_code == 302 and response["Location"].endswith("#reactions")
    reaction = Reaction.objects.get()
    pause = Pause.objects.get(administration=running)
    assert pause.reason == "Reaction grade 2: flushing, dyspnoea"
    assert pause.resumed_at is None and pause.recorded_by == nurse
    assert ReactionAdministration.objects.get(reaction=reaction).pause == pause
    assert (reaction.grade, reaction.symptoms, reaction.outcome) == (2, "flushing,dyspnoea", "ongoing")
    assert reaction.interventions == "infusion_paused,antihistamine"  # the pause it opened is an intervention
    running.refresh_from_db()
    assert running.state == "paused"
    html = nurse_client.get(reverse("charting:encounter", kwargs={"pk": encounter.pk})).content.decode()
    assert "Reaction recorded. Paused: infliximab." in html
    assert f'data-testid="resume-{running.label}"' in html


def test_a_failing_pause_rolls_the_reaction_back(nurse, encounter, running, monkeypatch):
    """One transaction: if the pause cannot be written, no reaction row stays."""

    def broken(adm, **kwargs):
        raise services.ChartingError("pump says no")

    monkeypatch.setattr(services, "pause_administration", broken)
    with pytest.raises(services.ChartingError):
        clinical.record_reaction(encounter, administrations=[running], grade=2, symptoms=["flushing"], actor=nurse)
    assert not Reaction.objects.exists() and not Pause.objects.exists()


def test_a_reaction_on_a_drug_already_paused_or_stopped_opens_no_new_pause(nurse, encounter, running):
    services.pause_administration(running, reason="Pump alarm", actor=nurse)
    stopped = AdministrationFactory(encounter=encounter, drug=DrugFactory(name="rituximab"), started_at=timezone.now() - dt.timedelta(hours=2), stopped_at=timezone.now() - dt.timedelta(hours=1))
    reaction = clinical.record_reaction(encounter, administrations=[running, stopped], grade=1, symptoms=["pruritus"], actor=nurse)
    assert Pause.objects.count() == 1 and Pause.objects.get().reason == "Pump alarm"
    assert [link.pause for link in reaction.links.all()] == [None, None]
    assert reaction.interventions == "" and reaction.notice == "Reaction recorded."


def test_a_double_submit_of_the_reaction_form_pauses_once_and_records_once(nurse_client, encounter, running):
    url = reverse("charting:record_reaction", kwargs={"pk": encounter.pk})
    data = reaction_data(running)
    nurse_client.post(url, data, **HTMX)
    response = nurse_client.post(url, data, **HTMX)
    assert response.status_code == 200
    assert Reaction.objects.count() == 1 and Pause.objects.count() == 1


def test_the_open_pause_constraint_backs_the_service(nurse, encounter, running):
    """Even a path that skipped the service's check cannot open a second pause."""
    clinical.record_reaction(encounter, administrations=[running], grade=2, symptoms=["flushing"], actor=nurse)
    with pytest.raises(IntegrityError, match="pause_one_open_per_administration"), transaction.atomic():
        Pause.objects.create(administration=running, paused_at=timezone.now(), reason="again")


def test_resume_ends_the_reaction_pause_and_the_card_says_so(nurse_client, nurse, encounter, running):
    clinical.record_reaction(encounter, administrations=[running], grade=2, symptoms=["flushing"], actor=nurse)
    response = nurse_client.post(reverse("charting:resume_administration", kwargs={"pk": running.pk}), **HTMX)
    assert response.status_code == 200
    assert Pause.objects.get().resumed_at is not None
    running.refresh_from_db()
    assert running.state == "running"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"grade": ""}, "grade", "Pick the CTCAE grade, 1 to 4."),
        ({"grade": "5"}, "grade", "Select a valid choice."),
        ({"symptoms": []}, "symptoms", "Pick at least one symptom."),
        ({"symptoms": ["flushing", "other"]}, "symptoms_other", "Describe the other symptom."),
        ({"interventions": ["other"]}, "interventions_other", "Describe the other intervention."),
    ],
)
def test_a_bad_reaction_keeps_what_was_typed_and_pauses_nothing(nurse_client, encounter, running, overrides, field, message):
    url = reverse("charting:record_reaction", kwargs={"pk": encounter.pk})
    data = reaction_data(running, note="kept note", **overrides)
    for extra, status in ((HTMX, 200), ({}, 400)):
        response = nurse_client.post(url, data, **extra)
        assert response.status_code == status
        html = response.content.decode()
        assert message in html
        assert "kept note" in html
    assert not Reaction.objects.exists() and not Pause.objects.exists()


def test_a_reaction_names_only_drugs_of_its_encounter(nurse_client, encounter, running, clinic):
    elsewhere = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)), started_at=timezone.now())
    response = nurse_client.post(reverse("charting:record_reaction", kwargs={"pk": encounter.pk}), reaction_data(elsewhere), **HTMX)
    assert "Select a valid choice" in response.content.decode()
    assert not Pause.objects.filter(administration=elsewhere).exists() and not Reaction.objects.exists()


def test_a_reaction_entered_in_error_is_struck_and_its_pause_stays(nurse_client, nurse, encounter, running):
    reaction = clinical.record_reaction(encounter, administrations=[running], grade=2, symptoms=["flushing"], actor=nurse)
    response = nurse_client.post(reverse("charting:strike_reaction", kwargs={"pk": encounter.pk}), {"reaction": reaction.pk, "reason": "Wrong chair"})
    assert response.status_code == 302
    reaction.refresh_from_db()
    assert reaction.is_entered_in_error and Reaction.charted.count() == 0
    assert Pause.objects.get().resumed_at is None


def test_the_outcome_is_updated_later_and_kept_in_history(nurse_client, nurse, encounter, running):
    from charting.models import ReactionEvent

    reaction = clinical.record_reaction(encounter, administrations=[running], grade=2, symptoms=["flushing"], actor=nurse)
    url = reverse("charting:reaction_outcome", kwargs={"pk": encounter.pk})
    response = nurse_client.post(url, {"reaction": reaction.pk, "outcome": "resolved"}, **HTMX)
    assert response.status_code == 200 and "Outcome: Resolved." in response.content.decode()
    reaction.refresh_from_db()
    assert reaction.outcome == "resolved"
    assert list(ReactionEvent.objects.filter(pgh_obj_id=reaction.pk).order_by("pgh_id").values_list("outcome", flat=True)) == ["ongoing", "resolved"]
    response = nurse_client.post(url, {"reaction": reaction.pk, "outcome": "cured"}, **HTMX)
    assert "Pick the outcome." in response.content.decode()
    assert nurse_client.post(url, {"reaction": reaction.pk, "outcome": "resolved"}).status_code == 302


# --- signed encounters ----------------------------------------------------------------------------


def test_a_signed_encounter_refuses_vitals_and_reactions_with_409(nurse_client, nurse, encounter, running):
    vitals = clinical.record_vitals(encounter, measures={"pulse_per_min": 80}, actor=nurse)
    reaction = clinical.record_reaction(encounter, administrations=[running], grade=1, symptoms=["nausea"], actor=nurse)
    _sign(encounter)
    requests = [
        ("charting:record_vitals", vitals_data()),
        ("charting:strike_vitals", {"vitals": vitals.pk, "reason": "x"}),
        ("charting:record_reaction", reaction_data(running)),
        ("charting:strike_reaction", {"reaction": reaction.pk, "reason": "x"}),
        ("charting:reaction_outcome", {"reaction": reaction.pk, "outcome": "resolved"}),
        ("charting:correct_vitals_time", {"vitalstime-target": vitals.pk, "vitalstime-new_value": "2026-01-01T09:00", "vitalstime-reason": "x"}),
    ]
    for name, data in requests:
        for extra in (HTMX, {}):
            response = nurse_client.post(reverse(name, kwargs={"pk": encounter.pk}), data, **extra)
            assert response.status_code == 409, (name, response.status_code)
            assert "amendment" in response.content.decode()
    assert VitalSigns.objects.count() == 1 and Reaction.objects.count() == 1
    vitals.refresh_from_db()
    assert not vitals.is_entered_in_error
    html = nurse_client.get(reverse("charting:encounter", kwargs={"pk": encounter.pk})).content.decode()
    assert 'data-testid="vitals-form"' not in html and 'data-testid="reaction-form"' not in html
    assert 'data-testid="vitals-table"' in html and 'data-testid="reaction-1"' in html


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE charting_vitalsigns SET pulse_per_min = 90 WHERE encounter_id = %s",
        "UPDATE charting_reaction SET grade = 3 WHERE encounter_id = %s",
        "UPDATE charting_reactionadministration SET pause_id = NULL WHERE reaction_id IN (SELECT id FROM charting_reaction WHERE encounter_id = %s)",
    ],
    ids=["vitals", "reaction", "reaction_drug"],
)
def test_signed_vitals_and_reactions_are_frozen_by_the_triggers(nurse, encounter, running, statement):
    clinical.record_vitals(encounter, measures={"pulse_per_min": 80}, actor=nurse)
    clinical.record_reaction(encounter, administrations=[running], grade=1, symptoms=["nausea"], actor=nurse)
    _sign(encounter)
    with pytest.raises(IntegrityError, match="signed documentation"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [encounter.pk])


def test_history_keeps_every_version(nurse, encounter):
    from charting.models import VitalSignsEvent

    vitals = clinical.record_vitals(encounter, measures={"pulse_per_min": 80}, actor=nurse)
    clinical.strike_vitals(vitals, reason="Wrong patient", actor=nurse)
    assert list(VitalSignsEvent.objects.filter(pgh_obj_id=vitals.pk).order_by("pgh_id").values_list("pgh_label", "entered_in_error_reason")) == [("insert", ""), ("update", "Wrong patient")]


# --- the coding engine leaves the reaction's pause out (R17) -------------------------------------------


def test_infliximab_0_150_with_a_20_minute_reaction_pause_is_coded_on_130_minutes(nurse, clinic, clock, monkeypatch):
    """Infliximab charted 0-150 min, a grade 2 reaction at 40 min pausing it
    for 20 min (Resume at 60): 130 drip minutes. Coded through the stored
    encounter's suggestion path: 96413 (first hour) + 96415 x1 (61-130 min),
    and J1745 for the dose, with 130 minutes on the chemo lines."""
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    encounter = services.open_encounter(PatientFactory(clinic=clinic), clinic=clinic, setting="office", actor=nurse)
    site = AccessSiteFactory(encounter=encounter, label="A")
    drug = DrugFactory(name="infliximab", hcpcs="J1745", billing_unit_value=Decimal("10"), billing_unit_unit="mg", admin_family="chemo_complex", dosing_basis="mg_per_kg", vial_sizes_mg=[100])
    adm = services.add_administration(encounter, drug=drug, route="iv_infusion", access_site=site, dose_value=Decimal("500"), dose_unit="mg", purpose="treatment", actor=nurse)
    services.start_administration(adm, actor=nurse)
    clock.advance(minutes=40)
    reaction = clinical.record_reaction(encounter, administrations=[adm], grade=2, symptoms=["flushing", "dyspnoea"], interventions=["antihistamine"], actor=nurse)
    assert reaction.paused == [adm.pk]
    clock.advance(minutes=20)
    services.resume_administration(adm, actor=nurse)
    clock.advance(minutes=90)
    services.stop_administration(adm, actor=nurse)
    chart_vials(adm)
    clock.advance(minutes=5)
    services.sign_encounter(Encounter.objects.get(pk=encounter.pk), actor=nurse)
    suggestion = coding_services.suggest_for_encounter(encounter.pk)
    lines = {line.code: (line.units, line.minutes) for line in suggestion.lines.all()}
    assert lines["96413"][0] == 1
    assert lines["96415"][0] == 1
    assert {lines["96413"][1], lines["96415"][1]} == {130}
    assert lines["J1745"][0] == 50
    assert "96365" not in lines
