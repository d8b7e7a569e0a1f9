"""`python manage.py import_scenarios FILE...`: scenarios as charted, signed encounters.

Each scenario becomes an invented patient, an encounter (external_id = scenario
id), its access sites, administrations (with their containers, waste, NDC and
own billing unit), pauses and other services, in one demo clinic per time zone. Idempotent by scenario id: a scenario already
imported is skipped, never updated. Files are validated with the engine's own
scenario parser before anything is written; a bad file stops the command with
exit status 2 and a message naming the file and the field.

Signing goes through `charting.services.sign_encounter` (the nurse's path, which
also enqueues the coding task after commit), then the encounter is coded at
once with `coding.services.suggest_for_encounter`, so the demo needs no worker.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from audit.services import record
from charting.models import (
    NDC_PATTERN,
    AccessSite,
    Administration,
    Clinic,
    ContainerType,
    Drug,
    Encounter,
    OtherService,
    Patient,
    Pause,
    Purpose,
    VialUse,
)
from coding.documentation import billing_unit
from coding.engine import Administration as DocAdministration
from coding.engine import EncounterDoc, ScenarioError, load_scenario_file
from coding.services import suggest_for_encounter

IMPORT_USERNAME = "scenario-import"
UNVERIFIED = "added by import_scenarios; unverified"

# Invented names; picked deterministically from the scenario id.
GIVEN_NAMES = (
    "Avery",
    "Beatrix",
    "Cormac",
    "Delphine",
    "Emeric",
    "Florence",
    "Gideon",
    "Hester",
    "Ignatius",
    "Juniper",
    "Kasimir",
    "Lavinia",
    "Mortimer",
    "Odalys",
    "Percival",
    "Rosalind",
)
FAMILY_NAMES = (
    "Ashcombe",
    "Brackley",
    "Coldwell",
    "Dunmore",
    "Elsworth",
    "Fairlie",
    "Garside",
    "Holloway",
    "Inchbald",
    "Jessop",
    "Kettering",
    "Lindqvist",
    "Marchbank",
    "Northcote",
    "Oakhurst",
    "Pembury",
)


def demo_clinic_name(time_zone: str) -> str:
    return f"Chairside Demo Clinic ({time_zone})"


def patient_identity(scenario_id: str) -> tuple[str, str, str]:
    """(MRN, given name, family name), invented and stable for a scenario id."""
    digest = hashlib.sha256(scenario_id.encode()).hexdigest()
    return (
        f"SCN-{digest[:8].upper()}",
        GIVEN_NAMES[int(digest[8:10], 16) % len(GIVEN_NAMES)],
        FAMILY_NAMES[int(digest[10:12], 16) % len(FAMILY_NAMES)],
    )


class Command(BaseCommand):
    help = "Store scenario files as patients, signed encounters, sites and administrations (idempotent by scenario id)."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument(
            "--no-sign",
            dest="sign",
            action="store_false",
            help="Leave the encounters as drafts (not signed, not coded).",
        )

    def handle(self, *args: Any, files: list[str], sign: bool, **options: Any) -> None:
        # Validate every file before writing anything.
        scenarios: list[EncounterDoc] = []
        for name in files:
            try:
                scenarios.extend(doc for _raw, doc in load_scenario_file(name))
            except ScenarioError as exc:
                raise CommandError(str(exc), returncode=2) from None
        for doc in scenarios:
            self._check_chartable(doc)

        actor = self._import_user()
        for doc in scenarios:
            existing = Encounter.objects.filter(external_id=doc.id).first()
            if existing is not None:
                self.stdout.write(f"skipped {doc.id}: already imported as encounter {existing.pk}")
                continue
            encounter = store_scenario(doc)
            message = f"imported {doc.id}: encounter {encounter.pk}, {len(doc.administrations)} administrations"
            if sign:
                refused = sign_imported(encounter, actor=actor)
                if refused:
                    message += f"; signed as documented although: {refused}"
                suggestion = suggest_for_encounter(encounter.pk)
                lines = ", ".join(
                    f"{line.code}x{line.units}{''.join('-' + m for m in line.modifiers)}"
                    for line in suggestion.lines.all()
                )
                message += f"; signed and coded: {lines or 'no lines'}"
            self.stdout.write(message)

    def _check_chartable(self, doc: EncounterDoc) -> None:
        """Values the engine accepts but the chart cannot hold yet: fail before writing."""
        for i, adm in enumerate(doc.administrations):
            if adm.purpose not in Purpose.values:
                raise CommandError(
                    f"{doc.id}: administrations[{i}].purpose: {adm.purpose!r} cannot be charted yet", returncode=2
                )
            for field, value, limit in (
                ("id", adm.id, 20),
                ("bag", adm.bag or "", 20),
                ("encounter", adm.encounter, 10),
            ):
                if len(value) > limit:
                    raise CommandError(
                        f"{doc.id}: administrations[{i}].{field}: longer than {limit} characters", returncode=2
                    )
            problems = _vial_problems(adm)
            if problems:
                raise CommandError(f"{doc.id}: administrations[{i}].{problems[0]}", returncode=2)
        for i, site in enumerate(doc.access_sites):
            if len(site.id) > 20:
                raise CommandError(f"{doc.id}: access_sites[{i}].id: longer than 20 characters", returncode=2)

    def _import_user(self):
        """The (inactive) account recorded as the signer of imported encounters."""
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=IMPORT_USERNAME, defaults={"first_name": "Scenario", "last_name": "import", "is_active": False}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user


def _fits(value: Decimal, digits: int) -> bool:
    """`value` fits a numeric(digits, 3) column without rounding."""
    return value == value.quantize(Decimal("0.001")) and value < Decimal(10) ** (digits - 3)


def _vial_problems(adm: DocAdministration) -> list[str]:
    """Why the containers, waste or NDC of `adm` cannot be charted as they are
    ("field: reason"); the chart's constraints would refuse them."""
    problems = []
    container = adm.container
    if container is not None:
        if container.size is not None and not (container.size.value > 0 and _fits(container.size.value, 12)):
            problems.append("container.size: must be positive, below 10^9, with at most 3 decimals")
        if container.count > 32767:
            problems.append("container.count: more than 32767 containers")
    if adm.wasted is not None:
        if container is None or container.type != ContainerType.SINGLE_DOSE:
            problems.append("wasted: waste is charted only for single-dose containers")
        elif not _fits(adm.wasted.value, 12):
            problems.append("wasted: below 10^9, with at most 3 decimals")
    if adm.ndc is not None:
        if container is None:
            problems.append("ndc: an NDC is charted with the containers it is printed on")
        elif not re.fullmatch(NDC_PATTERN, adm.ndc.strip()):
            problems.append(f"ndc: {adm.ndc!r} is not 4-4-2, 5-3-2 or 5-4-1 with hyphens, or 11 digits")
    if adm.hcpcs_unit is not None and not (adm.hcpcs_unit.value > 0 and _fits(adm.hcpcs_unit.value, 10)):
        problems.append("hcpcs_unit: must be positive, below 10^7, with at most 3 decimals")
    return problems


