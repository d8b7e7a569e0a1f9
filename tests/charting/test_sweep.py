"""services.sweep_flags: one flag per (record, kind), history kept, one sweep per period.

The checks themselves are tested in test_checks.py; here: what the sweep does
with them — counts, idempotence, history, the period claim under concurrency,
the command, the task, and signing with open items.
"""

import datetime as dt
import io
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction

from audit.models import AuditEvent
from charting import checks, services
from charting.models import Administration, DocumentationFlag, Encounter, SweepRun
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory, amending, chart_vials

NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def running_drug(clinic, *, hours=7, drug="infliximab", **kwargs):
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    adm = AdministrationFactory(encounter=enc, drug=DrugFactory(name=drug, hcpcs=""), started_at=NOW - hours * H, **kwargs)
    Administration.objects.filter(pk=adm.pk).update(recorded_at=adm.started_at)
    return adm


@pytest.mark.django_db
def test_counts_idempotence_and_history(clinic):
    a = running_drug(clinic)
    b = running_drug(clinic, drug="rituximab")
    first = services.sweep_flags(now=NOW)
    assert first == {"opened": 2, "resolved": 0, "open": 2, "skipped": 0}
    # Sweeping again changes nothing: no row written, no audit row.
    rows = (list(DocumentationFlag.objects.values_list("pk", "resolved_at")), AuditEvent.objects.count())
    assert services.sweep_flags(now=NOW) == {"opened": 0, "resolved": 0, "open": 2, "skipped": 0}
    assert (list(DocumentationFlag.objects.values_list("pk", "resolved_at")), AuditEvent.objects.count()) == rows

    Administration.objects.filter(pk=a.pk).update(stopped_at=NOW - 5 * H)
    assert services.sweep_flags(now=NOW + H) == {"opened": 0, "resolved": 1, "open": 1, "skipped": 0}

    # The gap comes back: a new flag; the resolved one stays as history.
    Administration.objects.filter(pk=a.pk).update(stopped_at=None)
    assert services.sweep_flags(now=NOW + 2 * H) == {"opened": 1, "resolved": 0, "open": 2, "skipped": 0}
    history = list(a.flags.order_by("created_at").values_list("created_at", "resolved_at"))
    assert history == [(NOW, NOW + H), (NOW + 2 * H, None)]
    assert b.flags.get().resolved_at is None
    swept = AuditEvent.objects.filter(action="charting.flags.swept").order_by("at", "pk")
    assert [e.detail for e in swept] == [{"opened": 2, "resolved": 0, "open": 2}, {"opened": 0, "resolved": 1, "open": 1}, {"opened": 1, "resolved": 0, "open": 2}]
    assert SweepRun.objects.count() == 4


@pytest.mark.django_db
def test_an_open_flag_is_never_duplicated_even_by_a_racing_insert(clinic):
    adm = running_drug(clinic)
    services.sweep_flags(now=NOW)
    check = checks.CHECKS_BY_KIND["still_running"]
    issue = check.issue(check.sql(checks.Sweep(NOW, checks.Limits.from_settings())).get(pk=adm.pk))
    # What a second sweep that computed its gaps before ours committed would insert:
    DocumentationFlag.objects.bulk_create([services._flag(issue, NOW)], ignore_conflicts=True)
    assert DocumentationFlag.objects.filter(administration=adm, kind="still_running").count() == 1


@pytest.mark.django_db
def test_query_count_does_not_grow_with_the_gaps(clinic, django_assert_max_num_queries):
    # savepoint, lock + jit off, 2 counts, the clinics once per check that
    # asks "is the day over" (nothing charted, never started, not signed: 3),
    # the temporary table (drop, create, fill, resolve UPDATE, SELECT the new
    # gaps, drop: 6), per kind with new gaps its records and one INSERT (2 x 2
    # here), SweepRun, audit row (3), release = 23 here, whatever the rows;
    # the budget leaves room for more kinds with new gaps.
    for n in range(3):
        running_drug(clinic, drug=f"drug {n}", dose_value=None)
    with django_assert_max_num_queries(45):
        assert services.sweep_flags(now=NOW)["opened"] == 6
    for n in range(3, 40):
        running_drug(clinic, drug=f"drug {n}", dose_value=None)
    with django_assert_max_num_queries(45):
        assert services.sweep_flags(now=NOW)["opened"] == 74


