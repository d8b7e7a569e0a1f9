"""The single entry point: ``evaluate(doc) -> CodingResult``."""

from __future__ import annotations

from .codes import INITIAL_CODE, INJECTION_CODES
from .drugs import drug_lines
from .policy import MEDICARE, PayerPolicy, policy_for
from .rules import RULES, record_billed_hydration
from .state import Work, sort_time
from .types import CodingResult, EncounterDoc, Line

# Lines that are never joined: each initial and each injection is its own service.
_UNMERGED = frozenset(INITIAL_CODE.values()) | INJECTION_CODES

RULESET_VERSION = "2025.2-admin+drug"
"""Version of the rule set (coding-rules.md R1-R51, D1-D13 as implemented).
Stored with every suggestion so a past result can be replayed; bump it with
any change that can change a line."""


def evaluate(doc: EncounterDoc, policy: PayerPolicy | None = None) -> CodingResult:
    """Code one documented encounter.

    ``policy`` defaults to the payer's known policy (``doc.payer``), else
    MEDICARE with a ``payer_policy`` warning.  Pure and deterministic: the
    result depends only on the values of ``doc`` and ``policy``, not on the order
    of its administrations, sites or other services.  Never raises for
    clinically incomplete documentation; gaps come back as warnings.
    """
    chosen = policy
    fallback = False
    if chosen is None:
        chosen = policy_for(doc.payer)
        if chosen is None:
            chosen, fallback = MEDICARE, True
    ordered = tuple(sorted(doc.administrations, key=lambda a: (sort_time(a.start), a.id)))
    work = Work(doc=doc, policy=chosen, administrations=ordered)
    if fallback:
        work.warn(
            "payer_policy",
            f"No policy for payer {doc.payer!r}; Medicare defaults applied (contested points may differ).",
            (),
            (),
        )
    for rule in RULES:
        rule(work)
    record_billed_hydration(work)
    drug_lines(work)
    return CodingResult(
        lines=_merge(work.lines),
        not_billed=tuple(work.not_billed),
        warnings=tuple(work.warnings),
        ruleset_version=RULESET_VERSION,
    )


def _merge(lines: list[Line]) -> tuple[Line, ...]:
    """Join lines with the same code, modifiers and date into one line with the
    units summed (96375 x2, 96415 x2 ...).  Initial codes (one per encounter or
    site, R4/R10/R13), per-injection codes (R9, D11) and drug lines with
    different NDCs stay separate."""
    out: list[Line] = []
    index: dict[tuple[object, ...], int] = {}
    for line in lines:
        key = (line.code, line.modifiers, line.date_of_service, line.ndc)
        if line.code in _UNMERGED or key not in index:
            index.setdefault(key, len(out))
            out.append(line)
            continue
        i = index[key]
        prev = out[i]
        out[i] = Line(
            code=prev.code,
            units=prev.units + line.units,
            modifiers=prev.modifiers,
            administrations=tuple(dict.fromkeys(prev.administrations + line.administrations)),
            minutes=None if prev.minutes is None or line.minutes is None else prev.minutes + line.minutes,
            rules=tuple(dict.fromkeys(prev.rules + line.rules)),
            explanation=f"{prev.explanation}; {line.explanation}",
            date_of_service=prev.date_of_service,
            ndc=prev.ndc,
        )
    return tuple(out)
