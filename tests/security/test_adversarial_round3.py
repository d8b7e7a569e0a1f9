"""Round 3 attacks: idempotent taps, undo, vitals, reactions, dosing help,
barcode scanning, the never-started / nothing-charted checks, roles.

Expected everywhere: never a 500, a clear refusal with a message, nothing
lost, nothing written twice, no MRN or name in a log or an echoed response.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from charting import checks, services
from charting.barcodes import gtin_for_ndc
from charting.models import Administration, Encounter, PatientScan, Pause, Reaction, ReactionAdministration, TapKey, VitalSigns
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory

from .conftest import HTMX

pytestmark = pytest.mark.django_db


def url(name, obj):
    return reverse(f"charting:{name}", kwargs={"pk": obj.pk})


def body(response) -> str:
    return response.content.decode()


@pytest.fixture
def nurse_client(client, nurse):
    client.force_login(nurse)
    return client


@pytest.fixture
def nurse2(clinic):
    return UserFactory(username="nurse2", roles=["nurse"], clinics=[clinic])


@pytest.fixture
def running(adm, nurse):
    return services.start_administration(adm, actor=nurse)


def started(adm) -> bool:
    return Administration.objects.get(pk=adm.pk).started_at is not None


# --- idempotency keys ------------------------------------------------------------------


def test_tap_key_replayed_by_another_nurse_is_refused(client, nurse, nurse2, adm):
    key = str(uuid.uuid4())
    client.force_login(nurse)
    assert client.post(url("start_administration", adm), {"idempotency_key": key}, **HTMX).status_code == 200
    client.force_login(nurse2)
    response = client.post(url("stop_administration", adm), {"idempotency_key": key}, **HTMX)
    assert response.status_code < 500
    assert "already used" in body(response)
    assert Administration.objects.get(pk=adm.pk).stopped_at is None
    assert TapKey.objects.count() == 1


def test_tap_key_reused_for_another_action_is_refused(nurse_client, adm):
    key = str(uuid.uuid4())
    nurse_client.post(url("start_administration", adm), {"idempotency_key": key}, **HTMX)
    response = nurse_client.post(url("stop_administration", adm), {"idempotency_key": key}, **HTMX)
    assert "already used" in body(response)
    assert Administration.objects.get(pk=adm.pk).stopped_at is None


def test_tap_key_reused_on_another_administration_is_not_silently_dropped(nurse_client, encounter, adm):
    """The key of Start on drug A posted with Start on drug B: either B
    starts, or the nurse is told the form is stale. Never a silent no-op."""
    other = AdministrationFactory(encounter=encounter, access_site=adm.access_site, label="b", drug=DrugFactory(name="drug b"))
    key = str(uuid.uuid4())
    nurse_client.post(url("start_administration", adm), {"idempotency_key": key}, **HTMX)
    response = nurse_client.post(url("start_administration", other), {"idempotency_key": key}, **HTMX)
    assert response.status_code < 500
    assert started(other) or "already used" in body(response), "the tap on drug B was dropped without a word"


def test_tap_key_of_a_pause_replayed_on_another_drug_is_not_silently_dropped(nurse_client, encounter, adm, nurse):
    other = AdministrationFactory(encounter=encounter, access_site=adm.access_site, label="b", drug=DrugFactory(name="drug b"))
    services.start_administration(adm, actor=nurse)
    services.start_administration(other, actor=nurse)
    key = str(uuid.uuid4())
    nurse_client.post(url("pause_administration", adm), {"idempotency_key": key, "reason": "Pump alarm"}, **HTMX)
    response = nurse_client.post(url("pause_administration", other), {"idempotency_key": key, "reason": "Pump alarm"}, **HTMX)
    assert Pause.objects.filter(administration=other).exists() or "already used" in body(response)


@pytest.mark.parametrize("key", ["not-a-uuid", "x" * 100_000, "\x00", " ", "{" + str(uuid.uuid4()) + "}", str(uuid.uuid4()).upper(), "0" * 32])
def test_malformed_or_odd_keys_write_once_and_never_500(nurse_client, adm, key):
    response = nurse_client.post(url("start_administration", adm), {"idempotency_key": key}, **HTMX)
    assert response.status_code == 200
    assert started(adm)
    assert AuditEvent.objects.filter(action="charting.administration.started").count() == 1


def test_huge_key_header_never_500(nurse_client, adm):
    response = nurse_client.post(url("start_administration", adm), HTTP_IDEMPOTENCY_KEY="k" * 8000, **HTMX)
    assert response.status_code == 200 and started(adm)


def test_double_start_with_one_key_is_one_audit(nurse_client, adm):
    key = str(uuid.uuid4())
    for _ in range(3):
        assert nurse_client.post(url("start_administration", adm), {"idempotency_key": key}, **HTMX).status_code == 200
    assert AuditEvent.objects.filter(action="charting.administration.started").count() == 1


def test_key_reused_after_an_undo_does_not_resurrect_or_500(nurse_client, adm, settings):
    settings.CHAIRSIDE_UNDO_SECONDS = 60
    key = str(uuid.uuid4())
    nurse_client.post(url("start_administration", adm), {"idempotency_key": key}, **HTMX)
    r = nurse_client.post(url("undo_administration", adm), {"idempotency_key": str(uuid.uuid4()), "event": "start"}, **HTMX)
    assert r.status_code == 200 and not started(adm)
    # the old Start form re-sent (browser retry): a replay, writes nothing
    r = nurse_client.post(url("start_administration", adm), {"idempotency_key": key}, **HTMX)
    assert r.status_code == 200
    # a fresh tap starts again
    r = nurse_client.post(url("start_administration", adm), {"idempotency_key": str(uuid.uuid4())}, **HTMX)
    assert started(adm)


def test_undo_key_reused_for_start_is_refused(nurse_client, adm, settings):
    settings.CHAIRSIDE_UNDO_SECONDS = 60
    key = str(uuid.uuid4())
    nurse_client.post(url("start_administration", adm), {"idempotency_key": str(uuid.uuid4())}, **HTMX)
    nurse_client.post(url("undo_administration", adm), {"idempotency_key": key, "event": "start"}, **HTMX)
    r = nurse_client.post(url("start_administration", adm), {"idempotency_key": key}, **HTMX)
    assert "already used" in body(r) and not started(adm)


# --- undo ------------------------------------------------------------------------------


def test_undo_after_the_window_is_refused_with_a_message(nurse_client, running, settings):
    settings.CHAIRSIDE_UNDO_SECONDS = 10
    Administration.objects.filter(pk=running.pk).update(started_at=timezone.now() - dt.timedelta(seconds=11))
    r = nurse_client.post(url("undo_administration", running), {"event": "start"}, **HTMX)
    assert r.status_code == 200 and "Too late" in body(r) and started(running)


def test_undo_on_a_signed_encounter_is_409(nurse_client, nurse, encounter, running, settings):
    """Stop, sign at once, then tap the card's Undo (still in the window): 409."""
    settings.CHAIRSIDE_UNDO_SECONDS = 120
    services.stop_administration(running, actor=nurse)
    blocking = [i for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=timezone.now(), signing=True) if i.blocking]
    services.sign_encounter(encounter, actor=nurse, confirmed=checks.digest(blocking))
    r = nurse_client.post(url("undo_administration", running), {"event": "stop"}, **HTMX)
    assert r.status_code == 409
    assert Administration.objects.get(pk=running.pk).stopped_at is not None


