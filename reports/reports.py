"""The admin's audit reports (issue 6): every figure is a set-based SQL
aggregate, so a report costs the same few queries for 1 row or 100,000.

Each report is a function `<report>(filters) -> dict` of tables and figures for
its page, and each table the page can export is a `Table` in `TABLES`, whose
`rows(filters)` generator yields the same tuples the page shows (lists stream
from a server-side cursor, so an export holds one chunk in memory at a time).

Scope: `Filters` always carries the clinics the admin works in (narrowed to
one by the clinic filter) and a date range of *dates of service* (the
clinic-local date of the encounter, `Encounter.date_of_service`); the chart
access log, which has no date of service, takes each clinic's local days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Avg, Count, DateTimeField, DurationField, ExpressionWrapper, F, Func, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, TruncMonth, TruncWeek

from audit.models import AuditEvent
from charting.models import Administration, Clinic, DocumentationFlag, Encounter, FlagKind, Patient, Purpose, Route
from coding.engine import RULE_TITLES
from coding.models import FinalAction, SuggestedLine

# Rows a page lists before it says "export for the rest"; the export streams all.
PAGE_ROWS = 200
# Rows fetched per round trip when a list streams (server-side cursor).
CHUNK_ROWS = 2000


@dataclasses.dataclass(frozen=True)
class Filters:
    """What a report covers. `clinics`: the admin's clinics, or the one picked;
    `date_from`/`date_to`: inclusive dates of service; `user_id`/`patient_id`:
    the chart access log's own filters (None = everyone)."""

    clinics: tuple[Clinic, ...]
    date_from: dt.date
    date_to: dt.date
    user_id: int | None = None
    patient_id: uuid.UUID | None = None

    @property
    def clinic_ids(self) -> list[int]:
        return [c.pk for c in self.clinics]

    def as_json(self) -> dict[str, Any]:
        """The filters for the audit and export log rows."""
        return {
            "clinics": self.clinic_ids,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "user": self.user_id,
            "patient": str(self.patient_id) if self.patient_id else None,
        }

    def encounters(self) -> QuerySet[Encounter]:
        return Encounter.objects.filter(clinic__in=self.clinic_ids, date_of_service__gte=self.date_from, date_of_service__lte=self.date_to)

    def sql_params(self) -> dict[str, Any]:
        return {"clinics": self.clinic_ids, "date_from": self.date_from, "date_to": self.date_to}


@dataclasses.dataclass(frozen=True)
class Table:
    """A table a report shows and exports: `columns` are the headings (page,
    CSV header, XLSX first row); `rows(filters)` yields one tuple per row, in
    the page's order; `is_list` tables are cut at PAGE_ROWS on the page."""

    report: str
    name: str
    title: str
    columns: tuple[str, ...]
    rows: Callable[[Filters], Iterator[tuple]]
    is_list: bool = False


def _stream_sql(sql: str, params: dict[str, Any]) -> Iterator[tuple]:
    """Rows of a raw SELECT from a server-side cursor, CHUNK_ROWS at a time
    (Django's chunked cursor: a named cursor WITH HOLD in autocommit), so a
    long list never sits whole in memory."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            yield from rows


def _local(moment: dt.datetime | None, tz: str) -> str:
    """`moment` in the clinic's zone with its UTC offset (TIM-3), e.g. 2025-06-10 09:15 -0400."""
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z") if moment else ""


def _pct(part: int, whole: int) -> Decimal | None:
    return (Decimal(100 * part) / whole).quantize(Decimal("0.1"), ROUND_HALF_UP) if whole else None


class DayEnd(Func):
    """The end of a clinic's day of service as an instant: midnight after
    `date` in the IANA zone `tz` (PostgreSQL: (date + 1)::timestamp AT TIME ZONE tz).
    The same line the "not signed by the end of the day" check draws (charting/checks.py)."""

    def __init__(self, date, tz, **extra):
        super().__init__(date, tz, output_field=DateTimeField(), **extra)

    def as_sql(self, compiler, connection, **extra_context):
        date_sql, date_params = compiler.compile(self.source_expressions[0])
        tz_sql, tz_params = compiler.compile(self.source_expressions[1])
        return f"((({date_sql}) + 1)::timestamp AT TIME ZONE ({tz_sql}))", (*date_params, *tz_params)


def _nurse_expression(encounter_ref: str):
    """The nurse an encounter is attributed to: who signed it, else who recorded
    its first administration (a draft has no signer)."""
    first = Administration.objects.filter(encounter=OuterRef(encounter_ref), recorded_by__isnull=False).order_by("recorded_at", "pk").values("recorded_by")[:1]
    signer = "signed_by" if encounter_ref == "pk" else f"{encounter_ref}__signed_by"
    return Coalesce(F(signer), Subquery(first), output_field=IntegerField())


