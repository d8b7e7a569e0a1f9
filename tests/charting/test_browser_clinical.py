"""Vitals, a reaction that pauses the running drug, Resume, and the dosing
help, in a real browser at a tablet's 1024 x 768 (htmx on). Any
Content-Security-Policy violation fails the test (page_factory)."""

from decimal import Decimal

import pytest

from charting.models import Administration, Pause, Reaction, VitalSigns
from tests.browser.flows import log_in
from tests.factories import DrugFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_vitals_reaction_resume_and_dosing_help(live_server, page_factory, nurse, clinic):
    DrugFactory(name="infliximab", admin_family="chemo_complex", dosing_basis="mg_per_kg", vial_sizes_mg=[100], vial_sizes_text="100 mg lyophilized single-dose vial")
    PatientFactory(clinic=clinic, family_name="Zed", given_name="Ada", mrn="ZZ1-ZZCANARY-4712")
    page = page_factory()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server.url, "nurse")

    # Open, a site, infliximab without a dose yet, Start.
    page.select_option('[data-testid="open-patient"]', label="Zed, Ada — MRN ZZ1-ZZCANARY-4712")
    page.click('[data-testid="open-encounter"]')
    page.click('[data-testid="add-site-toggle"]')
    page.select_option('[data-testid="site-kind"]', "peripheral_iv")
    page.click('[data-testid="add-site-submit"]')
    page.wait_for_selector('[data-testid="site-A"]')
    page.click('[data-testid="add-administration-toggle"]')
    page.select_option('[data-testid="adm-drug"]', label="infliximab")
    page.select_option('[data-testid="adm-route"]', "iv_infusion")
    page.select_option('[data-testid="adm-access-site"]', index=1)
    page.click('[data-testid="add-administration-submit"]')
    page.click('[data-testid="start-infliximab"]')
    page.wait_for_selector('[data-testid="administration-infliximab"][data-state="running"]')

    # Vitals: the form is open while none are charted.
    page.fill('[data-testid="vitals-systolic-mmhg"]', "128")
    page.fill('[data-testid="vitals-diastolic-mmhg"]', "182")  # a slip: diastolic above systolic
    page.fill('[data-testid="vitals-weight-kg"]', "73")
    page.click('[data-testid="vitals-submit"]')
    page.wait_for_selector("text=must be below the systolic")
    assert page.input_value('[data-testid="vitals-weight-kg"]') == "73"  # kept as typed
    page.fill('[data-testid="vitals-diastolic-mmhg"]', "82")
    page.click('[data-testid="vitals-submit"]')
    page.wait_for_selector('[data-testid="vitals-bp-1"]:has-text("128/82")')
    page.screenshot(path="/tmp/chairside-vitals.png", full_page=True)

    # A grade 2 reaction: the running drug is ticked already; saving pauses it.
    page.click('[data-testid="reaction-toggle"]')
    assert page.is_checked('input[name="reaction-administrations"]')
    page.select_option('[data-testid="reaction-grade"]', "2")
    page.check('input[name="reaction-symptoms"][value="flushing"]')
    page.check('input[name="reaction-symptoms"][value="dyspnoea"]')
    page.check('input[name="reaction-interventions"][value="antihistamine"]')
    with page.expect_navigation():
        page.click('[data-testid="reaction-submit"]')
    page.wait_for_selector('[data-testid="administration-infliximab"][data-state="paused"]')
    page.wait_for_selector('[data-testid="reaction-grade-1"]:has-text("Grade 2")')
    assert "Reaction grade 2: flushing, dyspnoea" in page.inner_text('[data-testid="administration-infliximab"]')
    page.screenshot(path="/tmp/chairside-reaction.png", full_page=True)

    # Resume with the drug card's own button.
    page.click('[data-testid="resume-infliximab"]')
    page.wait_for_selector('[data-testid="administration-infliximab"][data-state="running"]')

    # Dosing help: weight prefilled from the vitals, 5 mg/kg -> 365 mg, 4 x 100 mg, 35 mg waste.
    page.click('[data-testid="dosing-toggle-infliximab"]')
    assert page.input_value('[data-testid="dosing-weight-infliximab"]') == "73.0"
    page.fill('[data-testid="dosing-mg-per-kg-infliximab"]', "5")
    page.click('[data-testid="dosing-calculate-infliximab"]')
    page.wait_for_selector('[data-testid="dosing-dose-infliximab"]:has-text("365 mg")')
    assert page.inner_text('[data-testid="dosing-containers-infliximab"]') == "4 × 100 mg"
    assert page.inner_text('[data-testid="dosing-waste-infliximab"]') == "35 mg"
    page.click('[data-testid="dosing-use-infliximab"]')
    assert page.input_value('[data-testid="edit-dose-value-infliximab"]') == "365"
    assert page.input_value('[data-testid="edit-dose-unit-infliximab"]') == "mg"
    adm = Administration.objects.get(label="infliximab")
    assert adm.dose_value is None  # "Use this dose" never saves by itself
    page.screenshot(path="/tmp/chairside-dosing.png", full_page=True)
    page.click('[data-testid="edit-submit-infliximab"]')
    page.wait_for_selector('[data-testid="notice-infliximab"]:has-text("Saved")')
    adm.refresh_from_db()
    assert adm.dose_value == Decimal("365") and adm.dose_unit == "mg"

    assert errors == []
    assert VitalSigns.objects.get().weight_kg == Decimal("73.0")
    assert Reaction.objects.get().grade == 2
    pause = Pause.objects.get(administration=adm)
    assert pause.reason == "Reaction grade 2: flushing, dyspnoea" and pause.resumed_at is not None
