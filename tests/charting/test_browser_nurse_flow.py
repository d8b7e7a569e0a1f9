"""The nurse walking skeleton in a real browser: open, site, drug, Start, Stop, Sign (htmx on)."""

import pytest

from charting.models import Encounter
from tests.browser.flows import chart_infusion, log_in, sign
from tests.factories import DrugFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_nurse_charts_and_signs_an_encounter(live_server, page_factory, nurse, clinic):
    DrugFactory(name="infliximab", admin_family="chemo_complex")
    DrugFactory(name="doubtful", is_verified=False)
    PatientFactory(clinic=clinic, family_name="Zed", given_name="Ada", mrn="ZZ1-ZZCANARY-4711")
    page = page_factory()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server.url, "nurse")
    chart_infusion(page, patient="Zed, Ada — MRN ZZ1-ZZCANARY-4711", drug="infliximab", dose="500", site_location="left forearm")
    page.click('[data-testid="correct-infliximab"]')
    page.screenshot(path="/tmp/chairside-smoke-stopped.png", full_page=True)
    sign(page)
    page.screenshot(path="/tmp/chairside-smoke-signed.png", full_page=True)
    page.goto(live_server.url + "/nurse/")
    page.screenshot(path="/tmp/chairside-smoke-worklist.png", full_page=True)
    assert errors == []
    encounter = Encounter.objects.get(patient__mrn="ZZ1-ZZCANARY-4711")
    assert encounter.status == "signed" and encounter.signed_by == nurse
    assert encounter.administrations.get().stopped_at is not None
