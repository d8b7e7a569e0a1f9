"""Exports of final lines for billing: CSV and FHIR, from the web and from
``manage.py export_lines`` (the same functions).

Only lines of FINAL encounters are exported: the current decisions (accepted,
changed or added; deleted lines are not billed) on the suggestion that was
finalised. Every export is a disclosure (AUD-9): one ExportLog row with the
parameters and the encounter ids, and one audit row per encounter included,
written before any line is produced.

FHIR version: the `fhir.resources` package (8.x, pydantic 2) builds FHIR R5 by
default; its `fhir.resources.R4B` subpackage holds the R4B (4.3.0) models. R4B
is the technical correction of R4 (4.0.1) and its ChargeItem is the same
resource as R4's (same elements and cardinalities: status, code, subject,
context, occurrence[x], quantity, product[x]...), whereas R5 reshaped it
(product[x] became `product` CodeableReference). So the Bundle is built and
validated with the R4B models and is what an R4 billing system reads.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, QuerySet
from fhir.resources.R4B.bundle import Bundle

from audit.services import record
from charting.models import Clinic, Setting

from .models import ExportFormat, ExportLog, FinalLine, ReviewStatus

# CMS place-of-service codes of the encounter's setting.
PLACE_OF_SERVICE = {Setting.OFFICE: "11", Setting.FACILITY: "22"}  # 22: on-campus outpatient hospital

CSV_COLUMNS = (
    "encounter",
    "mrn",
    "date_of_service",
    "place_of_service",
    "code",
    "modifiers",
    "units",
    "ndc_11",
    "n4_quantity",
    "n4_unit_qualifier",
)

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
HCPCS_SYSTEM = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
NDC_SYSTEM = "http://hl7.org/fhir/sid/ndc"
POS_SYSTEM = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
# Our own extensions (no R4 ChargeItem element carries a claim line's
# modifiers or the NDC quantity of the 837 N4 segment).
MODIFIER_EXTENSION = "https://chairside.example/fhir/StructureDefinition/procedure-modifier"
N4_QUANTITY_EXTENSION = "https://chairside.example/fhir/StructureDefinition/ndc-quantity"
POS_EXTENSION = "https://chairside.example/fhir/StructureDefinition/place-of-service"
MRN_SYSTEM = "urn:chairside:mrn"


class ExportError(Exception):
    """Export parameters that cannot be used; the message is for the user."""


def final_lines(*, date_from: dt.date, date_to: dt.date, clinics: Iterable[Clinic]) -> QuerySet[FinalLine]:
    """The billed final lines of final encounters of `clinics` with a date of
    service in [date_from, date_to], in encounter then line order, with the
    encounter, patient and clinic joined (one query)."""
    return (
        FinalLine.objects.billed()
        .filter(
            review__status=ReviewStatus.FINAL,
            suggestion=F("review__finalised_suggestion"),
            review__encounter__clinic__in=list(clinics),
            review__encounter__date_of_service__gte=date_from,
            review__encounter__date_of_service__lte=date_to,
        )
        .select_related("review__encounter__patient", "review__encounter__clinic")
        .order_by("review__encounter__date_of_service", "review__encounter__pk", "position", "pk")
    )


@dataclass(frozen=True, slots=True)
class Export:
    """A logged export: `lines` are the final lines to write (only of the logged encounters)."""

    log: ExportLog
    lines: QuerySet[FinalLine]


@transaction.atomic
def start_export(*, date_from: dt.date, date_to: dt.date, clinics: Iterable[Clinic], format: str, actor: Any, source: str) -> Export:
    """Log an export (ExportLog + one `coding.lines.exported` audit row per
    encounter) and return the lines to write. `clinics` are the ones the
    caller may export (the views pass the coder's own). Raises ExportError
    for an unknown format or dates out of order."""
    if format not in ExportFormat.values:
        raise ExportError(f"Unknown format {format!r}: csv or fhir.")
    if date_to < date_from:
        raise ExportError(f"The end date {date_to.isoformat()} is before the start date {date_from.isoformat()}.")
    clinics = list(clinics)
    lines = final_lines(date_from=date_from, date_to=date_to, clinics=clinics)
    encounters = list(lines.order_by().values_list("review__encounter_id", "review__encounter__patient_id").distinct())
    encounter_ids = sorted(str(encounter_id) for encounter_id, _ in encounters)
    log = ExportLog.objects.create(
        requested_by=actor,
        source=source,
        format=format,
        date_from=date_from,
        date_to=date_to,
        clinic_ids=sorted(c.pk for c in clinics),
        encounter_ids=encounter_ids,
        line_count=lines.count(),
    )
    for encounter_id, patient_id in encounters:
        record(
            "coding.lines.exported",
            actor=actor,
            obj=log,
            patient_id=patient_id,
            detail={"encounter": str(encounter_id), "format": format, "export": log.pk, "description": f"final lines {date_from.isoformat()}..{date_to.isoformat()} ({source})"},
        )
    # Only the encounters logged above: an encounter finalised between this and
    # the writing is not disclosed without its log row.
    return Export(log=log, lines=lines.filter(review__encounter_id__in=[encounter_id for encounter_id, _ in encounters]))


def _modifiers(line: FinalLine) -> str:
    return " ".join(line.modifiers)


def csv_rows(lines: Iterable[FinalLine]) -> Iterator[list[str]]:
    """The header, then one row per final line (see CSV_COLUMNS): NDC in 11
    digits, N4 quantity and its unit qualifier (UN, ML, GR, F2, ME; R49) empty
    when the line has none; modifiers space-separated."""
    yield list(CSV_COLUMNS)
    for line in lines:
        encounter = line.review.encounter
        yield [
            str(encounter.pk),
            encounter.patient.mrn,
            (line.date_of_service or encounter.date_of_service).isoformat(),
            PLACE_OF_SERVICE.get(encounter.setting, ""),
            line.code,
            _modifiers(line),
            str(line.units),
            line.ndc,
            f"{line.ndc_quantity.normalize():f}" if line.ndc_quantity is not None else "",
            line.ndc_unit,
        ]


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_chunks(lines: QuerySet[FinalLine]) -> Iterator[str]:
    """CSV text row by row (for a streamed response), reading lines in chunks."""
    writer = csv.writer(_Echo())
    for row in csv_rows(lines.iterator(chunk_size=500)):
        yield writer.writerow(row)


def write_csv(lines: QuerySet[FinalLine], out: io.TextIOBase) -> None:
    writer = csv.writer(out)
    for row in csv_rows(lines.iterator(chunk_size=500)):
        writer.writerow(row)


def _charge_item(line: FinalLine) -> dict[str, Any]:
    encounter = line.review.encounter
    system = CPT_SYSTEM if line.code[0].isdigit() else HCPCS_SYSTEM
    item: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "id": f"final-line-{line.pk}",
        "identifier": [{"system": "urn:chairside:final-line", "value": str(line.pk)}],
        "status": "billable",
        "code": {"coding": [{"system": system, "code": line.code}]},
        "subject": {"reference": f"Patient/{encounter.patient_id}", "identifier": {"system": f"{MRN_SYSTEM}:{encounter.clinic_id}", "value": encounter.patient.mrn}},
        "context": {"reference": f"Encounter/{encounter.pk}"},
        "occurrenceDateTime": (line.date_of_service or encounter.date_of_service).isoformat(),
        "quantity": {"value": line.units},
        "extension": [{"url": POS_EXTENSION, "valueCoding": {"system": POS_SYSTEM, "code": PLACE_OF_SERVICE.get(encounter.setting, "")}}]
        + [{"url": MODIFIER_EXTENSION, "valueCoding": {"system": system, "code": m}} for m in line.modifiers],
    }
    if line.ndc:
        item["productCodeableConcept"] = {"coding": [{"system": NDC_SYSTEM, "code": line.ndc}]}
        if line.ndc_quantity is not None:
            item["extension"].append({"url": N4_QUANTITY_EXTENSION, "valueQuantity": {"value": float(line.ndc_quantity), "unit": line.ndc_unit, "code": line.ndc_unit}})
    return item


def fhir_bundle(lines: Iterable[FinalLine], *, log: ExportLog) -> Bundle:
    """A FHIR R4 (R4B models) Bundle of type collection with one ChargeItem per
    final line, each referencing its Encounter and Patient by id (the Patient
    reference also carries the MRN). Built and validated by fhir.resources:
    raises pydantic.ValidationError if a resource does not conform."""
    entries = [{"fullUrl": f"urn:chairside:final-line:{line.pk}", "resource": _charge_item(line)} for line in lines]
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "id": f"export-{log.pk}",
            "identifier": {"system": "urn:chairside:export", "value": str(log.pk)},
            "type": "collection",
            "timestamp": log.created_at.isoformat(),
            # FHIR forbids empty arrays: no lines, no "entry".
            **({"entry": entries} if entries else {}),
        }
    )


def fhir_json(lines: QuerySet[FinalLine], *, log: ExportLog) -> str:
    return fhir_bundle(lines.iterator(chunk_size=500), log=log).model_dump_json(indent=1)
