"""Pinned query budgets of every nurse request (issue #9): the same number of
queries whether the encounter holds 1 or 30 administrations (and sites), for
the pages and for every htmx partial a tap returns.

Each request is measured on a fresh drug in an encounter of 1, then of 30
administrations; the two counts must be equal (no query per row) and stay
within the budget written here, so a new query is a deliberate change.
Every request includes its audit row on the hash chain (audit/phi.py: 6
queries) and the session's two-factor check (roles.needs_two_factor).
"""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from charting.models import Administration
from tests.factories import AccessSiteFactory, AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, chart_vials

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
T0 = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
VIALS = {"ndc": "57894-030-01", "lot": "LOT9", "expiry": "2027-01-31", "container_type": "single_dose", "size_value": "100", "size_unit": "mg", "count": "5"}


def _fill(encounter, n):
    """`n` administrations already given (stopped, vials, a pause) on `n` sites."""
    for i in range(n):
        site = AccessSiteFactory(encounter=encounter, label=f"F{i}")
        adm = AdministrationFactory(encounter=encounter, access_site=site, drug=DrugFactory(name=f"filler {i}"),
                                    started_at=T0, stopped_at=T0 + dt.timedelta(minutes=90))
        adm.pauses.create(paused_at=T0 + dt.timedelta(minutes=10), resumed_at=T0 + dt.timedelta(minutes=15), reason="x")
        chart_vials(adm)


def _subject(encounter, state):
    """The drug the request acts on, in the state the action needs."""
    kwargs = {"not_started": {}, "running": {"started_at": T0}, "paused": {"started_at": T0}, "stopped": {"started_at": T0, "stopped_at": T0 + dt.timedelta(minutes=60)}}[state]
    adm = AdministrationFactory(encounter=encounter, drug=DrugFactory(name="infliximab subject"), **kwargs)
    if state == "paused":
        adm.pauses.create(paused_at=T0 + dt.timedelta(minutes=5), reason="reaction")
    if state == "stopped":
        Administration.objects.filter(pk=adm.pk).update(container_type="single_dose")
        adm.vial_uses.create(ndc="57894-030-01", lot="LOT1", size_value=Decimal("100"), size_unit="mg", count=5)
    return adm


def _edit(adm):
    return {"dose_value": "400", "dose_unit": "mg", "purpose": "treatment", "route": "iv_infusion", "access_site": str(adm.access_site_id), "concurrent_with": "", "bag": ""}


