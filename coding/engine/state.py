"""Working state shared by the rules: ``Work`` (one evaluation) and ``Service``.

Vocabulary:

* a *service* is one codable IV thing: a drug infusion (runs of the same drug
  summed, R17/D2, or one bag of mixed drugs, R26), one push, or the hydration
  of one encounter (segments summed, D5);
* a *site group* is ``"main"`` for every access site that was not medically
  required, or the id of a medically required separate site (R10, R11); each
  group of each encounter gets one initial (R4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from . import codes as C
from .policy import PayerPolicy
from .timing import (
    Interval,
    local_date,
)
from .types import Administration, EncounterDoc, Line, NotBilled, Warning

IV_ROUTES = ("iv_infusion", "iv_push")
INJECTION_ROUTES = ("subcutaneous", "intramuscular", "intra_arterial")
NOT_THERAPY_PURPOSES = ("kvo", "flush", "drug_vehicle")
BILLABLE_HYDRATION_PURPOSES = ("hydration_medically_necessary", "adverse_reaction_treatment")


@dataclass(slots=True)
class Service:
    """One codable IV service (internal to the engine)."""

    key: str  # same-drug identity (HCPCS, else normalised name; "bag:..." for a mix)
    label: str  # drug name(s) for explanations
    family: str  # chemo_complex | therapeutic | hydration
    kind: str  # infusion | push
    encounter: str
    group: str  # site group, see module docstring
    admin_ids: tuple[str, ...]
    start: datetime | None
    minutes: int | None
    intervals: tuple[Interval, ...]
    rules: tuple[str, ...] = ()
    note: str = ""
    concurrent: bool = False

    @property
    def rank(self) -> int:
        return C.RANK[(self.family, self.kind)]

    def order(self) -> tuple[int, str, str]:
        """Hierarchy order (R6); ties by start time then administration id."""
        return (self.rank, sort_time(self.start), self.admin_ids[0])


@dataclass(slots=True)
class Work:
    """Mutable working state of one evaluation (never leaves the engine)."""

    doc: EncounterDoc
    policy: PayerPolicy
    administrations: tuple[Administration, ...]
    handled: set[str] = field(default_factory=set)
    services: list[Service] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    not_billed: list[NotBilled] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    billed_hydration: set[str] = field(default_factory=set)
    bag_fluids: set[str] = field(default_factory=set)
    drug_keys: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.drug_keys = same_drug_keys(self.administrations)

    def drug_key(self, adm: Administration) -> str:
        """Identity of "the same drug" in this document (R17, R28); see
        ``same_drug_keys``."""
        return self.drug_keys.get(adm.id) or drug_key(adm)

    def pending(self, *routes: str) -> list[Administration]:
        return [a for a in self.administrations if a.id not in self.handled and (not routes or a.route in routes)]

    def line(
        self,
        code: str,
        units: int,
        *,
        admins: tuple[str, ...],
        rules: tuple[str, ...],
        explanation: str,
        minutes: int | None = None,
        modifiers: tuple[str, ...] = (),
        when: date | None = None,
        ndc: str | None = None,
    ) -> None:
        if units < 1:
            return
        self.lines.append(
            Line(
                code=code,
                units=units,
                modifiers=tuple(sorted(set(modifiers))),
                administrations=admins,
                minutes=minutes,
                rules=dedupe(rules),
                explanation=explanation,
                date_of_service=when or self.doc.date_of_service,
                ndc=ndc,
            )
        )

    def skip(self, description: str, admins: tuple[str, ...], rules: tuple[str, ...], reason: str) -> None:
        self.not_billed.append(NotBilled(description, admins, dedupe(rules), reason))

    def warn(self, kind: str, message: str, admins: tuple[str, ...], rules: tuple[str, ...]) -> None:
        self.warnings.append(Warning(kind, message, admins, dedupe(rules)))

    def date_of(self, moment: datetime | None) -> date:
        """Local date of a service (R14, D4); the document's date when untimed."""
        if moment is None:
            return self.doc.date_of_service
        return local_date(moment, self.doc.timezone)


def dedupe(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def sort_time(moment: datetime | None) -> str:
    """Sort key for a moment: its UTC ISO form; untimed items sort last."""
    if moment is None:
        return "~"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def drug_key(adm: Administration) -> str:
    """Identity of "the same drug" (R17, R28) for one administration alone: the
    HCPCS code when known, else its name key (``name_key``)."""
    if adm.hcpcs:
        return adm.hcpcs.strip().upper()
    return name_key(adm)


def name_key(adm: Administration) -> str:
    """The drug name without parenthetical remarks or trailing qualifiers."""
    name = re.sub(r"\(.*?\)", " ", adm.drug.lower())
    name = re.split(r",| - ", name)[0]
    return "name:" + " ".join(name.split())


def same_drug_keys(admins: tuple[Administration, ...]) -> dict[str, str]:
    """Drug identity of every administration of one document (R17, R28): the
    HCPCS code when charted.  A run charted without an HCPCS code (a resumed
    bag, a repeat push) is the same drug as the runs of the same name that carry
    one, when exactly one code is charted for that name; otherwise its name key."""
    codes: dict[str, set[str]] = {}
    for a in admins:
        if a.hcpcs and a.admin_class != "hydration":
            codes.setdefault(name_key(a), set()).add(a.hcpcs.strip().upper())
    out: dict[str, str] = {}
    for a in admins:
        known = codes.get(name_key(a), set())
        out[a.id] = drug_key(a) if a.hcpcs or len(known) != 1 else next(iter(known))
    return out


def is_push(adm: Administration, minutes: int | None) -> bool:
    """R18: a push is an injection with the nurse present throughout, or an
    infusion of 15 minutes or less."""
    if adm.continuously_present:
        return True
    if minutes is None:
        return adm.route == "iv_push"
    return minutes <= 15


def site_group(doc: EncounterDoc, site_id: str | None) -> str:
    """R10/R11: only a medically required separate site forms its own group."""
    for site in doc.access_sites:
        if site.id == site_id and site.separate_site_medically_required:
            return site.id
    return "main"


def family_word(family: str) -> str:
    return {"chemo_complex": "chemo/complex", "therapeutic": "therapeutic", "hydration": "hydration"}[family]
