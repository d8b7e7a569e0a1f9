"""Barcode scanning at the chair (issue #8, BCMA): a vial's barcode fills the
Vials form, the patient's wristband confirms the patient.

Reading the barcode is `charting.barcodes` (pure); here is what the chart
decides about it:

- The 10 NDC digits of a drug GTIN lack their hyphens. The layout is taken
  from the NDCs known for the administration's drug (the catalog's example
  NDC, NDCs already charted for that drug in this clinic); when none
  matches, the 10 digits are filled as they are and the nurse is asked to
  type the hyphens from the package. `record_vials` refuses 10 bare digits,
  so a layout is never guessed.
- Wrong product (decision): an NDC known as ANOTHER drug's (catalog or
  charted in this clinic) is refused at the scan, nothing is filled. An NDC
  known for no drug at all is filled with a warning to check the package:
  the catalog holds one example NDC per drug, not every package size, so a
  refusal there would refuse good vials. A typed NDC is the nurse reading
  the package and is not checked against the drug.
- An expired lot (expiry before the date of service, the clinic's local
  date) is refused at the scan, nothing is filled; `record_vials` refuses it
  again on save, scanned or typed (`services.refuse_expired_lot`).
- A scan fills the form only: nothing is charted until the nurse saves.

Nothing here logs: the wristband text is a patient identifier (PHI-2).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import Outcome
from audit.services import record

from .barcodes import BarcodeError, ProductScan, printed_forms, read_product_barcode, read_wristband, resolve_ndc, same_mrn, shown
from .models import Administration, Drug, Encounter, PatientScan, PatientScanResult, VialUse
from .services import ChartingError, refuse_expired_lot, signed_encounter_error

# A second identical check by the same nurse this soon is the same scan sent
# twice (double Enter, a retried request): it is not recorded again.
REPEAT_WINDOW = dt.timedelta(seconds=30)


@dataclass
class VialScan:
    """What a vial's scan puts into the Vials form.

    `values`: form field -> value ("ndc", "lot", "expiry" as YYYY-MM-DD; only
    those the barcode gave); `message`: what was read and what to check;
    `warnings`: what the nurse must check or type before saving."""

    product: ProductScan
    values: dict[str, str]
    message: str
    warnings: list[str] = field(default_factory=list)

    @property
    def level(self) -> str:
        return "warning" if self.warnings else "success"


def _known_ndcs(adm: Administration, ndc10: str) -> tuple[list[str], dict[str, str]]:
    """The stored forms of these 10 digits already known: for `adm`'s drug
    (list), and for other drugs (NDC -> drug name). Two queries, each
    limited to the at most nine strings the digits can be stored as."""
    forms = printed_forms(ndc10)
    own: list[str] = []
    other: dict[str, str] = {}
    for ndc, drug_id, name in Drug.objects.filter(example_ndc__in=forms).values_list("example_ndc", "pk", "name"):
        (own.append(ndc) if drug_id == adm.drug_id else other.setdefault(ndc, name))
    charted = (
        VialUse.objects.filter(ndc__in=forms, administration__encounter__clinic_id=adm.encounter.clinic_id)
        .values_list("ndc", "administration__drug_id", "administration__drug__name")
        .distinct()
    )
    for ndc, drug_id, name in charted:
        (own.append(ndc) if drug_id == adm.drug_id else other.setdefault(ndc, name))
    return own, other


def read_vial_scan(adm: Administration, *, text: str) -> VialScan:
    """Read a scanned vial barcode for the Vials form of `adm` (its encounter
    and drug loaded). Writes nothing.

    Raises ChartingError (field "scan") when the scan cannot be read
    (`barcodes.BarcodeError`, the message says what was read), when the lot
    expired before the date of service, or when the NDC is another drug's.
    """
    try:
        product = read_product_barcode(text)
    except BarcodeError as exc:
        raise ChartingError(exc.message, field="scan") from exc
    try:
        refuse_expired_lot(product.expiry, date_of_service=adm.encounter.date_of_service)
    except ChartingError as exc:
        raise ChartingError(f"{exc.message} Read {shown(product.read)}; nothing was filled.", field="scan") from exc

    own, other = _known_ndcs(adm, product.ndc10)
    ndc = resolve_ndc(product.ndc10, own)
    if ndc is None and other:
        other_ndc = resolve_ndc(product.ndc10, other) or product.ndc10
        name = next(iter(other.values()))
        raise ChartingError(
            f"Wrong product? This barcode is NDC {other_ndc} of {name}, not {adm.drug.name}. Nothing was filled: check the drug and the vial.", field="scan"
        )

    warnings = []
    if ndc is None:
        ndc = product.ndc10
        warnings.append(
            f"The barcode gives the NDC digits {product.ndc10} but not where the hyphens go, and this NDC is not yet known for {adm.drug.name}: "
            "check the package is the right drug and type the NDC with its hyphens as printed (4-4-2, 5-3-2 or 5-4-1)."
        )
    values = {"ndc": ndc}
    parts = [f"NDC {ndc}"]
    if product.lot:
        values["lot"] = product.lot
        parts.append(f"lot {product.lot}")
    if product.expiry:
        values["expiry"] = product.expiry.isoformat()
        parts.append(f"expiry {product.expiry.isoformat()}")
    if product.serial:
        parts.append(f"serial {product.serial} (not charted)")
    missing = [what for what, value in (("lot", product.lot), ("expiry", product.expiry)) if not value]
    if missing:
        warnings.append(f"No {' or '.join(missing)} in this barcode: type {'it' if len(missing) == 1 else 'them'} from the vial.")
    message = f"Read {shown(product.read)}: {', '.join(parts)}. Check against the vial, then save."
    return VialScan(product=product, values=values, message=message, warnings=warnings)


@transaction.atomic
def check_wristband(encounter: Encounter, *, text: str, actor: Any) -> PatientScan:
    """Check a scanned wristband against `encounter`'s patient and record the
    result (a PatientScan row, and the request's audit event: outcome failure
    on a mismatch). Returns the row; `.confirmed` says whether it matched.

    The same result by the same nurse within REPEAT_WINDOW returns the
    earlier row (a double Enter is one check). Raises ChartingError (field
    "wristband") when nothing readable was scanned, SignedEncounterError on
    a signed encounter. The scanned text is neither stored nor logged.
    """
    # The encounter row first, as every charting service locks it (signing
    # waits for the check; two checks of one chair serialise).
    encounter = Encounter.objects.select_for_update(of=("self",), no_key=True).select_related("clinic", "patient").get(pk=encounter.pk)
    if encounter.is_signed:
        raise signed_encounter_error(encounter)
    try:
        scanned = read_wristband(text)
    except BarcodeError as exc:
        raise ChartingError(exc.message, field="wristband") from exc
    result = PatientScanResult.CONFIRMED if same_mrn(scanned, encounter.patient.mrn) else PatientScanResult.MISMATCH
    now = timezone.now()
    recent = Q(scanned_at__gte=now - REPEAT_WINDOW, scanned_by=actor, result=result)
    earlier = encounter.patient_scans.filter(recent).order_by("-scanned_at", "-pk").first()
    if earlier is not None:
        return earlier
    scan = PatientScan.objects.create(encounter=encounter, result=result, scanned_by=actor, scanned_at=now)
    record(
        "charting.encounter.patient_confirmed" if scan.confirmed else "charting.encounter.wristband_mismatch",
        actor=actor,
        obj=encounter,
        patient_id=encounter.patient_id,
        detail={"patient_scan_id": scan.pk, "result": result},
        outcome=Outcome.SUCCESS if scan.confirmed else Outcome.FAILURE,
    )
    return scan
