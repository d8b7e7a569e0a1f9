"""Barcode scanning in a real browser (issue #8), on a tablet held upright
(768x1024): a scanner in keyboard mode types a GS1 string into the Scan
field and sends Enter; NDC, lot and expiry are filled; the nurse saves; then
the wristband confirms the patient. Any CSP violation fails the test
(page_factory). Invented barcodes and patients only."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from charting.barcodes import gtin_for_ndc
from charting.models import PatientScan, VialUse
from tests.browser.flows import log_in
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_nurse_scans_a_vial_and_the_wristband(live_server, page_factory, nurse, clinic):
    drug = DrugFactory(name="infliximab", admin_family="chemo_complex", example_ndc="57894-0030-01")
    patient = PatientFactory(clinic=clinic, family_name="Quill", given_name="Bea", mrn="QB-SCAN-1")
    encounter = EncounterFactory(patient=patient)
    adm = AdministrationFactory(encounter=encounter, label="infliximab", drug=drug, dose_value=Decimal("400"), dose_unit="mg")
    expiry = dt.date(timezone.localdate(timezone.now(), clinic.tz).year + 2, 6, 30)
    # GTIN 00357894030010, expiry day 00 (= the 30th), lot ends with GS (a serial follows)
    barcode = f"01{gtin_for_ndc('5789403001')}17{expiry:%y%m}00" + "10ZZLOT7\x1d21SN123"

    page = page_factory(viewport=(768, 1024))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, live_server.url, "nurse")
    page.goto(f"{live_server.url}/nurse/encounters/{encounter.pk}/")

    scan = page.locator('[data-testid="vial-scan-infliximab"]')
    scan.click()
    page.keyboard.type(barcode)
    assert scan.input_value() == barcode  # the GS character reached the field
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="vial-scan-result-infliximab"]')
    assert page.locator(f"#id_vial_{adm.pk}_ndc").input_value() == "57894-030-01"
    assert page.locator(f"#id_vial_{adm.pk}_lot").input_value() == "ZZLOT7"
    assert page.locator(f"#id_vial_{adm.pk}_expiry").input_value() == expiry.isoformat()
    assert "serial SN123" in page.locator('[data-testid="vial-scan-result-infliximab"]').inner_text()
    # Focus moved on to the first empty field (the size), ready to type.
    assert page.locator(f"#id_vial_{adm.pk}_size_value").evaluate("el => el === document.activeElement")
    assert scan.input_value() == ""  # ready for the next scan
    assert not VialUse.objects.exists()  # a scan charts nothing
    page.screenshot(path="/tmp/chairside-scan-filled.png", full_page=True)

    page.fill(f"#id_vial_{adm.pk}_size_value", "100")
    page.fill(f"#id_vial_{adm.pk}_count", "4")
    page.click('[data-testid="vial-save-infliximab"]')
    page.wait_for_selector('[data-testid="vial-list-infliximab"]')
    vial = VialUse.objects.get()
    assert (vial.ndc, vial.lot, vial.expiry, vial.count) == ("57894-030-01", "ZZLOT7", expiry, 4)

    # An expired lot typed by a scanner is refused at the scan, nothing filled.
    page.locator('[data-testid="vial-scan-infliximab"]').click()
    page.keyboard.type(f"(01){gtin_for_ndc('5789403001')}(17)200100(10)OLDLOT")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="vial-scan-result-infliximab"][data-level="danger"]')
    assert "expired on 2020-01-31" in page.locator('[data-testid="vial-scan-result-infliximab"]').inner_text()
    assert page.locator(f"#id_vial_{adm.pk}_lot").input_value() == ""

    # The wristband: a wrong one is refused, the right one confirms.
    wristband = page.locator('[data-testid="wristband-scan"]')
    wristband.click()
    page.keyboard.type("QB-SCAN-2")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="wristband-error"]')
    assert "Wristband MRN does not match this encounter's patient" in page.locator('[data-testid="wristband-error"]').inner_text()
    page.locator('[data-testid="wristband-scan"]').click()
    page.keyboard.type("QB-SCAN-1")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="patient-confirmed"]')
    page.screenshot(path="/tmp/chairside-scan-wristband.png", full_page=True)
    assert list(PatientScan.objects.values_list("result", flat=True)) == ["mismatch", "confirmed"]
    assert errors == []