def _user_names(ids) -> dict[int | None, str]:
    users = get_user_model().objects.filter(pk__in=[i for i in ids if i is not None])
    names: dict[int | None, str] = {u.pk: (u.get_full_name() or u.username) for u in users}
    names[None] = "(no nurse recorded)"
    return names


# --- 1. Documentation completeness ---------------------------------------------------


def completeness(filters: Filters) -> dict[str, Any]:
    """Signing on time and documentation flags, per clinic and nurse, and flags by kind.

    An encounter is *signed on time* when `signed_at` is before midnight
    after its date of service in its clinic's zone (the line of the
    "not signed by the end of the day" check, charting/checks.py); *late*
    when signed after; *unsigned* while a draft. Flags are the
    `DocumentationFlag` rows of those encounters: *opened* all of them,
    *resolved* those with `resolved_at`, *open* the rest.

    4 queries: encounters grouped by clinic and nurse; flags grouped by clinic
    and nurse; the nurses' names; flags grouped by kind.
    """
    by_nurse = list(_completeness_rows(filters))
    return {"by_nurse": by_nurse, "flags_by_kind": list(_flags_by_kind_rows(filters))}


def _completeness_rows(filters: Filters) -> Iterator[tuple]:
    signed = Q(status=Encounter.Status.SIGNED)
    encounters = (
        filters.encounters()
        .annotate(nurse_id=_nurse_expression("pk"), day_end=DayEnd(F("date_of_service"), F("clinic__time_zone")))
        .values("clinic__name", "nurse_id")
        .annotate(
            n=Count("pk"),
            signed=Count("pk", filter=signed),
            on_time=Count("pk", filter=signed & Q(signed_at__lt=F("day_end"))),
            unsigned=Count("pk", filter=Q(status=Encounter.Status.DRAFT)),
        )
        .order_by()
    )
    flags = (
        DocumentationFlag.objects.filter(encounter__in=filters.encounters())
        .annotate(nurse_id=_nurse_expression("encounter"))
        .values("encounter__clinic__name", "nurse_id")
        .annotate(opened=Count("pk"), resolved=Count("pk", filter=Q(resolved_at__isnull=False)))
        .order_by()
    )
    flag_counts = {(f["encounter__clinic__name"], f["nurse_id"]): f for f in flags}
    rows = list(encounters)
    names = _user_names({r["nurse_id"] for r in rows} | {k[1] for k in flag_counts})
    out = []
    for r in rows:
        f = flag_counts.get((r["clinic__name"], r["nurse_id"]), {"opened": 0, "resolved": 0})
        late = r["signed"] - r["on_time"]
        out.append((r["clinic__name"], names[r["nurse_id"]], r["n"], r["signed"], r["on_time"], late, r["unsigned"], _pct(r["on_time"], r["n"]), f["opened"], f["resolved"], f["opened"] - f["resolved"]))
    yield from sorted(out, key=lambda row: (row[0], row[1]))


def _flags_by_kind_rows(filters: Filters) -> Iterator[tuple]:
    labels = dict(FlagKind.choices)
    resolve_time = ExpressionWrapper(F("resolved_at") - F("created_at"), output_field=DurationField())
    flags = (
        DocumentationFlag.objects.filter(encounter__in=filters.encounters())
        .values("encounter__clinic__name", "kind")
        .annotate(opened=Count("pk"), resolved=Count("pk", filter=Q(resolved_at__isnull=False)), mean_resolve=Avg(resolve_time))
        .order_by("encounter__clinic__name", "kind")
    )
    for f in flags:
        hours = Decimal(f["mean_resolve"].total_seconds() / 3600).quantize(Decimal("0.1"), ROUND_HALF_UP) if f["mean_resolve"] is not None else None
        yield (f["encounter__clinic__name"], labels.get(f["kind"], f["kind"]), f["opened"], f["resolved"], f["opened"] - f["resolved"], hours)


# --- 2. Coding ------------------------------------------------------------------------


def _current_lines(filters: Filters) -> QuerySet[SuggestedLine]:
    return SuggestedLine.objects.filter(suggestion__is_current=True, suggestion__encounter__in=filters.encounters())


def period_kind(filters: Filters) -> str:
    """"week" for ranges up to 92 days, else "month": a plot keeps a dozen or so bars."""
    return "week" if (filters.date_to - filters.date_from).days <= 92 else "month"