@pytest.mark.django_db
def test_periodic_sweep_runs_once_per_period(clinic, settings):
    settings.CHAIRSIDE_SWEEP_SECONDS = 300
    running_drug(clinic)
    period = services.sweep_period(NOW + dt.timedelta(seconds=299))
    assert period == NOW
    assert services.sweep_flags(now=NOW, period_start=period)["skipped"] == 0
    assert services.sweep_flags(now=NOW + dt.timedelta(seconds=10), period_start=period)["skipped"] == 1
    assert services.sweep_flags(now=NOW + dt.timedelta(seconds=300), period_start=services.sweep_period(NOW + dt.timedelta(seconds=300)))["skipped"] == 0
    assert list(SweepRun.objects.order_by("started_at").values_list("period_start", flat=True)) == [NOW, NOW + dt.timedelta(seconds=300)]


@pytest.mark.django_db(transaction=True)
def test_two_overlapping_sweeps_make_one_sweep_per_period(clinic):
    """Two beat processes fire in the same period: both tasks start while a third
    session holds the sweep lock, then race for it. One sweeps, one skips."""
    for n in range(20):
        running_drug(clinic, drug=f"drug {n}")
    period = services.sweep_period(NOW)
    results, errors = [], []
    started = threading.Barrier(3)

    def beat():
        try:
            started.wait()
            results.append(services.sweep_flags(now=NOW, period_start=period))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    with transaction.atomic():
        services._lock_sweeps()  # hold the lock: both sweeps must queue behind it
        threads = [threading.Thread(target=beat) for _ in range(2)]
        for t in threads:
            t.start()
        started.wait()
        _wait_for_lock_waiters(2)
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(r["skipped"] for r in results) == [0, 1]
    assert SweepRun.objects.filter(period_start=period).count() == 1
    assert DocumentationFlag.objects.filter(kind="still_running").count() == 20


@pytest.mark.django_db(transaction=True)
def test_two_overlapping_manual_sweeps_serialise(clinic):
    """Without a period (the command), the second sweep waits for the first and
    finds nothing left to do: flags once, no duplicate, no error."""
    for n in range(20):
        running_drug(clinic, drug=f"drug {n}")
    results, errors = [], []
    go = threading.Barrier(2)

    def sweep():
        try:
            go.wait()
            results.append(services.sweep_flags(now=NOW))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(r["opened"] for r in results) == [0, 20]
    assert DocumentationFlag.objects.count() == 20


def _wait_for_lock_waiters(n: int) -> None:
    """Until `n` other sessions wait for the sweep's advisory lock (pg_locks)."""
    import time

    with connections["default"].cursor() as cursor:
        for _ in range(200):
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted", [services.SWEEP_LOCK_KEY])
            if cursor.fetchone()[0] >= n:
                return
            time.sleep(0.05)
    pytest.fail(f"fewer than {n} sweeps waited for the lock")


@pytest.mark.django_db
def test_command_sweeps_once_and_prints_one_line(clinic, monkeypatch):
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    running_drug(clinic)
    out = io.StringIO()
    call_command("sweep_flags", stdout=out)
    assert out.getvalue() == "opened=1 resolved=0 open=1\n"
    out = io.StringIO()
    call_command("sweep_flags", stdout=out)
    assert out.getvalue() == "opened=0 resolved=0 open=1\n"
    assert SweepRun.objects.filter(period_start__isnull=True).count() == 2


@pytest.mark.django_db
def test_tasks_read_the_settings_claim_the_period_and_old_name_still_works(clinic, settings, monkeypatch):
    from django.utils import timezone

    from charting.tasks import flag_long_running_administrations_task, sweep_flags_task

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    settings.CHAIRSIDE_RUNNING_FLAG_HOURS = 1.5
    running_drug(clinic, hours=2)
    assert sweep_flags_task.name == "charting.tasks.sweep_flags_task"
    assert sweep_flags_task() == {"opened": 1, "resolved": 0, "open": 1, "skipped": 0}
    # The old beat entry's task, in the same period: one sweep per period.
    assert flag_long_running_administrations_task() == {"opened": 0, "resolved": 0, "open": 1, "skipped": 1}
    assert settings.CELERY_BEAT_SCHEDULE["sweep-documentation-flags"]["task"] == "charting.tasks.sweep_flags_task"


