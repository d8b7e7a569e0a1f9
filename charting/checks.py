"""Incomplete-record checks: one table of named rules, computed two ways.

Each `Check` is one gap a biller would send back ("stop time missing for
infliximab, bag 2"). It is written twice, side by side, so the two can be
read against each other and a test holds them equal (tests/charting/test_checks.py):

- `python(record, chart)`: one record of one encounter already in memory
  (`Encounter.objects.for_chart()`), for the "ready to bill" panel at the
  chair and the confirmation asked when signing;
- `sql(sweep)`: a QuerySet of every record in the database with the gap, for
  the periodic sweep (`services.sweep_flags`), one query per kind, no Python
  loop over rows.

Both paths hand the same attributes to the same `message` function, so the
flag the sweep stores and the line the nurse sees at the chair read the same.
A check is *blocking* when the gap stops or changes a billed line (the
coding-rules.md rule is named in `rule`); *advisory* ones are shown, never
asked about when signing.

Limits come from settings (`Limits.from_settings()`): CHAIRSIDE_RUNNING_FLAG_HOURS,
CHAIRSIDE_PAUSE_FLAG_MINUTES, CHAIRSIDE_LATE_ENTRY_MINUTES. "The end of the
clinic's day" is midnight in the clinic's own time zone.

Two checks are about what is *not yet* charted, which is normal while the
visit goes on: a drug added but never started (NEVER_STARTED) and an
encounter with nothing charted at all (NOTHING_CHARTED). They count as gaps
only once they are *due* (`_due` / `_due_q`), i.e. when

- the encounter is being signed (`signing=True`: `services.sign_encounter`,
  and the "ready to bill" panel, which shows what signing would ask), or
- the encounter is signed already (nothing more will be charted), or
- the record was charted more than CHAIRSIDE_RUNNING_FLAG_HOURS ago (the drug's
  `recorded_at`, the encounter's `created_at`: the same limit as a drug
  left running), or
- the date of service is over (the clinic's midnight, as for "not signed").

So the sweep (and `refresh_flags`) never flags a drug added a minute ago or
an encounter just opened, while signing always sees them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db.models import BigIntegerField, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, UUIDField, Value
from django.db.models.functions import Cast, Coalesce, Trim
from django.urls import reverse

from .models import (
    ROUTES_NEEDING_SITE,
    AccessSite,
    AdminFamily,
    Administration,
    Clinic,
    ContainerType,
    Encounter,
    FlagKind,
    OtherService,
    Pause,
    Purpose,
    Route,
    TimeCorrection,
    VialUse,
)

# Fluid that is not therapy is never billed (R29): no dose, vial or overlap
# rules for it.
NOT_BILLED_PURPOSES = (Purpose.KVO, Purpose.FLUSH, Purpose.DRUG_VEHICLE)
HYDRATION_INDICATIONS = (Purpose.HYDRATION, Purpose.ADVERSE_REACTION)

ROUTE_NOUN = {
    Route.IV_INFUSION: "bag",
    Route.IV_PUSH: "push",
    Route.SUBCUTANEOUS: "injection",
    Route.INTRAMUSCULAR: "injection",
    Route.INTRA_ARTERIAL: "dose",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    running: dt.timedelta
    pause: dt.timedelta
    late_entry: dt.timedelta

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            running=dt.timedelta(hours=settings.CHAIRSIDE_RUNNING_FLAG_HOURS),
            pause=dt.timedelta(minutes=settings.CHAIRSIDE_PAUSE_FLAG_MINUTES),
            late_entry=dt.timedelta(minutes=settings.CHAIRSIDE_LATE_ENTRY_MINUTES),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Issue:
    """One open item: what is missing, on which record, and where to fix it."""

    kind: str
    blocking: bool
    message: str
    field: str
    encounter_id: Any
    administration_id: Any = None
    access_site_id: Any = None

    @property
    def record_key(self) -> tuple:
        """(kind, record): what makes a flag unique while open."""
        return (self.kind, self.administration_id or self.access_site_id or self.encounter_id)

    @property
    def fix_url(self) -> str:
        """The draft chart at the input that closes the gap (the edit forms' ids)."""
        return fix_url(self.encounter_id, self.administration_id, self.access_site_id, field=self.field)

    @property
    def card_url(self) -> str:
        """The chart at the record's card (signed: where its Amend form is)."""
        return fix_url(self.encounter_id, self.administration_id, self.access_site_id)


# The input of a draft chart that closes each check's gap, by the check's
# `field`: the ids charting/forms.py gives the drug card's Edit, Correct a
# time and Vials forms, the access site's Edit form and the E/M note.
ADMINISTRATION_FIELD_ANCHORS = {
    "dose_value": "id_edit_{pk}_dose_value",
    "access_site": "id_edit_{pk}_access_site",
    "purpose": "id_edit_{pk}_purpose",
    "concurrent_with": "id_edit_{pk}_concurrent_with",
    "stopped_at": "id_fix_{pk}_new_value",
    "started_at": "id_fix_{pk}_new_value",
    "resumed_at": "id_fix_{pk}_new_value",
    "vial_uses": "id_vial_{pk}_ndc",
    # The card's Start button (its "Entered in error…" is on the same card).
    "start": "start-{pk}",
}
SITE_FIELD_ANCHORS = {"reason": "id_siteedit_{pk}_reason"}
ENCOUNTER_FIELD_ANCHORS = {"significant_separately_identifiable": "em-note", "administrations": "administration-form"}


def fix_url(encounter_id, administration_id=None, access_site_id=None, *, field: str = "") -> str:
    """The chart, scrolled to the input of `field` when the page has one for
    it (a draft's edit forms), else to the card or list where it is charted."""
    if administration_id:
        anchor = ADMINISTRATION_FIELD_ANCHORS.get(field, "adm-{pk}").format(pk=administration_id)
    elif access_site_id:
        anchor = SITE_FIELD_ANCHORS.get(field, "site-{pk}").format(pk=access_site_id)
    else:
        anchor = ENCOUNTER_FIELD_ANCHORS.get(field, "ready-to-bill")
    return reverse("charting:encounter", kwargs={"pk": encounter_id}) + "#" + anchor


# --- what the messages say -----------------------------------------------------------


def _hhmm(value: dt.datetime, clinic: Clinic) -> str:
    return value.astimezone(clinic.tz).strftime("%H:%M")


def name(adm: Administration) -> str:
    """The drug as the nurse says it: "infliximab", or "infliximab, bag 2" when
    the encounter has more than one of it (numbered in charting order).

    Reads `same_drug_before` / `same_drug_count`, set by both paths."""
    if adm.same_drug_count <= 1:
        return adm.drug.name
    return f"{adm.drug.name}, {ROUTE_NOUN.get(adm.route, 'dose')} {adm.same_drug_before + 1}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _still_running_message(adm, chart) -> str:
    return f"Stop time missing for {name(adm)} (started {_hhmm(adm.started_at, adm.encounter.clinic)}): chart when it stopped."


def _no_site_message(adm, chart) -> str:
    return f"No access site for {name(adm)} ({adm.get_route_display()}): pick the site it ran through."


def _hydration_message(adm, chart) -> str:
    return f"No reason given for the {name(adm)} hydration: medically necessary, treating a reaction, or KVO/flush?"


def _dose_message(adm, chart) -> str:
    missing = "Dose and unit" if adm.dose_value is None and not adm.dose_unit else "Dose" if adm.dose_value is None else "Dose unit"
    return f"{missing} missing for {name(adm)}."


def _waste_message(adm, chart) -> str:
    return f"Waste not confirmed for {name(adm)} (single-dose vials): chart what was discarded, or none."


def _vials_message(adm, chart) -> str:
    if not adm.vial_count:
        return f"No vials charted for {name(adm)}: chart the NDC and lot."
    return f"NDC or lot missing for {name(adm)}: complete the vials charted."


def _pause_message(adm, chart) -> str:
    return f"{_cap(name(adm))} paused at {_hhmm(adm.open_pause_at, adm.encounter.clinic)} was never resumed: chart when it resumed or stopped."


def _late_message(adm, chart) -> str:
    clinic = adm.encounter.clinic
    return f"{_cap(name(adm))} started {_hhmm(adm.started_at, clinic)} was charted at {_hhmm(adm.recorded_at, clinic)}: give the reason for the late entry (correct the start)."


def _overlap_message(adm, chart) -> str:
    return f"{_cap(name(adm))} runs at the same time as {adm.overlap_drug} on site {adm.access_site.label}: mark it concurrent or same bag."


def _second_site_message(site, chart) -> str:
    return f"Site {site.label} is charted as a medically required separate site, but no reason is given: say why it was required."


def _not_signed_message(encounter, chart) -> str:
    day = encounter.date_of_service
    return f"Not signed by the end of the day ({day:%a} {day.day} {day:%b}): review and sign."


def _never_started_message(adm, chart) -> str:
    return f"{_cap(name(adm))} was added but never started — start it, or mark it entered in error."


def _nothing_charted_message(encounter, chart) -> str:
    return "Nothing charted on this encounter: chart the drugs given or the service provided."


def _em_message(encounter, chart) -> str:
    level = f" {encounter.em_level}" if encounter.em_level else ""
    return f"E/M visit{level} has no note of significant, separately identifiable work: document it, or the visit is not billed."


# --- the Python side: one encounter in memory ------------------------------------------


@dataclasses.dataclass
class Chart:
    """One encounter as the page loads it, with the facts every check reads.

    `encounter` must come from `Encounter.objects.for_chart()` (administrations
    with drug, site, pauses, corrections and vials; sites; other services), so
    computing every check costs no query. `signing`: the encounter is being
    signed (or the panel shows what signing would ask), so what is not charted
    yet is a gap at once (see `_due`).
    """

    encounter: Encounter
    now: dt.datetime
    limits: Limits
    administrations: list = dataclasses.field(default_factory=list)
    sites: list = dataclasses.field(default_factory=list)
    signing: bool = False

    @classmethod
    def of(cls, encounter: Encounter, *, now: dt.datetime, limits: Limits, signing: bool = False) -> Chart:
        # A drug struck as entered in error (REC-4) is no gap of anything.
        charted = [a for a in encounter.administrations.all() if a.entered_in_error_at is None]
        chart = cls(encounter, now, limits, charted, list(encounter.access_sites.all()), signing)
        chart._annotate()
        return chart

    def _annotate(self) -> None:
        """Set on each record the attributes the SQL side annotates (same names)."""
        order = sorted(self.administrations, key=lambda a: (a.recorded_at, a.pk))
        for adm in self.administrations:
            same = [a for a in order if a.drug_id == adm.drug_id]
            adm.same_drug_count = len(same)
            adm.same_drug_before = same.index(adm)
            adm.open_pause_at = next((p.paused_at for p in adm.pauses.all() if p.resumed_at is None), None)
            vials = list(adm.vial_uses.all())
            adm.vial_count = len(vials)
            adm.incomplete_vials = sum(1 for v in vials if not v.ndc or not v.lot)
            adm.overlap_drug = _first_unmarked_overlap(adm, self.administrations, self.now)
        services = [s for s in self.encounter.other_services.all() if s.kind == OtherService.Kind.EM_VISIT and not s.significant_separately_identifiable]
        self.encounter.em_level = min(services, key=lambda s: s.pk).level if services else None

    def records(self, on: str) -> Iterable:
        return {"administration": self.administrations, "access_site": self.sites, "encounter": [self.encounter]}[on]


def _interval(adm: Administration, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return adm.started_at, adm.stopped_at or now


def _overlap_candidate(adm: Administration) -> bool:
    return adm.route == Route.IV_INFUSION and adm.started_at is not None and adm.access_site_id is not None and adm.purpose not in NOT_BILLED_PURPOSES


def _first_unmarked_overlap(adm: Administration, siblings: list, now: dt.datetime) -> str | None:
    """The drug of the earliest infusion that started before `adm` (ties: lower
    id) on the same site, overlaps it, and is not tied to it by "concurrent
    with" or a shared bag; None when `adm` says how it relates (its own
    concurrent_with) or nothing overlaps."""
    if not _overlap_candidate(adm) or adm.concurrent_with_id is not None:
        return None
    start, end = _interval(adm, now)
    others = []
    for b in siblings:
        if b.pk == adm.pk or not _overlap_candidate(b) or b.access_site_id != adm.access_site_id:
            continue
        if not (b.started_at < adm.started_at or (b.started_at == adm.started_at and b.pk < adm.pk)):
            continue
        b_start, b_end = _interval(b, now)
        if not (b_start < end and b_end > start):
            continue
        if b.concurrent_with_id == adm.pk or (adm.bag and adm.bag == b.bag):
            continue
        others.append(b)
    return min(others, key=lambda b: (b.started_at, b.pk)).drug.name if others else None


def _billable_drug(adm: Administration) -> bool:
    """Given, billed as a drug line: a HCPCS, not a hydration fluid, not KVO/flush/vehicle (R29, D6)."""
    return adm.started_at is not None and adm.purpose not in NOT_BILLED_PURPOSES and adm.admin_class != AdminFamily.HYDRATION and bool(adm.hcpcs_override or adm.drug.hcpcs)


def _single_dose(adm: Administration) -> bool:
    return adm.container_type == ContainerType.SINGLE_DOSE or (adm.container_type == "" and adm.drug.single_dose)


def _day_over(encounter: Encounter, now: dt.datetime) -> bool:
    return now.astimezone(encounter.clinic.tz).date() > encounter.date_of_service


def _due(charted_at: dt.datetime, encounter: Encounter, chart: Chart) -> bool:
    """Whether something not charted yet (a drug never started, an empty
    encounter) is a gap now: when signing, once signed, once charted more
    than the running limit ago, or once the date of service is over (see the
    module docstring; `_due_q` is the same in SQL)."""
    return (
        chart.signing
        or encounter.status == Encounter.Status.SIGNED
        or charted_at < chart.now - chart.limits.running
        or _day_over(encounter, chart.now)
    )


def _nothing_charted(encounter: Encounter, chart: Chart) -> bool:
    return not chart.administrations and not list(encounter.other_services.all()) and _due(encounter.created_at, encounter, chart)


def _has_started_iv(site: AccessSite, chart: Chart) -> bool:
    return any(a.access_site_id == site.pk and a.route in ROUTES_NEEDING_SITE and a.started_at is not None for a in chart.administrations)


def _other_site_used(site: AccessSite, chart: Chart) -> bool:
    return any(a.access_site_id not in (None, site.pk) and a.route in ROUTES_NEEDING_SITE and a.started_at is not None for a in chart.administrations)


# --- the SQL side: every record at once -----------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Sweep:
    now: dt.datetime
    limits: Limits


def _administrations() -> QuerySet:
    """Administrations with what `name()` and the messages read (the two
    correlated counts run only for the rows fetched, i.e. new gaps)."""
    same = Administration.objects.charted().filter(encounter=OuterRef("encounter"), drug=OuterRef("drug")).order_by().values("encounter")
    before = same.filter(Q(recorded_at__lt=OuterRef("recorded_at")) | Q(recorded_at=OuterRef("recorded_at"), pk__lt=OuterRef("pk")))
    return Administration.objects.charted().select_related("drug", "access_site", "encounter__clinic").annotate(
        same_drug_count=Subquery(same.annotate(n=Count("pk")).values("n"), output_field=IntegerField()),
        same_drug_before=Coalesce(Subquery(before.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0),
    )


def _billable_q() -> Q:
    return Q(started_at__isnull=False) & ~Q(purpose__in=NOT_BILLED_PURPOSES) & ~Q(admin_class=AdminFamily.HYDRATION) & (~Q(hcpcs_override="") | ~Q(drug__hcpcs=""))


def _still_running_sql(s: Sweep) -> QuerySet:
    return _administrations().filter(started_at__isnull=False, stopped_at__isnull=True, started_at__lt=s.now - s.limits.running)


def _no_site_sql(s: Sweep) -> QuerySet:
    return _administrations().filter(route__in=ROUTES_NEEDING_SITE, access_site__isnull=True)


def _hydration_sql(s: Sweep) -> QuerySet:
    return _administrations().filter(admin_class=AdminFamily.HYDRATION).exclude(purpose__in=(*HYDRATION_INDICATIONS, *NOT_BILLED_PURPOSES))


def _dose_sql(s: Sweep) -> QuerySet:
    return _administrations().exclude(purpose__in=NOT_BILLED_PURPOSES).filter(Q(dose_value__isnull=True) | Q(dose_unit=""))


def _waste_sql(s: Sweep) -> QuerySet:
    single = Q(container_type=ContainerType.SINGLE_DOSE) | Q(container_type="", drug__single_dose=True)
    return _administrations().filter(_billable_q(), single, waste_confirmed_at__isnull=True)


def _vials_sql(s: Sweep) -> QuerySet:
    # Each half on its own (an anti-join, a scan of the incomplete vials), then
    # "id IN" the two small results: an OR of EXISTS would probe the vials once
    # per administration (9 s over a million; this: under 1 s).
    vials = VialUse.objects.filter(administration=OuterRef("pk"))
    without_vials = Administration.objects.charted().filter(_billable_q(), ~Exists(vials)).values("pk")
    incomplete = VialUse.objects.filter(Q(ndc="") | Q(lot="")).values("administration")
    return _vials_detail(s).filter(_billable_q()).filter(Q(pk__in=without_vials) | Q(pk__in=incomplete))


def _vials_detail(s: Sweep) -> QuerySet:
    """What the message reads, for administrations already known to have the gap."""
    vials = VialUse.objects.filter(administration=OuterRef("pk")).order_by().values("administration")
    return _administrations().annotate(vial_count=Coalesce(Subquery(vials.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0))


def _pause_sql(s: Sweep) -> QuerySet:
    open_pause = Pause.objects.filter(administration=OuterRef("pk"), resumed_at__isnull=True)
    overdue = open_pause.filter(Q(administration__stopped_at__isnull=False) | Q(paused_at__lt=s.now - s.limits.pause))
    return _administrations().filter(Exists(overdue)).annotate(open_pause_at=Subquery(open_pause.values("paused_at")[:1]))


def _late_sql(s: Sweep) -> QuerySet:
    explained = TimeCorrection.objects.filter(administration=OuterRef("pk"), field=TimeCorrection.Field.STARTED_AT)
    return (
        _administrations()
        .filter(started_at__isnull=False, encounter__external_id__isnull=True, started_at__lt=F("recorded_at") - s.limits.late_entry)
        .exclude(Exists(explained))
    )


def _overlap_candidate_q() -> Q:
    return Q(route=Route.IV_INFUSION, started_at__isnull=False, access_site__isnull=False, entered_in_error_at__isnull=True) & ~Q(purpose__in=NOT_BILLED_PURPOSES)


def _overlap_sql(s: Sweep) -> QuerySet:
    now = Value(s.now)
    earlier = (
        Administration.objects.filter(_overlap_candidate_q(), access_site=OuterRef("access_site"))
        .filter(Q(started_at__lt=OuterRef("started_at")) | Q(started_at=OuterRef("started_at"), pk__lt=OuterRef("pk")))
        .annotate(end=Coalesce("stopped_at", now))
        .filter(started_at__lt=OuterRef("end"), end__gt=OuterRef("started_at"))
        .exclude(concurrent_with=OuterRef("pk"))
        .exclude(Q(bag=OuterRef("bag")) & ~Q(bag=""))
        .order_by("started_at", "pk")
    )
    return (
        _administrations()
        .filter(_overlap_candidate_q(), concurrent_with__isnull=True)
        .annotate(end=Coalesce("stopped_at", now))
        .filter(Exists(earlier))
        .annotate(overlap_drug=Subquery(earlier.values("drug__name")[:1]))
    )


def _second_site_sql(s: Sweep) -> QuerySet:
    iv = Administration.objects.charted().filter(route__in=ROUTES_NEEDING_SITE, started_at__isnull=False)
    return (
        AccessSite.objects.select_related("encounter__clinic")
        .filter(separate_site_medically_required=True)
        .annotate(reason_trimmed=Trim("reason"))
        .filter(reason_trimmed="")
        .filter(Exists(iv.filter(access_site=OuterRef("pk"))))
        .filter(Exists(iv.filter(encounter=OuterRef("encounter"), access_site__isnull=False).exclude(access_site=OuterRef("pk"))))
    )


def _day_over_q(s: Sweep, encounter: str = "") -> Q:
    """The encounter's date of service is over in its clinic's zone (`_day_over`).
    `encounter`: the path to the encounter ("" on Encounter, "encounter__")."""
    # The clinics are few: one date per clinic, then one query over encounters.
    day_over = Q(pk__in=[])
    for clinic in Clinic.objects.all():
        day_over |= Q(**{f"{encounter}clinic": clinic, f"{encounter}date_of_service__lt": s.now.astimezone(clinic.tz).date()})
    return day_over


def _due_q(s: Sweep, charted_at: str, encounter: str = "") -> Q:
    """`_due` in SQL: signed, charted (`charted_at`) before the running limit, or the day over."""
    return Q(**{f"{encounter}status": Encounter.Status.SIGNED}) | Q(**{f"{charted_at}__lt": s.now - s.limits.running}) | _day_over_q(s, encounter)


def _never_started_sql(s: Sweep) -> QuerySet:
    return _administrations().filter(started_at__isnull=True).filter(_due_q(s, "recorded_at", "encounter__"))


def _nothing_charted_sql(s: Sweep) -> QuerySet:
    given = Administration.objects.charted().filter(encounter=OuterRef("pk"))
    other = OtherService.objects.filter(encounter=OuterRef("pk"))
    return Encounter.objects.select_related("clinic").filter(~Exists(given), ~Exists(other)).filter(_due_q(s, "created_at"))


def _not_signed_sql(s: Sweep) -> QuerySet:
    return Encounter.objects.select_related("clinic").filter(_day_over_q(s), status=Encounter.Status.DRAFT)


def _em_sql(s: Sweep) -> QuerySet:
    em = OtherService.objects.filter(encounter=OuterRef("pk"), kind=OtherService.Kind.EM_VISIT, significant_separately_identifiable=False).order_by("pk")
    given = Administration.objects.charted().filter(encounter=OuterRef("pk"), started_at__isnull=False)
    return Encounter.objects.select_related("clinic").filter(Exists(em), Exists(given)).annotate(em_level=Subquery(em.values("level")[:1]))


# What the administration messages above read (with the annotations).
ADMINISTRATION_MESSAGE_FIELDS = (
    "id", "encounter", "route", "started_at", "recorded_at", "dose_value", "dose_unit",
    "drug", "drug__name", "access_site", "access_site__label", "encounter__clinic", "encounter__clinic__time_zone",
)


# --- the table ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    kind: FlagKind
    on: str  # "administration" | "access_site" | "encounter"
    blocking: bool
    field: str  # the charted field that closes the gap
    rule: str  # coding-rules.md rule(s) behind it
    python: Callable[[Any, Chart], bool]
    sql: Callable[[Sweep], QuerySet]
    message: Callable[[Any, Chart | None], str]
    # The records' message fields, read back by primary key for new gaps only;
    # default: `sql` itself (its filter is cheap on a few primary keys).
    detail: Callable[[Sweep], QuerySet] | None = None

    def records_for_messages(self, sweep: Sweep, pks: list) -> QuerySet:
        """The records `pks` (known gaps) with what `message` reads (for
        administrations only those columns: a sweep may open thousands)."""
        records = (self.detail or self.sql)(sweep).filter(pk__in=pks)
        return records.only(*ADMINISTRATION_MESSAGE_FIELDS) if self.on == "administration" else records

    def issue(self, record: Any, chart: Chart | None = None) -> Issue:
        if self.on == "administration":
            ids = {"encounter_id": record.encounter_id, "administration_id": record.pk}
        elif self.on == "access_site":
            ids = {"encounter_id": record.encounter_id, "access_site_id": record.pk}
        else:
            ids = {"encounter_id": record.pk}
        return Issue(kind=self.kind.value, blocking=self.blocking, message=self.message(record, chart)[:300], field=self.field, **ids)


CHECKS: tuple[Check, ...] = (
    Check(
        FlagKind.NOTHING_CHARTED, "encounter", True, "administrations", "",
        python=_nothing_charted,
        sql=_nothing_charted_sql, message=_nothing_charted_message,
    ),
    Check(
        FlagKind.NEVER_STARTED, "administration", True, "start", "R15, R16",
        python=lambda a, c: a.started_at is None and _due(a.recorded_at, c.encounter, c),
        sql=_never_started_sql, message=_never_started_message,
    ),
    Check(
        FlagKind.STILL_RUNNING, "administration", True, "stopped_at", "R16",
        python=lambda a, c: a.started_at is not None and a.stopped_at is None and a.started_at < c.now - c.limits.running,
        sql=_still_running_sql, message=_still_running_message,
    ),
    Check(
        FlagKind.NO_ACCESS_SITE, "administration", True, "access_site", "R10",
        python=lambda a, c: a.route in ROUTES_NEEDING_SITE and a.access_site_id is None,
        sql=_no_site_sql, message=_no_site_message,
    ),
    Check(
        FlagKind.HYDRATION_NO_INDICATION, "administration", True, "purpose", "R29, R31",
        python=lambda a, c: a.admin_class == AdminFamily.HYDRATION and a.purpose not in (*HYDRATION_INDICATIONS, *NOT_BILLED_PURPOSES),
        sql=_hydration_sql, message=_hydration_message,
    ),
    Check(
        FlagKind.DOSE_MISSING, "administration", True, "dose_value", "R46",
        python=lambda a, c: a.purpose not in NOT_BILLED_PURPOSES and (a.dose_value is None or not a.dose_unit),
        sql=_dose_sql, message=_dose_message,
    ),
    Check(
        FlagKind.WASTE_UNCONFIRMED, "administration", True, "wasted_value", "R47, R48",
        python=lambda a, c: _billable_drug(a) and _single_dose(a) and a.waste_confirmed_at is None,
        sql=_waste_sql, message=_waste_message,
    ),
    Check(
        FlagKind.NDC_LOT_MISSING, "administration", True, "vial_uses", "R49",
        python=lambda a, c: _billable_drug(a) and (a.vial_count == 0 or a.incomplete_vials > 0),
        sql=_vials_sql, message=_vials_message, detail=_vials_detail,
    ),
    Check(
        FlagKind.PAUSE_NOT_RESUMED, "administration", True, "resumed_at", "R17",
        python=lambda a, c: a.open_pause_at is not None and (a.stopped_at is not None or a.open_pause_at < c.now - c.limits.pause),
        sql=_pause_sql, message=_pause_message,
    ),
    Check(
        FlagKind.LATE_ENTRY, "administration", False, "started_at", "REC-3",
        python=lambda a, c: (
            a.started_at is not None
            and c.encounter.external_id is None
            and a.started_at < a.recorded_at - c.limits.late_entry
            and not any(t.field == TimeCorrection.Field.STARTED_AT for t in a.time_corrections.all())
        ),
        sql=_late_sql, message=_late_message,
    ),
    Check(
        FlagKind.OVERLAP_SAME_SITE, "administration", True, "concurrent_with", "R25, R26",
        python=lambda a, c: a.overlap_drug is not None,
        sql=_overlap_sql, message=_overlap_message,
    ),
    Check(
        FlagKind.SECOND_SITE_NO_REASON, "access_site", True, "reason", "R10",
        python=lambda s, c: s.separate_site_medically_required and s.reason.strip(" ") == "" and _has_started_iv(s, c) and _other_site_used(s, c),
        sql=_second_site_sql, message=_second_site_message,
    ),
    Check(
        FlagKind.NOT_SIGNED, "encounter", False, "signature", "",
        python=lambda e, c: e.status == Encounter.Status.DRAFT and _day_over(e, c.now),
        sql=_not_signed_sql, message=_not_signed_message,
    ),
    Check(
        FlagKind.EM_NOT_SEPARATE, "encounter", False, "significant_separately_identifiable", "R40",
        python=lambda e, c: e.em_level is not None and any(a.started_at is not None for a in c.administrations),
        sql=_em_sql, message=_em_message,
    ),
)

CHECKS_BY_KIND = {check.kind.value: check for check in CHECKS}


def gap_querysets(sweep: Sweep) -> list:
    """One queryset per check, each of rows (kind, encounter_id,
    administration_id or NULL, access_site_id or NULL): the parts of
    `gaps_sql`."""
    parts = []
    for check in CHECKS:
        ids = {
            "administration": ("encounter_id", "pk", "no_site"),
            "access_site": ("encounter_id", "no_administration", "pk"),
            "encounter": ("pk", "no_administration", "no_site"),
        }[check.on]
        parts.append(
            check.sql(sweep)
            .annotate(flag_kind=Value(check.kind.value), no_administration=Cast(Value(None), UUIDField()), no_site=Cast(Value(None), BigIntegerField()))
            .values_list("flag_kind", *ids)
            .order_by()
        )
    return parts


def gaps_sql(sweep: Sweep) -> tuple[str, tuple]:
    """Every gap of every check in ONE SELECT (UNION ALL of the checks' own
    querysets, `gap_querysets`): rows of (kind, encounter_id,
    administration_id or NULL, access_site_id or NULL), one per open flag the
    sweep keeps.

    The floor the sweep is measured against (benchmarks/sweep_bench.py,
    issue #5) and a cross-check of it in the tests. Returns (sql, params).
    SQLite (the demo) cannot parse a statement this deep ("parser stack
    overflow" with 14 checks): the sweep runs the parts one by one there.
    """
    union = None
    for qs in gap_querysets(sweep):
        union = qs if union is None else union.union(qs, all=True)
    return union.query.sql_with_params()


def check_encounter(encounter: Encounter, *, now: dt.datetime, limits: Limits | None = None, signing: bool = False) -> list[Issue]:
    """Every open item of one encounter (from `Encounter.objects.for_chart()`),
    blocking ones first, then in check-table order; no query.

    `signing=False` (the default): exactly the flags the sweep keeps at `now`
    (`refresh_flags`, the tests' agreement). `signing=True`: what signing asks
    about, i.e. a drug never started and an empty encounter count at once
    (`sign_encounter`, the ready-to-bill panel)."""
    chart = Chart.of(encounter, now=now, limits=limits or Limits.from_settings(), signing=signing)
    issues = [check.issue(record, chart) for check in CHECKS for record in chart.records(check.on) if check.python(record, chart)]
    return sorted(issues, key=lambda i: not i.blocking)


def digest(issues: Iterable[Issue]) -> str:
    """A short fingerprint of a set of issues: what the nurse confirmed when
    signing with open blocking items (a different set asks again)."""
    keys = sorted(f"{kind}:{record}" for kind, record in (i.record_key for i in issues))
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