def code_mix_rows(filters: Filters) -> Iterator[tuple]:
    """(period start, code, lines, units) of the current suggestions' lines, by
    week or month of the date of service (one query)."""
    trunc = TruncWeek if period_kind(filters) == "week" else TruncMonth
    rows = (
        _current_lines(filters)
        .annotate(period=trunc("suggestion__encounter__date_of_service"))
        .values("period", "code")
        .annotate(lines=Count("pk"), total_units=Sum("units"))
        .order_by("period", "code")
    )
    for r in rows:
        period = r["period"].date() if isinstance(r["period"], dt.datetime) else r["period"]
        yield (period.isoformat(), r["code"], r["lines"], r["total_units"])


def units_per_code_rows(filters: Filters) -> Iterator[tuple]:
    """(code, lines, encounters, total units, mean units per line, most units on a line) (one query)."""
    rows = (
        _current_lines(filters)
        .values("code")
        .annotate(lines=Count("pk"), encounters=Count("suggestion__encounter", distinct=True), total_units=Sum("units"), most=Max("units"))
        .order_by("code")
    )
    for r in rows:
        yield (r["code"], r["lines"], r["encounters"], r["total_units"], (Decimal(r["total_units"]) / r["lines"]).quantize(Decimal("0.01"), ROUND_HALF_UP), r["most"])


NOT_BILLED_SQL = """
SELECT COALESCE(r.rule, '(no rule cited)') AS rule, count(*) AS items, count(DISTINCT s.encounter_id) AS encounters,
       min(nb->>'description') AS example
FROM coding_suggestion s
JOIN charting_encounter e ON e.id = s.encounter_id
CROSS JOIN LATERAL jsonb_array_elements(s.not_billed) AS nb
LEFT JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(nb->'rules') = 'array' THEN nb->'rules' ELSE '[]'::jsonb END) AS r(rule) ON true
WHERE s.is_current AND e.clinic_id = ANY(%(clinics)s) AND e.date_of_service BETWEEN %(date_from)s AND %(date_to)s
GROUP BY 1
ORDER BY items DESC, rule
"""


def not_billed_rows(filters: Filters) -> Iterator[tuple]:
    """(rule, its title, items, encounters, an example) for what the current
    suggestions documented but did not bill (`Suggestion.not_billed`: 99211
    beside an administration R39, supplies R41, concurrent hydration R30, ...).
    An item citing two rules counts under each. One query."""
    for rule, items, encounters, example in _stream_sql(NOT_BILLED_SQL, filters.sql_params()):
        yield (rule, RULE_TITLES.get(rule, ""), items, encounters, example or "")


def coding(filters: Filters) -> dict[str, Any]:
    """Code mix over time, units per code, lines not billed by rule, how many
    suggested lines coders have accepted so far, and the override rate and
    reasons (`overrides`). 5 queries (one per figure).
    """
    totals = _current_lines(filters).aggregate(lines=Count("pk"), accepted=Count("pk", filter=Q(accepted_at__isnull=False)))
    return {
        "period": period_kind(filters),
        "code_mix": list(code_mix_rows(filters)),
        "units_per_code": list(units_per_code_rows(filters)),
        "not_billed": list(not_billed_rows(filters)),
        "lines": totals["lines"],
        "accepted": totals["accepted"],
        "accepted_pct": _pct(totals["accepted"], totals["lines"]),
        "overrides": overrides(filters),
    }


# One statement: the current suggestions' lines counted (action and reason
# NULL), then the coders' current decisions on those suggestions grouped by
# action and reason. A FinalLine belongs to the suggestion it decided on
# (`FinalLine.suggestion`, also for an added line), so decisions on a
# suggestion since replaced by a re-code drop out with it, and only the
# current decision of a line counts (`is_current`: one per suggested line;
# a superseded decision or a withdrawn added line is history).
OVERRIDES_SQL = """
WITH cur AS (
  SELECT s.id FROM coding_suggestion s JOIN charting_encounter e ON e.id = s.encounter_id
  WHERE s.is_current AND e.clinic_id = ANY(%(clinics)s) AND e.date_of_service BETWEEN %(date_from)s AND %(date_to)s
)
SELECT NULL AS action, NULL AS reason_id, NULL AS reason, NULL AS position, count(*) AS lines
FROM coding_suggestedline l WHERE l.suggestion_id IN (SELECT id FROM cur)
UNION ALL
SELECT f.action, r.id, r.label, r.position, count(*)
FROM coding_finalline f LEFT JOIN coding_overridereason r ON r.id = f.reason_id
WHERE f.is_current AND f.suggestion_id IN (SELECT id FROM cur)
GROUP BY f.action, r.id, r.label, r.position
"""

OVERRIDE_ACTIONS = (FinalAction.CHANGE, FinalAction.DELETE, FinalAction.ADD)


