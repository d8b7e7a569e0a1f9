"""Other services and the add-on safety net (R39-R44)."""

from __future__ import annotations

from dataclasses import replace

from . import codes as C
from .state import (
    Work,
)
from .types import Line


def other_services(w: Work) -> None:
    """R39-R43: supplies are never billed; 96523 only as the sole service; 99211
    never with a procedure or administration; 99212-99215 beside a procedure only
    with 25 when significant and separately identifiable; facility claims carry
    no professional E/M (the hospital's G0463 is a coder decision)."""
    if not w.doc.other_services:
        return
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
    # R42 (dispute 11): some payers also take 96523 beside a significant,
    # separately identifiable E/M (which then carries 25).
    em_allows_flush = w.policy.port_flush_with_em and all(s.significant_separately_identifiable for s in em)
    for s in (s for s in services if s.kind == "port_flush_only"):
        if procedures or (em_lines and not em_allows_flush) or flush_billed:
            w.skip(
                f"port flush: {s.detail}",
                (),
                ("R42", "R41"),
                "96523 is reported only when it is the sole service that day.",
            )
        else:
            flush_billed = True
            if em_lines:
                w.lines = [
                    replace(l, modifiers=("25",), rules=l.rules + ("R42",), explanation=l.explanation + "; 25 beside 96523 (payer setting, R42)")
                    if l.code in C.EM_CODES and not l.modifiers
                    else l
                    for l in w.lines
                ]
            w.line(
                C.PORT_FLUSH_CODE,
                1,
                admins=(),
                rules=("R42",),
                explanation=f"Port irrigation: {s.detail}; "
                + ("reported beside a significant, separately identifiable E/M (payer setting, R42)" if em_lines else "the only service that day"),
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
    if present.isdisjoint(C.ADDON_PRIMARIES):
        return
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
