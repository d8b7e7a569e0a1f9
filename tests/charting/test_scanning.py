"""Scanning at the chair (issue #8): a vial's barcode fills the Vials form
(charting.scanning.read_vial_scan, views_scan.scan_vial), an expired lot is
refused at the scan and on save, the wristband confirms the patient
(check_wristband). Invented barcodes only: the catalog's example NDCs in
GS1 strings with made-up lots."""

import datetime as dt
import logging
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent, Outcome
from charting import scanning, services
from charting.barcodes import gtin_for_ndc
from charting.models import PatientScan, VialUse
from charting.services import ChartingError, SignedEncounterError
from tests.factories import AdministrationFactory, DrugFactory, EncounterFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
GS = "\x1d"
DOS = dt.date(2026, 3, 10)
INFLIXIMAB_GTIN = gtin_for_ndc("5789403001")  # catalog example 57894-030-01 (stored 57894-0030-01)
INFLECTRA_GTIN = gtin_for_ndc("0069080901")  # catalog example 0069-0809-01 (stored 00069-0809-01)


def gs1(gtin=INFLIXIMAB_GTIN, *, expiry="271231", lot="ZZLOT42", serial=""):
    """A GS1 DataMatrix's data as a scanner types it: the lot (variable length) ends with GS."""
    return f"01{gtin}17{expiry}10{lot}" + (f"{GS}21{serial}" if serial else "")


@pytest.fixture
def encounter(clinic):
    return EncounterFactory(patient=PatientFactory(clinic=clinic, mrn="SCAN-0001-ZZCANARY"), date_of_service=DOS)


@pytest.fixture
def adm(encounter):
    drug = DrugFactory(name="infliximab", example_ndc="57894-0030-01")
    DrugFactory(name="infliximab-dyyb", example_ndc="00069-0809-01")
    return AdministrationFactory(encounter=encounter, label="infliximab", drug=drug, dose_value=Decimal("400"), dose_unit="mg")


def scan_url(adm):
    return reverse("charting:scan_vial", kwargs={"pk": adm.pk})


def wristband_url(encounter):
    return reverse("charting:check_wristband", kwargs={"pk": encounter.pk})


def field_value(body: str, adm, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*id="id_vial_{adm.pk}_{name}"[^>]*>|<input[^>]*id="id_vial_{adm.pk}_{name}"[^>]*>', body)
    assert match, name
    value = re.search(r'value="([^"]*)"', match.group(0))
    return value.group(1) if value else ""


# --- the service: what a scan fills --------------------------------------------------------


def test_a_gs1_scan_fills_ndc_lot_and_expiry_with_the_catalog_layout(adm):
    scan = scanning.read_vial_scan(adm, text=gs1(serial="SN77"))
    assert scan.values == {"ndc": "57894-030-01", "lot": "ZZLOT42", "expiry": "2027-12-31"}
    assert scan.level == "success" and not scan.warnings
    assert f"(01){INFLIXIMAB_GTIN}(17)271231(10)ZZLOT42(21)SN77" in scan.message and "serial SN77 (not charted)" in scan.message


def test_a_parenthesised_scan_with_day_00(adm):
    scan = scanning.read_vial_scan(adm, text=f"(01){INFLIXIMAB_GTIN}(17)270200(10)L-1")
    assert scan.values["expiry"] == "2027-02-28"


def test_an_ndc_charted_before_in_this_clinic_gives_the_layout(adm, clinic, other_clinic):
    """The catalog has no example for this package; a vial charted for the
    same drug in this clinic has (another clinic's charting does not count)."""
    other = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=other_clinic)), drug=adm.drug)
    VialUse.objects.create(administration=other, ndc="57894-0301-1", lot="X", count=1)
    gtin = gtin_for_ndc("5789403011")
    scan = scanning.read_vial_scan(adm, text=gs1(gtin))
    assert scan.values["ndc"] == "5789403011" and scan.level == "warning"

    mine = AdministrationFactory(encounter=EncounterFactory(patient=PatientFactory(clinic=clinic)), drug=adm.drug)
    VialUse.objects.create(administration=mine, ndc="57894-0301-1", lot="X", count=1)
    scan = scanning.read_vial_scan(adm, text=gs1(gtin))
    assert scan.values["ndc"] == "57894-0301-1" and scan.level == "success"