def overrides(filters: Filters) -> dict[str, Any]:
    """The coders' current decisions against the current suggestions' lines
    (one query, OVERRIDES_SQL).

    `suggested`: lines of the current suggestions; `decided`: those with a
    current decision (accept, change or delete); `added`: lines a coder added;
    `decisions`: decided + added; `overridden`: changed + deleted + added;
    `rate`: overridden as a % of decisions (None without decisions), so a
    line not yet reviewed counts neither way. `by_action`: (label, lines, % of
    decisions) for accept, change, delete, add; `by_reason`: (reason, lines,
    % of decisions) of the overrides, most used first (their lines add up to
    `overridden`); `by_reason_action`: {reason: {action: lines}} for the plot; `rows`:
    the exported table (OVERRIDE_COLUMNS).
    """
    suggested = 0
    by_action = dict.fromkeys(FinalAction.values, 0)
    reasons: dict[int, dict[str, Any]] = {}
    with connection.cursor() as cursor:  # a handful of rows: no server-side cursor
        cursor.execute(OVERRIDES_SQL, filters.sql_params())
        fetched = cursor.fetchall()
    for action, reason_id, label, position, lines in fetched:
        if action is None:
            suggested = lines
            continue
        by_action[action] += lines
        if action != FinalAction.ACCEPT and reason_id is not None:
            reason = reasons.setdefault(reason_id, {"label": label, "position": position, "lines": 0, "actions": dict.fromkeys(OVERRIDE_ACTIONS, 0)})
            reason["lines"] += lines
            reason["actions"][action] += lines
    added = by_action[FinalAction.ADD]
    decided = sum(by_action.values()) - added
    decisions = decided + added
    overridden = sum(by_action[a] for a in OVERRIDE_ACTIONS)
    ordered = sorted(reasons.values(), key=lambda r: (-r["lines"], r["position"], r["label"]))
    labels = dict(FinalAction.choices)
    action_rows = [(labels[a], by_action[a], _pct(by_action[a], decisions)) for a in FinalAction.values]
    reason_rows = [(r["label"], r["lines"], _pct(r["lines"], decisions)) for r in ordered]
    rows = [
        ("Lines", "Suggested", suggested, None),
        ("Lines", "Suggested and decided", decided, None),
        ("Lines", "Suggested, not yet decided", suggested - decided, None),
        ("Lines", "Decisions (decided + added)", decisions, _pct(decisions, decisions)),
        ("Lines", "Overridden (changed, deleted or added)", overridden, _pct(overridden, decisions)),
        *(("Action", *row) for row in action_rows),
        *(("Reason", *row) for row in reason_rows),
    ]
    return {
        "suggested": suggested,
        "decided": decided,
        "added": added,
        "decisions": decisions,
        "overridden": overridden,
        "rate": _pct(overridden, decisions),
        "by_action": action_rows,
        "by_reason": reason_rows,
        "by_reason_action": {r["label"]: {labels[a]: n for a, n in r["actions"].items()} for r in ordered},
        "rows": rows,
    }


OVERRIDE_COLUMNS = ("Group", "Item", "Lines", "% of decisions")


def override_rows(filters: Filters) -> Iterator[tuple]:
    """The override table (`overrides(filters)["rows"]`): totals, then per action, then per reason."""
    yield from overrides(filters)["rows"]


# --- 3. Timing audit --------------------------------------------------------------------

# (last minute that does not qualify, first that does): push vs infusion at
# 15/16 (R18), hydration at 30/31 (R19), the first and second add-on hour at
# 90/91 and 150/151 (R20).
THRESHOLDS = ((15, 16), (30, 31), (90, 91), (150, 151))
# "Just above": the first two minutes that qualify (16-17, 31-32, 91-92, 151-152).
NEAR_MINUTES = 2

_ADM = Administration._meta.db_table
# Drip-to-drip minutes in SQL: stop - start - pauses, each pause clipped to
# the run (a pause never resumed lasts until the stop), whole minutes rounded
# down; timestamptz arithmetic is absolute time, so a DST night counts right
# (R15, R17, R24). The same figure as the engine's `running_minutes`
# (coding/documentation.administration_minutes); a test holds them equal.
MINUTES_SQL = f"""floor(extract(epoch FROM ({_ADM}.stopped_at - {_ADM}.started_at) - COALESCE((
    SELECT sum(GREATEST(LEAST(COALESCE(p.resumed_at, {_ADM}.stopped_at), {_ADM}.stopped_at) - GREATEST(p.paused_at, {_ADM}.started_at), interval '0'))
    FROM charting_pause p WHERE p.administration_id = {_ADM}.id), interval '0')) / 60)::integer"""


