"""SC/IM/intra-arterial injections, coded per injection (R9, R34; D11-D13)."""

from __future__ import annotations

from datetime import date

from . import codes as C
from .state import (
    INJECTION_ROUTES,
    Work,
    when_key,
)
from .types import Administration


def injections(w: Work) -> None:
    """R9, R34, D11, D12, D13: SC/IM/intra-arterial injections are coded per
    injection beside any IV initial; one dose of one drug split over syringes is
    one injection; a second line with the same code carries 59.  Payer policy
    may count each syringe (D11) or put same-code injections on one line."""
    grouped: dict[tuple[str, str, str], list[Administration]] = {}
    per_syringe = w.policy.split_dose_injection == "per_syringe"
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
            w.warn("unsupported_injection", f"{adm.drug}: {adm.route} {adm.admin_class} needs coder review.", (adm.id,), ("R34",))
            continue
        key = adm.id if per_syringe else w.drug_key(adm)
        grouped.setdefault((adm.encounter, key, code), []).append(adm)
    if not grouped:
        return
    seen_codes: dict[tuple[str, date], int] = {}
    one_line: dict[tuple[str, date], list[tuple[str, ...]]] = {}
    items = sorted(grouped.items(), key=lambda kv: (when_key(w.runs[kv[1][0].id].start), kv[1][0].id))
    for (_encounter, _key, code), members in items:
        first = members[0]
        when = w.date_of(w.runs[first.id].start)
        count = seen_codes.get((code, when), 0)
        seen_codes[(code, when)] = count + 1
        ids = tuple(a.id for a in members)
        if w.policy.injections_on_one_line:
            one_line.setdefault((code, when), []).append(ids)
            continue
        mods = (w.policy.injection_repeat_modifier,) if count else ()
        rules: tuple[str, ...] = ("R9", "R34", "D12")
        if first.admin_class == "chemo_complex":
            rules += ("R35", "D13")
        if len(members) > 1 or per_syringe:
            rules += ("D11",)
        if count:
            rules += ("D11", "R12")
        if len(members) > 1:
            note = f"{len(members)} syringes of one dose = one injection (D11)"
        elif per_syringe and _split(w, first):
            note = "one syringe of a split dose, counted per syringe (payer setting, D11)"
        else:
            note = "one injection"
        repeat = f"; {mods[0]} as injection {count + 1} with this code (D11)" if mods else ""
        w.line(
            code,
            1,
            admins=ids,
            rules=rules,
            modifiers=mods,
            when=when,
            explanation=f"{code} {first.route.replace('_', ' ')} injection: {first.drug} (adm {', '.join(ids)}) at {w.clock(w.runs[first.id].start)}, {note}, coded beside any IV service{repeat}",
        )
    for (code, when), batches in one_line.items():
        ids = tuple(i for b in batches for i in b)
        w.line(
            code,
            len(batches),
            admins=ids,
            rules=("R9", "R34", "D12", "D11"),
            when=when,
            explanation=f"{code} ×{len(batches)}: {len(batches)} injection(s) (adm {', '.join(ids)}) on one line with units (payer setting)",
        )


def _split(w: Work, adm: Administration) -> bool:
    key = w.drug_key(adm)
    return sum(1 for a in w.administrations if a.route in INJECTION_ROUTES and a.encounter == adm.encounter and w.drug_key(a) == key) > 1


def _injection_code(adm: Administration) -> str | None:
    if adm.route == "intra_arterial":
        return "96373" if adm.admin_class == "therapeutic" else None
    if adm.admin_class == "therapeutic":
        return "96372"
    if adm.admin_class == "chemo_complex":
        name = adm.drug.lower()
        hormonal = (adm.hcpcs or "").strip().upper() in C.HORMONAL_ANTINEOPLASTIC_HCPCS or any(h in name for h in C.HORMONAL_ANTINEOPLASTICS)
        return "96402" if hormonal else "96401"
    return None  # SC/IM hydration (hypodermoclysis) is outside the rule set
