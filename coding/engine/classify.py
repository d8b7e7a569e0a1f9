"""Rules that turn administrations into IV services or set them aside.

Fluids that are not therapy (R29), catheter declotting (R51), mixed bags (R26),
missing stop times (R16, D10, R23), push vs infusion and same-drug sums (R15,
R17, R18, D2), hydration minutes (R19, R21, R30, R31, R33, D5) and concurrency
(R25).
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
    run_arith,
    site_group,
    union,
)
from .timing import HYDRATION_MIN_MINUTES, PUSH_MAX_MINUTES, Interval, minutes_of, subtract
from .types import Administration

_NOT_THERAPY_WORDS = {"kvo": "keep-vein-open fluid", "flush": "line flush", "drug_vehicle": "drug vehicle/diluent"}


def fluids_that_are_not_therapy(w: Work) -> None:
    """R29, R41: KVO, flushes and drug vehicles are never separately reported."""
    for adm in w.pending():
        if adm.purpose in NOT_THERAPY_PURPOSES:
            w.handled.add(adm.id)
            words = _NOT_THERAPY_WORDS[adm.purpose]
            w.skip(
                f"{adm.drug}: {words}",
                (adm.id,),
                ("R29", "R41"),
                f"{words.capitalize()} is part of the administration, not hydration or a push.",
            )


def catheter_declotting(w: Work) -> None:
    """R51: a thrombolytic instilled into a port/PICC/central line to clear it is
    the procedure 36593; it does not take an administration code or the initial."""
    kinds = {s.id: s.kind for s in w.doc.access_sites if s.kind in C.CENTRAL_ACCESS_KINDS}
    if not kinds and not any(a.purpose == "catheter_clearance" for a in w.administrations):
        return
    for adm in w.pending():
        if adm.purpose != "catheter_clearance":
            if adm.route != "iv_push" or kinds.get(adm.access_site or "") not in C.CENTRAL_ACCESS_KINDS:
                continue
            name = adm.drug.lower()
            if (adm.hcpcs or "").upper() not in C.THROMBOLYTIC_HCPCS and not any(t in name for t in C.THROMBOLYTIC_NAMES):
                continue
        w.handled.add(adm.id)
        w.line(
            C.DECLOT_CODE,
            1,
            admins=(adm.id,),
            rules=("R51",),
            explanation=f"{adm.drug} (adm {adm.id}) instilled into the {kinds.get(adm.access_site or '', 'catheter').replace('_', ' ')} to clear it: declotting procedure, not an injection",
            when=w.date_of(w.runs[adm.id].start),
        )
        w.warn(
            "declotting_inferred",
            f"{adm.drug} into a central access device was coded as catheter declotting (36593); confirm the purpose.",
            (adm.id,),
            ("R51",),
        )


def mixed_bags(w: Work) -> None:
    """R26, R3: drugs mixed in one bag are one infusion (or, per payer policy,
    separate sequential or concurrent infusions); a fluid in a bag that carries
    a drug is the drug's vehicle, not hydration."""
    if not any(a.bag for a in w.administrations):
        return
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
        if len(drugs) == 1 or w.policy.mixed_bag != "one_infusion":
            continue  # one drug in its bag, or a mix the payer codes drug by drug (iv_services)
        family = "chemo_complex" if any(a.admin_class == "chemo_complex" for a in drugs) else "therapeutic"
        ids = tuple(a.id for a in drugs)
        intervals = union(w, ids)
        timed = all(w.runs[a].minutes is not None for a in ids)
        minutes = minutes_of(intervals) if timed else None
        starts = [w.runs[a].start for a in ids if w.runs[a].start is not None]
        kind = "push" if minutes is None or is_push(drugs[0], minutes) else "infusion"
        w.handled.update(ids)
        w.services.append(
            Service(
                key=f"bag:{bag}",
                label=" + ".join(a.drug for a in drugs),
                family=family,
                kind=kind,
                encounter=encounter,
                group=site_group(w, drugs[0].access_site),
                admin_ids=ids,
                start=min(starts) if starts else None,
                minutes=minutes,
                intervals=intervals,
                rules=("R26",),
                arith=(run_arith(w, ids, minutes) if minutes is not None else "untimed") + "; one infusate mix (one bag)",
            )
        )