def _drug_for(adm: DocAdministration) -> tuple[Drug, str]:
    """The catalog drug for a scenario administration and the HCPCS override.

    Matched by name, then by HCPCS; otherwise a new catalog entry marked
    unverified. The override is the scenario's HCPCS when it differs from the
    catalog's. (A scenario HCPCS of null on a catalog drug that has one cannot
    be charted: the chart then bills the catalog's code.)
    """
    drug = Drug.objects.filter(name__iexact=adm.drug).first()
    if drug is None and adm.hcpcs:
        drug = Drug.objects.filter(hcpcs=adm.hcpcs).order_by("-is_verified", "name").first()
    if drug is None:
        unit = adm.hcpcs_unit
        drug = Drug.objects.create(
            name=adm.drug,
            hcpcs=adm.hcpcs or "",
            billing_unit_value=unit.value if unit else None,
            billing_unit_unit=unit.unit if unit else "",
            admin_family=adm.admin_class,
            verification_status=UNVERIFIED,
        )
    override = adm.hcpcs if adm.hcpcs and adm.hcpcs != drug.hcpcs else ""
    return drug, override


@transaction.atomic
def store_scenario(doc: EncounterDoc) -> Encounter:
    """Chart one scenario as a draft encounter; returns it."""
    clinic, _ = Clinic.objects.get_or_create(name=demo_clinic_name(doc.timezone), defaults={"time_zone": doc.timezone})
    mrn, given, family = patient_identity(doc.id)
    patient, _ = Patient.objects.get_or_create(
        clinic=clinic, mrn=mrn, defaults={"given_name": given, "family_name": family}
    )
    encounter = Encounter.objects.create(
        patient=patient,
        clinic=clinic,
        setting=doc.setting,
        payer=doc.payer,
        date_of_service=doc.date_of_service,
        external_id=doc.id,
    )
    sites = {
        site.id: AccessSite.objects.create(
            encounter=encounter,
            label=site.id,
            kind=site.kind,
            location=site.location,
            separate_site_medically_required=site.separate_site_medically_required,
            reason=site.reason,
        )
        for site in doc.access_sites
    }
    rows: dict[str, Administration] = {}
    for adm in doc.administrations:
        drug, override = _drug_for(adm)
        row = Administration(
            encounter=encounter,
            label=adm.id,
            drug=drug,
            admin_class=adm.admin_class,
            route=adm.route,
            access_site=sites[adm.access_site] if adm.access_site else None,
            # A dose of 0 (a bag resumed after a restart, nothing new hung) cannot
            # be charted (doses are positive): it is stored as "no dose charted".
            dose_value=adm.dose.value if adm.dose and adm.dose.value > 0 else None,
            dose_unit=adm.dose.unit if adm.dose and adm.dose.value > 0 else "",
            purpose=adm.purpose,
            started_at=adm.start,
            stopped_at=adm.stop,
            bag=adm.bag or "",
            continuously_present=adm.continuously_present,
            visit=adm.encounter,
            hcpcs_override=override,
        )
        _chart_vials(row, adm)
        Pause.objects.bulk_create(
            Pause(administration=row, paused_at=start, resumed_at=end) for start, end in adm.pauses
        )
        rows[adm.id] = row
    for adm in doc.administrations:
        if adm.concurrent_with:
            row = rows[adm.id]
            row.concurrent_with = rows[adm.concurrent_with]
            row.save(update_fields=["concurrent_with"])
    OtherService.objects.bulk_create(
        OtherService(
            encounter=encounter,
            kind=svc.kind,
            detail=svc.detail,
            level=svc.level or "",
            significant_separately_identifiable=svc.significant_separately_identifiable,
        )
        for svc in doc.other_services
    )
    record("coding.scenario.imported", actor=None, obj=encounter, patient_id=patient.pk, detail={"scenario": doc.id})
    return encounter


