"""charting.services: every state change, its refusals, and its audit row."""

import datetime as dt
import re
import sys
import types
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from charting import services
from charting.models import Administration, DocumentationFlag, Encounter, Pause, TimeCorrection
from charting.services import ChartingError
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, chart_vials

pytestmark = pytest.mark.django_db


def actions(obj=None):
    qs = AuditEvent.objects.order_by("at", "pk")
    if obj is not None:
        qs = qs.filter(object_id=str(obj.pk))
    return list(qs.values_list("action", flat=True))


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic))


@pytest.fixture
def adm(encounter):
    return AdministrationFactory(encounter=encounter, drug=DrugFactory(name="infliximab"))



# --- open_encounter / access sites / add_administration -----------------------


def test_open_encounter_dates_it_today_in_the_clinic_zone(clinic, nurse, monkeypatch, clock):
    clock.now = dt.datetime(2026, 3, 11, 2, 30, tzinfo=dt.UTC)  # 22:30 on the 10th in New York
    patient = PatientFactory(clinic=clinic)
    enc = services.open_encounter(patient, clinic=clinic, setting="office", actor=nurse)
    assert enc.date_of_service == dt.date(2026, 3, 10)
    assert enc.status == "draft"
    assert actions(enc) == ["charting.encounter.opened"]
    # A second tap returns the same encounter.
    assert services.open_encounter(patient, clinic=clinic, setting="office", actor=nurse) == enc
    assert Encounter.objects.count() == 1


def test_open_encounter_refuses_a_patient_of_another_clinic(clinic, other_clinic, nurse):
    with pytest.raises(ChartingError) as exc:
        services.open_encounter(PatientFactory(clinic=other_clinic), clinic=clinic, setting="office", actor=nurse)
    assert exc.value.field == "patient"


def test_access_sites_get_letters_and_need_a_reason_when_separate(encounter, nurse):
    a = services.add_access_site(encounter, kind="peripheral_iv", location="left forearm", gauge=22, placed_at=None, separate_site_medically_required=False, reason="", actor=nurse)
    with pytest.raises(ChartingError) as exc:
        services.add_access_site(encounter, kind="peripheral_iv", location="right hand", gauge=22, placed_at=None, separate_site_medically_required=True, reason="  ", actor=nurse)
    assert exc.value.field == "reason"
    b = services.add_access_site(encounter, kind="peripheral_iv", location="right hand", gauge=22, placed_at=None, separate_site_medically_required=True, reason="Incompatible drugs", actor=nurse)
    assert (a.label, b.label) == ("A", "B")
    assert actions(b) == ["charting.access_site.added"]


def test_add_administration_defaults_family_and_label(encounter, nurse):
    site = AccessSiteFactory(encounter=encounter)
    drug = DrugFactory(name="iron sucrose", admin_family="therapeutic")
    kw = dict(drug=drug, route="iv_infusion", access_site=site, dose_value=Decimal("200"), dose_unit="mg", purpose="treatment", actor=nurse)
    first = services.add_administration(encounter, **kw)
    second = services.add_administration(encounter, **kw | {"admin_class": "chemo_complex"})
    assert (first.admin_class, second.admin_class) == ("therapeutic", "chemo_complex")
    assert (first.label, second.label) == ("iron-sucrose", "iron-sucrose-2")
    assert first.started_at is None and first.recorded_by == nurse
    assert actions(first) == ["charting.administration.added"]


@pytest.mark.parametrize("route", ["iv_infusion", "iv_push", "intra_arterial"])
def test_iv_routes_need_a_site_of_this_encounter(encounter, nurse, route):
    kw = dict(drug=DrugFactory(), route=route, dose_value=None, dose_unit="", purpose="treatment", actor=nurse)
    with pytest.raises(ChartingError) as exc:
        services.add_administration(encounter, access_site=None, **kw)
    assert exc.value.field == "access_site"
    with pytest.raises(ChartingError) as exc:
        services.add_administration(encounter, access_site=AccessSiteFactory(), **kw)  # another encounter's site
    assert exc.value.field == "access_site"


@pytest.mark.parametrize("route", ["subcutaneous", "intramuscular"])
def test_injections_need_no_site(encounter, nurse, route):
    adm = services.add_administration(encounter, drug=DrugFactory(admin_family="therapeutic"), route=route, access_site=None, dose_value=Decimal("60"), dose_unit="mg", purpose="treatment", actor=nurse)
    assert adm.access_site is None


