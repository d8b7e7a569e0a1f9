"""Every database constraint of charting, proven by a bad insert."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from charting.models import AccessSite, Administration, Clinic, DocumentationFlag, Drug, Encounter, OtherService, Patient, Pause, SweepRun, TimeCorrection
from tests.factories import AccessSiteFactory, AdministrationFactory, ClinicFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)


def _patient_dup():
    p = PatientFactory()
    Patient.objects.create(clinic=p.clinic, mrn=p.mrn, given_name="A", family_name="B")


def _site_dup():
    s = AccessSiteFactory()
    AccessSite.objects.create(encounter=s.encounter, label=s.label, kind="port")


def _pause_two_open():
    a = AdministrationFactory(started_at=T0)
    Pause.objects.create(administration=a, paused_at=T0)
    Pause.objects.create(administration=a, paused_at=T0 + dt.timedelta(minutes=1))


def _flag_two_open():
    a = AdministrationFactory(started_at=T0)
    DocumentationFlag.objects.create(encounter=a.encounter, administration=a, kind="still_running", message="x")
    DocumentationFlag.objects.create(encounter=a.encounter, administration=a, kind="still_running", message="y")


def _flag(**kwargs):
    def make():
        a = AdministrationFactory(started_at=T0)
        DocumentationFlag.objects.create(**{"encounter": a.encounter, "administration": a, "kind": "still_running", "message": "x"} | kwargs)

    return make


def _site_flag_two_open():
    site = AccessSiteFactory()
    for _ in range(2):
        DocumentationFlag.objects.create(encounter=site.encounter, access_site=site, kind="second_site_no_reason", message="x")


def _encounter_flag_two_open():
    e = EncounterFactory()
    for _ in range(2):
        DocumentationFlag.objects.create(encounter=e, kind="not_signed", message="x")


def _sweep_twice_in_one_period():
    SweepRun.objects.create(period_start=T0, started_at=T0, finished_at=T0)
    SweepRun.objects.create(period_start=T0, started_at=T0, finished_at=T0)


def _adm(**kwargs):
    return lambda: AdministrationFactory(**kwargs)


def _self_concurrent():
    a = AdministrationFactory()
    Administration.objects.filter(pk=a.pk).update(concurrent_with=a.pk)


def _correction(**kwargs):
    def make():
        a = AdministrationFactory(started_at=T0)
        TimeCorrection.objects.create(**{"administration": a, "field": "started_at", "new_value": T0, "reason": "typo", "corrected_by": UserFactory()} | kwargs)

    return make


BAD_INSERTS = [
    ("clinic_time_zone_set", lambda: Clinic.objects.create(name="No zone", time_zone="")),
    ("patient_mrn_unique_per_clinic", _patient_dup),
    ("patient_mrn_set", lambda: PatientFactory(mrn="")),
    ("encounter_setting_valid", lambda: EncounterFactory(setting="home")),
    # An unknown status also breaks encounter_signed_has_signer; PostgreSQL names either.
    ("encounter_status_valid|encounter_signed_has_signer", lambda: EncounterFactory(status="deleted")),
    ("encounter_signed_has_signer", lambda: EncounterFactory(status="signed")),
    ("encounter_signed_has_signer", lambda: EncounterFactory(signed_at=T0)),
    ("access_site_label_unique", _site_dup),
    ("access_site_kind_valid", lambda: AccessSiteFactory(kind="intraosseous")),
    ("access_site_removed_after_placed", lambda: AccessSiteFactory(placed_at=T0, removed_at=T0 - dt.timedelta(minutes=1))),
    ("access_site_gauge_range", lambda: AccessSiteFactory(gauge=30)),
    ("drug_admin_family_valid", lambda: DrugFactory(admin_family="magic")),
    ("drug_billing_unit_positive", lambda: DrugFactory(billing_unit_value=0)),
    ("charting_drug_name_key", lambda: Drug.objects.bulk_create([Drug(name="dup", admin_family="therapeutic"), Drug(name="dup", admin_family="therapeutic")])),
    ("administration_route_valid", _adm(route="oral")),
    ("administration_purpose_valid", _adm(purpose="fun")),
    ("administration_family_valid", _adm(admin_class="other")),
    ("administration_dose_unit_valid", _adm(dose_unit="drops")),
    ("administration_dose_positive", _adm(dose_value=0)),
    ("administration_stop_needs_start", _adm(stopped_at=T0)),
    ("administration_stop_after_start", _adm(started_at=T0, stopped_at=T0 - dt.timedelta(seconds=1))),
    ("administration_not_concurrent_with_itself", _self_concurrent),
    ("pause_resumed_after_paused", lambda: Pause.objects.create(administration=AdministrationFactory(started_at=T0), paused_at=T0, resumed_at=T0 - dt.timedelta(minutes=1))),
    ("pause_one_open_per_administration", _pause_two_open),
    ("time_correction_reason_required", _correction(reason="")),
    ("time_correction_field_valid", _correction(field="label")),
    ("other_service_kind_valid", lambda: OtherService.objects.create(encounter=EncounterFactory(), kind="massage")),
    ("flag_one_open_per_record_kind", _flag_two_open),
    ("flag_kind_valid", _flag(kind="bored")),
    ("flag_one_open_per_site_kind", _site_flag_two_open),
    ("flag_one_open_per_encounter_kind", _encounter_flag_two_open),
    ("flag_target_matches_kind", _flag(kind="not_signed")),  # an encounter-level kind on an administration
    ("flag_target_matches_kind", _flag(kind="second_site_no_reason")),
    ("flag_resolved_after_created", _flag(created_at=T0, resolved_at=T0 - dt.timedelta(seconds=1))),
    ("sweep_run_one_per_period", _sweep_twice_in_one_period),
    ("sweep_run_finished_after_start", lambda: SweepRun.objects.create(started_at=T0, finished_at=T0 - dt.timedelta(seconds=1))),
]


@pytest.mark.parametrize(("constraint", "insert"), BAD_INSERTS, ids=[f"{i}-{c}" for i, (c, _) in enumerate(BAD_INSERTS)])
def test_bad_insert_is_refused_by_the_database(constraint, insert):
    with pytest.raises(IntegrityError) as exc, transaction.atomic():
        insert()
    assert any(name in str(exc.value) for name in constraint.split("|"))


def test_resolved_flags_do_not_block_a_new_open_flag():
    a = AdministrationFactory(started_at=T0)
    DocumentationFlag.objects.create(encounter=a.encounter, administration=a, kind="still_running", message="x", created_at=T0, resolved_at=T0)
    DocumentationFlag.objects.create(encounter=a.encounter, administration=a, kind="still_running", message="y")
    assert a.flags.count() == 2


def test_clinic_zone_and_patient_mrn_unique_only_per_clinic():
    p = PatientFactory()
    PatientFactory(mrn=p.mrn, clinic=ClinicFactory())
    assert Patient.objects.filter(mrn=p.mrn).count() == 2
    assert Encounter.objects.count() == 0