def no_stop_time(w: Work) -> None:
    """R16, D10, R23: without a stop time the duration is unknown.  Hydration is
    not reported; a chemo infusion started on a portable pump is 96416; any
    other drug infusion falls back to the push code with a warning."""
    supplies_pump: bool | None = None
    for adm in w.pending("iv_infusion"):
        if (adm.stop is not None and adm.start is not None) or adm.continuously_present:
            continue
        if supplies_pump is None:
            supplies_pump = any(s.kind == "supplies" and "pump" in s.detail.lower() for s in w.doc.other_services)
        missing = "stop" if adm.start is not None else "start"
        kind = "no_stop_time" if missing == "stop" else "no_start_time"
        if adm.admin_class == "hydration":
            w.handled.add(adm.id)
            w.skip(
                f"{adm.drug}: hydration without a {missing} time",
                (adm.id,),
                ("R16", "D10"),
                "Hydration duration cannot be established without start and stop times.",
            )
            w.warn(kind, f"{adm.drug}: no {missing} time charted; hydration is not reportable.", (adm.id,), ("R16", "D10"), blocking=True)
            continue
        if adm.admin_class == "chemo_complex" and (adm.pump or supplies_pump):
            w.handled.add(adm.id)
            w.line(
                C.PUMP_INITIATION_CODE,
                1,
                admins=(adm.id,),
                rules=("R23",),
                explanation=f"{adm.drug} (adm {adm.id}): prolonged chemo infusion started on a portable/implantable pump at {w.clock(w.runs[adm.id].start)}; disconnect is not reported",
                when=w.date_of(w.runs[adm.id].start),
            )
            w.warn(
                "pump_supplier",
                f"{adm.drug}: if the office supplied the portable pump, Medicare expects G0498 instead of 96416.",
                (adm.id,),
                ("R23",),
            )
            continue
        w.warn(
            kind,
            f"{adm.drug}: no {missing} time charted; infusion time cannot be supported, coded as a push. Query the nurse.",
            (adm.id,),
            ("R16", "D10"),
            blocking=True,
        )
        # Left pending: iv_services treats it as a push (minutes unknown).


def _clusters(w: Work, members: list[Administration]) -> list[list[Administration]]:
    """Runs of one drug split into separate infusions for the D2 alternatives:
    runs whose start-to-stop windows overlap or touch (two bags at once, R11)
    stay one infusion; runs without a start or stop join the first."""
    timed = sorted((a for a in members if w.runs[a.id].minutes is not None), key=lambda a: (w.runs[a.id].start, a.id))
    untimed = [a for a in members if w.runs[a.id].minutes is None]
    out: list[list[Administration]] = []
    end = -1.0
    for a in timed:
        run = w.runs[a.id]
        assert run.start is not None and run.stop is not None
        if out and run.start <= end:
            out[-1].append(a)
        else:
            out.append([a])
        end = max(end, run.stop)
    if not out:
        return [untimed]
    out[0].extend(untimed)
    return out


def iv_services(w: Work) -> None:
    """R15, R17, R18, D2: turn the remaining IV drug administrations into
    services.  Runs of the same drug in one encounter are summed (minus pauses)
    before push/infusion and units are decided (or, per payer policy D2, each
    later run stands alone); pushes stay one service each."""
    runs: dict[tuple[str, str], list[Administration]] = {}
    pending = [a for a in w.pending(*IV_ROUTES) if a.admin_class != "hydration"]
    # Drugs with at least one timed infusion run: an untimed run of the same
    # drug is part of that infusion (R17), not a separate push.
    timed = {
        (a.encounter, w.drug_key(a))
        for a in pending
        if a.route == "iv_infusion" and not a.continuously_present and (w.runs[a.id].minutes or 0) > 0
    }
    split_bags = w.policy.mixed_bag != "one_infusion"
    for adm in pending:
        run = w.runs[adm.id]
        minutes = run.minutes
        joins_run = minutes is None and adm.route == "iv_infusion" and (adm.encounter, w.drug_key(adm)) in timed
        as_push = not joins_run and (adm.continuously_present or minutes is None or (adm.route == "iv_push" and minutes <= PUSH_MAX_MINUTES))
        if as_push:
            w.handled.add(adm.id)
            fallback = adm.route == "iv_infusion"
            rules = ("R18",) + (("R16", "D10") if fallback else ())
            if fallback:
                arith = "no stop time: push fallback (D10)" if adm.start is not None else "no start time: push fallback (D10)"
            elif adm.continuously_present and minutes:
                arith = f"pushed over {minutes} min with the nurse present throughout ({w.clock(run.start)})"
            else:
                arith = f"charted as a push at {w.clock(run.start)}"
            w.services.append(
                Service(
                    key=w.drug_key(adm),
                    label=adm.drug,
                    family=adm.admin_class,
                    kind="push",
                    encounter=adm.encounter,
                    group=site_group(w, adm.access_site),
                    admin_ids=(adm.id,),
                    start=run.start,
                    minutes=minutes,
                    intervals=run.intervals,
                    rules=rules,
                    arith=arith,
                )
            )
            continue
        runs.setdefault((adm.encounter, w.drug_key(adm)), []).append(adm)
    for (encounter, key), all_members in sorted(runs.items()):
        groups = [all_members] if w.policy.same_drug_runs == "sum" else _clusters(w, all_members)
        for index, members in enumerate(groups):
            _infusion(w, encounter, key, members, repeat=index > 0, bag=members[0].bag if split_bags else None)


