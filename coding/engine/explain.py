"""Human-readable replay of a result: ``explain(result)`` and ``RULE_TITLES``.

``RULE_TITLES`` gives a short title for every rule id a line can cite (R1-R51,
D1-D13), in our own words after the headings of coding-rules.md, for the coder
screen to show next to the ids (with a link to the rule text).
"""

from __future__ import annotations

from .types import CodingResult, Line

RULE_TITLES: dict[str, str] = {
    "R1": "Three administration families: hydration, therapeutic, chemo/complex",
    "R2": "Physicians do not bill administration codes for hospital services",
    "R3": "Hydration codes only for plain fluid; a bag with a drug is a drug infusion",
    "R4": "One initial service per encounter",
    "R5": "Office: the initial is the primary reason for the encounter",
    "R6": "Facility: initial chosen by hierarchy (chemo > therapeutic > hydration; infusion > push > injection)",
    "R7": "Order of delivery never decides the initial",
    "R8": "After the initial, later services take codes from whichever family fits",
    "R9": "SC/IM injections are coded per injection beside the IV initial",
    "R10": "A second initial only for a medically required separate IV site",
    "R11": "Restarts, extra lumens or convenience sites do not justify a second initial",
    "R12": "The distinct-service modifier goes on the lower-ranked second initial",
    "R13": "A separate encounter the same day gets its own initial with a modifier",
    "R14": "Across midnight: one hierarchy, one initial; dating of lines",
    "R15": "Count actual running time, drip to drip",
    "R16": "Start and stop times are required for timed codes",
    "R17": "Pauses are subtracted; runs of the same drug are summed",
    "R18": "Push: nurse present throughout, or 15 minutes or less; infusion needs 16+",
    "R19": "Hydration of 30 minutes or less is not reportable",
    "R20": "Each additional hour needs 31+ minutes past the last hour (91, 151, 211 ...)",
    "R21": "Secondary hydration: 96361 from 31 minutes, then per hour",
    "R22": "Sequential infusion of a different drug, and its extra hours",
    "R23": "Prolonged chemo started on a pump (96416; G0498 if the office supplies it)",
    "R24": "Minutes on absolute time, across time zones and DST",
    "R25": "Concurrent infusion 96368: once per encounter, never for chemo",
    "R26": "Drugs mixed in one bag are one infusion",
    "R27": "Additional pushes of new drugs (96375, 96411)",
    "R28": "Repeat push of the same drug: facility only, more than 30 minutes later",
    "R29": "KVO, flushes and drug vehicles are not hydration",
    "R30": "Hydration running at the same time as a drug is not billed",
    "R31": "When hydration is billable (medically necessary, sequential)",
    "R32": "Hydration required by a drug's labeling (disputed)",
    "R33": "Hydration volume (some local policies)",
    "R34": "SC/IM and intra-arterial injection codes",
    "R35": "Chemo/complex codes apply beyond cancer",
    "R36": "Medicare pays rheumatology biologics as complex administration",
    "R37": "Payer exceptions that bill some biologics as therapeutic",
    "R38": "Rheumatology drug table: default family per drug",
    "R39": "99211 is never billed with drug administration",
    "R40": "A higher E/M with 25 only when significant and separately identifiable",
    "R41": "IV start, access, flushes, supplies and preparation are included",
    "R42": "Port irrigation 96523 only as the sole service",
    "R43": "Facility clinic visits (G0463) are not on the engine's claim",
    "R44": "An add-on needs an eligible primary",
    "R45": "Medically unlikely edits (unit caps)",
    "R46": "Drug units: dose divided by the billing unit, rounded up",
    "R47": "JW: discarded drug from a single-dose container on its own line",
    "R48": "JZ: nothing discarded from a single-dose container",
    "R49": "NDC in 11-digit 5-4-2 form with N4, quantity and unit",
    "R50": "Self-administered drugs are excluded from Part B",
    "R51": "Declotting a catheter is the procedure 36593",
    "D1": "Default: 59 on secondary hydration only after a chemo initial",
    "D2": "Default: runs of the same drug are summed",
    "D3": "Default: 59 for a second site or a second encounter",
    "D4": "Default: a continuous service is dated on the day it started",
    "D5": "Default: split hydration segments are summed",
    "D6": "Default: a fluid bag is billed only with reportable hydration",
    "D7": "Default: the office initial follows the hierarchy",
    "D8": "Default: a discard below one billing unit takes JZ, no JW line",
    "D9": "Default: the charted family of a biologic, overridable per payer",
    "D10": "Default: no stop time means no hydration and a push fallback",
    "D11": "Default: a split dose is one injection; a repeat code takes 59",
    "D12": "Default: SC/IM injections coded beside any IV initial",
    "D13": "Default: 96402 for hormonal antineoplastics, 96401 for other complex agents",
}


def _ids(ids: tuple[str, ...]) -> str:
    return f" (adm {', '.join(ids)})" if ids else ""


def _rules(rules: tuple[str, ...]) -> str:
    return " ".join(rules)


def line_heading(line: Line) -> str:
    """"96361-59 ×2 on 2025-05-06", the claim-line part of an explanation."""
    mods = "".join(f"-{m}" for m in line.modifiers)
    when = f" on {line.date_of_service.isoformat()}" if line.date_of_service else ""
    return f"{line.code}{mods} ×{line.units}{when}"


def explain(result: CodingResult) -> str:
    """The whole result as multi-line text a coder or auditor can read months
    later: rule-set version and payer policy, each line with its
    administrations, minutes, rule ids and explanation (the minute
    arithmetic), what was documented but not billed and why, and the warnings
    (blocking ones marked)."""
    policy = result.policy.name if result.policy is not None else "?"
    out = [f"Rule set {result.ruleset_version}, payer policy {policy}"]
    out.append("Lines:" if result.lines else "Lines: none")
    for line in result.lines:
        minutes = f", {line.minutes} min" if line.minutes is not None else ""
        out.append(f"  {line_heading(line)}{_ids(line.administrations)}{minutes} [{_rules(line.rules)}]")
        for part in line.explanation.split(" | "):
            out.append(f"      {part}")
        if line.ndc:
            qty = f" {line.ndc_unit} {line.ndc_quantity}" if line.ndc_quantity is not None else ""
            out.append(f"      NDC {line.ndc_qualifier} {line.ndc}{qty}")
    if result.not_billed:
        out.append("Not billed:")
        for n in result.not_billed:
            out.append(f"  - {n.description}{_ids(n.administrations)} [{_rules(n.rules)}]: {n.reason}")
    if result.warnings:
        out.append("Warnings:")
        for w in result.warnings:
            mark = "BLOCKING " if w.blocking else ""
            out.append(f"  ! {mark}{w.kind}{_ids(w.administrations)} [{_rules(w.rules)}]: {w.message}")
    return "\n".join(out)
