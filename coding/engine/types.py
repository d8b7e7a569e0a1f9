"""Input and output shapes of the coding engine.

Everything here is a frozen, slotted dataclass holding tuples (never lists), so
an ``EncounterDoc`` and a ``CodingResult`` are hashable values that can be
stored, compared and replayed.  Datetimes are offset-aware; minutes are always
computed on absolute (UTC) time, never on wall-clock differences (R24).

Enumerations are plain string constants (``SETTINGS``, ``ADMIN_CLASSES`` ...)
so the scenario parser and the Django side can validate against one list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .policy import PayerPolicy

SETTINGS = ("office", "facility")
SITE_KINDS = ("peripheral_iv", "port", "picc", "central_line", "none")
ADMIN_CLASSES = ("chemo_complex", "therapeutic", "hydration")
ROUTES = ("iv_infusion", "iv_push", "subcutaneous", "intramuscular", "intra_arterial")
PURPOSES = (
    "treatment",
    "hydration_medically_necessary",
    "adverse_reaction_treatment",
    "kvo",
    "flush",
    "drug_vehicle",
    # Extension (not in scenarios/README.md): a thrombolytic instilled to clear
    # an occluded catheter, coded as the procedure 36593 (R51).
    "catheter_clearance",
)
DOSE_UNITS = ("mg", "mL", "g", "units", "mcg")
CONTAINER_TYPES = ("single_dose", "multi_dose")
OTHER_SERVICE_KINDS = ("nurse_visit_99211", "em_visit", "supplies", "port_flush_only")


@dataclass(frozen=True, slots=True)
class Quantity:
    """An amount such as a dose: ``value`` in ``unit`` (mg, mL, g, units, mcg)."""

    value: Decimal
    unit: str


@dataclass(frozen=True, slots=True)
class AccessSite:
    """A vascular access site.  Only a site with
    ``separate_site_medically_required`` justifies its own initial code (R10, R11)."""

    id: str
    kind: str
    location: str = ""
    separate_site_medically_required: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Container:
    """Containers opened for a drug: ``type`` single_dose | multi_dose,
    ``size`` per container (None when the containers differ), ``count`` opened."""

    type: str
    size: Quantity | None
    count: int


@dataclass(frozen=True, slots=True)
class Administration:
    """One documented administration (a run of one drug).

    ``start``/``stop`` are aware datetimes (drip to drip, R15); ``pauses`` are
    intervals when the drug was not running (an open pause ends at ``stop``).
    A push charted at one moment has ``start == stop``.
    """

    id: str
    drug: str
    hcpcs: str | None
    admin_class: str
    route: str
    access_site: str | None
    dose: Quantity | None
    start: datetime | None
    stop: datetime | None
    pauses: tuple[tuple[datetime, datetime | None], ...] = ()
    purpose: str = "treatment"
    concurrent_with: str | None = None
    bag: str | None = None
    continuously_present: bool = False
    encounter: str = "1"
    container: Container | None = None
    wasted: Quantity | None = None
    ndc: str | None = None
    hcpcs_unit: Quantity | None = None
    # Extension: a chemo infusion started on a portable/implantable pump (R23).
    # When False the engine also looks for a pump among the supplies.
    pump: bool = False


@dataclass(frozen=True, slots=True)
class OtherService:
    """A non-drug service: nurse_visit_99211 | em_visit | supplies | port_flush_only.
    An em_visit carries its ``level`` (e.g. "99213")."""

    kind: str
    detail: str = ""
    level: str | None = None
    significant_separately_identifiable: bool = False


@dataclass(frozen=True, slots=True)
class EncounterDoc:
    """One patient, one date of service, everything documented (DESIGN §4).

    ``timezone`` is the clinic's IANA zone; line dates are local dates in it.
    """

    id: str
    setting: str
    date_of_service: date
    timezone: str
    access_sites: tuple[AccessSite, ...]
    administrations: tuple[Administration, ...]
    other_services: tuple[OtherService, ...] = ()
    payer: str = "medicare"


@dataclass(frozen=True, slots=True)
class Line:
    """A suggested claim line.  ``minutes`` is the running time that decided a
    timed code (None for untimed codes); ``rules`` cites coding-rules.md ids;
    ``explanation`` gives the administrations and the minute arithmetic;
    ``date_of_service`` is the local date the service was given (R14, D4).

    Drug lines (R49) also carry the NDC: ``ndc`` in 11-digit 5-4-2 form without
    hyphens, ``ndc_qualifier`` "N4", ``ndc_quantity`` (the amount of this line
    in the package's unit, not HCPCS units) and ``ndc_unit`` (UN, ML, GR, F2 or
    ME).  All four are None on lines without an NDC.
    """

    code: str
    units: int
    modifiers: tuple[str, ...]
    administrations: tuple[str, ...]
    minutes: int | None
    rules: tuple[str, ...]
    explanation: str
    date_of_service: date | None = None
    ndc: str | None = None
    ndc_qualifier: str | None = None
    ndc_quantity: Decimal | None = None
    ndc_unit: str | None = None

    # The engine builds thousands of lines a second.  A frozen dataclass's
    # generated __init__ sets each field through object.__setattr__, which is
    # over twice as slow as filling the slots directly.  A class that defines
    # its own __init__ keeps it (dataclasses docs: "If the class already
    # defines __init__(), this parameter is ignored"); frozenness, eq, hash
    # and repr are unchanged.  tests/engine/test_types.py keeps this signature
    # equal to the fields.
    def __init__(
        self,
        code: str,
        units: int,
        modifiers: tuple[str, ...],
        administrations: tuple[str, ...],
        minutes: int | None,
        rules: tuple[str, ...],
        explanation: str,
        date_of_service: date | None = None,
        ndc: str | None = None,
        ndc_qualifier: str | None = None,
        ndc_quantity: Decimal | None = None,
        ndc_unit: str | None = None,
    ) -> None:
        s = _LINE_SLOTS
        s[0](self, code)
        s[1](self, units)
        s[2](self, modifiers)
        s[3](self, administrations)
        s[4](self, minutes)
        s[5](self, rules)
        s[6](self, explanation)
        s[7](self, date_of_service)
        s[8](self, ndc)
        s[9](self, ndc_qualifier)
        s[10](self, ndc_quantity)
        s[11](self, ndc_unit)


@dataclass(frozen=True, slots=True)
class NotBilled:
    """Something documented that is not separately reportable, and why."""

    description: str
    administrations: tuple[str, ...]
    rules: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Warning:
    """Documentation that blocks or weakens a line (``kind`` e.g. "no_stop_time").

    ``blocking`` is True when a line that the documentation would otherwise
    support was withheld or reduced until the chart is fixed (no stop time,
    malformed NDC, a dose the billing unit cannot convert from ...).
    """

    kind: str
    message: str
    administrations: tuple[str, ...]
    rules: tuple[str, ...]
    blocking: bool = False

    def __init__(self, kind: str, message: str, administrations: tuple[str, ...], rules: tuple[str, ...], blocking: bool = False) -> None:
        # Slots filled directly, as in Line.__init__.
        s = _WARNING_SLOTS
        s[0](self, kind)
        s[1](self, message)
        s[2](self, administrations)
        s[3](self, rules)
        s[4](self, blocking)


@dataclass(frozen=True, slots=True)
class CodingResult:
    """The engine's answer for one ``EncounterDoc``.  ``policy`` is the payer
    policy applied (store ``policy.to_dict()`` beside the ruleset version so
    the result can be replayed)."""

    lines: tuple[Line, ...]
    not_billed: tuple[NotBilled, ...]
    warnings: tuple[Warning, ...]
    ruleset_version: str
    policy: PayerPolicy | None = None


# Slot setters for the hand-written __init__ of Line and Warning, in field order.
_LINE_SLOTS = tuple(getattr(Line, name).__set__ for name in Line.__slots__)
_WARNING_SLOTS = tuple(getattr(Warning, name).__set__ for name in Warning.__slots__)