@pytest.mark.parametrize("event", ["start", "stop", "pause", "resume", "", "delete", "x" * 5000])
def test_double_or_bogus_undo_is_a_message(nurse_client, running, settings, event):
    settings.CHAIRSIDE_UNDO_SECONDS = 60
    nurse_client.post(url("undo_administration", running), {"event": "start"}, **HTMX)
    r = nurse_client.post(url("undo_administration", running), {"event": event}, **HTMX)
    assert r.status_code == 200
    assert "undo" in body(r).lower()
    assert AuditEvent.objects.filter(action="charting.administration.undone").count() == 1


def test_undo_of_a_pause_opened_by_a_reaction_is_not_a_500(nurse_client, nurse, encounter, running, settings):
    """A reaction paused the drug; the card offers Undo of that pause. The
    pause is the reaction's record (ReactionAdministration.pause, PROTECT):
    undoing it must be refused with a message (or keep the link), never 500."""
    settings.CHAIRSIDE_UNDO_SECONDS = 60
    from charting import clinical

    clinical.record_reaction(encounter, administrations=[running], grade=2, symptoms=["flushing"], actor=nurse)
    assert Pause.objects.filter(administration=running, resumed_at__isnull=True).exists()
    nurse_client.raise_request_exception = False
    r = nurse_client.post(url("undo_administration", running), {"event": "pause"}, **HTMX)
    assert r.status_code < 500, f"undo of a reaction's pause answered {r.status_code}"
    assert ReactionAdministration.objects.filter(administration=running, pause__isnull=False).exists()


