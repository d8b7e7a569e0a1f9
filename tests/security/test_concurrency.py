"""Attack 5: simultaneous requests on separate database connections (threads,
transactional_db). Two taps that reach the server at the same time must give
exactly one event and no 500."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from charting import services
from charting.models import AccessSite, Administration, Encounter
from coding import services as coding_services
from coding.models import Suggestion
from tests.factories import chart_vials

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(*callables, timeout=30):
    """Run each callable in its own thread (own DB connection), released together."""
    barrier = threading.Barrier(len(callables))
    results: list = [None] * len(callables)

    def worker(i, fn):
        try:
            barrier.wait()
            results[i] = ("ok", fn())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, fn)) for i, fn in enumerate(callables)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread is stuck (deadlock?)"
    return results


def test_two_stops_at_once_in_the_service_make_one_stop(adm, nurse):
    services.start_administration(adm, actor=nurse)
    results = run_together(*[lambda: services.stop_administration(Administration.objects.get(pk=adm.pk), actor=nurse)] * 2)
    assert [r[0] for r in results] == ["ok", "ok"], results
    notices = sorted(r[1].notice for r in results)
    assert notices[0] == "" and "already stopped" in notices[1]
    adm.refresh_from_db()
    assert adm.stopped_at is not None
    assert {r[1].stopped_at for r in results} == {adm.stopped_at}
    assert AuditEvent.objects.filter(action="charting.administration.stopped").count() == 1


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_two_stop_posts_at_once_make_one_stop_and_no_500(adm, nurse, htmx):
    services.start_administration(adm, actor=nurse)
    target = reverse("charting:stop_administration", kwargs={"pk": adm.pk})

    def tap():
        client = Client(raise_request_exception=False)
        client.force_login(nurse)
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        return client.post(target, **headers)

    results = run_together(tap, tap, tap)
    assert all(kind == "ok" for kind, _ in results), results
    statuses = [r.status_code for _, r in results]
    assert statuses == [200] * 3 if htmx else statuses == [302] * 3
    if htmx:
        bodies = [r.content.decode() for _, r in results]
        assert sum("already stopped at" in b for b in bodies) == 2
    adm.refresh_from_db()
    assert adm.stopped_at is not None
    assert AuditEvent.objects.filter(action="charting.administration.stopped").count() == 1


def test_two_starts_at_once_make_one_start(adm, nurse):
    results = run_together(*[lambda: services.start_administration(Administration.objects.get(pk=adm.pk), actor=nurse)] * 2)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert AuditEvent.objects.filter(action="charting.administration.started").count() == 1


def test_stop_and_pause_at_once_leave_a_consistent_record(adm, nurse):
    services.start_administration(adm, actor=nurse)
    results = run_together(
        lambda: services.stop_administration(Administration.objects.get(pk=adm.pk), actor=nurse),
        lambda: services.pause_administration(Administration.objects.get(pk=adm.pk), reason="Pump alarm", actor=nurse),
    )
    assert results[0][0] == "ok"
    assert results[1][0] == "ok" or isinstance(results[1][1], services.ChartingError), results
    adm.refresh_from_db()
    assert adm.stopped_at is not None
    assert not adm.pauses.filter(resumed_at__isnull=True).exists()


def test_two_sites_at_once_get_two_labels(encounter, nurse):
    results = run_together(*[lambda: services.add_access_site(Encounter.objects.get(pk=encounter.pk), kind="port", actor=nurse)] * 2)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert sorted(AccessSite.objects.filter(encounter=encounter).values_list("label", flat=True)) == ["A", "B"]


def test_two_opens_at_once_make_one_encounter(clinic, nurse):
    from tests.factories import PatientFactory

    patient = PatientFactory(clinic=clinic)
    results = run_together(*[lambda: services.open_encounter(patient, clinic=clinic, setting="office", actor=nurse)] * 2)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert Encounter.objects.filter(patient=patient).count() == 1


def test_two_signs_at_once_sign_once(adm, nurse):
    services.start_administration(adm, actor=nurse)
    services.stop_administration(adm, actor=nurse)
    chart_vials(adm)
    results = run_together(*[lambda: services.sign_encounter(Encounter.objects.get(pk=adm.encounter_id), actor=nurse)] * 2)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert AuditEvent.objects.filter(action="charting.encounter.signed").count() == 1


def test_accept_while_the_encounter_is_recoded_refuses_the_superseded_line(line, coder):
    """Re-coding marks the suggestion not current in a transaction that is still
    open when the coder's Accept arrives: the accept must wait for it and refuse,
    not accept a line of a suggestion that is being replaced."""
    recoding = threading.Event()

    def recode():
        with transaction.atomic():
            Suggestion.objects.filter(pk=line.suggestion_id).update(is_current=False)
            recoding.set()
            time.sleep(1.0)  # the engine runs; the accept arrives meanwhile
        return "recoded"

    def accept():
        assert recoding.wait(10)
        return coding_services.accept_line(line, actor=coder)

    results = run_together(recode, accept)
    assert results[0] == ("ok", "recoded")
    assert results[1][0] == "error" and isinstance(results[1][1], coding_services.CodingError), results
    line.refresh_from_db()
    assert not line.is_accepted