def _infusion(w: Work, encounter: str, key: str, members: list[Administration], *, repeat: bool, bag: str | None) -> None:
    ids = tuple(a.id for a in members)
    # Actual running time of the drug (R15): the union of its runs, so runs
    # that overlap (two bags at once to reach a rate, R11; overlapping
    # charting) are not counted twice; separate runs are added (R17, D2).
    intervals = union(w, ids)
    minutes = minutes_of(intervals)
    rules: tuple[str, ...] = ("R15",)
    if len(members) > 1:
        rules += ("R17", "D2")
    if any(a.pauses for a in members):
        rules += ("R17",)
    if repeat:
        rules += ("D2", "R17")
    rules += ("R18",)
    w.handled.update(ids)
    first = members[0]
    family = first.admin_class if all(a.admin_class == first.admin_class for a in members) else "chemo_complex"
    starts = [w.runs[a].start for a in ids if w.runs[a].start is not None]
    w.services.append(
        Service(
            key=key,
            label=first.drug,
            family=family,
            kind="push" if minutes <= PUSH_MAX_MINUTES else "infusion",
            encounter=encounter,
            group=site_group(w, first.access_site),
            admin_ids=ids,
            start=min(starts) if starts else None,
            minutes=minutes,
            intervals=intervals,
            rules=rules,
            arith=run_arith(w, ids, minutes),
            bag=bag,
            repeat=repeat,
        )
    )


def hydration(w: Work) -> None:
    """R19, R21, R30, R31, R33, D5: hydration of one encounter (per site group)
    is summed; minutes overlapping any other IV administration (concurrent
    hydration, push minutes through the line) are removed; only medically
    necessary or adverse-reaction hydration is billable; 30 minutes or less is
    not reportable.  Per payer policy, segments are judged one by one (D5) and
    small volumes are not reasonable and necessary (R33)."""
    fluids = [a for a in w.pending(*IV_ROUTES) if a.admin_class == "hydration"]
    if not fluids:
        return
    groups: dict[tuple[str, str], list[Administration]] = {}
    floor = w.policy.hydration_volume_floor_ml
    for adm in fluids:
        w.handled.add(adm.id)
        if adm.purpose not in BILLABLE_HYDRATION_PURPOSES:
            w.skip(
                f"{adm.drug}: fluid without documented medical necessity",
                (adm.id,),
                ("R31", "R29"),
                "Hydration is billable only when medically necessary or treating an adverse reaction.",
            )
            w.warn("hydration_necessity", f"{adm.drug}: purpose '{adm.purpose}' does not support hydration.", (adm.id,), ("R31",))
            continue
        name = adm.drug.lower()
        if any(word in name for word in ("potassium", "kcl", "magnesium", "calcium", "phosph")):
            w.warn(
                "electrolyte_bag",
                f"{adm.drug}: electrolyte replacement may be a therapeutic infusion (96365), not hydration; coder review.",
                (adm.id,),
                ("R3",),
            )
        volume = adm.dose.value if adm.dose is not None and adm.dose.unit == "mL" else None
        if volume is not None and floor is not None and volume <= floor:
            w.skip(
                f"{adm.drug}: {volume} mL of hydration",
                (adm.id,),
                ("R33",),
                f"The payer's policy treats hydration of {floor} mL or less as not reasonable and necessary.",
            )
            continue
        if volume is not None and floor is None and volume <= 500:
            w.warn(
                "hydration_volume",
                f"{adm.drug}: {volume} mL; some local policies question hydration of 500 mL or less.",
                (adm.id,),
                ("R33",),
            )
        groups.setdefault((adm.encounter, site_group(w, adm.access_site)), []).append(adm)
    for (encounter, group), members in sorted(groups.items()):
        ids = tuple(a.id for a in members)
        own = union(w, ids)
        others = [i for s in w.services if s.encounter == encounter and s.family != "hydration" for i in s.intervals]
        alone = subtract(own, others) if others else own
        gross = minutes_of(own)
        minutes = minutes_of(alone)
        rules: tuple[str, ...] = ("R15", "R19")
        arith = run_arith(w, ids, gross)
        if len(members) > 1:
            rules += ("D5", "R17")
        if gross != minutes:
            rules += ("R30", "R21")
            arith = f"{minutes} min = {gross} running − {gross - minutes} during other administrations [{arith}]"
        starts = [w.runs[a].start for a in ids if w.runs[a].start is not None]
        start = min(starts) if starts else None
        if w.policy.combine_hydration_segments or len(alone) < 2:
            pieces: list[tuple[tuple[Interval, ...], int, str]] = [(alone, minutes, arith)]
        else:
            rules += ("D5",)
            pieces = [
                (seg, minutes_of(seg), f"segment {w.clock(seg[0][0])}–{w.clock(seg[-1][1])}: {minutes_of(seg)} min alone (payer does not add segments split by another drug, D5)")
                for seg in _segments(alone, others)
            ]
        for intervals, piece_minutes, piece_arith in pieces:
            if piece_minutes < HYDRATION_MIN_MINUTES:
                w.skip(
                    f"hydration ({', '.join(a.drug for a in members)})",
                    ids,
                    rules,
                    f"Only {piece_minutes} min of hydration ran alone ({piece_arith}); 30 minutes or less is not reportable.",
                )
                continue
            w.services.append(
                Service(
                    key="hydration",
                    label=members[0].drug,
                    family="hydration",
                    kind="infusion",
                    encounter=encounter,
                    group=group,
                    admin_ids=ids,
                    start=start if len(pieces) == 1 else intervals[0][0],
                    minutes=piece_minutes,
                    intervals=intervals,
                    rules=rules,
                    arith=piece_arith,
                )
            )