def test_undo_of_another_nurses_tap_is_audited_as_that_nurse(client, nurse, nurse2, running, settings):
    settings.CHAIRSIDE_UNDO_SECONDS = 60
    client.force_login(nurse2)
    r = client.post(url("undo_administration", running), {"event": "start"}, **HTMX)
    assert r.status_code == 200
    event = AuditEvent.objects.filter(action="charting.administration.undone").get()
    assert event.actor_id == nurse2.pk


# --- vitals ----------------------------------------------------------------------------


def vitals(**overrides):
    data = {"vitals-client_token": str(uuid.uuid4())}
    data.update({f"vitals-{k}": v for k, v in overrides.items()})
    return data


BAD_VITALS = [
    {"pulse_per_min": "-70"},
    {"pulse_per_min": "0"},
    {"pulse_per_min": "99999999999999999999999999999"},
    {"pulse_per_min": "1e3"},
    {"pulse_per_min": "NaN"},
    {"temperature_c": "NaN"},
    {"temperature_c": "Infinity"},
    {"temperature_c": "-Infinity"},
    {"temperature_c": "1e309"},
    {"temperature_c": "36.85"},
    {"temperature_c": "3" * 50},
    {"weight_kg": "0"},
    {"weight_kg": "-73"},
    {"weight_kg": "sNaN"},
    {"spo2_percent": "101"},
    {"pain_score": "11"},
    {"systolic_mmhg": "80", "diastolic_mmhg": "120"},
    {"systolic_mmhg": "120", "diastolic_mmhg": "120"},
    {"systolic_mmhg": "120"},
    {"diastolic_mmhg": "80"},
    {},
    {"pulse_per_min": "", "weight_kg": "  "},
    {"pulse_per_min": "80", "taken_at": "2099-01-01T10:00", "taken_at_reason": "x"},
    {"pulse_per_min": "80", "taken_at": "9999-12-31T23:59", "taken_at_reason": "x"},
    {"pulse_per_min": "80", "taken_at": "0001-01-01T00:00", "taken_at_reason": "x"},
    {"pulse_per_min": "80", "taken_at": "2026-03-08T02:30", "taken_at_reason": "x"},
    {"pulse_per_min": "80", "taken_at": "2026-11-01T01:30", "taken_at_reason": "x"},
    {"pulse_per_min": "80", "taken_at": "not a time"},
    {"pulse_per_min": "80", "taken_at_reason": "x" * 10_000},
]


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("change", BAD_VITALS)
def test_bad_vitals_are_refused_with_a_message(nurse_client, encounter, change, htmx):
    extra = HTMX if htmx else {}
    r = nurse_client.post(url("record_vitals", encounter), vitals(**change), **extra)
    assert r.status_code == (200 if htmx else 400), r.status_code
    assert "invalid-feedback" in body(r) or "alert-danger" in body(r) or "is-invalid" in body(r)
    assert not VitalSigns.objects.exists()


