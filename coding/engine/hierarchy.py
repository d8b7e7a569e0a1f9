"""The initial service and everything coded after it (R4-R8, R10-R13, R20-R22,
R25, R27, R28, R31; D1, D3, D4, D7)."""

from __future__ import annotations

from datetime import datetime

from . import codes as C
from .state import (
    Service,
    Work,
    family_word,
    sort_time,
)
from .timing import (
    addon_hours,
    minutes_between,
    secondary_hydration_units,
)


def code_iv_services(w: Work) -> None:
    """R4-R8, R10-R13, R20-R22, R25, R27, R28, R31, D1, D3, D4, D7: per
    encounter and site group, the best-ranked service is the initial; everything
    else is sequential, concurrent, an additional push or an additional hour.
    The office follows the facility hierarchy (D7)."""
    encounters: dict[str, list[Service]] = {}
    for s in w.services:
        encounters.setdefault(s.encounter, []).append(s)

    def first_start(items: list[Service]) -> tuple[str, str]:
        return min((sort_time(s.start), s.encounter) for s in items)

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
                (m for m in members if m is not initial), key=lambda m: (sort_time(m.start), m.admin_ids[0])
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
        explanation=f"Initial {family_word(s.family)} {s.kind}: {s.label} ({s.note}); {reason}",
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
            explanation=f"{s.label}: different {family_word(s.family)} drug infused in sequence after the initial ({s.note})",
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
            explanation=f"{s.label}: additional IV push of a new {family_word(s.family)} drug ({s.note})",
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