# --- signing with open items -----------------------------------------------------------


@pytest.fixture
def stopped(clinic, monkeypatch):
    """An infusion given and stopped, its vials not charted (NDC/lot and waste missing)."""
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    site = AccessSiteFactory(encounter=enc, label="A")
    adm = AdministrationFactory(encounter=enc, access_site=site, drug=DrugFactory(name="infliximab"), started_at=NOW - 3 * H, stopped_at=NOW - H)
    Administration.objects.filter(pk=adm.pk).update(recorded_at=adm.started_at)
    return adm


@pytest.mark.django_db
def test_signing_over_blocking_items_asks_and_records_the_confirmation(stopped, nurse, monkeypatch):
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    with pytest.raises(services.NeedsConfirmation) as asked:
        services.sign_encounter(stopped.encounter, actor=nurse)
    assert [i.kind for i in asked.value.issues] == ["waste_unconfirmed", "ndc_lot_missing"]
    assert "2 open items" in asked.value.message
    assert Encounter.objects.get(pk=stopped.encounter_id).status == "draft"
    with pytest.raises(services.NeedsConfirmation):
        services.sign_encounter(stopped.encounter, actor=nurse, confirmed="not-what-was-shown")

    signed = services.sign_encounter(stopped.encounter, actor=nurse, confirmed=asked.value.digest)
    assert signed.status == "signed"
    event = AuditEvent.objects.get(action="charting.encounter.signed")
    assert event.detail["confirmed_open_items"] == [
        {"kind": "waste_unconfirmed", "message": "Waste not confirmed for infliximab (single-dose vials): chart what was discarded, or none."},
        {"kind": "ndc_lot_missing", "message": "No vials charted for infliximab: chart the NDC and lot."},
    ]


@pytest.mark.django_db
def test_a_confirmation_covers_only_the_items_shown(stopped, nurse, monkeypatch):
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    with pytest.raises(services.NeedsConfirmation) as asked:
        services.sign_encounter(stopped.encounter, actor=nurse)
    Administration.objects.filter(pk=stopped.pk).update(dose_value=None)  # a new gap since the page was shown
    with pytest.raises(services.NeedsConfirmation) as again:
        services.sign_encounter(stopped.encounter, actor=nurse, confirmed=asked.value.digest)
    assert "dose_missing" in {i.kind for i in again.value.issues}


@pytest.mark.django_db
def test_complete_records_sign_without_asking_and_signing_resolves_not_signed(stopped, nurse, monkeypatch):
    from django.utils import timezone

    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    chart_vials(stopped)
    later = dt.datetime(2026, 3, 11, 13, 0, tzinfo=dt.UTC)  # the next day in New York
    services.sweep_flags(now=later)
    flag = DocumentationFlag.objects.get(kind="not_signed")
    monkeypatch.setattr(timezone, "now", lambda: later)
    services.sign_encounter(stopped.encounter, actor=nurse)
    flag.refresh_from_db()
    assert flag.resolved_at == later
    assert "confirmed_open_items" not in AuditEvent.objects.get(action="charting.encounter.signed").detail
    assert services.sweep_flags(now=later + H) == {"opened": 0, "resolved": 0, "open": 0, "skipped": 0}


@pytest.mark.django_db
def test_signing_asks_about_a_drug_never_started_however_fresh(stopped, nurse, monkeypatch):
    """The hole of issue #5: a drug added but never started signed as ready to bill."""
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    chart_vials(stopped)
    forgotten = AdministrationFactory(encounter=stopped.encounter, access_site=stopped.access_site, drug=DrugFactory(name="rituximab"))
    Administration.objects.filter(pk=forgotten.pk).update(recorded_at=NOW - dt.timedelta(minutes=2))
    assert services.sweep_flags(now=NOW)["open"] == 0  # two minutes old: no flag yet
    with pytest.raises(services.NeedsConfirmation) as asked:
        services.sign_encounter(stopped.encounter, actor=nurse)
    assert [(i.kind, i.message) for i in asked.value.issues] == [("never_started", "Rituximab was added but never started — start it, or mark it entered in error.")]

    signed = services.sign_encounter(stopped.encounter, actor=nurse, confirmed=asked.value.digest)
    assert signed.status == "signed"
    # Signed over it: the sweep flags it at once (nothing more will be charted).
    services.sweep_flags(now=NOW)
    assert DocumentationFlag.objects.open().get().administration_id == forgotten.pk