def timed_administrations(filters: Filters) -> QuerySet[Administration]:
    """Stopped IV infusions of the encounters in range, with `minutes`.

    Minutes are recomputed in SQL from the chart (MINUTES_SQL), not read from
    a Suggestion: every stopped infusion has them, coded or not, and they are
    per administration, while the engine's line minutes may sum runs of one
    drug (R17) or be split by the lines they went to. Fluid that is not
    therapy (KVO, flush, drug vehicle, R29) is left out: it is never timed."""
    return (
        Administration.objects.charted().filter(encounter__in=filters.encounters(), route=Route.IV_INFUSION, started_at__isnull=False, stopped_at__isnull=False)
        .exclude(purpose__in=[Purpose.KVO, Purpose.FLUSH, Purpose.DRUG_VEHICLE])
        .annotate(minutes=RawSQL(MINUTES_SQL, ()))
    )


def near_threshold(minutes: int | None) -> tuple[int, int] | None:
    """The threshold `minutes` lies just above: 16 or 17 -> (15, 16), ...; else None."""
    if minutes is None:
        return None
    return next(((last, first) for last, first in THRESHOLDS if first <= minutes < first + NEAR_MINUTES), None)


NEAR_VALUES = [first + i for _, first in THRESHOLDS for i in range(NEAR_MINUTES)]


def minutes_distribution(filters: Filters) -> list[tuple[int, int]]:
    """(minutes, administrations) for every minute count found (one query)."""
    rows = timed_administrations(filters).values("minutes").annotate(n=Count("pk")).order_by("minutes")
    return [(r["minutes"], r["n"]) for r in rows]


def near_threshold_rows(filters: Filters) -> Iterator[tuple]:
    """Administrations whose minutes fall within two minutes above a threshold,
    by date of service: (date of service, clinic, MRN, patient, drug, family,
    start, stop, minutes, threshold, nurse). One streaming query."""
    qs = (
        timed_administrations(filters)
        .filter(minutes__in=NEAR_VALUES)
        .values_list(
            "encounter__date_of_service",
            "encounter__clinic__name",
            "encounter__clinic__time_zone",
            "encounter__patient__mrn",
            "encounter__patient__family_name",
            "encounter__patient__given_name",
            "drug__name",
            "admin_class",
            "started_at",
            "stopped_at",
            "minutes",
            "recorded_by__username",
        )
        .order_by("encounter__date_of_service", "started_at", "pk")
    )
    for dos, clinic, tz, mrn, family, given, drug, family_class, start, stop, minutes, nurse in qs.iterator(chunk_size=CHUNK_ROWS):
        last, first = near_threshold(minutes)
        yield (dos.isoformat(), clinic, mrn, f"{family}, {given}", drug, family_class, _local(start, tz), _local(stop, tz), minutes, f"{last}/{first}", nurse or "")


def timing(filters: Filters) -> dict[str, Any]:
    """The distribution of infusion minutes and the administrations just above a
    threshold (2 queries: the distribution, the list cut at PAGE_ROWS + 1)."""
    distribution = minutes_distribution(filters)
    near = _first(near_threshold_rows(filters), PAGE_ROWS + 1)
    near_counts = {f"{last}/{first}": 0 for last, first in THRESHOLDS}
    for minutes, n in distribution:
        hit = near_threshold(minutes)
        if hit:
            near_counts[f"{hit[0]}/{hit[1]}"] += n
    return {
        "distribution": distribution,
        "administrations": sum(n for _, n in distribution),
        "near_counts": near_counts,
        "near": near[:PAGE_ROWS],
        "near_more": len(near) > PAGE_ROWS,
        "thresholds": THRESHOLDS,
    }


def _first(rows: Iterator[tuple], n: int) -> list[tuple]:
    out = []
    for row in rows:
        out.append(row)
        if len(out) >= n:
            break
    close = getattr(rows, "close", None)
    if close:
        close()  # ends the generator, and with it its server-side cursor
    return out


# --- 4. Vial reconciliation -------------------------------------------------------------

# Amount in `from` as `to`: mass units convert (charting.models.MASS_IN_MG), others only to themselves.
_FACTOR = """CASE WHEN {a} = {b} THEN 1::numeric
     WHEN {a} IN ('mg', 'g', 'mcg') AND {b} IN ('mg', 'g', 'mcg')
       THEN (CASE {a} WHEN 'g' THEN 1000 WHEN 'mg' THEN 1 ELSE 0.001 END)::numeric / (CASE {b} WHEN 'g' THEN 1000 WHEN 'mg' THEN 1 ELSE 0.001 END)
     END"""