def test_dose_needs_a_unit(encounter, nurse):
    with pytest.raises(ChartingError) as exc:
        services.add_administration(encounter, drug=DrugFactory(), route="subcutaneous", access_site=None, dose_value=Decimal("60"), dose_unit="", purpose="treatment", actor=nurse)
    assert exc.value.field == "dose_unit"


# --- start / pause / resume / stop ----------------------------------------------


def test_full_run_stamps_server_time_and_counts_drip_to_drip(adm, nurse, clock):
    t0 = clock.now
    services.start_administration(adm, actor=nurse)
    clock.advance(minutes=20)
    services.pause_administration(adm, reason="Infusion reaction", actor=nurse)
    clock.advance(minutes=10)
    services.resume_administration(adm, actor=nurse)
    clock.advance(minutes=30)
    services.stop_administration(adm, actor=nurse)
    adm.refresh_from_db()
    assert adm.started_at == t0 and adm.stopped_at == t0 + dt.timedelta(minutes=60)
    pause = adm.pauses.get()
    assert (pause.paused_at, pause.resumed_at, pause.reason) == (t0 + dt.timedelta(minutes=20), t0 + dt.timedelta(minutes=30), "Infusion reaction")
    assert adm.state == "stopped"
    assert adm.minutes_so_far(clock.now) == 50
    assert actions(adm) == [
        "charting.administration.started",
        "charting.administration.paused",
        "charting.administration.resumed",
        "charting.administration.stopped",
    ]
    assert AuditEvent.objects.filter(action="charting.administration.stopped").get().patient_id == adm.encounter.patient_id


def test_state_and_minutes_while_running(adm, nurse, clock):
    assert adm.state == "not_started" and adm.minutes_so_far(clock.now) is None
    services.start_administration(adm, actor=nurse)
    clock.advance(minutes=16, seconds=59)
    adm = Administration.objects.get(pk=adm.pk)
    assert adm.state == "running" and adm.minutes_so_far(clock.now) == 16
    services.pause_administration(adm, reason="Pump alarm", actor=nurse)
    clock.advance(minutes=5)
    adm = Administration.objects.get(pk=adm.pk)
    assert adm.state == "paused" and adm.minutes_so_far(clock.now) == 16


def test_double_tap_stop_is_a_quiet_no_op(adm, nurse, clock):
    services.start_administration(adm, actor=nurse)
    clock.advance(minutes=42)
    first = services.stop_administration(adm, actor=nurse)
    clock.advance(seconds=1)
    second = services.stop_administration(adm, actor=nurse)
    assert first.notice == ""
    assert second.notice == "infliximab was already stopped at 10:42."  # 14:42 UTC = 10:42 in New York (EDT)
    adm.refresh_from_db()
    assert adm.stopped_at == dt.datetime(2026, 3, 10, 14, 42, tzinfo=dt.UTC)
    assert actions(adm).count("charting.administration.stopped") == 1


def test_double_tap_start_is_a_quiet_no_op(adm, nurse, clock):
    services.start_administration(adm, actor=nurse)
    clock.advance(seconds=2)
    again = services.start_administration(adm, actor=nurse)
    assert "already started at 10:00" in again.notice
    adm.refresh_from_db()
    assert adm.started_at == dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
    assert actions(adm) == ["charting.administration.started"]


def test_stop_before_start_is_refused(adm, nurse):
    with pytest.raises(ChartingError, match="has not started yet"):
        services.stop_administration(adm, actor=nurse)


def test_pause_needs_a_running_drug_and_a_reason(adm, nurse, clock):
    with pytest.raises(ChartingError, match="not running"):
        services.pause_administration(adm, reason="x", actor=nurse)
    services.start_administration(adm, actor=nurse)
    with pytest.raises(ChartingError) as exc:
        services.pause_administration(adm, reason="  ", actor=nurse)
    assert exc.value.field == "reason"
    services.pause_administration(adm, reason="Pump alarm", actor=nurse)
    with pytest.raises(ChartingError, match="already paused since 10:00"):
        services.pause_administration(adm, reason="again", actor=nurse)
    clock.advance(minutes=1)
    services.stop_administration(adm, actor=nurse)
    with pytest.raises(ChartingError, match="not running"):
        services.pause_administration(adm, reason="after stop", actor=nurse)


