"""The initial service and everything coded after it (R4-R8, R10-R13, R20-R22,
R25, R27, R28, R31; D1-D4, D7)."""

from __future__ import annotations

from . import codes as C
from .state import (
    NEVER,
    Service,
    Work,
    family_word,
    thresholds,
)
from .timing import addon_hours, secondary_hydration_units

_HIERARCHY = "highest-ranked service of the encounter (chemo infusion > chemo push > therapeutic infusion > therapeutic push > hydration)"


def code_iv_services(w: Work) -> None:
    """R4-R8, R10-R13, R20-R22, R25, R27, R28, R31, D1-D4, D7: per
    encounter and site group, the best-ranked service is the initial; everything
    else is sequential, concurrent, an additional push or an additional hour.
    The office follows the facility hierarchy (D7)."""
    if not w.services:
        return
    encounters: dict[str, list[Service]] = {}
    for s in w.services:
        if s.encounter in encounters:
            encounters[s.encounter].append(s)
        else:
            encounters[s.encounter] = [s]

    def first_start(item: tuple[str, list[Service]]) -> tuple[float, str]:
        return min((NEVER if s.start is None else s.start, s.encounter) for s in item[1])

    ordered = sorted(encounters.items(), key=first_start) if len(encounters) > 1 else list(encounters.items())
    concurrent_done: set[str] = set()
    for position, (encounter, services) in enumerate(ordered):
        groups: dict[str, list[Service]] = {}
        for s in services:
            if s.group in groups:
                groups[s.group].append(s)
            else:
                groups[s.group] = [s]
        heads = [(_initial_of(members), members) for members in groups.values()]
        if len(heads) > 1:
            heads.sort(key=lambda hm: hm[0].order())
        for gi, (initial, members) in enumerate(heads):
            modifiers: list[str] = []
            rules: list[str] = ["R1", "R4", "R6"]
            why: list[str] = []
            if w.doc.setting == "office":
                rules.append("D7")
            if gi > 0:
                modifiers.append(w.policy.distinct_modifier)
                rules += ["R10", "R12", "D3"]
                why.append(f"second initial at a medically required separate site, {w.policy.distinct_modifier} on the lower-ranked initial (D3)")
            if position > 0 and gi == 0:
                modifiers.append(w.policy.separate_encounter_modifier)
                rules += ["R13", "D3"]
                why.append(f"initial of separate encounter {encounter} the same day, {w.policy.separate_encounter_modifier} (D3)")
            _code_initial(w, initial, tuple(modifiers), tuple(rules), why)
            pushed: dict[str, float | None] = {}
            infused: set[str] = set()
            if initial.kind == "push":
                pushed[initial.key] = initial.start
            else:
                infused.add(initial.key)
            initial_code = C.INITIAL_CODE[(initial.family, initial.kind)]
            if len(members) == 1:
                continue
            rest = sorted((m for m in members if m is not initial), key=lambda m: (NEVER if m.start is None else m.start, m.admin_ids[0]))
            for s in rest:
                _code_subsequent(w, s, initial, initial_code, pushed, infused, concurrent_done)


def _initial_of(members: list[Service]) -> Service:
    """Best-ranked service of a site group (R4, R6, R7); a concurrent infusion
    never takes the slot while anything else is there (R25)."""
    if len(members) == 1:
        initial = members[0]
    else:
        candidates = [s for s in members if not s.concurrent] or members
        initial = min(candidates, key=Service.order)
    initial.concurrent = False
    return initial


def _code_initial(w: Work, s: Service, modifiers: tuple[str, ...], rules: tuple[str, ...], why: list[str]) -> None:
    code = C.INITIAL_CODE[(s.family, s.kind)]
    reason = "; ".join(why) if why else _HIERARCHY
    rules = rules + s.rules
    if s.kind == "push":
        w.hour_lines(code, 0, 1, s, rules=rules, modifiers=modifiers, explanation=f"Initial {family_word(s.family)} push {code}: {s.who()}, {s.arith}; {reason}")
        return
    rules += ("R20",) if s.family != "hydration" else ("R19", "R20")
    extra = addon_hours(s.minutes or 0)
    hour = C.ADDITIONAL_HOUR_CODE[s.family]
    first = "31–90 min" if s.family == "hydration" else "16–90 min"
    more = f"; +{hour} ×{extra} from {thresholds(91, extra)}" if extra else ""
    w.hour_lines(
        code,
        0,
        1,
        s,
        rules=rules,
        modifiers=modifiers,
        explanation=f"Initial {family_word(s.family)} infusion {code}: {s.who()}, {s.arith}; first period {first}{more}; {reason}",
    )
    if extra:
        w.hour_lines(
            hour,
            1,
            extra,
            s,
            rules=("R20",) + s.rules,
            explanation=f"+{hour} ×{extra} from {thresholds(91, extra)} (each further hour needs 31+ min past the last, R20): {s.who()}, {s.arith}",
        )