def _segments(alone: tuple[Interval, ...], others: list[Interval]) -> list[tuple[Interval, ...]]:
    """D5 alternative: hydration pieces split by another drug's running time.
    Pieces separated only by the fluid's own pause stay one segment."""
    out: list[list[Interval]] = [[alone[0]]]
    for piece in alone[1:]:
        gap_start, gap_end = out[-1][-1][1], piece[0]
        if any(s < gap_end and e > gap_start for s, e in others):
            out.append([piece])
        else:
            out[-1].append(piece)
    return [tuple(seg) for seg in out]


def concurrent_infusions(w: Work) -> None:
    """R25: a different drug running at the same time as another infusion
    through the same access is concurrent (96368), never the initial.  Marked by
    ``concurrent_with`` (or, per payer policy R26, by sharing a bag), or
    inferred from overlapping running time in one site group (with a warning).
    There is no concurrent chemo code."""
    infusions = [s for s in w.services if s.kind == "infusion" and s.family != "hydration"]
    if len(infusions) < 2:
        return
    by_admin = {aid: s for s in w.services for aid in s.admin_ids}
    adm_by_id = {a.id: a for a in w.administrations}
    marked: dict[int, list[Service]] = {}
    for s in infusions:
        for aid in s.admin_ids:
            target = adm_by_id[aid].concurrent_with
            t = by_admin.get(target or "")
            if t is not None and t is not s and t.kind == "infusion" and t.family != "hydration":
                marked.setdefault(id(s), []).append(t)
        if s.bag is not None and w.policy.mixed_bag == "concurrent":
            mates = [t for t in infusions if t is not s and t.bag == s.bag and t.encounter == s.encounter]
            marked.setdefault(id(s), []).extend(mates)
    ordered = sorted(infusions, key=Service.order)
    # Charted pairs first, so an inference never pre-empts (or mislabels as
    # inferred) a pair the nurse marked.
    for s in ordered:
        if id(s) in marked:
            _pair_concurrent(w, s, marked[id(s)], True)
    for s in ordered:
        if id(s) in marked:
            continue
        partners = [
            t
            for t in infusions
            if t is not s
            and t.encounter == s.encounter
            and t.group == s.group
            and not (s.bag is not None and t.bag == s.bag)  # one bag split by policy: never concurrent by inference
            and _overlap_minutes(s, t) >= INFERRED_CONCURRENT_MINUTES
        ]
        _pair_concurrent(w, s, partners, False)


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
        lower.arith += f"; ran at the same time as {other.who()}"
        if not explicit:
            w.warn(
                "concurrent_inferred",
                f"{lower.label} overlapped another infusion in time and was coded as concurrent; confirm it ran through the same access.",
                lower.admin_ids,
                ("R25",),
            )


def _overlap_minutes(a: Service, b: Service) -> int:
    if not a.intervals or not b.intervals or a.intervals[-1][1] <= b.intervals[0][0] or b.intervals[-1][1] <= a.intervals[0][0]:
        return 0
    return minutes_of(a.intervals) - minutes_of(subtract(a.intervals, b.intervals))


# Overlap needed before two uncharted infusions are taken as concurrent: the
# >16-minute reading of R25 (Haugen); shorter overlaps are charting slack.
INFERRED_CONCURRENT_MINUTES = 16