def test_resume_needs_a_pause(adm, nurse):
    with pytest.raises(ChartingError, match="not paused"):
        services.resume_administration(adm, actor=nurse)
    services.start_administration(adm, actor=nurse)
    with pytest.raises(ChartingError, match="not paused"):
        services.resume_administration(adm, actor=nurse)


def test_stop_while_paused_closes_the_pause_at_the_stop(adm, nurse, clock):
    services.start_administration(adm, actor=nurse)
    clock.advance(minutes=30)
    services.pause_administration(adm, reason="Reaction", actor=nurse)
    clock.advance(minutes=15)
    services.stop_administration(adm, actor=nurse)
    adm = Administration.objects.get(pk=adm.pk)
    pause = adm.pauses.get()
    assert pause.resumed_at == adm.stopped_at == clock.now
    assert adm.minutes_so_far(clock.now) == 30
    assert AuditEvent.objects.get(action="charting.administration.stopped").detail["closed_pause"] is True


@pytest.mark.parametrize(
    "change",
    [
        lambda adm, nurse: services.start_administration(adm, actor=nurse),
        lambda adm, nurse: services.stop_administration(adm, actor=nurse),
        lambda adm, nurse: services.pause_administration(adm, reason="x", actor=nurse),
        lambda adm, nurse: services.resume_administration(adm, actor=nurse),
        lambda adm, nurse: services.correct_time(adm, field="started_at", new_value=adm.started_at, reason="x", actor=nurse),
        lambda adm, nurse: services.add_access_site(adm.encounter, kind="port", actor=nurse),
        lambda adm, nurse: services.add_administration(adm.encounter, drug=adm.drug, route="subcutaneous", access_site=None, dose_value=None, dose_unit="", purpose="treatment", actor=nurse),
    ],
    ids=["start", "stop", "pause", "resume", "correct", "site", "administration"],
)
def test_signed_encounters_refuse_every_change(adm, nurse, clock, change):
    adm.started_at = clock.now - dt.timedelta(hours=1)
    adm.stopped_at = clock.now - dt.timedelta(minutes=1)
    adm.save()
    chart_vials(adm)
    services.sign_encounter(adm.encounter, actor=nurse)
    before = AuditEvent.objects.count()
    with pytest.raises(ChartingError, match="signed at 10:00.*amendment"):
        change(Administration.objects.get(pk=adm.pk), nurse)
    assert AuditEvent.objects.count() == before


# --- correct_time -----------------------------------------------------------------


@pytest.fixture
def ran(clock, adm, nurse):
    """Started 10:00 (NY), paused 10:20-10:30, stopped 11:00; now 11:30.
    The clock first: the encounter is dated by it (10 March), so the times
    corrected below are on its date of service."""
    services.start_administration(adm, actor=nurse)
    clock.advance(minutes=20)
    services.pause_administration(adm, reason="Pump alarm", actor=nurse)
    clock.advance(minutes=10)
    services.resume_administration(adm, actor=nurse)
    clock.advance(minutes=30)
    services.stop_administration(adm, actor=nurse)
    clock.advance(minutes=30)
    return Administration.objects.get(pk=adm.pk)


def at(hh, mm):
    """Local New York time on 2026-03-10 (EDT, UTC-4) as aware UTC."""
    return dt.datetime(2026, 3, 10, hh + 4, mm, tzinfo=dt.UTC)


def test_correct_start_keeps_the_original(ran, nurse):
    services.correct_time(ran, field="started_at", new_value=at(9, 55), reason="Tapped late", actor=nurse)
    ran.refresh_from_db()
    assert ran.started_at == at(9, 55)
    fix = TimeCorrection.objects.get()
    assert (fix.field, fix.original_value, fix.new_value, fix.reason, fix.corrected_by) == ("started_at", at(10, 0), at(9, 55), "Tapped late", nurse)
    event = AuditEvent.objects.get(action="charting.administration.time_corrected")
    assert event.detail["original_value"] == at(10, 0).isoformat()


