"""The administration and E/M rules, as small named functions in order.

``RULES`` is the explicit, ordered tuple ``evaluate`` runs.  Each rule takes the
working state (``Work``) and either classifies administrations into IV
services, or writes lines / not-billed entries / warnings.  Every entry it
writes cites the coding-rules.md ids that decided it (R1..., D1...).

Vocabulary used below:

* a *service* is one codable IV thing: a drug infusion (runs of the same drug
  summed, R17/D2, or one bag of mixed drugs, R26), one push, or the hydration
  of one encounter (segments summed, D5);
* a *site group* is ``"main"`` for every access site that was not medically
  required, or the id of a medically required separate site (R10, R11); each
  group of each encounter gets one initial (R4).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from . import codes as C
from .policy import PayerPolicy
from .timing import (
    Interval,
    addon_hours,
    local_date,
    merge,
    minutes_between,
    running_intervals,
    running_minutes,
    secondary_hydration_units,
    subtract,
    total_minutes,
)
from .types import Administration, EncounterDoc, Line, NotBilled, Warning

IV_ROUTES = ("iv_infusion", "iv_push")
INJECTION_ROUTES = ("subcutaneous", "intramuscular", "intra_arterial")
NOT_THERAPY_PURPOSES = ("kvo", "flush", "drug_vehicle")
BILLABLE_HYDRATION_PURPOSES = ("hydration_medically_necessary", "adverse_reaction_treatment")


@dataclass(slots=True)
class Service:
    """One codable IV service (internal to the engine)."""

    key: str  # same-drug identity (HCPCS, else normalised name; "bag:..." for a mix)
    label: str  # drug name(s) for explanations
    family: str  # chemo_complex | therapeutic | hydration
    kind: str  # infusion | push
    encounter: str
    group: str  # site group, see module docstring
    admin_ids: tuple[str, ...]
    start: datetime | None
    minutes: int | None
    intervals: tuple[Interval, ...]
    rules: tuple[str, ...] = ()
    note: str = ""
    concurrent: bool = False

    @property
    def rank(self) -> int:
        return C.RANK[(self.family, self.kind)]

    def order(self) -> tuple[int, str, str]:
        """Hierarchy order (R6); ties by start time then administration id."""
        return (self.rank, _sort_time(self.start), self.admin_ids[0])


@dataclass(slots=True)
class Work:
    """Mutable working state of one evaluation (never leaves the engine)."""

    doc: EncounterDoc
    policy: PayerPolicy
    administrations: tuple[Administration, ...]
    handled: set[str] = field(default_factory=set)
    services: list[Service] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    not_billed: list[NotBilled] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    billed_hydration: set[str] = field(default_factory=set)
    bag_fluids: set[str] = field(default_factory=set)

    def pending(self, *routes: str) -> list[Administration]:
        return [a for a in self.administrations if a.id not in self.handled and (not routes or a.route in routes)]

    def line(
        self,
        code: str,
        units: int,
        *,
        admins: tuple[str, ...],
        rules: tuple[str, ...],
        explanation: str,
        minutes: int | None = None,
        modifiers: tuple[str, ...] = (),
        when: date | None = None,
        ndc: str | None = None,
    ) -> None:
        if units < 1:
            return
        self.lines.append(
            Line(
                code=code,
                units=units,
                modifiers=tuple(sorted(set(modifiers))),
                administrations=admins,
                minutes=minutes,
                rules=_dedupe(rules),
                explanation=explanation,
                date_of_service=when or self.doc.date_of_service,
                ndc=ndc,
            )
        )

    def skip(self, description: str, admins: tuple[str, ...], rules: tuple[str, ...], reason: str) -> None:
        self.not_billed.append(NotBilled(description, admins, _dedupe(rules), reason))

    def warn(self, kind: str, message: str, admins: tuple[str, ...], rules: tuple[str, ...]) -> None:
        self.warnings.append(Warning(kind, message, admins, _dedupe(rules)))

    def date_of(self, moment: datetime | None) -> date:
        """Local date of a service (R14, D4); the document's date when untimed."""
        if moment is None:
            return self.doc.date_of_service
        return local_date(moment, self.doc.timezone)


