"""A missing dose fixed from the "ready to bill" panel's link, on a tablet (1024x768)."""

import pytest

from charting.models import Administration, DocumentationFlag
from tests.browser.flows import chart_infusion, log_in
from tests.factories import DrugFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_nurse_fixes_a_missing_dose_from_the_ready_panel(live_server, page_factory, nurse, clinic):
    DrugFactory(name="infliximab", admin_family="chemo_complex")
    PatientFactory(clinic=clinic, family_name="Quill", given_name="Bea", mrn="QB1")
    page = page_factory(viewport=(1024, 768))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server.url, "nurse")
    chart_infusion(page, patient="Quill, Bea — MRN QB1", drug="infliximab", dose="")  # the dose forgotten
    page.reload()
    adm = Administration.objects.get(encounter__patient__mrn="QB1")
    assert adm.dose_value is None

    page.click('[data-testid="fix-dose_missing"]')
    dose = page.locator(f"#id_edit_{adm.pk}_dose_value")
    # The link lands on the dose input: its form opened, the input on screen and focused.
    dose.wait_for(state="visible")
    assert dose.evaluate("el => el === document.activeElement")
    # On screen once the page has settled (land() scrolls again if anything moved it).
    page.wait_for_function("el => { const b = el.getBoundingClientRect(); return b.top >= 0 && b.bottom <= window.innerHeight; }", arg=dose.element_handle(), timeout=3_000)
    box = dose.bounding_box()
    assert box["height"] >= 44 and 0 <= box["y"] and box["y"] + box["height"] <= 768
    submit = page.locator('[data-testid="edit-submit-infliximab"]')
    assert submit.bounding_box()["height"] >= 44
    page.screenshot(path="/tmp/chairside-fix-dose-form.png")

    dose.fill("350")
    submit.click()
    page.wait_for_selector('[data-testid="notice-infliximab"]')
    # The panel reloads itself (HX-Trigger chart-changed): the item is gone.
    page.wait_for_selector('[data-testid="issue-dose_missing"]', state="detached")
    page.screenshot(path="/tmp/chairside-fix-dose-done.png", full_page=True)
    adm.refresh_from_db()
    assert (adm.dose_value, adm.dose_unit) == (350, "mg")
    assert not DocumentationFlag.objects.open().filter(administration=adm, kind="dose_missing").exists()
    assert errors == []