def test_correct_a_pause(ran, nurse):
    pause = ran.pauses.get()
    services.correct_time(ran, field="resumed_at", pause=pause, new_value=at(10, 25), reason="Resumed earlier", actor=nurse)
    pause.refresh_from_db()
    assert pause.resumed_at == at(10, 25)
    assert TimeCorrection.objects.get().pause == pause


@pytest.mark.parametrize(
    ("field", "new_value", "message"),
    [
        ("stopped_at", at(9, 50), "Stop time 09:50 is before start time 10:00"),
        ("started_at", at(11, 5), "Stop time 11:00 is before start time 11:05"),
        ("started_at", at(10, 25), "pause at 10:20 is before the start (10:25)"),
        ("stopped_at", at(10, 25), "runs past the stop time 10:25"),
        ("stopped_at", at(11, 45), "11:45 is in the future"),
    ],
)
def test_corrections_that_break_the_timeline_are_refused(ran, nurse, field, new_value, message):
    with pytest.raises(ChartingError, match=re.escape(message)) as exc:
        services.correct_time(ran, field=field, new_value=new_value, reason="why", actor=nurse)
    assert exc.value.field == "new_value"
    assert not TimeCorrection.objects.exists()


@pytest.fixture
def dated(clinic, nurse, clock):
    """Given 10:00-11:00 on Tue 10 Mar 2026 (New York), an encounter of that date; now 11:30."""
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    adm = AdministrationFactory(encounter=enc, drug=DrugFactory(name="infliximab"))
    services.start_administration(adm, actor=nurse)
    clock.advance(hours=1)
    services.stop_administration(adm, actor=nurse)
    clock.advance(minutes=30)
    return Administration.objects.get(pk=adm.pk)


def test_a_time_before_the_date_of_service_is_refused_naming_the_date(dated, nurse):
    """Regression: only future times were refused; a start days before the
    date of service was accepted."""
    for new_value, typed in [(dt.datetime(2026, 3, 7, 14, 0, tzinfo=dt.UTC), "09:00 on Sat 7 Mar 2026"), (at(-1, 59), "23:59 on Mon 9 Mar 2026")]:
        with pytest.raises(ChartingError) as exc:
            services.correct_time(dated, field="started_at", new_value=new_value, reason="typo", actor=nurse)
        assert exc.value.message == f"{typed} is before this encounter's date of service, Tue 10 Mar 2026: give a time on that day."
        assert exc.value.field == "new_value"
    assert not TimeCorrection.objects.exists()
    services.correct_time(dated, field="started_at", new_value=at(0, 0), reason="Started at midnight", actor=nurse)  # 00:00 local: on the day
    assert Administration.objects.get(pk=dated.pk).started_at == at(0, 0)


def test_a_future_time_on_another_day_names_the_day(dated, nurse):
    """Fresh-clone review: "09:00 is in the future." for 09:00 next January read
    as a past time of today."""
    with pytest.raises(ChartingError) as exc:
        services.correct_time(dated, field="started_at", new_value=dt.datetime(2027, 1, 1, 14, 0, tzinfo=dt.UTC), reason="typo", actor=nurse)
    assert exc.value.message == "09:00 on Fri 1 Jan 2027 is in the future."
    with pytest.raises(ChartingError, match=r"^11:45 is in the future\.$"):  # today: the time alone
        services.correct_time(dated, field="stopped_at", new_value=at(11, 45), reason="typo", actor=nurse)


def test_a_time_in_the_night_after_is_allowed_later_is_not(dated, nurse, clock):
    clock.now = dt.datetime(2026, 3, 12, 18, 0, tzinfo=dt.UTC)  # two days later
    services.correct_time(dated, field="stopped_at", new_value=dt.datetime(2026, 3, 11, 5, 30, tzinfo=dt.UTC), reason="Ran overnight", actor=nurse)  # 01:30 on the 11th
    with pytest.raises(ChartingError, match=re.escape("00:30 on Thu 12 Mar 2026 is after this encounter's date of service, Tue 10 Mar 2026, and the night after it")):
        services.correct_time(dated, field="stopped_at", new_value=dt.datetime(2026, 3, 12, 4, 30, tzinfo=dt.UTC), reason="typo", actor=nurse)