def _chart_vials(row: Administration, adm: DocAdministration) -> None:
    """Save `row` with the scenario's own billing unit (when the chart would
    otherwise use another), waste, container kind and one VialUse row for its
    `container` (size, count and NDC as the scenario gives them, no lot)."""
    if adm.hcpcs_unit is not None and adm.hcpcs_unit != billing_unit(row):
        row.hcpcs_unit_value, row.hcpcs_unit_unit = adm.hcpcs_unit.value, adm.hcpcs_unit.unit
    if adm.container is not None:
        row.container_type = adm.container.type
    if adm.wasted is not None:
        # Documented where the scenario was charted; confirmed as of the import.
        row.wasted_value, row.wasted_unit, row.waste_confirmed_at = adm.wasted.value, adm.wasted.unit, timezone.now()
    row.save()
    if adm.container is not None:
        size = adm.container.size
        VialUse.objects.create(
            administration=row,
            ndc=(adm.ndc or "").strip(),
            size_value=size.value if size else None,
            size_unit=size.unit if size else "",
            count=adm.container.count,
        )


def sign_imported(encounter: Encounter, *, actor: Any) -> str:
    """Sign through the nurse's service (it also enqueues coding after commit).

    Returns "" or, when the nurse's precondition refused it, why the encounter
    was signed as documented anyway: a scenario is a finished encounter
    charted elsewhere, gaps included (a drug without a stop time is the whole
    point of some of them). The live chart must not be signed with a drug
    running; an import records the gap and lets the engine warn about it.
    """
    from charting.services import ChartingError, sign_encounter

    try:
        sign_encounter(encounter, actor=actor)
        return ""
    except ChartingError as exc:
        with transaction.atomic():
            Encounter.objects.filter(pk=encounter.pk, status=Encounter.Status.DRAFT).update(
                status=Encounter.Status.SIGNED, signed_by=actor, signed_at=timezone.now()
            )
            record(
                "coding.scenario.signed_as_documented",
                actor=actor,
                obj=encounter,
                patient_id=encounter.patient_id,
                detail={"scenario": encounter.external_id, "refused_because": str(exc)},
            )
        return str(exc)