# One row per encounter and drug code: what the opened containers held, the dose
# and the waste charted, in the code's billing unit, beside the units the
# current suggestion bills for that code (JW lines apart). Per encounter, not per
# administration: the engine sums the runs of one drug into one drug line (R17, R46).
# Drugs and vials struck as entered in error (REC-4) are not counted: the coding
# leaves them out too (Administration.objects.charted(), VialUse.objects).
VIALS_SQL = f"""
WITH adm AS (
  SELECT a.id, a.encounter_id, a.drug_id, a.container_type, a.dose_value, a.dose_unit, a.wasted_value, a.wasted_unit,
         COALESCE(NULLIF(a.hcpcs_override, ''), d.hcpcs) AS hcpcs,
         CASE WHEN a.hcpcs_unit_value IS NOT NULL THEN a.hcpcs_unit_value
              WHEN a.hcpcs_override <> '' AND a.hcpcs_override <> d.hcpcs THEN NULL
              ELSE d.billing_unit_value END AS bu_value,
         CASE WHEN a.hcpcs_unit_value IS NOT NULL THEN a.hcpcs_unit_unit
              WHEN a.hcpcs_override <> '' AND a.hcpcs_override <> d.hcpcs THEN NULL
              ELSE NULLIF(d.billing_unit_unit, '') END AS bu_unit
  FROM charting_administration a
  JOIN charting_drug d ON d.id = a.drug_id
  JOIN charting_encounter e ON e.id = a.encounter_id
  WHERE e.clinic_id = ANY(%(clinics)s) AND e.date_of_service BETWEEN %(date_from)s AND %(date_to)s
    AND a.entered_in_error_at IS NULL
    AND EXISTS (SELECT 1 FROM charting_vialuse v WHERE v.administration_id = a.id AND v.entered_in_error_at IS NULL)
),
vials AS (
  SELECT adm.encounter_id, adm.drug_id, adm.hcpcs, adm.bu_value, adm.bu_unit,
         string_agg(DISTINCT NULLIF(v.ndc, ''), ' + ') AS ndcs,
         string_agg(DISTINCT NULLIF(v.lot, ''), ' + ') AS lots,
         sum(v.count) AS containers,
         sum(v.count * v.size_value * {_FACTOR.format(a="v.size_unit", b="adm.bu_unit")}) AS opened,
         bool_and(v.size_value IS NOT NULL AND {_FACTOR.format(a="v.size_unit", b="adm.bu_unit")} IS NOT NULL) AS opened_known,
         bool_or(adm.container_type = 'multi_dose') AS multi_dose
  FROM adm JOIN charting_vialuse v ON v.administration_id = adm.id AND v.entered_in_error_at IS NULL
  GROUP BY 1, 2, 3, 4, 5
),
doses AS (
  SELECT adm.encounter_id, adm.drug_id, adm.hcpcs,
         sum(adm.dose_value * {_FACTOR.format(a="adm.dose_unit", b="adm.bu_unit")}) AS dose,
         sum(COALESCE(adm.wasted_value * {_FACTOR.format(a="adm.wasted_unit", b="adm.bu_unit")}, 0)) AS wasted,
         count(*) AS administrations
  FROM adm GROUP BY 1, 2, 3
),
billed AS (
  SELECT s.encounter_id, l.code,
         sum(l.units) FILTER (WHERE NOT l.modifiers ? 'JW') AS units,
         sum(l.units) FILTER (WHERE l.modifiers ? 'JW') AS jw_units
  FROM coding_suggestion s JOIN coding_suggestedline l ON l.suggestion_id = s.id
  WHERE s.is_current AND s.encounter_id IN (SELECT encounter_id FROM adm)
  GROUP BY 1, 2
),
rows AS (
  SELECT vials.*, d.name AS drug, doses.dose, doses.wasted, doses.administrations,
         e.date_of_service, c.name AS clinic, p.mrn,
         EXISTS (SELECT 1 FROM coding_suggestion s WHERE s.encounter_id = vials.encounter_id AND s.is_current) AS coded,
         COALESCE(billed.units, 0) AS units, COALESCE(billed.jw_units, 0) AS jw_units,
         CASE WHEN vials.opened_known AND vials.bu_value IS NOT NULL THEN vials.opened / vials.bu_value END AS opened_units
  FROM vials
  JOIN doses USING (encounter_id, drug_id, hcpcs)
  JOIN charting_drug d ON d.id = vials.drug_id
  JOIN charting_encounter e ON e.id = vials.encounter_id
  JOIN charting_clinic c ON c.id = e.clinic_id
  JOIN charting_patient p ON p.id = e.patient_id
  LEFT JOIN billed ON billed.encounter_id = vials.encounter_id AND billed.code = vials.hcpcs
),
judged AS (
  SELECT rows.*, opened_units - (units + jw_units) AS difference,
         CASE WHEN NOT coded THEN 'not coded'
              WHEN opened_units IS NULL THEN 'sizes not in the billing unit'
              WHEN multi_dose THEN 'multi-dose (no JW)'
              WHEN abs(opened_units - (units + jw_units)) >= 1 THEN 'mismatch'
              ELSE 'ok' END AS status
  FROM rows
)
"""