def test_an_amended_time_before_the_date_of_service_is_refused(dated, nurse):
    from tests.factories import amending

    with amending():
        Encounter.objects.filter(pk=dated.encounter_id).update(status="signed", signed_by=nurse, signed_at=at(11, 15))
    with pytest.raises(ChartingError, match=re.escape("09:00 on Mon 9 Mar 2026 is before this encounter's date of service, Tue 10 Mar 2026")):
        services.amend_administration(dated, field="started_at", new_value="2026-03-09 09:00", reason="transcription_error", actor=nurse)


def test_pause_corrections_stay_inside_start_stop(ran, nurse):
    pause = ran.pauses.get()
    with pytest.raises(ChartingError, match="before the start"):
        services.correct_time(ran, field="paused_at", pause=pause, new_value=at(9, 59), reason="x", actor=nurse)
    with pytest.raises(ChartingError, match="runs past the stop"):
        services.correct_time(ran, field="resumed_at", pause=pause, new_value=at(11, 1), reason="x", actor=nurse)
    with pytest.raises(ChartingError, match="Resume time 10:15 is before the pause at 10:20"):
        services.correct_time(ran, field="resumed_at", pause=pause, new_value=at(10, 15), reason="x", actor=nurse)


def test_a_correction_needs_a_reason_and_a_pause_of_this_drug(ran, nurse):
    with pytest.raises(ChartingError) as exc:
        services.correct_time(ran, field="started_at", new_value=at(9, 55), reason=" ", actor=nurse)
    assert (exc.value.field, exc.value.message) == ("reason", "A reason is required.")
    other = AdministrationFactory(started_at=at(9, 0))
    foreign = Pause.objects.create(administration=other, paused_at=at(9, 10))
    with pytest.raises(ChartingError, match="Pick a pause"):
        services.correct_time(ran, field="paused_at", pause=foreign, new_value=at(10, 21), reason="x", actor=nurse)


def test_charting_a_forgotten_stop_closes_pause_and_resolves_flag(clock, adm, nurse):  # the clock dates the encounter
    services.start_administration(adm, actor=nurse)
    clock.advance(minutes=40)
    services.pause_administration(adm, reason="Patient to restroom", actor=nurse)
    clock.advance(hours=7)
    services.sweep_flags(now=clock.now)
    assert DocumentationFlag.objects.open().filter(kind="still_running").count() == 1
    services.correct_time(adm, field="stopped_at", new_value=at(10, 50), reason="Forgot to tap stop", actor=nurse)
    adm = Administration.objects.get(pk=adm.pk)
    assert adm.stopped_at == at(10, 50)
    assert adm.pauses.get().resumed_at == at(10, 50)
    assert adm.minutes_so_far(clock.now) == 40
    assert not DocumentationFlag.objects.open().filter(kind="still_running").exists()


# --- sign_encounter ----------------------------------------------------------------


def test_sign_refuses_while_a_drug_runs_or_is_paused(adm, encounter, nurse, clock):
    services.start_administration(adm, actor=nurse)
    with pytest.raises(ChartingError, match="still running or paused: infliximab"):
        services.sign_encounter(encounter, actor=nurse)
    services.pause_administration(adm, reason="x", actor=nurse)
    with pytest.raises(ChartingError, match="infliximab"):
        services.sign_encounter(encounter, actor=nurse)
    encounter.refresh_from_db()
    assert encounter.status == "draft"


def test_sign_enqueues_coding_after_commit(adm, encounter, nurse, clock, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    fake = types.ModuleType("coding.tasks")
    fake.suggest_for_encounter_task = types.SimpleNamespace(delay=sent.append)
    monkeypatch.setitem(sys.modules, "coding.tasks", fake)
    services.start_administration(adm, actor=nurse)
    clock.advance(minutes=61)
    services.stop_administration(adm, actor=nurse)
    chart_vials(adm)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        signed = services.sign_encounter(encounter, actor=nurse)
    assert sent == []  # nothing is sent before the commit
    for callback in callbacks:
        callback()
    assert sent == [str(encounter.pk)]
    assert (signed.status, signed.signed_by, signed.signed_at) == ("signed", nurse, clock.now)
    assert actions(encounter)[-1] == "charting.encounter.signed"

    with django_capture_on_commit_callbacks(execute=True) as again:
        assert "already signed at 11:01" in services.sign_encounter(encounter, actor=nurse).notice
    assert again == [] and sent == [str(encounter.pk)]