@pytest.mark.parametrize("htmx", [False, True])
def test_vitals_with_a_mangled_client_token_are_saved_once_not_silently_refused(nurse_client, encounter, htmx):
    """The hidden one-time key is not a UUID (an old or tampered page): it
    counts as no key (charting/forms_clinical._TokenField), so what the nurse
    typed is saved, once, rather than refused without a visible message."""
    r = nurse_client.post(url("record_vitals", encounter), vitals(pulse_per_min="80", client_token="not-a-uuid"), **(HTMX if htmx else {}))
    assert r.status_code in (200, 302), r.status_code
    assert VitalSigns.objects.count() == 1
    assert VitalSigns.objects.get().pulse_per_min == 80


def test_vitals_double_submit_by_two_nurses_is_one_row(client, nurse, nurse2, encounter):
    data = vitals(pulse_per_min="80")
    client.force_login(nurse)
    client.post(url("record_vitals", encounter), data, **HTMX)
    client.force_login(nurse2)
    r = client.post(url("record_vitals", encounter), data, **HTMX)
    assert r.status_code == 200 and "already recorded" in body(r)
    assert VitalSigns.objects.count() == 1


def test_vitals_token_of_another_encounter_is_refused(nurse_client, encounter, clinic):
    data = vitals(pulse_per_min="80")
    nurse_client.post(url("record_vitals", encounter), data, **HTMX)
    other = EncounterFactory(patient=PatientFactory(clinic=clinic))
    r = nurse_client.post(url("record_vitals", other), data, **HTMX)
    assert r.status_code == 200 and "another encounter" in body(r)
    assert VitalSigns.objects.count() == 1


def test_vitals_on_a_signed_encounter_is_409(nurse_client, signed_encounter):
    assert nurse_client.post(url("record_vitals", signed_encounter), vitals(pulse_per_min="80"), **HTMX).status_code == 409
    assert not VitalSigns.objects.exists()


def test_correcting_another_encounters_vitals_is_refused(nurse_client, nurse, encounter, clinic):
    from charting import clinical

    other = EncounterFactory(patient=PatientFactory(clinic=clinic))
    theirs = clinical.record_vitals(other, measures={"pulse_per_min": 80}, actor=nurse)
    when = timezone.localtime(timezone.now() - dt.timedelta(minutes=5), clinic.tz).strftime("%Y-%m-%dT%H:%M")
    r = nurse_client.post(url("correct_vitals_time", encounter), {"vitalstime-target": theirs.pk, "vitalstime-new_value": when, "vitalstime-reason": "x"}, **HTMX)
    assert r.status_code == 200
    assert VitalSigns.objects.get(pk=theirs.pk).taken_at_original is None


@pytest.mark.parametrize("posted", [{"vitals": "abc"}, {"vitals": "9" * 40}, {"vitals": "-1"}, {}, {"vitals": "1", "reason": "x" * 5000}])
def test_strike_vitals_with_garbage_is_not_a_500(nurse_client, encounter, posted):
    r = nurse_client.post(url("strike_vitals", encounter), posted, **HTMX)
    assert r.status_code in (200, 204, 302) or r.headers.get("HX-Redirect")


# --- reactions -------------------------------------------------------------------------


def reaction(adms=(), **overrides):
    data = {
        "reaction-grade": "2",
        "reaction-symptoms": ["flushing"],
        "reaction-outcome": "ongoing",
        "reaction-client_token": str(uuid.uuid4()),
        "reaction-administrations": [str(a.pk) for a in adms],
    }
    data.update({f"reaction-{k}": v for k, v in overrides.items()})
    return data


@pytest.mark.parametrize(
    "change",
    [
        {"grade": "0"},
        {"grade": "5"},
        {"grade": "-1"},
        {"grade": "2.5"},
        {"grade": "9" * 40},
        {"grade": ""},
        {"symptoms": ["anaphylaxis"]},
        {"symptoms": []},
        {"symptoms": ["other"], "symptoms_other": "   "},
        {"interventions": ["magic"]},
        {"outcome": "dead"},
        {"onset_at": "2099-01-01T10:00", "onset_reason": "x"},
        {"onset_at": "9999-12-31T23:59", "onset_reason": "x"},
        {"onset_at": "0001-01-01T00:00", "onset_reason": "x"},
        {"administrations": ["not-a-uuid"]},
        {"administrations": [str(uuid.uuid4())]},
    ],
)
def test_bad_reactions_are_refused_and_pause_nothing(nurse_client, encounter, running, change):
    r = nurse_client.post(url("record_reaction", encounter), reaction([running], **change), **HTMX)
    assert r.status_code == 200, r.status_code
    assert not Reaction.objects.exists() and not Pause.objects.exists()