def test_an_unknown_ndc_is_filled_as_ten_digits_and_the_nurse_asked_for_the_hyphens(adm):
    scan = scanning.read_vial_scan(adm, text=gs1(gtin_for_ndc("5789499901")))
    assert scan.values["ndc"] == "5789499901"
    assert scan.level == "warning"
    assert "not where the hyphens go" in scan.warnings[0] and "4-4-2, 5-3-2 or 5-4-1" in scan.warnings[0]
    # ... and saving ten bare digits is refused: the layout is never guessed.
    with pytest.raises(ChartingError, match="4-4-2, 5-3-2 or 5-4-1"):
        services.record_vials(adm, ndc="5789499901", lot="L", expiry=None, container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=1, actor=None)


def test_a_linear_upc_fills_the_ndc_and_asks_for_lot_and_expiry(adm):
    scan = scanning.read_vial_scan(adm, text=INFLIXIMAB_GTIN[2:])
    assert scan.values == {"ndc": "57894-030-01"}
    assert scan.warnings == ["No lot or expiry in this barcode: type them from the vial."]


def test_another_drugs_ndc_is_refused_and_nothing_filled(adm):
    with pytest.raises(ChartingError) as exc:
        scanning.read_vial_scan(adm, text=gs1(INFLECTRA_GTIN))
    assert exc.value.field == "scan"
    assert exc.value.message.startswith("Wrong product? This barcode is NDC 0069-0809-01 of infliximab-dyyb, not infliximab.")


@pytest.mark.parametrize(("expiry", "refused"), [("260309", True), ("260200", True), ("260310", False), ("260300", False)])
def test_an_expired_lot_is_refused_at_the_scan(adm, expiry, refused):
    """Expiry before the date of service (2026-03-10, the clinic's date) is
    refused; expiring that day is still usable (day 00 = end of month)."""
    if not refused:
        assert scanning.read_vial_scan(adm, text=gs1(expiry=expiry)).values["ndc"] == "57894-030-01"
        return
    with pytest.raises(ChartingError) as exc:
        scanning.read_vial_scan(adm, text=gs1(expiry=expiry))
    assert "before the date of service (2026-03-10): do not use it" in exc.value.message and "nothing was filled" in exc.value.message


def test_a_typed_expired_lot_is_refused_on_save(adm):
    with pytest.raises(ChartingError) as exc:
        services.record_vials(adm, ndc="57894-030-01", lot="L", expiry=dt.date(2026, 3, 9), container_type="single_dose", size_value=Decimal(100), size_unit="mg", count=4, actor=None)
    assert exc.value.field == "expiry" and "expired on 2026-03-09" in exc.value.message
    assert not VialUse.objects.exists()


# --- the views: scan fills the form, refusals -----------------------------------------------


def test_an_htmx_scan_returns_the_filled_vials_form_keeping_what_was_typed(nurse_client, adm):
    response = nurse_client.post(scan_url(adm), {"scan": gs1(), "size_value": "100", "count": "4", "ndc": "", "lot": ""}, **HTMX)
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    body = response.content.decode()
    assert body.lstrip().startswith(f'<div id="vial-entry-{adm.pk}"') and "<html" not in body
    assert (field_value(body, adm, "ndc"), field_value(body, adm, "lot"), field_value(body, adm, "expiry")) == ("57894-030-01", "ZZLOT42", "2027-12-31")
    assert (field_value(body, adm, "size_value"), field_value(body, adm, "count")) == ("100", "4")
    assert 'data-testid="vial-scan-result-infliximab"' in body and "Check against the vial, then save." in body
    assert "invalid-feedback" not in body
    # A scan charts nothing: the nurse confirms by saving.
    assert not VialUse.objects.exists()


