"""Scanning at the chair (issue #8, BCMA): a vial's barcode fills the drug
card's Vials form, the patient's wristband confirms the patient.

Same shape as charting/views.py: fetched through the user's clinics (another
clinic's id is a 404), nurses only, POST only, one service call. htmx gets
the swapped partial; a plain POST (no JavaScript) gets the page, so the
scan works without JavaScript too.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit.phi import phi
from audit.services import subject
from infusion_site.roles import NURSE, role_required

from . import scanning, services
from .forms import VialForm
from .models import Encounter
from .services import ChartingError, SignedEncounterError
from .views import PAGE, _administration_for, _after_write, _encounter_for, _render_page, _signed_conflict, _vary

SCAN_TEMPLATE = "charting/_scan.html"
WRISTBAND_MISMATCH = "Wristband MRN does not match this encounter's patient. Check who is in the chair before giving anything; the failed check is recorded."


@require_POST
@phi("charting.administration.scan_vial", object_type="charting.administration", id_kwarg="pk")
@role_required(NURSE)
def scan_vial(request: HttpRequest, pk) -> HttpResponse:
    """Read a vial's barcode (POST `scan`) into the Vials form of one drug:
    NDC, lot and expiry are filled, what else was typed in the form is kept
    (htmx posts it along), nothing is charted until the nurse saves. A
    refusal (unreadable, expired, another drug's NDC) fills nothing."""
    adm = _administration_for(request, pk)
    if adm.encounter.is_signed:
        return _signed_conflict(request, adm.encounter_id, services.signed_encounter_error(Encounter.objects.select_related("clinic").get(pk=adm.encounter_id)))
    typed = {name: request.POST[name] for name in VialForm.base_fields if name in request.POST}
    try:
        scan = scanning.read_vial_scan(adm, text=request.POST.get("scan", ""))
    except ChartingError as exc:
        form, status = VialForm(initial=typed, administration=adm), 400
        form.scan = {"level": "danger", "message": exc.message}
    else:
        form, status = VialForm(initial=typed | scan.values, administration=adm), 200
        form.scan = {"level": scan.level, "message": scan.message, "warnings": scan.warnings}
    if request.htmx:
        adm.vial_form = form  # the Vials form shows no times: no clinic zone needed
        return _vary(render(request, f"{PAGE}#vial-form", {"adm": adm, "encounter": adm.encounter}))
    return _render_page(request, _encounter_for(request, adm.encounter_id), status=status, card_forms={("adm", adm.pk): {"vial_form": form}})


@require_POST
@phi("charting.encounter.check_wristband", object_type="charting.encounter", id_kwarg="pk")
@role_required(NURSE)
def check_wristband(request: HttpRequest, pk) -> HttpResponse:
    """Check the scanned wristband (POST `wristband`: the MRN, see
    `barcodes.read_wristband`) against the encounter's patient; the result is
    recorded either way (charting.PatientScan). The scanned text is not
    echoed, stored or logged."""
    encounter = get_object_or_404(Encounter.objects.visible_to(request.user).select_related("clinic", "patient"), pk=pk)
    subject(encounter, patient_id=encounter.patient_id)
    error = ""
    try:
        scan = scanning.check_wristband(encounter, text=request.POST.get("wristband", ""), actor=request.user)
    except SignedEncounterError as exc:
        return _signed_conflict(request, encounter.pk, exc)
    except ChartingError as exc:
        error = exc.message
    else:
        error = "" if scan.confirmed else WRISTBAND_MISMATCH
    if not request.htmx:
        (messages.error if error else messages.success)(request, error or "Patient confirmed by wristband.")
        return _after_write(request, encounter)
    with timezone.override(encounter.clinic.tz):
        return _vary(render(request, f"{SCAN_TEMPLATE}#wristband", {"encounter": encounter, "wristband_error": error}))