def _dedupe(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _sort_time(moment: datetime | None) -> str:
    """Sort key for a moment: its UTC ISO form; untimed items sort last."""
    if moment is None:
        return "~"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def drug_key(adm: Administration) -> str:
    """Identity of "the same drug" (R17, R28): the HCPCS code when known, else
    the drug name without parenthetical remarks or trailing qualifiers."""
    if adm.hcpcs:
        return adm.hcpcs.strip().upper()
    name = re.sub(r"\(.*?\)", " ", adm.drug.lower())
    name = re.split(r",| - ", name)[0]
    return "name:" + " ".join(name.split())


def _is_push(adm: Administration, minutes: int | None) -> bool:
    """R18: a push is an injection with the nurse present throughout, or an
    infusion of 15 minutes or less."""
    if adm.continuously_present:
        return True
    if minutes is None:
        return adm.route == "iv_push"
    return minutes <= 15


def _site_group(doc: EncounterDoc, site_id: str | None) -> str:
    """R10/R11: only a medically required separate site forms its own group."""
    for site in doc.access_sites:
        if site.id == site_id and site.separate_site_medically_required:
            return site.id
    return "main"


def _family_word(family: str) -> str:
    return {"chemo_complex": "chemo/complex", "therapeutic": "therapeutic", "hydration": "hydration"}[family]


# --------------------------------------------------------------------------
# Rules, in order
# --------------------------------------------------------------------------


def fluids_that_are_not_therapy(w: Work) -> None:
    """R29, R41: KVO, flushes and drug vehicles are never separately reported."""
    for adm in w.pending():
        if adm.purpose in NOT_THERAPY_PURPOSES:
            w.handled.add(adm.id)
            words = {"kvo": "keep-vein-open fluid", "flush": "line flush", "drug_vehicle": "drug vehicle/diluent"}
            w.skip(
                f"{adm.drug}: {words[adm.purpose]}",
                (adm.id,),
                ("R29", "R41"),
                f"{words[adm.purpose].capitalize()} is part of the administration, not hydration or a push.",
            )


def catheter_declotting(w: Work) -> None:
    """R51: a thrombolytic instilled into a port/PICC/central line to clear it is
    the procedure 36593; it does not take an administration code or the initial."""
    kinds = {s.id: s.kind for s in w.doc.access_sites}
    for adm in w.pending():
        name = adm.drug.lower()
        thrombolytic = (adm.hcpcs or "").upper() in C.THROMBOLYTIC_HCPCS or any(t in name for t in C.THROMBOLYTIC_NAMES)
        declot = adm.purpose == "catheter_clearance" or (
            thrombolytic and adm.route == "iv_push" and kinds.get(adm.access_site or "") in C.CENTRAL_ACCESS_KINDS
        )
        if not declot:
            continue
        w.handled.add(adm.id)
        w.line(
            C.DECLOT_CODE,
            1,
            admins=(adm.id,),
            rules=("R51",),
            explanation=f"{adm.drug} instilled into the {kinds.get(adm.access_site or '', 'catheter')} to clear it: declotting procedure, not an injection",
            when=w.date_of(adm.start),
        )
        w.warn(
            "declotting_inferred",
            f"{adm.drug} into a central access device was coded as catheter declotting (36593); confirm the purpose.",
            (adm.id,),
            ("R51",),
        )


def mixed_bags(w: Work) -> None:
    """R26, R3: drugs mixed in one bag are one infusion; a fluid in a bag that
    carries a drug is the drug's vehicle, not hydration."""
    bags: dict[tuple[str, str], list[Administration]] = {}
    for adm in w.pending(*IV_ROUTES):
        if adm.bag:
            bags.setdefault((adm.encounter, adm.bag), []).append(adm)
    for (encounter, bag), members in sorted(bags.items()):
        drugs = [a for a in members if a.admin_class != "hydration"]
        fluids = [a for a in members if a.admin_class == "hydration"]
        if not drugs:
            continue  # a bag of plain fluid is hydration, handled below
        for fluid in fluids:
            w.handled.add(fluid.id)
            w.bag_fluids.add(fluid.id)
            w.skip(
                f"{fluid.drug}: fluid in the same bag as {', '.join(a.drug for a in drugs)}",
                (fluid.id,),
                ("R3", "R26", "R29"),
                "A bag that carries a drug is a drug infusion, not hydration.",
            )
        if len(drugs) == 1:
            continue  # a single drug in its bag is an ordinary infusion
        family = "chemo_complex" if any(a.admin_class == "chemo_complex" for a in drugs) else "therapeutic"
        intervals = merge(i for a in drugs for i in running_intervals(a))
        timed = all(a.start is not None and a.stop is not None for a in drugs)
        minutes = total_minutes(intervals) if timed else None
        starts = [a.start for a in drugs if a.start is not None]
        kind = "push" if _is_push(drugs[0], minutes) or minutes is None else "infusion"
        for a in drugs:
            w.handled.add(a.id)
        w.services.append(
            Service(
                key=f"bag:{bag}",
                label=" + ".join(a.drug for a in drugs),
                family=family,
                kind=kind,
                encounter=encounter,
                group=_site_group(w.doc, drugs[0].access_site),
                admin_ids=tuple(a.id for a in drugs),
                start=min(starts, key=_sort_time) if starts else None,
                minutes=minutes,
                intervals=intervals,
                rules=("R26",),
                note="one infusate mix",
            )
        )


def no_stop_time(w: Work) -> None:
    """R16, D10, R23: without a stop time the duration is unknown.  Hydration is
    not reported; a chemo infusion started on a portable pump is 96416; any
    other drug infusion falls back to the push code with a warning."""
    supplies_pump = any(s.kind == "supplies" and "pump" in s.detail.lower() for s in w.doc.other_services)
    for adm in w.pending("iv_infusion"):
        if (adm.stop is not None and adm.start is not None) or adm.continuously_present:
            continue
        missing = "stop" if adm.start is not None else "start"
        if adm.admin_class == "hydration":
            w.handled.add(adm.id)
            w.skip(
                f"{adm.drug}: hydration without a {missing} time",
                (adm.id,),
                ("R16", "D10"),
                "Hydration duration cannot be established without start and stop times.",
            )
            w.warn(
                "no_stop_time" if missing == "stop" else "no_start_time",
                f"{adm.drug}: no {missing} time charted; hydration is not reportable.",
                (adm.id,),
                ("R16", "D10"),
            )
            continue
        if adm.admin_class == "chemo_complex" and (adm.pump or supplies_pump):
            w.handled.add(adm.id)
            w.line(
                C.PUMP_INITIATION_CODE,
                1,
                admins=(adm.id,),
                rules=("R23",),
                explanation=f"{adm.drug}: prolonged chemo infusion started on a portable/implantable pump",
                when=w.date_of(adm.start),
            )
            w.warn(
                "pump_supplier",
                f"{adm.drug}: if the office supplied the portable pump, Medicare expects G0498 instead of 96416.",
                (adm.id,),
                ("R23",),
            )
            continue
        w.warn(
            "no_stop_time" if missing == "stop" else "no_start_time",
            f"{adm.drug}: no {missing} time charted; infusion time cannot be supported, coded as a push. Query the nurse.",
            (adm.id,),
            ("R16", "D10"),
        )
        # Left pending: iv_services treats it as a push (minutes unknown).


def iv_services(w: Work) -> None:
    """R15, R17, R18, D2: turn the remaining IV drug administrations into
    services.  Runs of the same drug in one encounter are summed (minus pauses)
    before push/infusion and units are decided; pushes stay one service each."""
    runs: dict[tuple[str, str], list[Administration]] = {}
    pending = [a for a in w.pending(*IV_ROUTES) if a.admin_class != "hydration"]
    # Drugs with at least one timed infusion run: an untimed run of the same
    # drug is part of that infusion (R17), not a separate push.
    timed = {
        (a.encounter, drug_key(a))
        for a in pending
        if a.route == "iv_infusion" and not a.continuously_present and (running_minutes(a) or 0) > 0
    }
    for adm in pending:
        minutes = running_minutes(adm)
        joins_run = minutes is None and adm.route == "iv_infusion" and (adm.encounter, drug_key(adm)) in timed
        as_push = not joins_run and (
            adm.continuously_present or minutes is None or (adm.route == "iv_push" and minutes <= 15)
        )
        if as_push:
            w.handled.add(adm.id)
            rules = ("R18",) + (("R16", "D10") if adm.route == "iv_infusion" else ())
            w.services.append(
                Service(
                    key=drug_key(adm),
                    label=adm.drug,
                    family=adm.admin_class,
                    kind="push",
                    encounter=adm.encounter,
                    group=_site_group(w.doc, adm.access_site),
                    admin_ids=(adm.id,),
                    start=adm.start,
                    minutes=minutes,
                    intervals=running_intervals(adm),
                    rules=rules,
                    note="charted as a push" if adm.route == "iv_push" else "no stop time, push fallback",
                )
            )
            continue
        runs.setdefault((adm.encounter, drug_key(adm)), []).append(adm)
    for (encounter, key), members in sorted(runs.items()):
        intervals = merge(i for a in members for i in running_intervals(a))
        minutes = sum(running_minutes(a) or 0 for a in members)
        rules: tuple[str, ...] = ("R15",)
        note = f"{minutes} running min"
        if len(members) > 1:
            rules += ("R17", "D2")
            note = f"{len(members)} runs summed to {minutes} min"
        if any(a.pauses for a in members):
            rules += ("R17",)
            note += ", pauses excluded"
        kind = "push" if minutes <= 15 else "infusion"
        rules += ("R18",)
        for a in members:
            w.handled.add(a.id)
        first = members[0]
        w.services.append(
            Service(
                key=key,
                label=first.drug,
                family=first.admin_class
                if all(a.admin_class == first.admin_class for a in members)
                else "chemo_complex",
                kind=kind,
                encounter=encounter,
                group=_site_group(w.doc, first.access_site),
                admin_ids=tuple(a.id for a in members),
                start=first.start,
                minutes=minutes,
                intervals=intervals,
                rules=rules,
                note=note,
            )
        )


def hydration(w: Work) -> None:
    """R19, R21, R30, R31, D5: hydration of one encounter (per site group) is
    summed; minutes overlapping any other IV administration (concurrent
    hydration, push minutes through the line) are removed; only medically
    necessary or adverse-reaction hydration is billable; 30 minutes or less is
    not reportable."""
    groups: dict[tuple[str, str], list[Administration]] = {}
    for adm in w.pending(*IV_ROUTES):
        if adm.admin_class != "hydration":
            continue
        w.handled.add(adm.id)
        if adm.purpose not in BILLABLE_HYDRATION_PURPOSES:
            w.skip(
                f"{adm.drug}: fluid without documented medical necessity",
                (adm.id,),
                ("R31", "R29"),
                "Hydration is billable only when medically necessary or treating an adverse reaction.",
            )
            w.warn(
                "hydration_necessity",
                f"{adm.drug}: purpose '{adm.purpose}' does not support hydration.",
                (adm.id,),
                ("R31",),
            )
            continue
        if any(word in adm.drug.lower() for word in ("potassium", "kcl", "magnesium", "calcium", "phosph")):
            w.warn(
                "electrolyte_bag",
                f"{adm.drug}: electrolyte replacement may be a therapeutic infusion (96365), not hydration; coder review.",
                (adm.id,),
                ("R3",),
            )
        if adm.dose is not None and adm.dose.unit == "mL" and adm.dose.value <= 500:
            w.warn(
                "hydration_volume",
                f"{adm.drug}: {adm.dose.value} mL; some local policies question hydration of 500 mL or less.",
                (adm.id,),
                ("R33",),
            )
        groups.setdefault((adm.encounter, _site_group(w.doc, adm.access_site)), []).append(adm)
    for (encounter, group), members in sorted(groups.items()):
        own = merge(i for a in members for i in running_intervals(a))
        others = [i for s in w.services if s.encounter == encounter and s.family != "hydration" for i in s.intervals]
        alone = subtract(own, others)
        gross = total_minutes(own)
        minutes = total_minutes(alone)
        ids = tuple(a.id for a in members)
        rules: tuple[str, ...] = ("R15", "R19")
        note = f"{minutes} min"
        if len(members) > 1:
            rules += ("D5", "R17")
            note = f"{len(members)} segments summed to {minutes} min"
        if gross != minutes:
            rules += ("R30", "R21")
            note += f" ({gross - minutes} min overlapping other administrations removed)"
        if minutes < 31:
            w.skip(
                f"hydration ({', '.join(a.drug for a in members)})",
                ids,
                rules,
                f"Only {minutes} min of hydration ran alone; 30 minutes or less is not reportable.",
            )
            continue
        starts = [a.start for a in members if a.start is not None]
        w.services.append(
            Service(
                key="hydration",
                label=members[0].drug,
                family="hydration",
                kind="infusion",
                encounter=encounter,
                group=group,
                admin_ids=ids,
                start=min(starts, key=_sort_time) if starts else None,
                minutes=minutes,
                intervals=alone,
                rules=rules,
                note=note,
            )
        )


def concurrent_infusions(w: Work) -> None:
    """R25: a different drug running at the same time as another infusion
    through the same access is concurrent (96368), never the initial.  Marked by
    ``concurrent_with``, or inferred from overlapping running time in one site
    group (with a warning).  There is no concurrent chemo code."""
    by_admin = {aid: s for s in w.services for aid in s.admin_ids}
    adm_by_id = {a.id: a for a in w.administrations}
    infusions = [s for s in w.services if s.kind == "infusion" and s.family != "hydration"]
    for s in sorted(infusions, key=Service.order):
        partners: list[Service] = []
        for aid in s.admin_ids:
            target = adm_by_id[aid].concurrent_with
            t = by_admin.get(target or "")
            if t is not None and t is not s and t.kind == "infusion" and t.family != "hydration":
                partners.append(t)
        explicit = bool(partners)
        if not partners:
            partners = [
                t
                for t in infusions
                if t is not s
                and t.encounter == s.encounter
                and t.group == s.group
                and _overlap_minutes(s, t) >= INFERRED_CONCURRENT_MINUTES
            ]
        for t in partners:
            if explicit:
                # The administration marked concurrent_with is the concurrent
                # one, unless it outranks its partner (chemo beside non-chemo).
                lower = s if s.rank >= t.rank else t
            else:
                lower = s if t.order() < s.order() else t
            other = t if lower is s else s
            if lower.concurrent or other.concurrent:
                continue
            if lower.family == "chemo_complex":
                w.warn(
                    "concurrent_chemo",
                    f"{lower.label} ran concurrently with {other.label}; there is no concurrent chemo code, coded in sequence.",
                    lower.admin_ids,
                    ("R25",),
                )
                continue
            lower.concurrent = True
            lower.rules += ("R25",)
            if not explicit:
                w.warn(
                    "concurrent_inferred",
                    f"{lower.label} overlapped another infusion in time and was coded as concurrent; confirm it ran through the same access.",
                    lower.admin_ids,
                    ("R25",),
                )


def _overlap_minutes(a: Service, b: Service) -> int:
    return total_minutes(a.intervals) - total_minutes(subtract(a.intervals, b.intervals))


# Overlap needed before two uncharted infusions are taken as concurrent: the
# >16-minute reading of R25 (Haugen); shorter overlaps are charting slack.
INFERRED_CONCURRENT_MINUTES = 16


def code_iv_services(w: Work) -> None:
    """R4-R8, R10-R13, R20-R22, R25, R27, R28, R31, D1, D3, D4, D7: per
    encounter and site group, the best-ranked service is the initial; everything
    else is sequential, concurrent, an additional push or an additional hour.
    The office follows the facility hierarchy (D7)."""
    encounters: dict[str, list[Service]] = {}
    for s in w.services:
        encounters.setdefault(s.encounter, []).append(s)

    def first_start(items: list[Service]) -> tuple[str, str]:
        return min((_sort_time(s.start), s.encounter) for s in items)

    ordered = sorted(encounters.items(), key=lambda kv: first_start(kv[1]))
    concurrent_done: set[str] = set()
    for position, (encounter, services) in enumerate(ordered):
        groups: dict[str, list[Service]] = {}
        for s in services:
            groups.setdefault(s.group, []).append(s)
        heads = sorted(((_initial_of(members), members) for members in groups.values()), key=lambda hm: hm[0].order())
        for gi, (initial, members) in enumerate(heads):
            modifiers: list[str] = []
            rules: list[str] = ["R1", "R4", "R6"]
            why: list[str] = []
            if w.doc.setting == "office":
                rules.append("D7")
            if gi > 0:
                modifiers.append(w.policy.distinct_modifier)
                rules += ["R10", "R12", "D3"]
                why.append("second initial at a medically required separate site")
            if position > 0 and gi == 0:
                modifiers.append(w.policy.separate_encounter_modifier)
                rules += ["R13", "D3"]
                why.append(f"initial of separate encounter {encounter}")
            _code_initial(w, initial, tuple(modifiers), tuple(rules), why)
            pushed: dict[str, datetime | None] = {}
            if initial.kind == "push":
                pushed[initial.key] = initial.start
            initial_code = C.INITIAL_CODE[(initial.family, initial.kind)]
            for s in sorted(
                (m for m in members if m is not initial), key=lambda m: (_sort_time(m.start), m.admin_ids[0])
            ):
                _code_subsequent(w, s, initial, initial_code, pushed, concurrent_done)


def _initial_of(members: list[Service]) -> Service:
    """Best-ranked service of a site group (R4, R6, R7); a concurrent infusion
    never takes the slot while anything else is there (R25)."""
    candidates = [s for s in members if not s.concurrent] or members
    initial = min(candidates, key=Service.order)
    initial.concurrent = False
    return initial


def _code_initial(w: Work, s: Service, modifiers: tuple[str, ...], rules: tuple[str, ...], why: list[str]) -> None:
    code = C.INITIAL_CODE[(s.family, s.kind)]
    when = w.date_of(s.start)
    reason = (
        "; ".join(why)
        if why
        else "highest-ranked service of the encounter (hierarchy: chemo infusion > chemo push > therapeutic infusion > therapeutic push > hydration)"
    )
    rules = rules + s.rules
    if s.kind == "infusion":
        rules += ("R20",) if s.family != "hydration" else ("R19", "R20")
    w.line(
        code,
        1,
        admins=s.admin_ids,
        rules=rules,
        minutes=s.minutes,
        modifiers=modifiers,
        when=when,
        explanation=f"Initial {_family_word(s.family)} {s.kind}: {s.label} ({s.note}); {reason}",
    )
    if s.kind == "infusion" and s.minutes is not None:
        extra = addon_hours(s.minutes)
        w.line(
            C.ADDITIONAL_HOUR_CODE[s.family],
            extra,
            admins=s.admin_ids,
            rules=("R20",) + s.rules,
            minutes=s.minutes,
            when=when,
            explanation=f"{s.label}: {s.minutes} min gives {extra} additional hour(s) (thresholds 91, 151, 211 ... min)",
        )


def _code_subsequent(
    w: Work,
    s: Service,
    initial: Service,
    initial_code: str,
    pushed: dict[str, datetime | None],
    concurrent_done: set[str],
) -> None:
    when = w.date_of(s.start)
    base = ("R4", "R7", "R8") + s.rules
    if s.concurrent:
        if s.encounter in concurrent_done:
            w.skip(
                f"{s.label}: further concurrent infusion",
                s.admin_ids,
                ("R25",),
                "96368 is reported once per encounter.",
            )
            return
        concurrent_done.add(s.encounter)
        w.line(
            "96368",
            1,
            admins=s.admin_ids,
            rules=base + ("R25",),
            when=when,
            minutes=s.minutes,
            explanation=f"{s.label} ran concurrently through the same access: concurrent infusion, once per encounter, not timed",
        )
        return
    if s.family == "hydration":
        units = secondary_hydration_units(s.minutes or 0)
        mods: tuple[str, ...] = ()
        rules = base + ("R21", "R31", "D1")
        policy = w.policy.secondary_hydration_59
        if policy == "always" or (policy == "chemo_initial_only" and initial_code in C.CHEMO_INITIALS):
            mods = ("59",)
        w.line(
            "96361",
            units,
            admins=s.admin_ids,
            rules=rules,
            minutes=s.minutes,
            modifiers=mods,
            when=when,
            explanation=f"Secondary hydration after {initial_code}: {s.note} = {units} unit(s) (first unit at 31 min, then 91, 151 ...)",
        )
        return
    if s.kind == "infusion":
        if s.family == "chemo_complex" and initial.family == "chemo_complex" and initial.kind == "infusion":
            code, hour = "96417", "96415"
        elif s.family == "chemo_complex":
            # A chemo infusion can only follow a chemo initial; reaching here
            # means the initial is a chemo push, so this is still 96417's
            # family: no primary exists for 96417 besides 96413 (R44).
            code, hour = "96417", "96415"
        else:
            code, hour = "96367", "96366"
        w.line(
            code,
            1,
            admins=s.admin_ids,
            rules=base + ("R22",),
            minutes=s.minutes,
            when=when,
            explanation=f"{s.label}: different {_family_word(s.family)} drug infused in sequence after the initial ({s.note})",
        )
        extra = addon_hours(s.minutes or 0)
        w.line(
            hour,
            extra,
            admins=s.admin_ids,
            rules=("R20", "R22") + s.rules,
            minutes=s.minutes,
            when=when,
            explanation=f"{s.label}: sequential infusion of {s.minutes} min gives {extra} additional hour(s)",
        )
        return
    # Pushes (R27, R28).
    if s.key not in pushed:
        pushed[s.key] = s.start
        code = "96411" if s.family == "chemo_complex" else "96375"
        w.line(
            code,
            1,
            admins=s.admin_ids,
            rules=base + ("R27",),
            minutes=s.minutes,
            when=when,
            explanation=f"{s.label}: additional IV push of a new {_family_word(s.family)} drug ({s.note})",
        )
        return
    last = pushed[s.key]
    gap = minutes_between(last, s.start) if last is not None and s.start is not None else None
    if s.family == "chemo_complex":
        w.skip(
            f"{s.label}: repeat push of the same chemo drug",
            s.admin_ids,
            ("R27", "R28"),
            "96411 is for each additional different drug; the repeat is covered by the drug units.",
        )
        return
    if w.doc.setting != "facility":
        w.skip(
            f"{s.label}: repeat push of the same drug",
            s.admin_ids,
            ("R28",),
            "96376 is facility-only; in the office report the first push and bill the total drug units.",
        )
        return
    if gap is None or gap <= 30:
        w.skip(
            f"{s.label}: repeat push of the same drug within 30 min",
            s.admin_ids,
            ("R28",),
            "A repeat push is reported only more than 30 minutes after the prior reported push.",
        )
        if gap is None:
            w.warn(
                "push_time_unknown",
                f"{s.label}: push time missing; cannot tell whether the repeat was more than 30 min later.",
                s.admin_ids,
                ("R28",),
            )
        return
    pushed[s.key] = s.start
    w.line(
        "96376",
        1,
        admins=s.admin_ids,
        rules=base + ("R28",),
        minutes=s.minutes,
        when=when,
        explanation=f"{s.label}: repeat push of the same drug {int(gap)} min after the prior reported push (facility)",
    )


def injections(w: Work) -> None:
    """R9, R34, D11, D12, D13: SC/IM/intra-arterial injections are coded per
    injection beside any IV initial; one dose of one drug split over syringes is
    one injection; a second line with the same code carries 59."""
    grouped: dict[tuple[str, str, str], list[Administration]] = {}
    for adm in w.pending(*INJECTION_ROUTES):
        w.handled.add(adm.id)
        code = _injection_code(adm)
        if code is None:
            w.skip(
                f"{adm.drug}: {adm.route.replace('_', ' ')} {adm.admin_class} injection",
                (adm.id,),
                ("R34",),
                "No injection code in the rule set for this route and family.",
            )
            w.warn(
                "unsupported_injection",
                f"{adm.drug}: {adm.route} {adm.admin_class} needs coder review.",
                (adm.id,),
                ("R34",),
            )
            continue
        grouped.setdefault((adm.encounter, drug_key(adm), code), []).append(adm)
    seen_codes: dict[tuple[str, date], int] = {}
    items = sorted(grouped.items(), key=lambda kv: (_sort_time(kv[1][0].start), kv[1][0].id))
    for (_encounter, _key, code), members in items:
        first = members[0]
        when = w.date_of(first.start)
        count = seen_codes.get((code, when), 0)
        seen_codes[(code, when)] = count + 1
        mods = (w.policy.injection_repeat_modifier,) if count else ()
        rules: tuple[str, ...] = ("R9", "R34", "D12")
        if first.admin_class == "chemo_complex":
            rules += ("R35", "D13")
        if len(members) > 1:
            rules += ("D11",)
        if count:
            rules += ("D11", "R12")
        note = f"{len(members)} syringes of one dose = one injection" if len(members) > 1 else "one injection"
        w.line(
            code,
            1,
            admins=tuple(a.id for a in members),
            rules=rules,
            modifiers=mods,
            when=when,
            explanation=f"{first.drug}: {first.route.replace('_', ' ')} injection ({note}), coded beside any IV service",
        )


def _injection_code(adm: Administration) -> str | None:
    if adm.route == "intra_arterial":
        return "96373" if adm.admin_class == "therapeutic" else None
    if adm.admin_class == "therapeutic":
        return "96372"
    if adm.admin_class == "chemo_complex":
        name = adm.drug.lower()
        return "96402" if any(h in name for h in C.HORMONAL_ANTINEOPLASTICS) else "96401"
    return None  # SC/IM hydration (hypodermoclysis) is outside the rule set


def other_services(w: Work) -> None:
    """R39-R43: supplies are never billed; 96523 only as the sole service; 99211
    never with a procedure or administration; 99212-99215 beside a procedure only
    with 25 when significant and separately identifiable; facility claims carry
    no professional E/M (the hospital's G0463 is a coder decision)."""
    procedures = [l for l in w.lines if not C.is_drug_code(l.code)]
    services = sorted(w.doc.other_services, key=lambda s: (s.kind, s.level or "", s.detail))
    em = [s for s in services if s.kind == "em_visit" and (s.level or "") != "99211"]
    nurse = [s for s in services if s.kind == "nurse_visit_99211" or (s.kind == "em_visit" and s.level == "99211")]
    for s in services:
        if s.kind == "supplies":
            w.skip(f"supplies: {s.detail}".rstrip(": "), (), ("R41",), "Supplies are included in the service.")
    em_lines = 0
    for s in em:
        if w.doc.setting == "facility":
            w.skip(
                f"E/M {s.level}: {s.detail}", (), ("R43", "R2"), "A hospital claim does not carry the professional E/M."
            )
            w.warn(
                "facility_visit",
                "Hospital clinic visit: the facility reports G0463, the physician the E/M; coder to decide.",
                (),
                ("R43",),
            )
            continue
        level = s.level or ""
        if level not in C.EM_CODES:
            w.warn(
                "em_level",
                f"E/M level {level!r} is not an established-patient office level; coder review.",
                (),
                ("R40",),
            )
            continue
        if procedures:
            if s.significant_separately_identifiable:
                em_lines += 1
                w.line(
                    level,
                    1,
                    admins=(),
                    rules=("R40",),
                    modifiers=("25",),
                    explanation=f"E/M {level}: significant, separately identifiable work on a procedure day ({s.detail})",
                )
            else:
                w.skip(f"E/M {level}: {s.detail}", (), ("R40",), "Routine assessment is part of the administration.")
        else:
            em_lines += 1
            w.line(level, 1, admins=(), rules=("R40",), explanation=f"E/M {level}: {s.detail}")
    flush_billed = False
    for s in (s for s in services if s.kind == "port_flush_only"):
        if procedures or em_lines or flush_billed:
            w.skip(
                f"port flush: {s.detail}",
                (),
                ("R42", "R41"),
                "96523 is reported only when it is the sole service that day.",
            )
        else:
            flush_billed = True
            w.line(
                C.PORT_FLUSH_CODE,
                1,
                admins=(),
                rules=("R42",),
                explanation=f"Port irrigation as the only service: {s.detail}",
            )
    for s in nurse:
        if w.doc.setting == "facility":
            w.skip(f"nurse visit: {s.detail}", (), ("R43", "R39"), "A hospital claim does not carry 99211.")
        elif procedures or em_lines or flush_billed:
            w.skip(
                f"99211: {s.detail}",
                (),
                ("R39", "R42"),
                "99211 is never billed with drug administration or a procedure.",
            )
        else:
            w.line("99211", 1, admins=(), rules=("R39",), explanation=f"Nurse visit as the only service: {s.detail}")


def addons_need_primary(w: Work) -> None:
    """R44: an add-on without an eligible primary on the claim is dropped."""
    present = {l.code for l in w.lines}
    kept: list[Line] = []
    for l in w.lines:
        primaries = C.ADDON_PRIMARIES.get(l.code)
        if primaries is not None and not (primaries & present):
            w.skip(
                f"{l.code} without its primary",
                l.administrations,
                ("R44",) + l.rules,
                "An add-on code never stands alone.",
            )
            w.warn(
                "addon_without_primary",
                f"{l.code} had no eligible primary and was dropped.",
                l.administrations,
                ("R44",),
            )
            continue
        kept.append(l)
    w.lines = kept


RULES: tuple[Callable[[Work], None], ...] = (
    fluids_that_are_not_therapy,
    catheter_declotting,
    mixed_bags,
    no_stop_time,
    iv_services,
    hydration,
    concurrent_infusions,
    code_iv_services,
    injections,
    other_services,
    addons_need_primary,
)
"""The administration rules in the order ``evaluate`` runs them."""


def record_billed_hydration(w: Work) -> None:
    """Remember which hydration administrations produced a line (for D6)."""
    for l in w.lines:
        if l.code in ("96360", "96361"):
            w.billed_hydration.update(l.administrations)