def test_a_plain_post_scan_re_renders_the_page_filled(nurse_client, adm):
    response = nurse_client.post(scan_url(adm), {"scan": gs1()})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body and field_value(body, adm, "lot") == "ZZLOT42"
    # then saving the filled form charts the vials
    data = {"ndc": field_value(body, adm, "ndc"), "lot": "ZZLOT42", "expiry": "2027-12-31", "container_type": "single_dose", "size_value": "100", "size_unit": "mg", "count": "4"}
    assert nurse_client.post(reverse("charting:record_vials", kwargs={"pk": adm.pk}), data).status_code == 302
    assert VialUse.objects.get().ndc == "57894-030-01"


def test_an_expired_scan_is_refused_in_the_partial_and_fills_nothing(nurse_client, adm):
    response = nurse_client.post(scan_url(adm), {"scan": gs1(expiry="251231"), "lot": "TYPED"}, **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "This lot expired on 2025-12-31, before the date of service" in body and 'role="alert"' in body
    assert field_value(body, adm, "ndc") == "" and field_value(body, adm, "lot") == "TYPED"
    # without JavaScript: the page, 400
    assert nurse_client.post(scan_url(adm), {"scan": gs1(expiry="251231")}).status_code == 400


def test_an_expired_lot_typed_into_the_form_is_refused_on_save(nurse_client, adm):
    data = {"ndc": "57894-030-01", "lot": "L9", "expiry": "2026-03-09", "container_type": "single_dose", "size_value": "100", "size_unit": "mg", "count": "4"}
    response = nurse_client.post(reverse("charting:record_vials", kwargs={"pk": adm.pk}), data, **HTMX)
    assert response.status_code == 200
    assert "This lot expired on 2026-03-09, before the date of service" in response.content.decode()
    assert not VialUse.objects.exists()


def test_a_malformed_scan_explains_what_was_read(nurse_client, adm):
    response = nurse_client.post(scan_url(adm), {"scan": "(10)ZZLOT42(17)271231"}, **HTMX)
    body = response.content.decode()
    assert "Read &#x27;(10)ZZLOT42(17)271231&#x27;: it has no product code (GTIN, AI 01)." in body


def test_scanning_on_a_signed_encounter_is_409(nurse_client, adm, nurse):
    type(adm.encounter).objects.filter(pk=adm.encounter_id).update(status="signed", signed_by=nurse, signed_at=timezone.now())
    assert nurse_client.post(scan_url(adm), {"scan": gs1()}, **HTMX).status_code == 409


def test_the_encounter_page_has_the_scan_fields(nurse_client, adm):
    body = nurse_client.get(reverse("charting:encounter", kwargs={"pk": adm.encounter_id})).content.decode()
    assert 'data-testid="vial-scan-infliximab"' in body and 'data-testid="wristband-scan"' in body
    assert 'data-testid="patient-unconfirmed"' in body
    assert "js/scan.js" in body


# --- the wristband ---------------------------------------------------------------------------


def test_the_right_wristband_confirms_the_patient(nurse_client, nurse, encounter):
    response = nurse_client.post(wristband_url(encounter), {"wristband": " ]C0scan-0001-zzcanary\n"}, **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="wristband') and 'data-testid="patient-confirmed"' in body
    assert "Nora Nurse at" in body and "SCAN-0001" not in body.upper()
    scan = PatientScan.objects.get()
    assert (scan.encounter, scan.result, scan.scanned_by) == (encounter, "confirmed", nurse)
    row = AuditEvent.objects.order_by("-seq").first()
    assert (row.action, row.outcome, row.patient_id) == ("charting.encounter.patient_confirmed", Outcome.SUCCESS, encounter.patient_id)
    assert row.detail == {"patient_scan_id": scan.pk, "result": "confirmed"}


def test_the_wrong_wristband_is_refused_and_recorded_without_the_mrn(nurse_client, encounter, clinic, caplog):
    other = PatientFactory(clinic=clinic, mrn="SCAN-0002-ZZCANARY")
    with caplog.at_level(logging.DEBUG):
        response = nurse_client.post(wristband_url(encounter), {"wristband": other.mrn}, **HTMX)
    body = response.content.decode()
    assert "Wristband MRN does not match this encounter&#x27;s patient" in body and 'data-testid="patient-mismatch"' in body
    assert other.mrn not in body
    assert PatientScan.objects.get().result == "mismatch"
    row = AuditEvent.objects.order_by("-seq").first()
    assert (row.action, row.outcome) == ("charting.encounter.wristband_mismatch", Outcome.FAILURE)
    assert other.mrn not in str(row.detail) and encounter.patient.mrn not in str(row.detail)
    # PHI-2: neither MRN in any log line of the request
    assert not [r for r in caplog.records if "SCAN-000" in r.getMessage()]

    # then the right one: confirmed, shown instead of the failure
    response = nurse_client.post(wristband_url(encounter), {"wristband": encounter.patient.mrn}, **HTMX)
    assert 'data-testid="patient-confirmed"' in response.content.decode()
    assert list(PatientScan.objects.values_list("result", flat=True)) == ["mismatch", "confirmed"]


def test_a_plain_post_wristband_redirects_with_the_message(nurse_client, encounter):
    response = nurse_client.post(wristband_url(encounter), {"wristband": "NOT-THIS-ONE"}, follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][1] == 302 and "Wristband MRN does not match this encounter&#x27;s patient" in body
    response = nurse_client.post(wristband_url(encounter), {"wristband": encounter.patient.mrn}, follow=True)
    body = response.content.decode()
    assert "Patient confirmed by wristband." in body and 'data-testid="patient-confirmed"' in body


def test_a_double_enter_records_one_check(nurse, encounter):
    first = scanning.check_wristband(encounter, text=encounter.patient.mrn, actor=nurse)
    again = scanning.check_wristband(encounter, text=encounter.patient.mrn, actor=nurse)
    assert first.pk == again.pk and PatientScan.objects.count() == 1
    # another nurse's check, or the same one later, is a check of its own
    scanning.check_wristband(encounter, text=encounter.patient.mrn, actor=UserFactory(username="second", roles=["nurse"]))
    assert PatientScan.objects.count() == 2


def test_nothing_scanned_is_an_error_and_records_nothing(nurse_client, encounter):
    response = nurse_client.post(wristband_url(encounter), {"wristband": "  "}, **HTMX)
    assert "Nothing was scanned" in response.content.decode() and 'data-testid="wristband-error"' in response.content.decode()
    assert not PatientScan.objects.exists()


def test_a_signed_encounter_refuses_a_wristband_check(nurse, encounter):
    type(encounter).objects.filter(pk=encounter.pk).update(status="signed", signed_by=nurse, signed_at=timezone.now())
    with pytest.raises(SignedEncounterError):
        scanning.check_wristband(encounter, text=encounter.patient.mrn, actor=nurse)
    assert not PatientScan.objects.exists()


def test_a_bad_patient_scan_result_is_refused_by_the_database(nurse, encounter):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError, match="patient_scan_result_valid"), transaction.atomic():
        PatientScan.objects.create(encounter=encounter, result="maybe", scanned_by=nurse, scanned_at=timezone.now())


def test_checks_of_a_signed_encounter_are_frozen(nurse, encounter):
    from django.db import IntegrityError, InternalError, transaction

    scan = scanning.check_wristband(encounter, text=encounter.patient.mrn, actor=nurse)
    type(encounter).objects.filter(pk=encounter.pk).update(status="signed", signed_by=nurse, signed_at=timezone.now())
    with pytest.raises((IntegrityError, InternalError), match="signed documentation cannot be changed"), transaction.atomic():
        PatientScan.objects.filter(pk=scan.pk).update(result="mismatch")