def _code_subsequent(
    w: Work,
    s: Service,
    initial: Service,
    initial_code: str,
    pushed: dict[str, float | None],
    infused: set[str],
    concurrent_done: set[str],
) -> None:
    base = ("R4", "R7", "R8") + s.rules
    after = f"after initial {initial_code}"
    if s.concurrent:
        if s.encounter in concurrent_done:
            w.skip(f"{s.label}: further concurrent infusion", s.admin_ids, ("R25",), "96368 is reported once per encounter.")
            return
        concurrent_done.add(s.encounter)
        w.hour_lines(
            "96368",
            0,
            1,
            s,
            rules=base + ("R25",),
            explanation=f"Concurrent infusion 96368 {after}: {s.who()}, {s.arith}; once per encounter, not timed",
        )
        return
    if s.family == "hydration":
        units = secondary_hydration_units(s.minutes or 0)
        policy = w.policy.secondary_hydration_59
        mods: tuple[str, ...] = ()
        if policy == "always" or (policy == "chemo_initial_only" and initial_code in C.CHEMO_INITIALS):
            mods = ("59",)
        why59 = f"; 59 per payer setting '{policy}' (D1)" if mods else ""
        w.hour_lines(
            "96361",
            0,
            units,
            s,
            rules=base + ("R21", "R31", "D1"),
            modifiers=mods,
            explanation=f"Secondary hydration 96361 ×{units} {after}: {s.who()}, {s.arith}; units from {thresholds(31, units)} (R21){why59}",
        )
        return
    if s.kind == "infusion":
        if s.repeat and s.key in infused and w.policy.same_drug_runs == "additional_hour":
            # D2 alternative (HCPro): a later separate infusion of a drug already
            # infused is reported with the additional-hour code of its family.
            hour = C.ADDITIONAL_HOUR_CODE[s.family]
            units = 1 + addon_hours(s.minutes or 0)
            w.hour_lines(
                hour,
                0,
                units,
                s,
                rules=base + ("R20",),
                explanation=f"+{hour} ×{units}: later separate run of a drug already infused, reported as additional time (payer setting, D2): {s.who()}, {s.arith}",
            )
            return
        infused.add(s.key)
        # A chemo infusion after a chemo initial is 96417; after a chemo push
        # initial too -- 96417 has no primary besides 96413 (R44 drops it
        # when none exists).
        code, hour = C.SEQUENTIAL_INFUSION_CODE[s.family], C.ADDITIONAL_HOUR_CODE[s.family]
        extra = addon_hours(s.minutes or 0)
        more = f"; +{hour} ×{extra} from {thresholds(91, extra)}" if extra else ""
        what = "later separate run of the same drug (payer setting, D2)" if s.repeat else f"different {family_word(s.family)} drug"
        w.hour_lines(
            code,
            0,
            1,
            s,
            rules=base + ("R22",),
            explanation=f"Sequential infusion {code} {after}, {what}: {s.who()}, {s.arith}{more}",
        )
        if extra:
            w.hour_lines(
                hour,
                1,
                extra,
                s,
                rules=("R20", "R22") + s.rules,
                explanation=f"+{hour} ×{extra} from {thresholds(91, extra)} of the sequential infusion: {s.who()}, {s.arith}",
            )
        return
    # Pushes (R27, R28).
    if s.key not in pushed:
        pushed[s.key] = s.start
        code = "96411" if s.family == "chemo_complex" else "96375"
        w.hour_lines(
            code,
            0,
            1,
            s,
            rules=base + ("R27",),
            explanation=f"Additional push {code} of a new {family_word(s.family)} drug {after}: {s.who()}, {s.arith}",
        )
        return
    last = pushed[s.key]
    gap = (s.start - last) / 60 if last is not None and s.start is not None else None
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
                blocking=True,
            )
        return
    pushed[s.key] = s.start
    w.hour_lines(
        "96376",
        0,
        1,
        s,
        rules=base + ("R28",),
        explanation=f"Repeat push 96376 of the same drug {int(gap)} min after the prior reported push (facility, more than 30 min): {s.who()}, {s.arith}",
    )