def test_reaction_linking_another_encounters_or_clinics_drug_is_refused(nurse_client, nurse, encounter, clinic, other_clinic, other_clinic_nurse):
    mine_elsewhere = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)))
    theirs = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=other_clinic)))
    services.start_administration(mine_elsewhere, actor=nurse)
    services.start_administration(theirs, actor=other_clinic_nurse)
    for target in (mine_elsewhere, theirs):
        r = nurse_client.post(url("record_reaction", encounter), reaction([target]), **HTMX)
        assert r.status_code == 200
    assert not Reaction.objects.exists() and not Pause.objects.exists()


def test_reaction_on_a_signed_encounter_is_409(nurse_client, signed_encounter):
    adm = signed_encounter.administrations.get()
    assert nurse_client.post(url("record_reaction", signed_encounter), reaction([adm]), **HTMX).status_code == 409
    assert not Reaction.objects.exists()


def test_reaction_double_submit_is_one_row_one_pause(client, nurse, nurse2, encounter, running):
    data = reaction([running])
    client.force_login(nurse)
    client.post(url("record_reaction", encounter), data, **HTMX)
    client.force_login(nurse2)
    r = client.post(url("record_reaction", encounter), data, **HTMX)
    assert r.status_code in (200, 302)
    assert Reaction.objects.count() == 1 and Pause.objects.count() == 1


def test_reaction_token_of_another_encounter_is_refused(nurse_client, encounter, clinic):
    data = reaction()
    nurse_client.post(url("record_reaction", encounter), data, **HTMX)
    other = EncounterFactory(patient=PatientFactory(clinic=clinic))
    r = nurse_client.post(url("record_reaction", other), data, **HTMX)
    assert r.status_code == 200 and "another encounter" in body(r)
    assert Reaction.objects.count() == 1


@pytest.mark.parametrize("posted", [{"reaction": "1", "outcome": "dead"}, {"reaction": "x"}, {"reaction": "9" * 40, "outcome": "resolved"}, {}])
def test_reaction_outcome_garbage_is_not_a_500(nurse_client, encounter, posted):
    assert nurse_client.post(url("reaction_outcome", encounter), posted, **HTMX).status_code < 500


def test_reaction_outcome_of_another_encounters_reaction_is_refused(nurse_client, nurse, encounter, clinic):
    from charting import clinical

    other = EncounterFactory(patient=PatientFactory(clinic=clinic))
    theirs = clinical.record_reaction(other, administrations=[], grade=1, symptoms=["nausea"], actor=nurse)
    nurse_client.post(url("reaction_outcome", encounter), {"reaction": theirs.pk, "outcome": "resolved"}, **HTMX)
    nurse_client.post(url("strike_reaction", encounter), {"reaction": theirs.pk, "reason": "x"}, **HTMX)
    theirs.refresh_from_db()
    assert theirs.outcome == "ongoing" and theirs.entered_in_error_at is None


# --- dosing help -----------------------------------------------------------------------


@pytest.fixture
def mgkg(encounter, site):
    drug = DrugFactory(name="infliximab-kg", dosing_basis="mg_per_kg", vial_sizes_mg=[100])
    return AdministrationFactory(encounter=encounter, access_site=site, label="ifx", drug=drug)


