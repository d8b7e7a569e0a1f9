"""The single entry point: ``evaluate(doc, policy=None) -> CodingResult``."""

from __future__ import annotations

from dataclasses import replace

from .codes import INITIAL_CODE, INJECTION_CODES, is_drug_code
from .drugs import drug_lines
from .policy import MEDICARE, PayerPolicy, policy_for
from .rules import RULES, record_billed_hydration
from .state import Work, family_word
from .timing import zone
from .types import Administration, CodingResult, EncounterDoc, Line

# Lines that are never joined: each initial and each injection is its own service.
_UNMERGED = frozenset(INITIAL_CODE.values()) | INJECTION_CODES

RULESET_VERSION = "2025.3"
"""Version of the rule set (coding-rules.md R1-R51, D1-D13 as implemented).
Stored with every suggestion so a past result can be replayed; bump it with
any change that can change a line, its explanation, a not-billed entry or a
warning.  2025.3: payer policies, NDC quantity/unit on drug lines, blocking
warnings, minute arithmetic in every explanation."""


def evaluate(doc: EncounterDoc, policy: PayerPolicy | None = None) -> CodingResult:
    """Code one documented encounter.

    ``policy`` defaults to the payer's built-in policy (``doc.payer``), else
    MEDICARE with a ``payer_policy`` warning; the policy applied is returned on
    the result.  Pure and deterministic: the result depends only on the values
    of ``doc`` and ``policy``, not on the order of its administrations, sites or
    other services.

    Never raises for clinically incomplete or mis-entered documentation: gaps
    and input the engine cannot use (no stop time, a malformed NDC, a dose in a
    unit the billing unit cannot convert from) come back as warnings with
    ``blocking=True`` and no guessed line, so the rest of the encounter is
    still coded.  Invalid policy values are refused earlier, by ``PayerPolicy``
    itself (``PolicyError``).
    """
    chosen = policy
    fallback = False
    if chosen is None:
        chosen = policy_for(doc.payer)
        if chosen is None:
            chosen, fallback = MEDICARE, True
    admins, overridden = _apply_family_overrides(doc.administrations, chosen)
    work = Work(doc=doc, policy=chosen, administrations=admins, overridden=overridden)
    if fallback:
        work.warn(
            "payer_policy",
            f"No policy for payer {doc.payer!r}; Medicare defaults applied (contested points may differ).",
            (),
            (),
        )
    if zone(doc.timezone) is None:
        work.warn("timezone", f"Unknown time zone {doc.timezone!r}; line dates taken in UTC.", (), ("R14", "R24"))
    for rule in RULES:
        rule(work)
    record_billed_hydration(work)
    drug_lines(work)
    lines = _merge(work.lines)
    if overridden:
        lines = tuple(_note_override(work, l) for l in lines)
    return CodingResult(
        lines=lines,
        not_billed=tuple(work.not_billed),
        warnings=tuple(work.warnings),
        ruleset_version=RULESET_VERSION,
        policy=chosen,
    )


def _apply_family_overrides(
    admins: tuple[Administration, ...], policy: PayerPolicy
) -> tuple[tuple[Administration, ...], dict[str, str]]:
    """D9, R37: the payer's family for a drug replaces the charted one."""
    if not policy.family_overrides:
        return admins, {}
    out: list[Administration] = []
    overridden: dict[str, str] = {}
    for a in admins:
        family = policy.family_for(a.hcpcs)
        if family is not None and family != a.admin_class and a.admin_class != "hydration":
            overridden[a.id] = a.admin_class
            a = replace(a, admin_class=family)
        out.append(a)
    return tuple(out), overridden


def _note_override(w: Work, line: Line) -> Line:
    changed = [i for i in line.administrations if i in w.overridden]
    if not changed or is_drug_code(line.code):
        return line
    by_id = {a.id: a for a in w.administrations}
    notes = "; ".join(
        f"{by_id[i].hcpcs} {family_word(by_id[i].admin_class)} per payer policy {w.policy.name!r} (charted {family_word(w.overridden[i])}, D9)"
        for i in changed
    )
    return replace(line, rules=tuple(dict.fromkeys(line.rules + ("D9", "R37"))), explanation=f"{line.explanation}; family: {notes}")


def _merge(lines: list[Line]) -> tuple[Line, ...]:
    """Join lines with the same code, modifiers, date and NDC into one line with
    the units summed (96375 x2, 96415 x2 ...).  Initial codes (one per encounter
    or site, R4/R10/R13), per-injection codes (R9, D11) and drug lines with
    different NDCs stay separate."""
    out: list[Line] = []
    index: dict[tuple[object, ...], int] = {}
    for line in lines:
        key = (line.code, line.modifiers, line.date_of_service, line.ndc)
        i = index.get(key)
        if i is None or line.code in _UNMERGED:
            if i is None:
                index[key] = len(out)
            out.append(line)
            continue
        prev = out[i]
        out[i] = Line(
            prev.code,
            prev.units + line.units,
            prev.modifiers,
            tuple(dict.fromkeys(prev.administrations + line.administrations)),
            None if prev.minutes is None or line.minutes is None else prev.minutes + line.minutes,
            tuple(dict.fromkeys(prev.rules + line.rules)),
            f"{prev.explanation} | {line.explanation}",
            prev.date_of_service,
            prev.ndc,
            prev.ndc_qualifier,
            None if prev.ndc_quantity is None or line.ndc_quantity is None else prev.ndc_quantity + line.ndc_quantity,
            prev.ndc_unit,
        )
    return tuple(out)
