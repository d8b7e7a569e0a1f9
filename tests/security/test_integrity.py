"""Double taps under real concurrency (CON-2), all-or-nothing writes with their
audit rows (CON-3), fields a request may not set (AC-4), password storage (AC-6)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit import services as audit_services
from audit.models import AuditEvent
from charting import services
from charting.models import Administration, Encounter, TimeCorrection
from tests.factories import PASSWORD, AdministrationFactory, DrugFactory, PatientFactory, UserFactory

from .conftest import HTMX
from .test_concurrency import run_together

# --- CON-2: double-tapped Start / Stop on separate connections ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_con2_eight_simultaneous_starts_then_stops_make_one_of_each(encounter, site, nurse):
    """5 iterations × 8 threads, each its own client and DB connection, released
    by a barrier; the encounter and administration rows are locked
    (SELECT … FOR UPDATE) in charting/services.py, so exactly one tap stamps
    the time and the others answer "already started/stopped" — no 500."""
    for iteration in range(5):
        adm = AdministrationFactory(encounter=encounter, access_site=site, label=f"con2-{iteration}", drug=DrugFactory(name=f"con2 drug {iteration}"))

        def tap(action, adm=adm):
            client = Client(raise_request_exception=False)
            client.force_login(nurse)
            return client.post(reverse(f"charting:{action}_administration", kwargs={"pk": adm.pk}), **HTMX)

        for action, stamp, event in (("start", "started_at", "started"), ("stop", "stopped_at", "stopped")):
            results = run_together(*[lambda action=action: tap(action)] * 8)
            assert [kind for kind, _ in results] == ["ok"] * 8, results
            assert [r.status_code for _, r in results] == [200] * 8
            already = sum(f"already {event} at" in r.content.decode() for _, r in results)
            assert already == 7, (iteration, action, already)
            assert AuditEvent.objects.filter(action=f"charting.administration.{event}", object_id=str(adm.pk)).count() == 1
            adm.refresh_from_db()
            assert getattr(adm, stamp) is not None
    assert Administration.objects.filter(encounter=encounter, started_at__isnull=False, stopped_at__isnull=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_con2_one_idempotency_key_sent_by_eight_threads_writes_once(encounter, site, nurse):
    """The same tap retried on 8 connections at once (same idempotency key):
    one administration added, one pause opened; every request gets 200 / its
    redirect, none a 500 (charting.views._once: the key's unique index)."""
    import uuid

    from charting.models import Pause, TapKey

    drug = DrugFactory(name="con2 keyed drug")

    def tap(name, pk, data):
        client = Client(raise_request_exception=False)
        client.force_login(nurse)
        return client.post(reverse(f"charting:{name}", kwargs={"pk": pk}), data, **HTMX)

    for _ in range(3):
        key = str(uuid.uuid4())
        data = {"adm-drug": drug.pk, "adm-route": "iv_infusion", "adm-access_site": site.pk, "adm-dose_value": "5", "adm-dose_unit": "mg", "adm-purpose": "treatment", "idempotency_key": key}
        before = Administration.objects.filter(encounter=encounter).count()
        results = run_together(*[lambda data=data: tap("add_administration", encounter.pk, data)] * 8)
        assert [kind for kind, _ in results] == ["ok"] * 8, results
        assert {r.status_code for _, r in results} == {200}, [r.status_code for _, r in results]  # htmx: HX-Redirect
        assert Administration.objects.filter(encounter=encounter).count() == before + 1
        adm = Administration.objects.filter(encounter=encounter).order_by("-recorded_at").first()
        assert TapKey.objects.get(key=key).object_id == str(adm.pk)

        services.start_administration(adm, actor=nurse)
        pause = {"reason": "Pump alarm", "idempotency_key": str(uuid.uuid4())}
        results = run_together(*[lambda adm=adm, pause=pause: tap("pause_administration", adm.pk, pause)] * 8)
        assert [r.status_code for _, r in results] == [200] * 8, results
        assert not any("already paused" in r.content.decode() for _, r in results)
        assert Pause.objects.filter(administration=adm).count() == 1
        assert AuditEvent.objects.filter(action="charting.administration.paused", object_id=str(adm.pk)).count() == 1


# --- CON-3: the change and its audit row commit together or not at all -----------------------------


@pytest.fixture
def audit_then_fail(monkeypatch):
    """Fault injection: the audit row is inserted, then the next step fails."""

    def record_then_fail(*args, **kwargs):
        audit_services.record(*args, **kwargs)
        raise RuntimeError("injected failure after the audit insert")

    monkeypatch.setattr(services, "record", record_then_fail)


@pytest.mark.django_db(transaction=True)
def test_con3_a_failure_after_the_inserts_leaves_no_administration_and_no_audit_row(encounter, site, nurse, audit_then_fail):
    before = AuditEvent.objects.count()  # the fixtures' own rows (user and staff changes, AUD-7)
    with pytest.raises(RuntimeError, match="injected"):
        services.add_administration(
            encounter,
            drug=DrugFactory(name="rituximab"),
            route="iv_infusion",
            access_site=site,
            dose_value=None,
            dose_unit="",
            purpose="treatment",
            actor=nurse,
        )
    assert not Administration.objects.filter(encounter=encounter).exists()
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db(transaction=True)
def test_con3_a_failed_start_keeps_neither_the_time_nor_the_audit_row(adm, nurse, audit_then_fail):
    with pytest.raises(RuntimeError, match="injected"):
        services.start_administration(adm, actor=nurse)
    adm.refresh_from_db()
    assert adm.started_at is None
    assert not AuditEvent.objects.filter(action="charting.administration.started").exists()


@pytest.mark.django_db(transaction=True)
def test_con3_a_failed_correction_keeps_the_original_time(adm, nurse, monkeypatch):
    services.start_administration(adm, actor=nurse)
    adm.refresh_from_db()
    original = adm.started_at
    count = AuditEvent.objects.count()

    def record_then_fail(*args, **kwargs):
        audit_services.record(*args, **kwargs)
        raise RuntimeError("injected failure after the audit insert")

    monkeypatch.setattr(services, "record", record_then_fail)
    with pytest.raises(RuntimeError):
        services.correct_time(adm, field="started_at", new_value=original - dt.timedelta(minutes=10), reason="Tapped late", actor=nurse)
    adm.refresh_from_db()
    assert adm.started_at == original
    assert not TimeCorrection.objects.exists() and AuditEvent.objects.count() == count


# --- AC-4: fields a request may not set ---------------------------------------------------------------


@pytest.mark.django_db
def test_ac4_extra_fields_on_add_administration_are_ignored(client, nurse, encounter, site, other_clinic):
    intruder = UserFactory(username="intruder")
    client.force_login(nurse)
    data = {
        "adm-drug": DrugFactory(name="rituximab").pk,
        "adm-route": "iv_infusion",
        "adm-access_site": site.pk,
        "adm-dose_value": "500",
        "adm-dose_unit": "mg",
        "adm-purpose": "treatment",
        # mass assignment attempts
        "adm-recorded_by": intruder.pk,
        "recorded_by": intruder.pk,
        "adm-recorded_at": "2020-01-01T00:00",
        "recorded_at": "2020-01-01T00:00",
        "adm-started_at": "2020-01-01T00:00",
        "started_at": "2020-01-01T00:00",
        "stopped_at": "2020-01-01T01:00",
        "encounter": "00000000-0000-0000-0000-000000000000",
        "clinic": other_clinic.pk,
        "signed_by": intruder.pk,
        "status": "signed",
    }
    assert client.post(reverse("charting:add_administration", kwargs={"pk": encounter.pk}), data).status_code == 302
    adm = Administration.objects.get(encounter=encounter, drug__name="rituximab")
    assert adm.recorded_by == nurse and timezone.now() - adm.recorded_at < dt.timedelta(minutes=1)
    assert adm.started_at is None and adm.stopped_at is None
    encounter.refresh_from_db()
    assert encounter.status == "draft" and encounter.signed_by is None and encounter.clinic_id != other_clinic.pk


@pytest.mark.django_db
def test_ac4_open_encounter_ignores_clinic_status_and_signer(client, nurse, clinic, other_clinic):
    patient = PatientFactory(clinic=clinic)
    client.force_login(nurse)
    data = {
        "patient": patient.pk,
        "setting": "office",
        "clinic": other_clinic.pk,
        "status": "signed",
        "signed_by": nurse.pk,
        "signed_at": "2020-01-01T00:00",
        "date_of_service": "2020-01-01",
    }
    assert client.post(reverse("charting:open_encounter"), data).status_code == 302
    encounter = Encounter.objects.get(patient=patient)
    assert encounter.clinic == clinic and encounter.status == "draft" and encounter.signed_by is None
    assert encounter.date_of_service == timezone.localdate(timezone.now(), clinic.tz)


@pytest.mark.django_db
def test_ac4_start_and_correction_take_server_time_and_the_user_not_posted_values(client, nurse, adm):
    intruder = UserFactory(username="intruder")
    client.force_login(nurse)
    client.post(reverse("charting:start_administration", kwargs={"pk": adm.pk}), {"started_at": "2020-01-01T00:00", "recorded_by": intruder.pk})
    adm.refresh_from_db()
    assert timezone.now() - adm.started_at < dt.timedelta(minutes=1)
    new_value = (adm.started_at - dt.timedelta(minutes=5)).astimezone(adm.encounter.clinic.tz).strftime("%Y-%m-%dT%H:%M")
    client.post(
        reverse("charting:correct_time", kwargs={"pk": adm.pk}),
        {
            "target": "started_at",
            "new_value": new_value,
            "reason": "Tapped late",
            "recorded_by": intruder.pk,
            "recorded_at": "2020-01-01T00:00",
            "corrected_by": intruder.pk,
        },
    )
    correction = TimeCorrection.objects.get(administration=adm)
    assert correction.corrected_by == nurse and timezone.now() - correction.corrected_at < dt.timedelta(minutes=1)


@pytest.mark.django_db
def test_ac4_a_coder_accepts_as_herself_and_cannot_touch_clinical_fields(client, coder, line, signed_encounter):
    intruder = UserFactory(username="intruder")
    client.force_login(coder)
    code, units = line.code, line.units
    client.post(
        reverse("coding:accept_line", kwargs={"line_id": line.pk}),
        {"accepted_by": intruder.pk, "accepted_at": "2020-01-01T00:00", "code": "J9999", "units": "99"},
    )
    line.refresh_from_db()
    assert line.accepted_by == coder and (line.code, line.units) == (code, units)
    assert timezone.now() - line.accepted_at < dt.timedelta(minutes=1)
    # Clinical documentation is the nurse's: every charting write is refused to a coder.
    adm = signed_encounter.administrations.first()
    before = (adm.started_at, adm.stopped_at, adm.dose_value)
    for name in ("charting:correct_time", "charting:stop_administration", "charting:record_vials", "charting:confirm_waste"):
        assert client.post(reverse(name, kwargs={"pk": adm.pk}), {"target": "started_at", "new_value": "2025-06-10T08:00", "reason": "x"}).status_code == 403
    adm.refresh_from_db()
    assert (adm.started_at, adm.stopped_at, adm.dose_value) == before


# --- AC-6: password storage ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ac6_passwords_are_stored_only_as_pbkdf2_or_argon2_hashes(nurse, coder, admin):
    for user in get_user_model().objects.all():
        assert user.password.startswith(("pbkdf2_sha256$", "argon2$")), user.password[:20]
    # Nothing in the table holds the password itself.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM auth_user")
        dump = repr(cursor.fetchall())
    assert PASSWORD not in dump


@pytest.mark.django_db
def test_ac6_a_log_in_upgrades_a_weaker_hash_to_the_current_iterations(client, nurse):
    from django.contrib.auth.hashers import PBKDF2PasswordHasher, identify_hasher

    user = get_user_model().objects.get(pk=nurse.pk)
    algorithm, iterations, salt, digest = user.password.split("$")
    weaker = PBKDF2PasswordHasher().encode(PASSWORD, salt, int(iterations) // 2)
    get_user_model().objects.filter(pk=nurse.pk).update(password=weaker)
    assert client.post("/accounts/login/", {"username": "nurse", "password": PASSWORD}).status_code == 302
    user.refresh_from_db()
    assert int(user.password.split("$")[1]) == PBKDF2PasswordHasher.iterations
    assert identify_hasher(user.password).algorithm == "pbkdf2_sha256"