VIAL_LOTS_SQL = (
    VIALS_SQL
    + """
SELECT drug, hcpcs, COALESCE(ndcs, ''), COALESCE(lots, ''), bu_value, bu_unit, sum(administrations), sum(containers), sum(opened),
       sum(opened_units), sum(units), sum(jw_units), sum(difference), count(*) FILTER (WHERE status = 'mismatch')
FROM judged GROUP BY drug, hcpcs, ndcs, lots, bu_value, bu_unit ORDER BY drug, hcpcs, ndcs, lots
"""
)

VIAL_MISMATCHES_SQL = (
    VIALS_SQL
    + """
SELECT date_of_service, clinic, mrn, drug, hcpcs, COALESCE(ndcs, ''), COALESCE(lots, ''), containers, opened, bu_unit, dose, wasted,
       opened_units, units, jw_units, difference
FROM judged WHERE status = 'mismatch' ORDER BY date_of_service, clinic, mrn, drug
"""
)


def _num(value: Decimal | None) -> Decimal | None:
    """A numeric(…) figure without trailing zeros: 500.000 -> 500, 71.250 -> 71.25."""
    if value is None:
        return None
    value = Decimal(value)
    return value.quantize(Decimal(1)) if value == value.to_integral() else value.normalize()


def vial_lot_rows(filters: Filters) -> Iterator[tuple]:
    """Per drug, NDC and lot: (drug, HCPCS, NDC, lot, billing unit,
    administrations, containers opened, amount opened, opened in billing units,
    units billed, units wasted (JW), difference, encounters with a mismatch).

    An encounter whose drug drew on two lots is one row under "lot A + lot B",
    so nothing is counted twice. One query."""
    for drug, hcpcs, ndcs, lots, bu_value, bu_unit, adms, containers, opened, opened_units, units, jw, diff, mismatches in _stream_sql(VIAL_LOTS_SQL, filters.sql_params()):
        unit = f"{_num(bu_value)} {bu_unit}" if bu_value is not None else ""
        yield (drug, hcpcs or "", ndcs, lots, unit, adms, containers, _num(opened), _num(opened_units), units, jw, _num(diff), mismatches)


def vial_mismatch_rows(filters: Filters) -> Iterator[tuple]:
    """Encounters whose opened containers and billed units (+ JW) differ by a
    billing unit or more, single-dose containers of coded encounters only:
    (date of service, clinic, MRN, drug, HCPCS, NDC, lot, containers, opened,
    unit, dose, wasted, opened in billing units, billed, JW, difference).

    Billed (rounded up, R46) + JW (rounded down, R47) always add up to what was
    opened within one billing unit when the chart holds; a gap of one unit or
    more is waste not charted, a dose not billed, or vials charted wrong. One query."""
    for dos, clinic, mrn, drug, hcpcs, ndcs, lots, containers, opened, unit, dose, wasted, opened_units, units, jw, diff in _stream_sql(VIAL_MISMATCHES_SQL, filters.sql_params()):
        yield (dos.isoformat(), clinic, mrn, drug, hcpcs or "", ndcs, lots, containers, _num(opened), unit or "", _num(dose), _num(wasted), _num(opened_units), units, jw, _num(diff))


def vials(filters: Filters) -> dict[str, Any]:
    """Vial reconciliation: the per-lot table and the mismatches (2 queries)."""
    mismatches = _first(vial_mismatch_rows(filters), PAGE_ROWS + 1)
    return {"lots": list(vial_lot_rows(filters)), "mismatches": mismatches[:PAGE_ROWS], "mismatches_more": len(mismatches) > PAGE_ROWS}


# --- 5. Chart access log ------------------------------------------------------------------