@pytest.mark.parametrize(
    "query",
    [
        {"weight_kg": "0", "mg_per_kg": "5"},
        {"weight_kg": "-70", "mg_per_kg": "5"},
        {"weight_kg": "1e9", "mg_per_kg": "5"},
        {"weight_kg": "NaN", "mg_per_kg": "5"},
        {"weight_kg": "Infinity", "mg_per_kg": "5"},
        {"weight_kg": "70", "mg_per_kg": "0"},
        {"weight_kg": "70", "mg_per_kg": "1e30"},
        {"weight_kg": "70", "mg_per_kg": "-5"},
        {"weight_kg": "500", "mg_per_kg": "2000"},
        {"weight_kg": "", "mg_per_kg": ""},
        {"weight_kg": "7" * 5000, "mg_per_kg": "5"},
        {"weight_kg": "70", "mg_per_kg": "5", "use": "1"},
    ],
)
def test_dosing_help_bad_input_is_a_message(nurse_client, mgkg, query):
    r = nurse_client.get(url("dosing_help", mgkg), query, **HTMX)
    assert r.status_code == 200


@pytest.mark.parametrize("sizes", [[], 100, "100", {"a": 1}, ["abc", None, -5, "NaN", "Infinity"], [1e-9], [0.0001], [0.001, 1000], [1e30]])
def test_dosing_help_with_odd_catalog_sizes_is_not_a_500(nurse_client, mgkg, sizes):
    """An admin's typo in Drug.vial_sizes_mg (a JSON field) is "left out, not
    guessed at" (clinical.container_sizes): never a 500 on the nurse's page."""
    from charting.models import Drug

    Drug.objects.filter(pk=mgkg.drug_id).update(vial_sizes_mg=sizes)
    nurse_client.raise_request_exception = False
    r = nurse_client.get(url("dosing_help", mgkg), {"weight_kg": "70", "mg_per_kg": "5"}, **HTMX)
    assert r.status_code == 200, f"vial_sizes_mg={sizes!r}: {r.status_code}"


def test_dosing_help_echo_is_escaped(nurse_client, mgkg):
    r = nurse_client.get(url("dosing_help", mgkg), {"weight_kg": "<script>x</script>", "mg_per_kg": "\"><img src=x>"})
    assert r.status_code == 200 and "<script>x</script>" not in body(r) and "<img src=x>" not in body(r)


def test_dosing_help_of_a_flat_drug_says_so(nurse_client, adm):
    r = nurse_client.get(url("dosing_help", adm), {"weight_kg": "70", "mg_per_kg": "5"}, **HTMX)
    assert r.status_code == 200 and "not dosed by weight" in body(r)


def test_dosing_help_use_on_a_signed_encounter_offers_no_edit(nurse_client, signed_encounter):
    adm = signed_encounter.administrations.get()
    adm.drug.dosing_basis, adm.drug.vial_sizes_mg = "mg_per_kg", [100]
    adm.drug.save()
    r = nurse_client.get(url("dosing_help", adm), {"weight_kg": "70", "mg_per_kg": "5", "use": "1"})
    assert r.status_code == 200 and "dose_value" not in body(r)


# --- barcode scanning ------------------------------------------------------------------

GOOD_NDC = "57894-030-01"


@pytest.fixture
def scan_adm(adm):
    adm.drug.example_ndc = GOOD_NDC
    adm.drug.save()
    return adm


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "]",
        "]d2",
        "(01)",
        "(01)123",
        "(",
        "()",
        "(01)(17)",
        "01",
        "0100357894030010",
        "01003578940300101799133210AB",
        "(17)271231(10)AB1234",
        "(01)00357894030011(17)271231",
        "(01)10357894030017",
        "(01)00012345678905",
        "\x00\x01\x02",
        "01003578940300101727123110AB\r\n21X",
        "０１００３５７８９４０３０００１０",
        "\x1d" * 50,
        "|" * 50,
        "^^^",
        "9" * 201,
        "A" * 100_000,
        "(01)00357894030010(17)271231(10)" + "Z" * 40 + "(21)" + "Y" * 40,
        "]C1" + "0" * 14,
        "<script>alert(1)</script>",
        "012345678905",
        "(01)00357894030010(17)250200",
        "(01)00357894030010(17)000000",
        "(8018)123456789012345678",
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_malformed_vial_scans_are_a_message_not_a_500(nurse_client, scan_adm, text, htmx):
    extra = HTMX if htmx else {}
    r = nurse_client.post(url("scan_vial", scan_adm), {"scan": text}, **extra)
    assert r.status_code in (200, 400), r.status_code
    assert "<script>alert(1)</script>" not in body(r)