@pytest.mark.django_db
def test_signing_an_empty_encounter_asks(clinic, nurse, monkeypatch):
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    with pytest.raises(services.NeedsConfirmation) as asked:
        services.sign_encounter(enc, actor=nurse)
    assert [(i.kind, i.message) for i in asked.value.issues] == [("nothing_charted", "Nothing charted on this encounter: chart the drugs given or the service provided.")]
    assert services.sign_encounter(enc, actor=nurse, confirmed=asked.value.digest).status == "signed"
    services.sweep_flags(now=NOW)
    assert DocumentationFlag.objects.open().get().kind == "nothing_charted"


@pytest.mark.django_db
def test_advisory_items_never_ask(stopped, nurse, monkeypatch):
    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    chart_vials(stopped)
    Administration.objects.filter(pk=stopped.pk).update(recorded_at=NOW)  # a late entry: advisory
    assert [i.kind for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=stopped.encounter_id), now=NOW)] == ["late_entry"]
    assert services.sign_encounter(stopped.encounter, actor=nurse).status == "signed"


# --- surfaces: the chair, the worklist, the coder queue, the admin list ---------------------


def _signed(clinic, *, mrn, flagged):
    enc = EncounterFactory(patient=PatientFactory(clinic=clinic, mrn=mrn), date_of_service=dt.date(2026, 3, 9), status="signed", signed_by=UserFactory(), signed_at=NOW)
    adm = AdministrationFactory(encounter=enc, drug=DrugFactory(name="methotrexate", hcpcs=""), started_at=NOW - 30 * H, stopped_at=NOW - 29 * H, dose_value=None if flagged else Decimal("25"))
    with amending():  # arranging a signed record's entry time
        Administration.objects.filter(pk=adm.pk).update(recorded_at=adm.started_at)
    return enc


@pytest.mark.django_db
def test_encounter_page_shows_the_ready_to_bill_panel_and_signs_after_confirmation(nurse_client, stopped, monkeypatch):
    from django.urls import reverse

    monkeypatch.setattr(services, "_enqueue_suggestion", lambda encounter_id: None)
    page_url = reverse("charting:encounter", kwargs={"pk": stopped.encounter_id})
    html = nurse_client.get(page_url).content.decode()
    assert 'data-testid="ready-to-bill"' in html and 'data-testid="ready-blocking-count">2 to fix' in html
    assert f'href="{page_url}#id_vial_{stopped.pk}_ndc" data-testid="fix-ndc_lot_missing">No vials charted for infliximab: chart the NDC and lot.</a>' in html
    assert 'data-testid="sign-anyway"' in html

    sign_url = reverse("charting:sign_encounter", kwargs={"pk": stopped.encounter_id})
    html = nurse_client.post(sign_url, follow=True).content.decode()
    assert "2 open items would stop or change a billed line" in html
    assert Encounter.objects.get(pk=stopped.encounter_id).status == "draft"

    digest = checks.digest(i for i in checks.check_encounter(Encounter.objects.for_chart().get(pk=stopped.encounter_id), now=NOW) if i.blocking)
    html = nurse_client.post(sign_url, {"confirmed": digest}, follow=True).content.decode()
    assert "Encounter signed" in html and 'data-testid="sign-anyway"' not in html
    assert len(AuditEvent.objects.get(action="charting.encounter.signed").detail["confirmed_open_items"]) == 2