# name, state of the drug, url name, POST data (None = GET of the page; a
# function of the drug when it names a record), budget.
#
# Every request: session, user, role (3), the audit row (3: chain head,
# insert, update) and a savepoint pair (2). A drug card partial then reads
# the drug with its prefetches (7) and, on a draft, its Edit form's choices:
# the encounter's sites and drugs (2). The fixes (edit, site, E/M note,
# entered in error) lock the encounter and the record and refresh the flags
# (the encounter with its prefetches, the open flags).
# Re-pinned in issue #5b: the budgets pinned before the audit trail (issue
# #7) no longer held (the page counted 20 against 14). Start and a corrected
# start: +1 each for the UPDATE that resolves the drug's "never started" flag
# at once (one statement whatever the rows).
REQUESTS = [
    # Issue #8: +1 the access sites' checks, +1 the latest wristband check,
    # +2 the vitals and the reactions (the reactions' drug links only when
    # there are reactions, a constant 2 more).
    ("encounter page", "not_started", "encounter", None, 25),
    ("start", "not_started", "start_administration", {}, 25),
    ("pause", "running", "pause_administration", {"reason": "reaction"}, 25),
    ("resume", "paused", "resume_administration", {}, 25),
    ("stop", "running", "stop_administration", {}, 26),
    # Issue #9 session 4: a corrected time, vials and waste refresh the
    # encounter's flags in their transaction (+14 each: the savepoint pair,
    # the encounter's lock, the encounter with the prefetches the checks read,
    # its open flags), so "No vials charted" and the like resolve at once.
    ("correct a time", "stopped", "correct_time", {"target": "started_at", "new_value": "2026-03-10T09:58", "reason": "pump clock"}, 47),
    ("vials", "stopped", "record_vials", VIALS, 40),
    ("waste", "stopped", "confirm_waste", {"none": "on", "wasted_unit": "mg"}, 39),
    ("edit a drug", "stopped", "edit_administration", _edit, 41),
    ("entered in error", "stopped", "enter_in_error", {"reason": "Wrong patient's order"}, 39),
    ("edit a site", "stopped", "edit_access_site", {"separate_site_medically_required": "on", "reason": "Vesicant on its own line"}, 36),  # issue #8: +5, the re-rendered site card reads its checks, the clinic's check interval and renders the check form with its key
    ("E/M note", "stopped", "document_em_service", {"significant_separately_identifiable": "on", "note": "New rash assessed"}, 34),
    # Issue #8: a tap with its idempotency key also inserts the key in a
    # savepoint and stores the record it wrote (4); a site check reads the
    # site, locks the encounter, writes the check and its audit row, and the
    # site card reads its checks.
    ("start with a key", "not_started", "start_administration", lambda adm: {"idempotency_key": str(uuid.uuid4())}, 31),  # +1 the "never started" resolve
    ("site check", "stopped", "check_access_site", lambda adm: {"finding": "patent", "idempotency_key": str(uuid.uuid4())}, 28),
    # Issue #8, beyond the request's own queries: a vial scan reads the drug
    # with its encounter and the known NDCs (catalog, charted in this clinic)
    # and renders the Vials form alone; a wristband check reads the
    # encounter, locks it with its patient (service savepoint), looks for the
    # same check just made, inserts the row and renders the latest check.
    ("scan a vial", "stopped", "scan_vial", {"scan": "01003578940300101727123110ZZLOT42"}, 13),
    ("wristband", "stopped", "check_wristband", lambda adm: {"wristband": adm.encounter.patient.mrn}, 17),
    # Issue #8. Vitals: the encounter, its lock, the form's token, the insert
    # and the section's vitals and reactions (with their drug links).
    ("record vitals", "running", "record_vitals", {"vitals-systolic_mmhg": "120", "vitals-diastolic_mmhg": "80", "vitals-weight_kg": "73"}, 17),
    # A reaction: the drugs offered, the lock, the drug, the pause service
    # (its own locks and insert), the reaction and its links; HX-Redirect.
    ("record a reaction", "running", "record_reaction", lambda adm: {"reaction-grade": "2", "reaction-symptoms": "flushing", "reaction-outcome": "ongoing", "reaction-administrations": str(adm.pk)}, 26),
    # Dosing help computes: the drug with its encounter, no write.
    ("dosing help", "running", "dosing_help", ("GET", {"weight_kg": "73", "mg_per_kg": "5"}), 11),
]


def _count(client, encounter, state, name, data) -> int:
    adm = _subject(encounter, state)
    target = encounter if name in ("encounter", "edit_access_site", "document_em_service", "check_access_site", "check_wristband", "record_vitals", "record_reaction") else adm
    if callable(data):
        data = data(adm)
    query = None
    if isinstance(data, tuple):  # ("GET", params): a GET with a query string
        query, data = data[1], None
    if name in ("edit_access_site", "check_access_site"):
        data = {**data, "site": adm.access_site_id}
    if name == "document_em_service":
        data = {**data, "service": encounter.other_services.create(kind="em_visit", level="99213").pk}
    path = reverse(f"charting:{name}", kwargs={"pk": target.pk})
    with CaptureQueriesContext(connection) as queries:
        response = (client.get(path, query, **HTMX) if query else client.get(path)) if data is None else client.post(path, data, **HTMX)
    assert response.status_code == 200, (name, response.status_code, response.content[:300])
    body = response.content.decode()
    # No refusal on the card and no field error (the card itself says "entered in error").
    assert 'data-testid="error-' not in body and "invalid-feedback" not in body, (name, body[:500])
    return len(queries)


@pytest.mark.parametrize(("label", "state", "name", "data", "budget"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_query_count_is_the_same_with_1_and_30_administrations(nurse_client, clinic, label, state, name, data, budget):
    small = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    large = EncounterFactory(patient=PatientFactory(clinic=clinic), date_of_service=dt.date(2026, 3, 10))
    _fill(large, 29)
    one = _count(nurse_client, small, state, name, data)
    many = _count(nurse_client, large, state, name, data)
    assert one == many, f"{label}: {one} queries with 1 administration, {many} with 30"
    assert many <= budget, f"{label}: {many} queries, budget {budget}"