def test_scan_of_an_expired_lot_fills_nothing(nurse_client, scan_adm):
    text = f"(01){gtin_for_ndc('5789403001')}(17)200101(10)OLD1"
    r = nurse_client.post(url("scan_vial", scan_adm), {"scan": text}, **HTMX)
    assert "expired" in body(r) and "OLD1\"" not in body(r)


def test_scan_of_another_drugs_ndc_is_refused(nurse_client, scan_adm):
    DrugFactory(name="rituximab", example_ndc="50242-051-21")
    r = nurse_client.post(url("scan_vial", scan_adm), {"scan": f"(01){gtin_for_ndc('5024205121')}(17)301231(10)R1"}, **HTMX)
    assert "Wrong product" in body(r) and 'value="R1"' not in body(r)


@pytest.mark.parametrize("text", ["", " ", "\x00", "A" * 100_000, "\x1d\x1d", "]C0", "(8018)", "8018" + "1" * 18, "é"])
def test_malformed_wristbands_are_a_message(nurse_client, encounter, text):
    r = nurse_client.post(url("check_wristband", encounter), {"wristband": text}, **HTMX)
    assert r.status_code == 200


def test_another_patients_wristband_is_not_echoed_nor_stored(nurse_client, encounter, clinic):
    other = PatientFactory(clinic=clinic, mrn="OTHER-ZZCANARY-4711-99")
    r = nurse_client.post(url("check_wristband", encounter), {"wristband": other.mrn}, **HTMX)
    assert r.status_code == 200 and "does not match" in body(r)
    assert other.mrn not in body(r) and encounter.patient.mrn not in body(r)
    assert PatientScan.objects.get().result == "mismatch"
    for event in AuditEvent.objects.all():
        assert other.mrn not in str(event.__dict__), event.action


def test_a_wristband_scanned_into_the_vial_field_is_not_stored_in_the_audit(nurse_client, scan_adm):
    mrn = scan_adm.encounter.patient.mrn
    nurse_client.post(url("scan_vial", scan_adm), {"scan": mrn}, **HTMX)
    for event in AuditEvent.objects.all():
        assert mrn not in str(event.__dict__), event.action


def test_other_clinics_patient_wristband_is_a_mismatch(nurse_client, encounter, other_clinic):
    theirs = PatientFactory(clinic=other_clinic, mrn=encounter.patient.mrn.lower() + "X")
    r = nurse_client.post(url("check_wristband", encounter), {"wristband": theirs.mrn}, **HTMX)
    assert "does not match" in body(r)


def test_wristband_on_a_signed_encounter_is_409(nurse_client, signed_encounter):
    r = nurse_client.post(url("check_wristband", signed_encounter), {"wristband": signed_encounter.patient.mrn}, **HTMX)
    assert r.status_code == 409 and not PatientScan.objects.exists()


# --- the never-started / nothing-charted checks -------------------------------------------


def test_signing_with_a_never_started_drug_asks_first(nurse_client, adm, encounter):
    r = nurse_client.post(url("sign_encounter", encounter), {})
    assert r.status_code == 302
    assert Encounter.objects.get(pk=encounter.pk).status == "draft"
    issues = [i for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=timezone.now(), signing=True) if i.blocking]
    assert any(i.kind == "never_started" for i in issues)
    r = nurse_client.post(url("sign_encounter", encounter), {"confirmed": "deadbeef"})
    assert Encounter.objects.get(pk=encounter.pk).status == "draft"
    r = nurse_client.post(url("sign_encounter", encounter), {"confirmed": checks.digest(issues)})
    assert Encounter.objects.get(pk=encounter.pk).status == "signed"


def test_signing_with_nothing_charted_asks_first(nurse_client, encounter):
    nurse_client.post(url("sign_encounter", encounter), {})
    assert Encounter.objects.get(pk=encounter.pk).status == "draft"
    issues = [i for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=timezone.now(), signing=True) if i.blocking]
    assert [i.kind for i in issues] == ["nothing_charted"]