def access_events(filters: Filters) -> QuerySet[AuditEvent]:
    """Audit rows about a patient of the filtered clinics, in each clinic's
    local days `date_from`..`date_to`, newest first, optionally of one user or
    one patient; with the patient's MRN, name and clinic zone (correlated
    subqueries on the patient's primary key: one query for any number of rows)."""
    window = Q(pk__in=[])
    for clinic in filters.clinics:
        start = dt.datetime.combine(filters.date_from, dt.time(0), tzinfo=clinic.tz)
        end = dt.datetime.combine(filters.date_to + dt.timedelta(days=1), dt.time(0), tzinfo=clinic.tz)
        window |= Q(patient_id__in=Patient.objects.filter(clinic=clinic).values("pk"), at__gte=start, at__lt=end)
    events = AuditEvent.objects.filter(window)
    if filters.user_id is not None:
        events = events.filter(actor_id=filters.user_id)
    if filters.patient_id is not None:
        events = events.filter(patient_id=filters.patient_id)
    patient = Patient.objects.filter(pk=OuterRef("patient_id"))
    return events.annotate(
        patient_mrn=Subquery(patient.values("mrn")[:1]),
        patient_family=Subquery(patient.values("family_name")[:1]),
        patient_given=Subquery(patient.values("given_name")[:1]),
        clinic_tz=Subquery(patient.values("clinic__time_zone")[:1]),
    ).order_by("-at", "-pk")


def access_kind(action: str) -> str:
    """"opened" for a read of the chart (`*.viewed`), "changed" for every write."""
    return "opened" if action.endswith(".viewed") else "changed"


def access_rows(filters: Filters) -> Iterator[tuple]:
    """(when, user, opened/changed, action, record, patient id, MRN, patient, from)
    per audit row (streams from a server-side cursor)."""
    rows = access_events(filters).values_list(
        "at", "clinic_tz", "actor__username", "action", "object_type", "object_id", "patient_id", "patient_mrn", "patient_family", "patient_given", "remote_addr"
    )
    for at, tz, user, action, object_type, object_id, patient_id, mrn, family, given, remote_addr in rows.iterator(chunk_size=CHUNK_ROWS):
        record = f"{object_type} {object_id}".strip()
        yield (_local(at, tz), user or "(system)", access_kind(action), action, record, str(patient_id), mrn or "", f"{family}, {given}" if family else "", remote_addr or "")


def access_log(filters: Filters) -> dict[str, Any]:
    """The chart access log's first PAGE_ROWS rows (one query)."""
    rows = _first(access_rows(filters), PAGE_ROWS + 1)
    return {"events": rows[:PAGE_ROWS], "events_more": len(rows) > PAGE_ROWS}


# --- the exportable tables -------------------------------------------------------------------

TABLES: dict[tuple[str, str], Table] = {
    (t.report, t.name): t
    for t in (
        Table(
            "completeness",
            "by_nurse",
            "Signing and flags by clinic and nurse",
            ("Clinic", "Nurse", "Encounters", "Signed", "Signed on time", "Signed late", "Unsigned", "On time %", "Flags opened", "Flags resolved", "Flags open"),
            _completeness_rows,
        ),
        Table("completeness", "flags_by_kind", "Flags by kind", ("Clinic", "Flag", "Opened", "Resolved", "Open", "Mean hours to resolve"), _flags_by_kind_rows),
        Table("coding", "code_mix", "Code mix over time", ("Period start", "Code", "Lines", "Units"), code_mix_rows),
        Table("coding", "units_per_code", "Units per code", ("Code", "Lines", "Encounters", "Units", "Mean units per line", "Most units on a line"), units_per_code_rows),
        Table("coding", "not_billed", "Documented, not billed, by rule", ("Rule", "Rule title", "Items", "Encounters", "Example"), not_billed_rows),
        Table("coding", "overrides", "Override rate and reasons", OVERRIDE_COLUMNS, override_rows),
        Table(
            "timing",
            "near_threshold",
            "Infusions just above a threshold",
            ("Date of service", "Clinic", "MRN", "Patient", "Drug", "Family", "Start", "Stop", "Minutes", "Threshold", "Recorded by"),
            near_threshold_rows,
            is_list=True,
        ),
        Table("timing", "minutes", "Infusion minutes", ("Minutes", "Administrations"), lambda f: iter(minutes_distribution(f))),
        Table(
            "vials",
            "lots",
            "Opened vs billed per drug, NDC and lot",
            ("Drug", "HCPCS", "NDC", "Lot", "Billing unit", "Administrations", "Containers opened", "Amount opened", "Opened (billing units)", "Units billed", "Units wasted (JW)", "Difference", "Encounters with a mismatch"),
            vial_lot_rows,
        ),
        Table(
            "vials",
            "mismatches",
            "Mismatches",
            ("Date of service", "Clinic", "MRN", "Drug", "HCPCS", "NDC", "Lot", "Containers", "Amount opened", "Unit", "Dose", "Wasted", "Opened (billing units)", "Units billed", "Units wasted (JW)", "Difference"),
            vial_mismatch_rows,
            is_list=True,
        ),
        Table("access", "events", "Chart access log", ("When", "User", "Kind", "Action", "Record", "Patient id", "MRN", "Patient", "From"), access_rows, is_list=True),
    )
}
