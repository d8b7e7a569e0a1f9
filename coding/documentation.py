"""From the chart (ORM rows) to the engine's input (`EncounterDoc`) and back to JSON.

`encounter_doc` is the only bridge between the database and the pure engine
(DESIGN §3 step 2). It reads everything an encounter documents in a constant
number of queries, whatever the number of administrations:

    1. the clinic (skipped when `encounter.clinic` is already loaded)
    2. access sites
    3. administrations JOIN drug
    4. pauses of those administrations
    5. vials (VialUse) of those administrations
    6. other services

`doc_to_json` writes a doc in the shape of a scenario (scenarios/README.md), so
a stored `Suggestion.engine_input` can be replayed with
`coding.engine.scenario.parse_scenario` and `evaluate`.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, prefetch_related_objects

from charting.models import Administration as AdministrationRow
from charting.models import Encounter
from coding.engine import (
    AccessSite,
    Administration,
    Container,
    EncounterDoc,
    OtherService,
    Quantity,
)
from coding.engine.timing import running_minutes


def _quantity(value: Decimal | None, unit: str) -> Quantity | None:
    if value is None or not unit:
        return None
    # 712.500 (numeric(12,3)) -> 712.5, 1000.000 -> 1000, as the scenarios write them.
    value = value.quantize(Decimal(1)) if value == value.to_integral() else value.normalize()
    return Quantity(value=value, unit=unit)


def billing_unit(adm: AdministrationRow) -> Quantity | None:
    """The billing unit of the code this administration is billed under.

    A unit charted on the administration (`hcpcs_unit_value`, e.g. an imported
    scenario's own) comes first. Otherwise the catalog's unit, which belongs to
    the catalog's code: when the nurse charted a different HCPCS
    (`hcpcs_override`, e.g. a 1000 mL saline code on a drug whose catalog code
    is the 250 mL one) we don't know its unit and leave it to the engine.
    """
    if adm.hcpcs_unit_value is not None:
        return _quantity(adm.hcpcs_unit_value, adm.hcpcs_unit_unit)
    drug = adm.drug
    if adm.hcpcs_override and adm.hcpcs_override != drug.hcpcs:
        return None
    return _quantity(drug.billing_unit_value, drug.billing_unit_unit)


def _container(adm: AdministrationRow) -> Container | None:
    """The opened containers as the engine sees them: one kind per
    administration, the size when every VialUse row has the same one (None
    when they differ or a size is not charted), the count summed."""
    vials = adm.vial_uses.all()
    if not adm.container_type or not vials:
        return None
    sizes = {_quantity(v.size_value, v.size_unit) for v in vials}
    return Container(type=adm.container_type, size=sizes.pop() if len(sizes) == 1 else None, count=sum(v.count for v in vials))


def _administration(adm: AdministrationRow, *, vials: bool = True, charted: set | None = None) -> Administration:
    """One charted administration as the engine's input; `vials=False` leaves
    out containers, waste and NDC (and their query) where only time matters;
    `charted`: the ids of the encounter's administrations not struck (a
    "concurrent with" outside it is dropped)."""
    concurrent = adm.concurrent_with_id if adm.concurrent_with_id is not None and (charted is None or adm.concurrent_with_id in charted) else None
    return Administration(
        id=str(adm.pk),
        drug=adm.drug.name,
        hcpcs=adm.hcpcs_override or adm.drug.hcpcs or None,
        admin_class=adm.admin_class,
        route=adm.route,
        access_site=str(adm.access_site_id) if adm.access_site_id is not None else None,
        dose=_quantity(adm.dose_value, adm.dose_unit),
        start=adm.started_at,
        stop=adm.stopped_at,
        pauses=tuple((p.paused_at, p.resumed_at) for p in adm.pauses.all()),
        purpose=adm.purpose,
        concurrent_with=str(concurrent) if concurrent is not None else None,
        bag=adm.bag or None,
        continuously_present=adm.continuously_present,
        encounter=adm.visit or "1",
        hcpcs_unit=billing_unit(adm),
        container=_container(adm) if vials else None,
        wasted=_quantity(adm.wasted_value, adm.wasted_unit),
        # The engine takes one NDC per administration: the first charted (rows
        # are ordered by when they were recorded).
        ndc=next((v.ndc for v in adm.vial_uses.all() if v.ndc), None) if vials else None,
    )


def administration_minutes(adm: AdministrationRow) -> int | None:
    """Drip-to-drip minutes of one charted administration as the engine counts
    them (stop - start - pauses, R15/R17), or None without a start or stop.
    Prefetch `pauses` and select `drug` when calling it for many rows."""
    return running_minutes(_administration(adm, vials=False))


def encounter_doc(encounter: Encounter) -> EncounterDoc:
    """Build the engine's input for `encounter` in a constant number of queries.

    Administration ids are `str(Administration.pk)`, site ids `str(AccessSite.pk)`;
    `Administration.visit` becomes the engine's `encounter` (R13). Times stay
    aware UTC datetimes; the engine takes local dates in `clinic.time_zone`.
    Administrations struck as entered in error (REC-4) are not documentation
    of anything given: they are left out, and a "concurrent with" pointing at
    one is dropped (the engine would look for an administration that is not
    there).
    """
    prefetch_related_objects(
        [encounter],
        "access_sites",
        Prefetch(
            "administrations",
            queryset=AdministrationRow.objects.charted().select_related("drug").prefetch_related("pauses", "vial_uses"),
        ),
        "other_services",
    )
    # The prefetch above is skipped when the caller's encounter came with its
    # administrations (e.g. Encounter.objects.for_chart()): filter here too.
    administrations = [adm for adm in encounter.administrations.all() if adm.entered_in_error_at is None]
    charted = {adm.pk for adm in administrations}
    return EncounterDoc(
        id=str(encounter.pk),
        setting=encounter.setting,
        date_of_service=encounter.date_of_service,
        timezone=encounter.clinic.time_zone,
        access_sites=tuple(
            AccessSite(
                id=str(site.pk),
                kind=site.kind,
                location=site.location,
                separate_site_medically_required=site.separate_site_medically_required,
                reason=site.reason,
            )
            for site in encounter.access_sites.all()
        ),
        administrations=tuple(_administration(adm, charted=charted) for adm in administrations),
        other_services=tuple(
            OtherService(
                kind=svc.kind,
                detail=svc.detail,
                level=svc.level or None,
                significant_separately_identifiable=svc.significant_separately_identifiable,
            )
            for svc in encounter.other_services.all()
        ),
        payer=encounter.payer,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        # Numbers, as in the scenario files; doses have at most 3 decimals.
        return int(value) if value == value.to_integral() else float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def doc_to_json(doc: EncounterDoc) -> dict[str, Any]:
    """`doc` as JSON-ready data in the scenario shape (replayable with parse_scenario)."""
    return _jsonable(doc)


def to_json(value: Any) -> Any:
    """Any engine value (Line, NotBilled, Warning, ...) as JSON-ready data."""
    return _jsonable(value)