def test_signing_when_the_only_drug_was_struck_asks_nothing_charted(nurse_client, nurse, adm, encounter):
    services.enter_administration_in_error(adm, reason="wrong patient", amendment_reason=None, actor=nurse)
    nurse_client.post(url("sign_encounter", encounter), {})
    assert Encounter.objects.get(pk=encounter.pk).status == "draft"
    issues = [i for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=encounter.pk), now=timezone.now(), signing=True) if i.blocking]
    kinds = [i.kind for i in issues]
    assert "nothing_charted" in kinds and "never_started" not in kinds


def test_sign_with_a_huge_digest_is_not_a_500(nurse_client, encounter):
    r = nurse_client.post(url("sign_encounter", encounter), {"confirmed": "x" * 100_000})
    assert r.status_code == 302 and Encounter.objects.get(pk=encounter.pk).status == "draft"


# --- roles, clinics, methods, CSRF -------------------------------------------------------

ENCOUNTER_POSTS = ["record_vitals", "correct_vitals_time", "strike_vitals", "record_reaction", "reaction_outcome", "strike_reaction", "check_wristband"]
ADM_POSTS = ["scan_vial", "undo_administration"]


@pytest.mark.parametrize("name", ENCOUNTER_POSTS + ADM_POSTS + ["dosing_help"])
def test_new_urls_by_role_clinic_and_method(client, name, adm, encounter, coder, admin, other_clinic_nurse, no_role_user):
    target = adm if name in ADM_POSTS + ["dosing_help"] else encounter
    u = url(name, target)
    do = client.get if name == "dosing_help" else client.post
    for user, expected in ((coder, 403), (admin, 403), (no_role_user, 403), (other_clinic_nurse, 404)):
        client.force_login(user)
        r = do(u, {"scan": "x", "wristband": encounter.patient.mrn, "event": "start"})
        assert r.status_code == expected, (user.username, r.status_code)
    client.force_login(other_clinic_nurse)
    wrong = client.post if name == "dosing_help" else client.get
    client.logout()
    r = do(u)
    assert r.status_code in (302, 401, 403)
    client.force_login(other_clinic_nurse)
    assert wrong(u).status_code in (404, 405)
    assert not PatientScan.objects.exists() and not VitalSigns.objects.exists() and not Reaction.objects.exists()


@pytest.mark.parametrize("name", ENCOUNTER_POSTS + ADM_POSTS)
def test_new_posts_without_csrf_are_403(nurse, adm, encounter, name):
    c = Client(enforce_csrf_checks=True)
    c.force_login(nurse)
    target = adm if name in ADM_POSTS else encounter
    r = c.post(url(name, target), {"wristband": encounter.patient.mrn, "vitals-pulse_per_min": "80", "event": "start"}, **HTMX)
    assert r.status_code == 403
    assert not PatientScan.objects.exists() and not VitalSigns.objects.exists()


@pytest.mark.parametrize("name", ENCOUNTER_POSTS + ADM_POSTS + ["dosing_help"])
def test_new_urls_with_a_bogus_uuid_are_404(nurse_client, name):
    u = reverse(f"charting:{name}", kwargs={"pk": uuid.uuid4()})
    r = (nurse_client.get if name == "dosing_help" else nurse_client.post)(u)
    assert r.status_code == 404


@pytest.mark.parametrize("event", ["start", "stop"])
def test_undo_on_a_drug_struck_as_entered_in_error_changes_nothing(nurse_client, nurse, running, settings, event):
    """REC-4: a struck drug keeps every value. Its card offers no Undo, but a
    stale page (or a double tap racing the strike) can still post one."""
    settings.CHAIRSIDE_UNDO_SECONDS = 60
    if event == "stop":
        services.stop_administration(running, actor=nurse)
    services.enter_administration_in_error(running, reason="wrong drug", actor=nurse)
    before = Administration.objects.get(pk=running.pk)
    r = nurse_client.post(url("undo_administration", running), {"event": event}, **HTMX)
    assert r.status_code < 500
    after = Administration.objects.get(pk=running.pk)
    assert (after.started_at, after.stopped_at) == (before.started_at, before.stopped_at), "a struck record was changed by an undo"
