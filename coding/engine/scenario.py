"""Scenario files (scenarios/README.md) to ``EncounterDoc`` and results to JSON.

``parse_scenario`` validates strictly and raises ``ScenarioError`` naming the
dotted field path (``administrations[1].start``); ``load_scenario_file`` adds
the file name and the scenario's index (``[3].administrations[1].start``).
``result_to_json`` gives the DESIGN §6 shape.  No Django; the only I/O is
reading the file in ``load_scenario_file``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .types import (
    ADMIN_CLASSES,
    CONTAINER_TYPES,
    DOSE_UNITS,
    OTHER_SERVICE_KINDS,
    PURPOSES,
    ROUTES,
    SETTINGS,
    SITE_KINDS,
    AccessSite,
    Administration,
    CodingResult,
    Container,
    EncounterDoc,
    OtherService,
    Quantity,
)


class ScenarioError(ValueError):
    """Bad scenario input: ``file`` (may be ""), dotted ``field`` path, ``message``."""

    def __init__(self, file: str, field: str, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{field or '<root>'}: {message}")


_MISSING = object()


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, field: str, message: str) -> ScenarioError:
        return ScenarioError(
            "", self.path + field if field.startswith("[") or not self.path else f"{self.path}.{field}", message
        )

    def get(self, obj: Mapping[str, Any], key: str, default: Any = _MISSING) -> Any:
        if key not in obj:
            if default is _MISSING:
                raise self.fail(key, "required field is missing")
            return default
        return obj[key]

    def string(self, obj: Mapping[str, Any], key: str, default: Any = _MISSING, *, nullable: bool = False) -> Any:
        value = self.get(obj, key, default)
        if value is None and (nullable or default is None):
            return None
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or (not value.strip() and not nullable):
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def choice(self, obj: Mapping[str, Any], key: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self.get(obj, key, default)
        if value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    def boolean(self, obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
        value = self.get(obj, key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def moment(self, obj: Mapping[str, Any], key: str, *, field: str | None = None) -> datetime | None:
        value = obj.get(key) if field is None else obj
        name = key if field is None else field
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(name, f"expected an ISO 8601 datetime with offset, got {value!r}")
        # RFC 9557 zone suffix ("...-04:00[America/New_York]"): the offset
        # decides the instant (R24); a zone alone places a wall-clock time.
        text, zone_name = value, None
        if value.endswith("]") and "[" in value:
            text, zone_name = value[:-1].split("[", 1)
        try:
            parsed = datetime.fromisoformat(text)
            if zone_name is not None and parsed.tzinfo is None:
                # Fixed offset from here on (an ambiguous fall-back wall time
                # takes its first occurrence), so comparisons are absolute.
                local = parsed.replace(tzinfo=ZoneInfo(zone_name.lstrip("!")))
                parsed = datetime.fromisoformat(local.isoformat())
        except (ValueError, KeyError):
            raise self.fail(name, f"{value!r} is not a valid ISO 8601 datetime") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise self.fail(name, f"{value!r} has no UTC offset (naive datetimes are not accepted)")
        return parsed

    def quantity(self, obj: Mapping[str, Any], key: str, units: tuple[str, ...] = DOSE_UNITS) -> Quantity | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected {{value, unit}}, got {value!r}")
        sub = _Reader(f"{self.path}.{key}" if self.path else key)
        raw = sub.get(value, "value")
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise sub.fail("value", f"expected a number, got {raw!r}")
        try:
            number = Decimal(str(raw))
        except InvalidOperation:
            raise sub.fail("value", f"expected a number, got {raw!r}") from None
        if not number.is_finite() or number < 0:
            raise sub.fail("value", f"expected a non-negative number, got {raw!r}")
        unit = sub.choice(value, "unit", units)
        return Quantity(number, unit)


def _items(r: _Reader, obj: Mapping[str, Any], key: str, *, required: bool = True) -> list[Any]:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required and value is _MISSING:
            raise r.fail(key, "required field is missing")
        return []
    if not isinstance(value, list):
        raise r.fail(key, f"expected a list, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise r.fail(f"{key}[{i}]", "expected an object")
    return value


def parse_scenario(obj: dict[str, Any], *, path: str = "") -> EncounterDoc:
    """One scenario object (scenarios/README.md) to an ``EncounterDoc``.

    Raises ``ScenarioError`` (``file`` empty) naming the dotted field for a
    missing field, a bad enum value, a naive or invalid datetime, a stop before
    its start, an unknown access site or ``concurrent_with`` target, or
    duplicate ids.  ``path`` prefixes field names (e.g. "[3]").

    Documentation gaps are not input errors: ``start`` and ``stop`` are each
    nullable (a charted stop without a start is coded as untimed, R16/D10),
    and a pause reaching outside its run is clipped to the run (R17).
    """
    r = _Reader(path)
    if not isinstance(obj, Mapping):
        raise ScenarioError("", path, "expected a scenario object")
    sid = r.string(obj, "id")
    setting = r.choice(obj, "setting", SETTINGS)
    raw_date = r.get(obj, "date_of_service")
    try:
        dos = date.fromisoformat(raw_date) if isinstance(raw_date, str) else None
    except ValueError:
        dos = None
    if dos is None:
        raise r.fail("date_of_service", f"{raw_date!r} is not a YYYY-MM-DD date")
    tz = r.string(obj, "timezone")
    try:
        ZoneInfo(tz)
    except Exception:
        raise r.fail("timezone", f"{tz!r} is not a known IANA time zone") from None
    payer = r.string(obj, "payer", "medicare")

    sites: list[AccessSite] = []
    for i, raw in enumerate(_items(r, obj, "access_sites")):
        sr = _Reader(f"{path}.access_sites[{i}]" if path else f"access_sites[{i}]")
        sites.append(
            AccessSite(
                id=sr.string(raw, "id"),
                kind=sr.choice(raw, "kind", SITE_KINDS),
                location=sr.string(raw, "location", "") or "",
                separate_site_medically_required=sr.boolean(raw, "separate_site_medically_required"),
                reason=sr.string(raw, "reason", "") or "",
            )
        )
    site_ids = [s.id for s in sites]
    if len(set(site_ids)) != len(site_ids):
        raise r.fail("access_sites", "duplicate access site id")

    admins: list[Administration] = []
    raw_admins = _items(r, obj, "administrations")
    for i, raw in enumerate(raw_admins):
        ar = _Reader(f"{path}.administrations[{i}]" if path else f"administrations[{i}]")
        ar.get(raw, "start")  # the key is required; null means "not charted"
        start = ar.moment(raw, "start")
        stop = ar.moment(raw, "stop")
        if start is not None and stop is not None and stop < start:
            raise ar.fail("stop", f"stop {raw['stop']} is before start {raw['start']}")
        pauses: list[tuple[datetime, datetime | None]] = []
        raw_pauses = raw.get("pauses") or []
        if not isinstance(raw_pauses, list):
            raise ar.fail("pauses", "expected a list of [start, end] pairs")
        for j, pair in enumerate(raw_pauses):
            if not isinstance(pair, list) or len(pair) != 2:
                raise ar.fail(f"pauses[{j}]", "expected a [start, end] pair")
            ps = ar.moment(pair[0], "", field=f"pauses[{j}][0]")
            pe = ar.moment(pair[1], "", field=f"pauses[{j}][1]")
            if ps is None:
                raise ar.fail(f"pauses[{j}][0]", "pause start is required")
            if pe is not None and pe < ps:
                raise ar.fail(f"pauses[{j}][1]", "pause ends before it starts")
            pauses.append((ps, pe))
        route = ar.choice(raw, "route", ROUTES)
        site = ar.get(raw, "access_site")
        if site is not None and site not in site_ids:
            raise ar.fail("access_site", f"{site!r} is not an access site id ({', '.join(site_ids) or 'none defined'})")
        container = None
        if raw.get("container") is not None:
            cr = _Reader(f"{ar.path}.container")
            craw = raw["container"]
            if not isinstance(craw, Mapping):
                raise ar.fail("container", "expected an object")
            count = cr.get(craw, "count", 1)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise cr.fail("count", f"expected a positive integer, got {count!r}")
            container = Container(
                type=cr.choice(craw, "type", CONTAINER_TYPES), size=cr.quantity(craw, "size"), count=count
            )
        encounter = raw.get("encounter", "1")
        if isinstance(encounter, int) and not isinstance(encounter, bool):
            encounter = str(encounter)
        if not isinstance(encounter, str) or not encounter:
            raise ar.fail("encounter", f"expected a string, got {encounter!r}")
        admins.append(
            Administration(
                id=str(ar.string(raw, "id")),
                drug=ar.string(raw, "drug"),
                hcpcs=(ar.string(raw, "hcpcs", None, nullable=True) or None),
                admin_class=ar.choice(raw, "admin_class", ADMIN_CLASSES),
                route=route,
                access_site=site,
                dose=ar.quantity(raw, "dose"),
                start=start,
                stop=stop,
                pauses=tuple(pauses),
                purpose=ar.choice(raw, "purpose", PURPOSES, "treatment"),
                concurrent_with=ar.string(raw, "concurrent_with", None, nullable=True),
                bag=ar.string(raw, "bag", None, nullable=True),
                continuously_present=ar.boolean(raw, "continuously_present"),
                encounter=encounter,
                container=container,
                wasted=ar.quantity(raw, "wasted"),
                ndc=ar.string(raw, "ndc", None, nullable=True),
                hcpcs_unit=ar.quantity(raw, "hcpcs_unit"),
                pump=ar.boolean(raw, "pump"),
            )
        )
    ids = [a.id for a in admins]
    for i, a in enumerate(admins):
        if a.id in ids[:i]:
            raise r.fail(f"administrations[{i}].id", f"duplicate administration id {a.id!r}")
        if a.concurrent_with is not None and a.concurrent_with not in ids:
            raise r.fail(f"administrations[{i}].concurrent_with", f"{a.concurrent_with!r} is not an administration id")

    others: list[OtherService] = []
    for i, raw in enumerate(_items(r, obj, "other_services", required=False)):
        orr = _Reader(f"{path}.other_services[{i}]" if path else f"other_services[{i}]")
        others.append(
            OtherService(
                kind=orr.choice(raw, "kind", OTHER_SERVICE_KINDS),
                detail=orr.string(raw, "detail", "") or "",
                level=orr.string(raw, "level", None, nullable=True),
                significant_separately_identifiable=orr.boolean(raw, "significant_separately_identifiable"),
            )
        )
    return EncounterDoc(
        id=sid,
        setting=setting,
        date_of_service=dos,
        timezone=tz,
        access_sites=tuple(sites),
        administrations=tuple(admins),
        other_services=tuple(others),
        payer=payer,
    )


def load_scenario_file(path: str | Path) -> list[tuple[dict[str, Any], EncounterDoc]]:
    """Read a scenario file (a JSON array) and parse every scenario.

    Returns (raw scenario dict, EncounterDoc) pairs in file order.  Raises
    ``ScenarioError`` with the file name for a missing/unreadable file, invalid
    JSON, a non-array top level, a bad field (``[i].field``) or duplicate ids.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(name, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(name, "", f"cannot read file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(name, "", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, list):
        raise ScenarioError(name, "", "expected a JSON array of scenarios")
    out: list[tuple[dict[str, Any], EncounterDoc]] = []
    seen: set[str] = set()
    for i, raw in enumerate(data):
        try:
            doc = parse_scenario(raw, path=f"[{i}]")
        except ScenarioError as exc:
            raise ScenarioError(name, exc.field, exc.message) from None
        if doc.id in seen:
            raise ScenarioError(name, f"[{i}].id", f"duplicate scenario id {doc.id!r}")
        seen.add(doc.id)
        out.append((raw, doc))
    return out


def result_to_json(scenario_id: str, result: CodingResult) -> dict[str, Any]:
    """DESIGN §6 shape: ``{"id", "lines": [...], "not_billed": [...],
    "warnings": [...], "ruleset_version", "policy"}``; dates as ISO strings;
    drug lines with an NDC add ``ndc``, ``ndc_qualifier``, ``ndc_quantity``
    and ``ndc_unit``; warnings carry ``blocking``."""
    return {
        "id": scenario_id,
        "lines": [
            {
                "code": l.code,
                "units": l.units,
                "modifiers": list(l.modifiers),
                "administrations": list(l.administrations),
                "rules": list(l.rules),
                "explanation": l.explanation,
                "minutes": l.minutes,
                "date_of_service": l.date_of_service.isoformat() if l.date_of_service else None,
                **(
                    {"ndc": l.ndc, "ndc_qualifier": l.ndc_qualifier, "ndc_quantity": _number(l.ndc_quantity), "ndc_unit": l.ndc_unit}
                    if l.ndc
                    else {}
                ),
            }
            for l in result.lines
        ],
        "not_billed": [
            {
                "description": n.description,
                "administrations": list(n.administrations),
                "rules": list(n.rules),
                "reason": n.reason,
            }
            for n in result.not_billed
        ],
        "warnings": [
            {"kind": w.kind, "message": w.message, "administrations": list(w.administrations), "rules": list(w.rules), "blocking": w.blocking}
            for w in result.warnings
        ],
        "ruleset_version": result.ruleset_version,
        "policy": result.policy.to_dict() if result.policy is not None else None,
    }


def _number(d: Decimal | None) -> int | float | None:
    """A Decimal as a JSON number (int when whole), as the scenario files write them."""
    if d is None:
        return None
    return int(d) if d == d.to_integral() else float(d)