@pytest.mark.django_db
def test_the_panel_lists_a_drug_not_started_and_links_to_its_start_button(nurse_client, stopped):
    from django.urls import reverse

    chart_vials(stopped)
    waiting = AdministrationFactory(encounter=stopped.encounter, access_site=stopped.access_site, drug=DrugFactory(name="rituximab"))
    page_url = reverse("charting:encounter", kwargs={"pk": stopped.encounter_id})
    html = nurse_client.get(page_url).content.decode()
    # As signing would ask, although too fresh for a flag: the panel is what "Sign" checks.
    assert f'href="{page_url}#start-{waiting.pk}" data-testid="fix-never_started">Rituximab was added but never started — start it, or mark it entered in error.</a>' in html
    assert f'id="start-{waiting.pk}"' in html and 'data-testid="sign-anyway"' in html
    assert not DocumentationFlag.objects.exists()


@pytest.mark.django_db
def test_a_complete_chart_says_ready(nurse_client, stopped):
    from django.urls import reverse

    chart_vials(stopped)
    html = nurse_client.get(reverse("charting:encounter", kwargs={"pk": stopped.encounter_id})).content.decode()
    assert 'data-testid="ready-yes"' in html and 'data-testid="sign-anyway"' not in html


@pytest.mark.django_db
def test_worklist_lists_earlier_days_with_open_flags(nurse_client, clinic, other_clinic, monkeypatch):
    from django.urls import reverse
    from django.utils import timezone

    monkeypatch.setattr(timezone, "now", lambda: NOW)
    _signed(clinic, mrn="OLD-FLAGGED", flagged=True)
    _signed(clinic, mrn="OLD-CLEAN", flagged=False)
    _signed(other_clinic, mrn="ELSEWHERE", flagged=True)
    services.sweep_flags(now=NOW)
    response = nurse_client.get(reverse("charting:worklist"))
    rows = list(response.context["flagged_earlier"])
    assert [(e.patient.mrn, e.open_flag_count) for e in rows] == [("OLD-FLAGGED", 1)]
    assert b'data-testid="flagged-OLD-FLAGGED"' in response.content and b"ELSEWHERE" not in response.content
    # The year too: an old chart's flag may be from another year.
    assert "Mon 9 Mar 2026 · MRN OLD-FLAGGED" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("n", [1, 8])
def test_coder_queue_filters_on_open_flags(client, coder, clinic, n, django_assert_max_num_queries):
    from django.urls import reverse

    for i in range(n):
        _signed(clinic, mrn=f"FLAG-{i}", flagged=True)
    _signed(clinic, mrn="CLEAN", flagged=False)
    services.sweep_flags(now=NOW)
    client.force_login(coder)
    # session, user, groups (role check), the filter form's clinics and
    # payers, the per-status counts, the page count, the page of the queue
    # (open-flag count as a correlated subquery): see QUEUE_QUERIES
    # + the PHI request's one audit row (audit/phi.py): savepoint, role, chain-head lock, insert, head move, release (+6) = 14
    # + the session's two-factor check (roles.needs_two_factor, django-otp): +1
    with django_assert_max_num_queries(15):
        response = client.get(reverse("coding:queue") + "?flags=open")
    assert sorted(e.patient.mrn for e in response.context["encounters"]) == sorted(f"FLAG-{i}" for i in range(n))
    assert all(e.open_flag_count == 1 for e in response.context["encounters"])
    assert response.content.count(b'data-testid="open-flags"') == n
    everything = client.get(reverse("coding:queue")).context["encounters"]
    assert len(everything) == n + 1


@pytest.mark.django_db
def test_admin_lists_flags_oldest_first_and_filters_open(client, admin, clinic):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    admin.user_permissions.add(Permission.objects.get(codename="view_documentationflag"))
    old = running_drug(clinic, drug="old", hours=60)
    services.sweep_flags(now=NOW - 48 * H)
    running_drug(clinic, drug="new")
    services.sweep_flags(now=NOW)
    Administration.objects.filter(pk=old.pk).update(stopped_at=NOW - H)
    services.sweep_flags(now=NOW + H)
    client.force_login(admin)
    url = reverse("admin:charting_documentationflag_changelist")
    response = client.get(url)
    assert response.status_code == 200
    flags = list(response.context["cl"].result_list)
    assert [f.administration.drug.name for f in flags] == ["old", "new"]
    assert [f.administration.drug.name for f in client.get(url + "?state=open").context["cl"].result_list] == ["new"]
    assert b"2 d 1 h" in response.content  # the old flag took 49 hours to resolve
