"""SC/IM/intra-arterial injections, coded per injection (R9, R34; D11-D13)."""

from __future__ import annotations

from datetime import date

from . import codes as C
from .state import (
    INJECTION_ROUTES,
    Work,
    sort_time,
)
from .types import Administration


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
        grouped.setdefault((adm.encounter, w.drug_key(adm), code), []).append(adm)
    seen_codes: dict[tuple[str, date], int] = {}
    items = sorted(grouped.items(), key=lambda kv: (sort_time(kv[1][0].start), kv[1][0].id))
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
        hormonal = (adm.hcpcs or "").strip().upper() in C.HORMONAL_ANTINEOPLASTIC_HCPCS or any(
            h in name for h in C.HORMONAL_ANTINEOPLASTICS
        )
        return "96402" if hormonal else "96401"
    return None  # SC/IM hydration (hypodermoclysis) is outside the rule set
