"""Small builders for engine tests: documents in a few keystrokes.

Times are minutes after 09:00 local (America/New_York) on 2025-06-10 unless an
explicit aware datetime is given.
"""

from __future__ import annotations

import collections
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from coding.engine import (
    AccessSite,
    Administration,
    CodingResult,
    EncounterDoc,
    OtherService,
    Quantity,
)

TZ = ZoneInfo("America/New_York")
DAY = date(2025, 6, 10)
BASE = datetime(2025, 6, 10, 9, 0, tzinfo=TZ)


def at(minute: float) -> datetime:
    return BASE + timedelta(minutes=minute)


def adm(
    id: str,
    cls: str = "therapeutic",
    route: str = "iv_infusion",
    start: float | datetime | None = 0,
    stop: float | datetime | None = 60,
    *,
    drug: str | None = None,
    site: str | None = "A",
    **kw: object,
) -> Administration:
    s = at(start) if isinstance(start, (int, float)) else start
    e = at(stop) if isinstance(stop, (int, float)) else stop
    if route in ("subcutaneous", "intramuscular", "intra_arterial"):
        site = None
    if "purpose" not in kw and cls == "hydration":
        kw["purpose"] = "hydration_medically_necessary"
    return Administration(
        id=id,
        drug=drug or f"drug-{id}",
        hcpcs=None,
        admin_class=cls,
        route=route,
        access_site=site,
        dose=Quantity(Decimal(1), "mg"),
        start=s,
        stop=e,
        **kw,  # type: ignore[arg-type]
    )


def doc(
    *admins: Administration,
    setting: str = "office",
    sites: tuple[AccessSite, ...] | None = None,
    other: tuple[OtherService, ...] = (),
    tz: str = "America/New_York",
    day: date = DAY,
) -> EncounterDoc:
    if sites is None:
        sites = (AccessSite("A", "peripheral_iv"), AccessSite("B", "peripheral_iv"))
    return EncounterDoc(
        id="t",
        setting=setting,
        date_of_service=day,
        timezone=tz,
        access_sites=sites,
        administrations=admins,
        other_services=other,
    )


def admin_lines(result: CodingResult) -> collections.Counter[tuple[str, int, tuple[str, ...]]]:
    """Multiset of (code, units, sorted modifiers) without drug (J/Q) lines."""
    return collections.Counter(
        (l.code, l.units, tuple(sorted(l.modifiers))) for l in result.lines if l.code[:1] not in ("J", "Q")
    )


def as_set(
    *lines: tuple[str, int] | tuple[str, int, tuple[str, ...]],
) -> collections.Counter[tuple[str, int, tuple[str, ...]]]:
    return collections.Counter((l[0], l[1], tuple(sorted(l[2])) if len(l) > 2 else ()) for l in lines)  # type: ignore[misc]
