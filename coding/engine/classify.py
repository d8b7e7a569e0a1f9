"""Rules that turn administrations into IV services or set them aside.

Fluids that are not therapy (R29), catheter declotting (R51), mixed bags (R26),
missing stop times (R16, D10, R23), push vs infusion and same-drug sums (R15,
R17, R18, D2), hydration minutes (R19, R21, R30, R31, D5) and concurrency (R25).
"""

from __future__ import annotations

from . import codes as C
from .state import (
    BILLABLE_HYDRATION_PURPOSES,
    IV_ROUTES,
    NOT_THERAPY_PURPOSES,
    Service,
    Work,
    is_push,
    site_group,
    sort_time,
)
from .timing import (
    merge,
    running_intervals,
    running_minutes,
    subtract,
    total_minutes,
)
from .types import Administration


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
        kind = "push" if is_push(drugs[0], minutes) or minutes is None else "infusion"
        for a in drugs:
            w.handled.add(a.id)
        w.services.append(
            Service(
                key=f"bag:{bag}",
                label=" + ".join(a.drug for a in drugs),
                family=family,
                kind=kind,
                encounter=encounter,
                group=site_group(w.doc, drugs[0].access_site),
                admin_ids=tuple(a.id for a in drugs),
                start=min(starts, key=sort_time) if starts else None,
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
        (a.encounter, w.drug_key(a))
        for a in pending
        if a.route == "iv_infusion" and not a.continuously_present and (running_minutes(a) or 0) > 0
    }
    for adm in pending:
        minutes = running_minutes(adm)
        joins_run = minutes is None and adm.route == "iv_infusion" and (adm.encounter, w.drug_key(adm)) in timed
        as_push = not joins_run and (
            adm.continuously_present or minutes is None or (adm.route == "iv_push" and minutes <= 15)
        )
        if as_push:
            w.handled.add(adm.id)
            rules = ("R18",) + (("R16", "D10") if adm.route == "iv_infusion" else ())
            w.services.append(
                Service(
                    key=w.drug_key(adm),
                    label=adm.drug,
                    family=adm.admin_class,
                    kind="push",
                    encounter=adm.encounter,
                    group=site_group(w.doc, adm.access_site),
                    admin_ids=(adm.id,),
                    start=adm.start,
                    minutes=minutes,
                    intervals=running_intervals(adm),
                    rules=rules,
                    note="charted as a push" if adm.route == "iv_push" else "no stop time, push fallback",
                )
            )
            continue
        runs.setdefault((adm.encounter, w.drug_key(adm)), []).append(adm)
    for (encounter, key), members in sorted(runs.items()):
        intervals = merge(i for a in members for i in running_intervals(a))
        # Actual running time of the drug (R15): the union of its runs, so runs
        # that overlap (two bags at once to reach a rate, R11; overlapping
        # charting) are not counted twice; separate runs are added (R17, D2).
        minutes = total_minutes(intervals)
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
                group=site_group(w.doc, first.access_site),
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
        groups.setdefault((adm.encounter, site_group(w.doc, adm.access_site)), []).append(adm)
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
                start=min(starts, key=sort_time) if starts else None,
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
    marked: dict[int, list[Service]] = {}
    for s in infusions:
        for aid in s.admin_ids:
            target = adm_by_id[aid].concurrent_with
            t = by_admin.get(target or "")
            if t is not None and t is not s and t.kind == "infusion" and t.family != "hydration":
                marked.setdefault(id(s), []).append(t)
    # Charted pairs first, so an inference never pre-empts (or mislabels as
    # inferred) a pair the nurse marked.
    for explicit in (True, False):
        for s in sorted(infusions, key=Service.order):
            if explicit:
                partners = marked.get(id(s), [])
            elif id(s) in marked:
                continue
            else:
                partners = [
                    t
                    for t in infusions
                    if t is not s
                    and t.encounter == s.encounter
                    and t.group == s.group
                    and _overlap_minutes(s, t) >= INFERRED_CONCURRENT_MINUTES
                ]
            _pair_concurrent(w, s, partners, explicit)


def _pair_concurrent(w: Work, s: Service, partners: list[Service], explicit: bool) -> None:
    """Mark the lower service of each pair (s, partner) concurrent (R25)."""
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
